//! Two node namespaces joined by an underlay bridge (in a third namespace),
//! one pod on each: the pods ping each other across flannel.1, and the
//! agent's `capture` on node A's underlay sees the VXLAN packets (UDP 8472,
//! VNI 1) carrying the pods' addresses. Needs root.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use common::*;
use labctl_nodeplan::report::{CaptureReport, PodAddReport};

#[test]
fn pods_on_two_nodes_ping_across_vxlan() {
    if !root_or_skip("pods_on_two_nodes_ping_across_vxlan") {
        return;
    }
    let p = prefix("two");
    let _pods = PodGuard(p.clone());
    let underlay = Netns::new(&format!("{p}u"));
    let u = &underlay.name;
    nsh(u, "ip link add br0 type bridge && ip link set br0 up");
    let nodes = [
        NodeSpec {
            name: "a".into(),
            number: 1,
            ip: "192.168.56.11".parse().unwrap(),
        },
        NodeSpec {
            name: "b".into(),
            number: 2,
            ip: "192.168.56.12".parse().unwrap(),
        },
    ];
    let mut guards = Vec::new();
    let mut plans = Vec::new();
    let dirs: Vec<TempDir> = nodes
        .iter()
        .map(|n| TempDir::new(&format!("{p}{}", n.name)))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let ns = Netns::new(&format!("{p}{}", node.name));
        // eth1 in the node, its peer plugged into the underlay bridge.
        sh(&format!(
            "ip link add {p}{i} netns {0} type veth peer name eth1 netns {0}",
            ns.name
        ));
        sh(&format!("ip -n {} link set {p}{i} netns {u}", ns.name));
        nsh(
            u,
            &format!("ip link set {p}{i} master br0 && ip link set {p}{i} up"),
        );
        nsh(
            &ns.name,
            &format!("ip addr add {}/24 dev eth1 && ip link set eth1 up", node.ip),
        );
        plans.push(plan(&p, node, &nodes, &dirs[i].path()));
        guards.push(ns);
    }
    for (ns, plan) in guards.iter().zip(&plans) {
        let r = agent(&ns.name, plan, &["apply"]);
        assert_eq!(
            r.code, 0,
            "apply on {} failed: {}\n{:#}",
            ns.name, r.stderr, r.json
        );
    }
    let pod_a = agent_netns(&guards[0].name, &plans[0], &["pod", "add", "pa"]);
    let pod_b = agent_netns(&guards[1].name, &plans[1], &["pod", "add", "pb"]);
    assert_eq!(pod_a.code, 0, "{}", pod_a.stderr);
    assert_eq!(pod_b.code, 0, "{}", pod_b.stderr);
    let pod_a: PodAddReport = pod_a.report();
    let pod_b: PodAddReport = pod_b.report();
    let (ip_a, ip_b) = (pod_a.ip, pod_b.ip);
    assert_eq!(ip_a, "10.244.1.2".parse::<Ipv4Addr>().unwrap());
    assert_eq!(ip_b, "10.244.2.2".parse::<Ipv4Addr>().unwrap());

    // Capture on node A's underlay while pod A pings pod B.
    let capture = spawn_agent_netns(
        &guards[0].name,
        &plans[0],
        &["capture", "--seconds", "8", "--count", "4"],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ns_a = &pod_a.namespace;
    sh(&format!("ip netns exec {ns_a} {} -c 3 -W 2 {ip_b}", ping()));
    let report: CaptureReport = capture_report(capture);
    assert_eq!(report.vni, 1);
    assert_eq!(report.port, 8472);
    assert_eq!(report.interface, "eth1");
    assert!(report.packets >= 4, "{report:#?}");
    let a_to_b = report.flows.iter().any(|f| {
        f.outer_src == Ipv4Addr::new(192, 168, 56, 11)
            && f.outer_dst == Ipv4Addr::new(192, 168, 56, 12)
            && f.inner_src == ip_a
            && f.inner_dst == ip_b
    });
    assert!(a_to_b, "no VXLAN flow from pod A to pod B: {report:#?}");
    let (packets, outer) = report.flow_packets(ip_a, ip_b);
    assert!(
        packets >= 1 && outer == [Ipv4Addr::new(192, 168, 56, 11)],
        "{report:#?}"
    );

    // Cross-check with tcpdump when it is installed.
    if Command::new("tcpdump").arg("--version").output().is_ok() {
        let dump = Command::new("ip")
            .args([
                "netns",
                "exec",
                &guards[1].name,
                "timeout",
                "5",
                "tcpdump",
                "-c",
                "2",
                "-n",
                "-T",
                "vxlan",
                "-i",
                "eth1",
                "udp",
                "port",
                "8472",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(800));
        sh(&format!("ip netns exec {ns_a} {} -c 2 -W 2 {ip_b}", ping()));
        let text = String::from_utf8_lossy(&dump.wait_with_output().unwrap().stdout).into_owned();
        assert!(
            text.contains("VXLAN") && text.contains("vni 1"),
            "tcpdump saw: {text}"
        );
    } else {
        // The rest of the test still runs: only the cross-check is skipped.
        skip(
            "pods_on_two_nodes_ping_across_vxlan (tcpdump cross-check)",
            "tcpdump is not installed (Debian package `tcpdump`)",
        );
    }

    for (ns, plan) in guards.iter().zip(&plans) {
        let r = agent(&ns.name, plan, &["teardown"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
}
