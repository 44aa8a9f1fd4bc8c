//! Fault injection on a real netns lab through the CLI: `labctl up`, then
//! for each cause verify names: inject it inside the lab's namespaces,
//! `labctl verify --output json` fails with that cause on the right node,
//! `labctl up` repairs it (where it is labctl's to repair; otherwise the
//! test undoes it), and verify passes again. `labctl destroy` at the end
//! (and on failure, from Drop). Needs root.

mod support;

use serde_json::Value;
use support::faults::{forward_jump, postrouting_jump, vxlan_drop};
use support::netns::{can_run, in_netns, labctl, show, TestLab};

/// The lab under test; destroyed (by its [`TestLab`]) also on failure.
struct Lab(TestLab);

impl Lab {
    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.0.name)
    }
    /// Runs a command inside a node's namespace (never the host's).
    fn on(&self, node: &str, argv: &[&str]) {
        let out = in_netns(&self.ns(node), argv);
        assert!(out.status.success(), "{argv:?}: {}", show(&out));
    }
    fn capture(&self, node: &str, argv: &[&str]) -> String {
        String::from_utf8_lossy(&in_netns(&self.ns(node), argv).stdout).into_owned()
    }
    /// The node's underlay address (on its eth1).
    fn underlay_ip(&self, node: &str) -> String {
        let addr = self.capture(node, &["ip", "-4", "-o", "addr", "show", "eth1"]);
        addr.split_whitespace()
            .nth(3)
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("no underlay address on {node}: {addr}"))
            .to_string()
    }
    fn up(&self) {
        let out = self.0.up();
        assert!(out.status.success(), "labctl up failed: {}", show(&out));
    }
    /// `labctl --output json verify LAB`: exit status and report.
    fn verify(&self) -> (i32, Value) {
        let out = labctl(&["--output", "json", "verify", self.0.path()]);
        let code = out.status.code().unwrap_or(-1);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", show(&out)));
        (code, report)
    }
    fn assert_passes(&self, after: &str) {
        let (code, report) = self.verify();
        assert_eq!(code, 0, "verify should pass {after}: {report:#}");
    }
    fn assert_cause(&self, cause: &str, node: Option<&str>) -> Value {
        let (code, report) = self.verify();
        assert_eq!(code, 1, "verify should fail with {cause}: {report:#}");
        let found = report["diagnoses"].as_array().cloned().unwrap_or_default();
        assert!(
            found
                .iter()
                .any(|d| d["cause"] == cause && node.is_none_or(|n| d["node"] == n)),
            "expected cause {cause} on {node:?}, got: {:#}",
            report["diagnoses"]
        );
        report
    }
}

/// Brings up a 3-node lab with networks unique to this run, or says why
/// the test cannot run.
fn lab() -> Option<Lab> {
    if !can_run("each_fault_is_named_and_up_repairs_it") {
        return None;
    }
    let n = std::process::id() % 40;
    let lab = Lab(TestLab::new(
        &format!("vf{}", std::process::id() % 100000),
        &format!("192.168.{}.0/24", 200 + n),
        &format!("10.{}.0.0/16", 100 + n),
        &["master", "worker1", "worker2"],
    )
    .with_service_network(&format!("10.{}.0.0/16", 150 + n)));
    let out = lab.0.up();
    assert!(out.status.success(), "labctl up failed: {}", show(&out));
    Some(lab)
}

fn pod_ip(report: &Value, node: &str) -> String {
    report["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["node"] == node))
        .and_then(|p| p["ip"].as_str())
        .unwrap_or_else(|| panic!("no pod IP for {node} in {report:#}"))
        .to_string()
}

/// The network namespace of `node`'s pod, from a verify report.
fn pod_namespace(report: &Value, node: &str) -> String {
    report["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["node"] == node))
        .and_then(|p| p["namespace"].as_str())
        .unwrap_or_else(|| panic!("no pod namespace for {node} in {report:#}"))
        .to_string()
}

/// `10.x.y.2` → (`10.x.y.0/24`, `10.x.y.0`).
fn subnet_of(ip: &str) -> (String, String) {
    let base: Vec<&str> = ip.split('.').take(3).collect();
    let net = format!("{}.0", base.join("."));
    (format!("{net}/24"), net)
}

#[test]
fn each_fault_is_named_and_up_repairs_it() {
    let Some(lab) = lab() else { return };
    let (code, report) = lab.verify();
    assert_eq!(code, 0, "a fresh lab passes verify: {report:#}");
    let (w2_subnet, w2_net) = subnet_of(&pod_ip(&report, "worker2"));

    // The vxlan evidence: round the ring, each pod's pings left its node
    // as VXLAN of the lab's VNI from the node's own address and arrived
    // on the next node's underlay.
    let pairs = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "vxlan"))
        .and_then(|c| c["evidence"]["pairs"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("no vxlan pairs: {report:#}"));
    assert_eq!(pairs.len(), 3, "{pairs:#?}");
    for p in &pairs {
        let from = p["from"].as_str().unwrap();
        assert_eq!(p["vnis"], serde_json::json!([1]), "{p:#}");
        assert_eq!(
            p["outer_sources"],
            serde_json::json!([lab.underlay_ip(from)]),
            "{p:#}"
        );
        assert!(
            p["ping_ok"] == true
                && p["sender_out"].as_u64() >= Some(3)
                && p["receiver_in"].as_u64() >= Some(3),
            "{p:#}"
        );
    }

    // worker2's pod without its address: the pods check names it, and the
    // mesh (which rode in the node checks' command over every pod the lab
    // recorded) is run again among the pods still usable, and passes.
    let w2_pod = pod_namespace(&report, "worker2");
    let flushed = in_netns(&w2_pod, &["ip", "addr", "flush", "dev", "eth0"]);
    assert!(flushed.status.success(), "{}", show(&flushed));
    let (code, r) = lab.verify();
    assert_eq!(code, 1, "a pod without its address fails: {r:#}");
    let check = |id: &str| {
        r["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} check: {r:#}"))
    };
    assert_eq!(check("pods")["outcome"], "fail", "{r:#}");
    let mesh = check("pod-mesh");
    assert_eq!(mesh["outcome"], "pass", "{mesh:#}");
    assert_eq!(
        mesh["evidence"]["nodes"],
        serde_json::json!(["master", "worker1"]),
        "the mesh of the usable pods only: {mesh:#}"
    );
    let cells = mesh["evidence"]["cells"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(cells.len(), 2, "{mesh:#}");
    assert!(
        cells.iter().all(|c| c["received"].as_u64() >= Some(1)),
        "{mesh:#}"
    );
    // A pod's inside is the CNI's to set up once, at its creation, in a
    // cluster as here: the test puts the address and route back.
    let w2_ip = pod_ip(&report, "worker2");
    let gateway = format!("{}.1", w2_ip.rsplit_once('.').unwrap().0);
    for argv in [
        vec!["ip", "addr", "add", &format!("{w2_ip}/24"), "dev", "eth0"],
        vec!["ip", "route", "add", "default", "via", &gateway],
    ] {
        let out = in_netns(&w2_pod, &argv);
        assert!(out.status.success(), "{argv:?}: {}", show(&out));
    }
    lab.assert_passes("after the pod got its address back");

    // Missing route on worker1 to worker2's pods.
    lab.on("worker1", &["ip", "route", "del", &w2_subnet]);
    let r = lab.assert_cause("missing-route", Some("worker1"));
    assert!(
        r["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["peer"] == "worker2"),
        "{r:#}"
    );
    lab.up();
    lab.assert_passes("after up repaired the route");

    // Missing neighbour.
    lab.on(
        "worker1",
        &["ip", "neigh", "del", &w2_net, "dev", "flannel.1"],
    );
    lab.assert_cause("missing-neighbour", Some("worker1"));
    lab.up();
    lab.assert_passes("after up repaired the neighbour");

    // Missing FDB entry: the one whose dst is worker2's underlay IP.
    let fdb = lab.capture("worker1", &["bridge", "fdb", "show", "dev", "flannel.1"]);
    let w2_ip = lab.underlay_ip("worker2");
    let mac = fdb
        .lines()
        .find(|l| l.contains(&format!("dst {w2_ip} ")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no FDB entry for {w2_ip} in {fdb}"))
        .to_string();
    lab.on(
        "worker1",
        &[
            "bridge",
            "fdb",
            "del",
            &mac,
            "dev",
            "flannel.1",
            "dst",
            &w2_ip,
            "self",
        ],
    );
    lab.assert_cause("missing-fdb", Some("worker1"));
    lab.up();
    lab.assert_passes("after up repaired the FDB entry");

    // FORWARD policy DROP with the FLANNEL-FWD jump gone.
    lab.on("worker2", &forward_jump("-D"));
    lab.on("worker2", &["iptables", "-w", "-P", "FORWARD", "DROP"]);
    lab.assert_cause("forward-drop", Some("worker2"));
    lab.up();
    lab.assert_passes("after up restored FLANNEL-FWD (policy still DROP)");
    lab.on("worker2", &["iptables", "-w", "-P", "FORWARD", "ACCEPT"]);

    // The POSTROUTING jump gone.
    lab.on("master", &postrouting_jump("-D"));
    lab.assert_cause("postrouting-jump-missing", Some("master"));
    lab.up();
    lab.assert_passes("after up restored the POSTROUTING jump");

    // MTU changed on one node.
    lab.on(
        "worker1",
        &["ip", "link", "set", "flannel.1", "mtu", "1400"],
    );
    lab.assert_cause("mtu-mismatch", Some("worker1"));
    lab.up();
    lab.assert_passes("after up restored the MTU");

    // UDP 8472 dropped on worker2: not labctl's rule, so undone by hand.
    lab.on("worker2", &vxlan_drop("-I"));
    lab.assert_cause("vxlan-port-blocked", Some("worker2"));
    lab.on("worker2", &vxlan_drop("-D"));
    lab.assert_passes("after the INPUT rule was removed");

    // worker2's pod asks a server that is not the cluster DNS service: its
    // own resolv.conf (what `ip netns exec` binds over /etc/resolv.conf).
    let (_, report) = lab.verify();
    let pod_ns = pod_namespace(&report, "worker2");
    let resolv = format!("/etc/netns/{pod_ns}/resolv.conf");
    let good = std::fs::read_to_string(&resolv).unwrap();
    let service = good
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap_or_else(|| panic!("{resolv}: {good}"))
        .trim()
        .to_string();
    let nowhere = format!("{}.99", service.rsplit_once('.').unwrap().0);
    std::fs::write(&resolv, good.replace(&service, &nowhere)).unwrap();
    let r = lab.assert_cause("pod-resolv-conf", Some("worker2"));
    let dns = r["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "dns"))
        .unwrap_or_else(|| panic!("no dns check: {r:#}"));
    assert_eq!(dns["outcome"], "fail", "{r:#}");
    lab.up();
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), good);
    lab.assert_passes("after up rewrote the pod's resolv.conf");

    // The DNS pod asks through its own service too: without the hairpin
    // masquerade its answer comes back from its own address and is dropped.
    let (_, report) = lab.verify();
    let dns = |r: &Value| {
        r["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "dns"))
            .cloned()
            .unwrap_or_else(|| panic!("no dns check: {r:#}"))
    };
    assert!(
        dns(&report)["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("master/coredns: ")),
        "the DNS pod asks: {report:#}"
    );
    let hairpin = [
        "iptables",
        "-w",
        "-t",
        "nat",
        "-D",
        "LABCTL-POSTROUTING",
        "-m",
        "mark",
        "--mark",
        "0x4000/0x4000",
        "-j",
        "MASQUERADE",
    ];
    lab.on("master", &hairpin);
    let (code, report) = lab.verify();
    assert_eq!(
        code, 1,
        "dns fails without the hairpin masquerade: {report:#}"
    );
    let failed = dns(&report);
    assert_eq!(failed["outcome"], "fail", "{report:#}");
    assert!(
        failed["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("✗ master/coredns: ")),
        "the DNS pod is the one named: {report:#}"
    );
    lab.up();
    lab.assert_passes("after up restored the hairpin masquerade");

    // The wrong local address (as when the NAT NIC is chosen).
    let local = lab.capture("worker1", &["ip", "-d", "-o", "link", "show", "flannel.1"]);
    assert!(local.contains("vxlan"), "{local}");
    lab.on("worker1", &["ip", "link", "del", "flannel.1"]);
    lab.on(
        "worker1",
        &[
            "ip",
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "1",
            "local",
            "10.0.2.15",
            "dev",
            "eth1",
            "dstport",
            "8472",
            "nolearning",
        ],
    );
    lab.on("worker1", &["ip", "link", "set", "flannel.1", "up"]);
    lab.assert_cause("nat-nic", Some("worker1"));
    lab.up();
    lab.assert_passes("after up recreated flannel.1 with the lab IP");
}
