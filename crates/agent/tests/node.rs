//! One node in a fresh network namespace: apply builds exactly the
//! reference objects, a second apply changes nothing, every kind of damage
//! is reported by `check` and repaired by `apply`, teardown leaves the
//! namespace as it was, and pods get their namespace, address, route and
//! resolv.conf. Needs root (network namespaces, iptables).

mod common;

use common::*;
use labctl_nodeplan::report::{
    Action, InspectReport, ObjectKind, PodAddReport, PodDelReport, RouteGetReport, ShowReport,
    TeardownReport,
};

fn lab(test: &str, peers: u32) -> (Netns, TempDir, labctl_nodeplan::NodePlan, Vec<NodeSpec>) {
    let p = prefix(test);
    let ns = node_ns(&p, "192.168.56.10".parse().unwrap());
    let dir = TempDir::new(&p);
    let mut nodes = vec![NodeSpec {
        name: "n0".into(),
        number: 0,
        ip: "192.168.56.10".parse().unwrap(),
    }];
    for i in 1..=peers {
        nodes.push(NodeSpec {
            name: format!("n{i}"),
            number: i,
            ip: format!("192.168.56.{}", 10 + i).parse().unwrap(),
        });
    }
    let plan = plan(&p, &nodes[0], &nodes, &dir.path());
    (ns, dir, plan, nodes)
}

#[test]
fn apply_builds_the_reference_node_and_reapply_changes_nothing() {
    if !root_or_skip("apply_builds_the_reference_node") {
        return;
    }
    let (ns, dir, plan, _) = lab("ref", 2);
    let n = &ns.name;
    let r = agent(n, &plan, &["apply"]);
    assert_eq!(r.code, 0, "apply failed: {}\n{:#}", r.stderr, r.json);
    let report = r.apply();
    assert_eq!(
        report.created, 15,
        "every object is new on an empty node: {:#}",
        r.json
    );
    assert_eq!(report.node, "n0");
    let kinds = |k: ObjectKind| {
        report
            .objects
            .iter()
            .filter(|o| o.kind == k && o.action == Action::Created)
            .count()
    };
    // 2 devices, 2 addresses, 2 peers × (route, neighbour, FDB), 2 chains,
    // 2 jumps, 1 file (ip_forward, when it had to be set, is updated).
    assert_eq!(
        [
            kinds(ObjectKind::Link),
            kinds(ObjectKind::Address),
            kinds(ObjectKind::Route),
            kinds(ObjectKind::Neighbour),
            kinds(ObjectKind::Fdb),
            kinds(ObjectKind::Chain),
            kinds(ObjectKind::Rule),
            kinds(ObjectKind::File),
        ],
        [2, 2, 2, 2, 2, 2, 2, 1],
        "{:#}",
        r.json
    );

    let link = nsh(n, "ip -d link show flannel.1");
    assert!(link.contains("mtu 1450"), "{link}");
    assert!(link.contains("link/ether 0e:fa:0a:f4:00:00"), "{link}");
    assert!(
        link.contains("vxlan id 1 local 192.168.56.10 dev eth1 srcport 0 0 dstport 8472 nolearning ttl auto ageing 300"),
        "{link}"
    );
    assert!(link.contains(",UP,"), "{link}");
    assert!(nsh(n, "ip -4 addr show dev flannel.1")
        .contains("inet 10.244.0.0/32 scope global flannel.1"));
    let br = nsh(n, "ip -d link show cni0");
    assert!(br.contains("mtu 1450") && br.contains("bridge"), "{br}");
    assert!(nsh(n, "ip -4 addr show dev cni0")
        .contains("inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0"));
    assert_eq!(
        nsh(n, "ip route"),
        "10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1 linkdown \n\
         10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink \n\
         10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink \n\
         192.168.56.0/24 dev eth1 proto kernel scope link src 192.168.56.10 \n"
            .replace(
                "linkdown ",
                if nsh(n, "ip route").contains("linkdown") {
                    "linkdown "
                } else {
                    ""
                }
            )
    );
    let mut neigh: Vec<String> = nsh(n, "ip neigh show dev flannel.1")
        .lines()
        .map(String::from)
        .collect();
    neigh.sort();
    assert_eq!(
        neigh,
        [
            "10.244.1.0 lladdr 0e:fa:0a:f4:00:01 PERMANENT ",
            "10.244.2.0 lladdr 0e:fa:0a:f4:00:02 PERMANENT "
        ]
    );
    let mut fdb: Vec<String> = nsh(n, "bridge fdb show dev flannel.1")
        .lines()
        .map(String::from)
        .collect();
    fdb.sort();
    assert_eq!(
        fdb,
        [
            "0e:fa:0a:f4:00:01 dst 192.168.56.11 self permanent",
            "0e:fa:0a:f4:00:02 dst 192.168.56.12 self permanent"
        ]
    );
    let nat = nsh(n, "iptables -t nat -S");
    let expected_nat = [
        "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG",
        "-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN",
        "-A FLANNEL-POSTRTG -s 10.244.0.0/24 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN",
        "-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment \"flanneld masq\" -j RETURN",
        "-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment \"flanneld masq\" -j RETURN",
        "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully",
        "-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully",
    ];
    let nat_lines: Vec<&str> = nat.lines().filter(|l| l.starts_with("-A")).collect();
    assert_eq!(nat_lines, expected_nat);
    let filter: Vec<String> = nsh(n, "iptables -S")
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(String::from)
        .collect();
    assert_eq!(
        filter,
        [
            "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD",
            "-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT",
            "-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT",
        ]
    );
    let env = std::fs::read_to_string(format!("{}/run/flannel/subnet.env", dir.path())).unwrap();
    assert_eq!(env, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("{}/run/flannel/subnet.env", dir.path()))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o644);
    assert_eq!(nsh(n, "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");

    // `show` tells the same state, typed.
    let shown = agent(n, &plan, &["show"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown: ShowReport = shown.report();
    assert_eq!(shown.underlay.as_deref(), Some("eth1"));
    let vx = shown.vxlan.as_ref().expect("flannel.1 shown");
    assert_eq!(vx.addresses, ["10.244.0.0/32"]);
    assert!(
        vx.link
            .starts_with("vxlan id 1 local 192.168.56.10 dev eth1"),
        "{}",
        vx.link
    );
    let br = shown.bridge.as_ref().expect("cni0 shown");
    assert_eq!((br.kind.as_str(), br.mtu, br.up), ("bridge", 1450, true));
    assert!(shown
        .routes
        .contains(&"10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink".to_string()));
    assert_eq!(
        (shown.neighbours.len(), shown.fdb.len()),
        (2, 2),
        "{shown:#?}"
    );
    assert!(shown.iptables.error.is_none());
    assert!(shown.iptables.nat.contains(
        &"-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG".to_string()
    ));
    assert_eq!(shown.sysctls["net.ipv4.ip_forward"].as_deref(), Some("1"));
    assert_eq!(
        shown.files[&format!("{}/run/flannel/subnet.env", dir.path())].as_deref(),
        Some(env.as_str())
    );

    let again = agent(n, &plan, &["apply"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let again_report = again.apply();
    assert_eq!(
        (
            again_report.created,
            again_report.updated,
            again_report.removed
        ),
        (0, 0, 0),
        "second apply changed something: {:#}",
        again.json
    );
    let check = agent(n, &plan, &["check"]);
    assert_eq!(check.code, 0, "{:#}", check.json);
    let check = check.check();
    assert!(check.in_sync && check.differences.is_empty(), "{check:#?}");
}

/// Damages the node with `damage`, expects `check` to report `objects`
/// (exit 1) with their kinds, `apply` to repair them, and `check` to be
/// clean afterwards.
fn damage_and_repair(
    ns: &str,
    plan: &labctl_nodeplan::NodePlan,
    damage: &str,
    objects: &[(ObjectKind, &str)],
) {
    nsh(ns, damage);
    let check = agent(ns, plan, &["check"]);
    assert_eq!(
        check.code, 1,
        "check after `{damage}` should find drift: {:#}",
        check.json
    );
    let report = check.check();
    assert!(!report.in_sync);
    for (kind, o) in objects {
        assert!(
            report
                .differences
                .iter()
                .any(|d| d.object == *o && d.kind == *kind),
            "check after `{damage}` did not report {o} as a {kind}: {:#}",
            check.json
        );
    }
    // verify's node check (`inspect --check`) finds the same drift, with
    // the agent's version and the filter table beside it.
    let inspected = agent(ns, plan, &["inspect", "--check"]);
    assert_eq!(
        inspected.code, 1,
        "{}\n{:#}",
        inspected.stderr, inspected.json
    );
    let r: InspectReport = inspected.report();
    assert_eq!(
        r.check.as_ref().map(|c| &c.differences),
        Some(&report.differences),
        "{:#}",
        inspected.json
    );
    assert!(r.version.starts_with("labctl-agent "), "{r:?}");
    // From the check's own listing, exactly as `iptables -S` prints it.
    assert_eq!(
        r.filter_rules.as_deref(),
        Some(nsh(ns, "iptables -w -S").as_str()),
        "{r:?}"
    );
    assert!(
        r.filter_rules
            .as_deref()
            .is_some_and(|f| f.contains("-P FORWARD")),
        "{r:?}"
    );
    let apply = agent(ns, plan, &["apply"]);
    assert_eq!(
        apply.code, 0,
        "apply after `{damage}` failed: {}\n{:#}",
        apply.stderr, apply.json
    );
    let after = agent(ns, plan, &["check"]);
    assert_eq!(
        after.code, 0,
        "apply did not repair `{damage}`: {:#}",
        after.json
    );
}

#[test]
fn check_reports_and_apply_repairs_every_damage() {
    if !root_or_skip("check_reports_and_apply_repairs_every_damage") {
        return;
    }
    let (ns, dir, plan, _) = lab("dmg", 2);
    let n = &ns.name;
    assert_eq!(agent(n, &plan, &["apply"]).code, 0);
    let env = format!("{}/run/flannel/subnet.env", dir.path());
    let cases: Vec<(String, Vec<(ObjectKind, &str)>)> = vec![
        ("ip route del 10.244.1.0/24".into(), vec![(ObjectKind::Route, "route 10.244.1.0/24")]),
        ("bridge fdb del 0e:fa:0a:f4:00:01 dev flannel.1 dst 192.168.56.11 self".into(), vec![(ObjectKind::Fdb, "fdb 0e:fa:0a:f4:00:01 dev flannel.1")]),
        ("ip neigh del 10.244.2.0 dev flannel.1".into(), vec![(ObjectKind::Neighbour, "neighbour 10.244.2.0 dev flannel.1")]),
        ("ip link set flannel.1 mtu 1400".into(), vec![(ObjectKind::Link, "vxlan flannel.1 mtu")]),
        ("ip link set flannel.1 type vxlan learning".into(), vec![(ObjectKind::Link, "vxlan flannel.1 learning")]),
        ("ip link set flannel.1 address 0e:11:22:33:44:55".into(), vec![(ObjectKind::Link, "vxlan flannel.1 address")]),
        ("ip link set cni0 mtu 1300".into(), vec![(ObjectKind::Link, "bridge cni0 mtu")]),
        (
            "ip addr flush dev cni0 && ip addr add 10.99.0.1/24 dev cni0".into(),
            vec![(ObjectKind::Address, "address 10.99.0.1/24 dev cni0"), (ObjectKind::Address, "address 10.244.0.1/24 dev cni0")],
        ),
        ("ip addr add 10.77.0.1/32 dev flannel.1".into(), vec![(ObjectKind::Address, "address 10.77.0.1/32 dev flannel.1")]),
        (
            "bridge fdb append 0e:aa:bb:cc:dd:ee dev flannel.1 dst 192.168.56.11 self permanent".into(),
            vec![(ObjectKind::Fdb, "fdb 0e:aa:bb:cc:dd:ee dev flannel.1")],
        ),
        ("ip route add 10.244.77.0/24 via 10.244.77.0 dev flannel.1 onlink".into(), vec![(ObjectKind::Route, "route 10.244.77.0/24")]),
        ("iptables -t nat -D FLANNEL-POSTRTG 2".into(), vec![(ObjectKind::Chain, "iptables -t nat FLANNEL-POSTRTG")]),
        (
            "iptables -D FLANNEL-FWD 1 && iptables -A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT".into(),
            vec![(ObjectKind::Chain, "iptables -t filter FLANNEL-FWD")],
        ),
        (
            "iptables -t nat -D POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG".into(),
            vec![(ObjectKind::Rule, "iptables -t nat POSTROUTING jump to FLANNEL-POSTRTG")],
        ),
        (
            "iptables -A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD".into(),
            vec![(ObjectKind::Rule, "iptables -t filter FORWARD jump to FLANNEL-FWD")],
        ),
        (format!("echo FLANNEL_MTU=9000 >> {env}"), vec![(ObjectKind::File, Box::leak(format!("file {env}").into_boxed_str()))]),
        (format!("chmod 600 {env}"), vec![(ObjectKind::File, Box::leak(format!("file {env} mode").into_boxed_str()))]),
        (
            "ip link del flannel.1 && ip link add flannel.1 type vxlan id 2 local 192.168.56.10 dev eth1 dstport 8472".into(),
            vec![(ObjectKind::Link, "vxlan flannel.1 id")],
        ),
        ("ip link del cni0".into(), vec![(ObjectKind::Link, "bridge cni0")]),
    ];
    for (damage, objects) in &cases {
        damage_and_repair(n, &plan, damage, objects);
    }
}

#[test]
fn stale_peer_is_removed() {
    if !root_or_skip("stale_peer_is_removed") {
        return;
    }
    let (ns, dir, plan3, nodes) = lab("stale", 3);
    let n = &ns.name;
    assert_eq!(agent(n, &plan3, &["apply"]).code, 0);
    let plan2 = plan(&plan3.lab, &nodes[0], &nodes[..3], &dir.path());
    let check = agent(n, &plan2, &["check"]);
    assert_eq!(check.code, 1);
    let found = check.check();
    // Stale entries: identity in `name`, nothing expected, no peer.
    for (kind, name, o) in [
        (
            ObjectKind::Neighbour,
            "10.244.3.0",
            "neighbour 10.244.3.0 dev flannel.1",
        ),
        (
            ObjectKind::Fdb,
            "0e:fa:0a:f4:00:03",
            "fdb 0e:fa:0a:f4:00:03 dev flannel.1",
        ),
        (ObjectKind::Route, "10.244.3.0/24", "route 10.244.3.0/24"),
    ] {
        let d = found
            .differences
            .iter()
            .find(|d| d.object == o)
            .unwrap_or_else(|| panic!("{o} not reported: {:#}", check.json));
        assert_eq!((d.kind, d.name.as_str()), (kind, name), "{d:#?}");
        assert!(
            d.expected.is_none() && d.actual.is_some() && d.peer.is_none(),
            "{d:#?}"
        );
    }
    let r = agent(n, &plan2, &["apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = r.apply();
    assert_eq!(
        action(&r, "route 10.244.3.0/24"),
        (ObjectKind::Route, Action::Removed)
    );
    assert_eq!(
        action(&r, "neighbour 10.244.3.0 dev flannel.1"),
        (ObjectKind::Neighbour, Action::Removed)
    );
    assert_eq!(
        action(&r, "fdb 0e:fa:0a:f4:00:03 dev flannel.1"),
        (ObjectKind::Fdb, Action::Removed)
    );
    assert!(!nsh(n, "ip route").contains("10.244.3.0"));
    assert!(!nsh(n, "ip neigh").contains("10.244.3.0"));
    assert!(!nsh(n, "bridge fdb show dev flannel.1").contains("0e:fa:0a:f4:00:03"));
    // A peer whose VTEP MAC changed: the old FDB entry goes.
    let mut moved = plan2.clone();
    moved.peers[0].vtep_mac = "0e:fa:0a:f4:99:01".parse().unwrap();
    assert_eq!(agent(n, &moved, &["apply"]).code, 0);
    let fdb = nsh(n, "bridge fdb show dev flannel.1");
    assert!(
        !fdb.contains("0e:fa:0a:f4:00:01") && fdb.contains("0e:fa:0a:f4:99:01 dst 192.168.56.11"),
        "{fdb}"
    );
}

fn snapshot(ns: &str, dir: &str) -> String {
    nsh(
        ns,
        &format!(
            "ip -d link; ip addr; ip route show table all; ip neigh; bridge fdb; iptables -S | grep -v ^-P; iptables -t nat -S | grep -v ^-P; \
             ls -la /run/netns | grep -c {ns}- || true; find {dir} 2>/dev/null || true"
        ),
    )
    .lines()
    .filter(|l| !l.contains("valid_lft"))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn teardown_leaves_nothing_behind() {
    if !root_or_skip("teardown_leaves_nothing_behind") {
        return;
    }
    let (ns, dir, plan, _) = lab("td", 2);
    let n = &ns.name;
    let before = snapshot(n, &dir.path());
    assert_eq!(agent(n, &plan, &["apply"]).code, 0);
    let pod = agent_netns(n, &plan, &["pod", "add", "web"]);
    assert_eq!(pod.code, 0, "{}", pod.stderr);
    let r = agent(n, &plan, &["teardown"]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.json);
    let report: TeardownReport = r.report();
    assert!(report.errors.is_empty(), "{report:#?}");
    assert!(!report.removed.is_empty(), "{report:#?}");
    assert_eq!(snapshot(n, &dir.path()), before);
    assert!(!std::path::Path::new(&format!("/run/netns/{}-n0-web", plan.lab)).exists());
    assert!(!std::path::Path::new(&format!("/etc/netns/{}-n0-web", plan.lab)).exists());
    let twice = agent(n, &plan, &["teardown"]);
    assert_eq!(twice.code, 0, "{}", twice.stderr);
    let twice: TeardownReport = twice.report();
    assert!(twice.removed.is_empty(), "{twice:#?}");
}

#[test]
fn pods_get_namespace_address_route_and_dns() {
    if !root_or_skip("pods_get_namespace_address_route_and_dns") {
        return;
    }
    let (ns, _dir, plan, _) = lab("pod", 1);
    let n = &ns.name;
    let missing = agent_netns(n, &plan, &["pod", "add", "web"]);
    assert_eq!(
        missing.code, 3,
        "pod add before apply must say cni0 is missing: {}",
        missing.stderr
    );
    assert_eq!(agent(n, &plan, &["apply"]).code, 0);
    let a = agent_netns(n, &plan, &["pod", "add", "web"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let pod_ns = format!("{}-n0-web", plan.lab);
    let a: PodAddReport = a.report();
    assert_eq!(a.namespace, pod_ns);
    assert_eq!(a.ip, std::net::Ipv4Addr::new(10, 244, 0, 2));
    assert_eq!((a.node.as_str(), a.name.as_str()), ("n0", "web"));
    let eth0 = sh(&format!("ip -n {pod_ns} addr show eth0"));
    assert!(
        eth0.contains("inet 10.244.0.2/24") && eth0.contains("mtu 1450"),
        "{eth0}"
    );
    assert!(eth0.contains(&a.mac), "{eth0}");
    assert!(sh(&format!("ip -n {pod_ns} route")).contains("default via 10.244.0.1 dev eth0"));
    assert!(sh(&format!("ip -n {pod_ns} link show lo")).contains(",UP,"));
    assert_eq!(
        sh(&format!("ip netns exec {pod_ns} cat /etc/resolv.conf")),
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    );
    let again: PodAddReport = agent_netns(n, &plan, &["pod", "add", "web"]).report();
    assert_eq!(again, a, "pod add must be idempotent");
    let b: PodAddReport = agent_netns(n, &plan, &["pod", "add", "db"]).report();
    assert_eq!(b.ip, std::net::Ipv4Addr::new(10, 244, 0, 3));
    // The host end sits on cni0; the pod reaches its gateway.
    assert!(nsh(n, "ip link show master cni0").matches("veth").count() == 2);
    sh(&format!(
        "ip netns exec {pod_ns} {} -c 1 -W 2 10.244.0.1",
        ping()
    ));
    let d = agent_netns(n, &plan, &["pod", "del", "web"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let d: PodDelReport = d.report();
    assert_eq!(d.namespace, pod_ns);
    assert!(d.removed.contains(&format!("netns {pod_ns}")), "{d:#?}");
    assert!(!std::path::Path::new(&format!("/run/netns/{pod_ns}")).exists());
    assert!(!std::path::Path::new(&format!("/etc/netns/{pod_ns}")).exists());
    let c: PodAddReport = agent_netns(n, &plan, &["pod", "add", "cache"]).report();
    assert_eq!(
        c.ip,
        std::net::Ipv4Addr::new(10, 244, 0, 2),
        "freed address is reused"
    );
    // Under `ip netns exec` the mount namespace is private: refused.
    let private = agent(n, &plan, &["pod", "add", "other"]);
    assert_eq!(private.code, 3, "{}", private.stderr);
    assert!(private.stderr.contains("--netns"), "{}", private.stderr);
}

#[test]
fn bad_input_and_environment_errors_use_their_exit_codes() {
    if !root_or_skip("bad_input_and_environment_errors") {
        return;
    }
    let (ns, _dir, plan, _) = lab("err", 1);
    let n = &ns.name;
    let out = std::process::Command::new(AGENT)
        .args(["--plan", "/nonexistent/plan.json", "apply"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let mut bad = plan.clone();
    bad.schema = 99;
    assert_eq!(agent(n, &bad, &["apply"]).code, 2);
    let mut bad = plan.clone();
    bad.vxlan.as_mut().unwrap().mac = "01:00:5e:00:00:01".parse().unwrap();
    assert_eq!(agent(n, &bad, &["apply"]).code, 2);
    assert_eq!(agent(n, &plan, &["frobnicate"]).code, 2);
    let mut elsewhere = plan.clone();
    elsewhere.underlay_ip = "192.168.99.99".parse().unwrap();
    let r = agent(n, &elsewhere, &["apply"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("192.168.99.99"), "{}", r.stderr);
    let v = std::process::Command::new(AGENT)
        .arg("--version")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&v.stdout);
    assert!(
        line.starts_with(&format!(
            "labctl-agent {} sha256:",
            env!("CARGO_PKG_VERSION")
        )),
        "{line}"
    );
    assert_eq!(line.trim().rsplit(':').next().unwrap().len(), 64);
}

#[test]
fn route_get_names_the_table_entry_each_address_matches() {
    if !root_or_skip("route_get_names_the_table_entry_each_address_matches") {
        return;
    }
    let (ns, _dir, plan, _) = lab("rg", 1);
    let n = &ns.name;
    let r = agent(n, &plan, &["apply"]);
    assert_eq!(r.code, 0, "apply failed: {}\n{:#}", r.stderr, r.json);
    let r = agent(
        n,
        &plan,
        &["route", "get", "10.244.1.7", "192.168.56.99", "198.18.0.1"],
    );
    assert_eq!(r.code, 0, "route get failed: {}", r.stderr);
    let report: RouteGetReport = r.report();
    assert_eq!(report.node, "n0");
    let route = |ip: &str| report.route(ip.parse().unwrap());
    assert_eq!(
        route("10.244.1.7"),
        Some("10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink")
    );
    assert_eq!(route("192.168.56.99"), Some("192.168.56.0/24 dev eth1"));
    // No default route in this namespace: the kernel's answer is the error.
    assert_eq!(route("198.18.0.1"), None);
    let unreachable = report.lookups[2].error.as_deref().unwrap_or("");
    assert!(unreachable.contains("unreachable"), "{:#}", r.json);
    let r = agent(n, &plan, &["route", "get", "10.244.1.300"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not an IPv4 address"), "{}", r.stderr);
}
