//! End to end: a 3-node netns lab brought up by the labctl binary, used,
//! damaged, repaired, resized and destroyed, with the host compared before
//! and after. Needs root (namespaces, sshd, iptables): skipped otherwise,
//! with the reason printed.

mod support;

use support::netns::{can_run, host, in_netns, lab_name, labctl, serial, show, TestLab};
use support::snapshot::Snapshot;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The busybox pod IP of `node` from `labctl status --output json`.
fn pod_ip(lab: &str, node: &str, pod: &str) -> String {
    let out = labctl(&["status", "--output", "json", "--name", lab]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", show(&out)));
    let nodes = doc["nodes"].as_array().unwrap();
    let n = nodes.iter().find(|n| n["node"] == node).unwrap();
    let p = n["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pod)
        .unwrap();
    p["ip"].as_str().unwrap().to_string()
}

#[test]
fn three_node_lab_lifecycle() {
    if !can_run("three_node_lab_lifecycle") {
        return;
    }
    let _serial = serial();
    let name = lab_name("a");
    let before = Snapshot::take(&name);
    let lab = TestLab::new(
        &name,
        "192.168.66.0/24",
        "10.66.0.0/16",
        &["master", "worker1", "worker2"],
    );

    // up
    let out = lab.up();
    assert!(out.status.success(), "up: {}", show(&out));

    // The host's one lab route: connected, acknowledging at once (SSH to
    // the nodes would otherwise wait out delayed ACKs).
    let route = host("ip", &["route", "show", "192.168.66.0/24"]);
    assert!(
        route.contains("src 192.168.66.1") && route.contains("quickack 1"),
        "host route to the underlay: {route}"
    );

    // status: every node reachable and in sync, pods listed.
    let out = labctl(&["status", "--output", "json", "--name", &name]);
    assert!(out.status.success(), "status: {}", show(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for n in doc["nodes"].as_array().unwrap() {
        assert_eq!(n["reachable"], true, "{n}");
        assert_eq!(n["drift"], "in sync", "{n}");
    }

    // exec: each node sees its own subnet.env.
    let out = labctl(&[
        "exec",
        "--lab",
        &name,
        "--all",
        "--",
        "cat",
        "/run/flannel/subnet.env",
    ]);
    assert!(out.status.success(), "exec: {}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("master: FLANNEL_SUBNET=10.66.0.1/24"),
        "{text}"
    );
    assert!(
        text.contains("worker1: FLANNEL_SUBNET=10.66.1.1/24"),
        "{text}"
    );
    assert!(
        text.contains("worker2: FLANNEL_SUBNET=10.66.2.1/24"),
        "{text}"
    );
    let out = lab.exec("worker1", &["sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit status passes through: {}",
        show(&out)
    );

    // The lab's session keeper holds the nodes' sessions: two commands on
    // worker1 run on one SSH connection (sshd names its client end).
    let connection = || {
        let out = lab.exec("worker1", &["sh", "-c", "echo $SSH_CONNECTION"]);
        assert!(out.status.success(), "exec: {}", show(&out));
        stdout(&out)
    };
    let first = connection();
    assert!(first.contains("192.168.66.1 "), "{first}");
    assert_eq!(connection(), first, "the second exec logged in again");
    let keeper_title = format!("keep-sessions --name {name}$");
    let keepers = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &keeper_title])
            .output()
            .unwrap();
        stdout(&out).lines().count()
    };
    assert_eq!(keepers(), 1, "session keepers of the lab");

    // up again: converged, no changes. It leaves worker1's neighbours be:
    // giving eth1 its MAC again, even the same one, would flush them.
    let worker1_ns = format!("{name}-worker1");
    let marker = "ip neigh replace 192.168.66.250 lladdr 02:00:00:00:00:fa dev eth1 nud stale";
    let out = in_netns(&worker1_ns, &marker.split(' ').collect::<Vec<_>>());
    assert!(out.status.success(), "neighbour marker: {}", show(&out));
    let out = lab.up();
    assert!(out.status.success(), "second up: {}", show(&out));
    assert!(
        stdout(&out).contains("no changes"),
        "second up: {}",
        show(&out)
    );
    let out = in_netns(
        &worker1_ns,
        &["ip", "neigh", "show", "192.168.66.250", "dev", "eth1"],
    );
    assert!(
        stdout(&out).contains("02:00:00:00:00:fa"),
        "a no-op up flushed worker1's eth1 neighbours: {}",
        show(&out)
    );

    // A node whose eth1 lost its address (and with it its routes) is
    // repaired by the next up, which says where and counts it.
    let worker2_ns = format!("{name}-worker2");
    let out = in_netns(&worker2_ns, &["ip", "addr", "flush", "dev", "eth1"]);
    assert!(out.status.success(), "flush: {}", show(&out));
    let out = lab.up();
    assert!(out.status.success(), "repairing up: {}", show(&out));
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(&format!("repaired {worker2_ns}: ip addr add 192.168.66.12/24 dev eth1, ip route replace default via 198.18.0.1 dev eth1 onlink")),
        "{text}"
    );
    assert!(stdout(&out).contains("1 change."), "{}", show(&out));

    // The DNS service's chains are part of each node's plan: a jump removed
    // by hand is one change for the next up, made by the node's agent.
    let out = in_netns(
        &worker1_ns,
        &[
            "iptables",
            "-w",
            "-t",
            "nat",
            "-D",
            "OUTPUT",
            "-j",
            "LABCTL-SERVICES",
        ],
    );
    assert!(out.status.success(), "delete jump: {}", show(&out));
    let out = lab.up();
    assert!(out.status.success(), "services up: {}", show(&out));
    assert!(stdout(&out).contains("1 change."), "{}", show(&out));
    let out = in_netns(
        &worker1_ns,
        &["iptables", "-w", "-t", "nat", "-S", "OUTPUT"],
    );
    assert!(
        stdout(&out).contains("-A OUTPUT -j LABCTL-SERVICES"),
        "{}",
        show(&out)
    );

    // Pods reach each other across nodes, DNS answers, egress works.
    let w2 = pod_ip(&name, "worker2", "busybox");
    let master_pod = format!("{name}-master-busybox");
    let out = in_netns(&master_pod, &["busybox", "ping", "-c1", "-W2", &w2]);
    assert!(
        out.status.success(),
        "ping master pod -> worker2 pod: {}",
        show(&out)
    );
    let w1_pod = format!("{name}-worker1-busybox");
    for query in [
        "kubernetes.default",
        "kubernetes.default.svc.cluster.local",
        "kube-dns.kube-system.svc.cluster.local",
    ] {
        let out = in_netns(&w1_pod, &["busybox", "nslookup", query]);
        let want = if query.starts_with("kube-dns") {
            "10.96.0.10"
        } else {
            "10.96.0.1"
        };
        assert!(
            stdout(&out).contains(&format!("Address: {want}")),
            "nslookup {query} from a pod: {}",
            show(&out)
        );
    }
    // The DNS pod through the service IP that leads back to itself:
    // hairpin on its bridge port, and the reply masqueraded as kube-proxy
    // does (else it would come from the pod's own address and be dropped).
    let dns_pod = format!("{name}-master-coredns");
    let out = in_netns(
        &dns_pod,
        &[
            "busybox",
            "nslookup",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.10",
        ],
    );
    assert!(
        stdout(&out).contains("Address: 10.96.0.1"),
        "nslookup from the DNS pod through its own service: {}",
        show(&out)
    );
    let dashed = format!("{}.default.pod.cluster.local", w2.replace('.', "-"));
    let out = in_netns(&w1_pod, &["busybox", "nslookup", &dashed]);
    assert!(
        stdout(&out).contains(&format!("Address: {w2}")),
        "pod name lookup: {}",
        show(&out)
    );
    let out = in_netns(
        &format!("{name}-worker1-busybox"),
        &["busybox", "ping", "-c1", "-W2", "198.18.0.1"],
    );
    assert!(
        out.status.success(),
        "egress to the outside world: {}",
        show(&out)
    );

    // Damage a node: delete its route to worker2's pods; up repairs it.
    let w1 = format!("{name}-worker1");
    host(
        "ip",
        &["netns", "exec", &w1, "ip", "route", "del", "10.66.2.0/24"],
    );
    let out = lab.up();
    assert!(out.status.success(), "repairing up: {}", show(&out));
    assert!(
        !stdout(&out).contains("no changes"),
        "repair must change something: {}",
        show(&out)
    );
    let routes = host("ip", &["netns", "exec", &w1, "ip", "route"]);
    assert!(
        routes.contains("10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink"),
        "{routes}"
    );

    // A node that presents another key than its pin is refused by every
    // command but `up`, which pins netns nodes from the host keys labctl
    // generated (never from what answers on the network).
    let known = format!("/var/lib/labctl/labs/{name}/known_hosts");
    let pins = std::fs::read_to_string(&known).unwrap();
    // New labs' nodes serve an ECDSA P-256 host key (cheaper logins).
    assert!(
        pins.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("ecdsa-sha2-nistp256")),
        "{pins}"
    );
    // ... and their sshds do not re-execute per connection (`-r`).
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("/var/lib/labctl/labs/{name}/state.json")).unwrap(),
    )
    .unwrap();
    let pid = state["netns"]["nodes"]["worker1"]["sshd"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no sshd pid in {state}"));
    // (sshd rewrites its argv as one title: "sshd: /usr/sbin/sshd -D -e -r ...")
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.split_whitespace().any(|w| w == "-r"), "{cmdline}");
    // ... and see their own pods as /run/netns: no other node's or pod's
    // namespace is in worker1's mount namespace, while the host links
    // worker1's pod into the node's folder of the lab's pod mount.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let netns: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with("/run/netns/"))
        .collect();
    assert_eq!(
        netns,
        [format!("/run/netns/{name}-worker1-busybox")],
        "{mounts}"
    );
    let link = std::fs::read_link(format!("/run/netns/{name}-worker1-busybox")).unwrap();
    assert_eq!(
        link,
        std::path::Path::new(&format!(
            "/var/lib/labctl/labs/{name}/pod-netns/{name}-worker1/{name}-worker1-busybox"
        ))
    );
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("key");
    host(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ecdsa",
            "-b",
            "256",
            "-N",
            "",
            "-f",
            other_key.to_str().unwrap(),
        ],
    );
    let other_pub = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let other_b64 = other_pub.split_whitespace().nth(1).unwrap();
    let forged: String = pins
        .lines()
        .map(|l| {
            if l.contains("labctl-node=worker2") {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {other_b64} {}\n", f[0], f[1], f[3..].join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(forged, pins, "worker2 has a pin: {pins}");
    std::fs::write(&known, &forged).unwrap();
    let out = lab.exec("worker2", &["true"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a changed host key must be refused: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("host key"),
        "{}",
        show(&out)
    );
    let out = lab.up();
    assert!(
        out.status.success(),
        "up re-pins from the generated keys: {}",
        show(&out)
    );
    assert_eq!(std::fs::read_to_string(&known).unwrap(), pins);
    let out = lab.exec("worker2", &["true"]);
    assert!(out.status.success(), "{}", show(&out));

    // Add a node, then remove one.
    lab.write(
        "192.168.66.0/24",
        "10.66.0.0/16",
        &["master", "worker1", "worker2", "worker3"],
    );
    let out = lab.up();
    assert!(out.status.success(), "up with worker3: {}", show(&out));
    let out = lab.exec("worker3", &["cat", "/run/flannel/subnet.env"]);
    assert!(
        stdout(&out).contains("FLANNEL_SUBNET=10.66.3.1/24"),
        "{}",
        show(&out)
    );
    lab.write(
        "192.168.66.0/24",
        "10.66.0.0/16",
        &["master", "worker1", "worker3"],
    );
    let out = lab.up();
    assert!(out.status.success(), "up without worker2: {}", show(&out));
    let list = host("ip", &["netns", "list"]);
    assert!(
        !list.contains(&format!("{name}-worker2")),
        "worker2 removed: {list}"
    );
    // Node IPs and subnets follow node order: worker3 moved to worker2's.
    let out = lab.exec("worker3", &["cat", "/run/flannel/subnet.env"]);
    assert!(
        stdout(&out).contains("FLANNEL_SUBNET=10.66.2.1/24"),
        "{}",
        show(&out)
    );
    let routes = host("ip", &["netns", "exec", &w1, "ip", "route"]);
    assert!(
        !routes.contains("10.66.3.0/24"),
        "stale peer route removed: {routes}"
    );
    let out = in_netns(
        &master_pod,
        &[
            "busybox",
            "ping",
            "-c1",
            "-W2",
            &pod_ip(&name, "worker3", "busybox"),
        ],
    );
    assert!(
        out.status.success(),
        "ping master pod -> worker3 pod: {}",
        show(&out)
    );

    // A pod's host link turned to a mount that is not the lab's: destroy
    // removes the link and leaves that mount alone.
    let decoy = Decoy::mount(&format!("/tmp/{name}-decoy"));
    let link = format!("/run/netns/{name}-worker3-busybox");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&decoy.0, &link).unwrap();
    // A pod registered in its node's folder without a host link (as an
    // `up` interrupted in between leaves it): destroy still removes its
    // /etc/netns folder (the snapshot below compares /etc/netns).
    std::fs::remove_file(format!("/run/netns/{name}-master-busybox")).unwrap();
    assert!(
        std::path::Path::new(&format!("/etc/netns/{name}-master-busybox/resolv.conf")).exists()
    );

    // destroy: the host is as before; destroy again is fine.
    let out = labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert!(
        decoy.is_mounted(),
        "destroy unmounted {} through a link",
        decoy.0
    );
    drop(decoy);
    assert_eq!(Snapshot::take(&name), before, "host differs after destroy");
    assert_eq!(
        keepers(),
        0,
        "destroy left the lab's session keeper running"
    );
    let out = labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy again: {}", show(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", show(&out));
}

/// A tmpfs mounted for the test, unmounted and removed on drop.
struct Decoy(String);

impl Decoy {
    fn mount(path: &str) -> Decoy {
        std::fs::create_dir_all(path).unwrap();
        let decoy = Decoy(path.to_string());
        host("mount", &["-t", "tmpfs", "lcdecoy", path]);
        decoy
    }

    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(self.0.as_str()))
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
        let _ = std::fs::remove_dir(&self.0);
    }
}
