//! flannel's host-gw backend on a real netns lab, through the CLI: `up`
//! builds one route per peer via the peer's node IP and no flannel.1,
//! verify is green with the unencapsulated-underlay check in place of the
//! VXLAN one, `up` again changes nothing, a deleted peer route is named by
//! verify and repaired by `up`, switching the live lab to vxlan and back
//! converges both ways; a host-gw lab whose nodes are in two prefixes is
//! refused before anything exists. Lab `hg<pid>`, underlay
//! 192.168.95.0/24, pods 10.95.0.0/16. Needs root.

mod support;

use serde_json::Value;
use support::netns::{can_run, in_netns, labctl, serial, show, TestLab};
use support::ssh_lab::NETWORK_CHECKS;

const UNDERLAY: &str = "192.168.95.0/24";
const PODS: &str = "10.95.0.0/16";
const NODES: [&str; 3] = ["master", "worker1", "worker2"];

/// The lab under test; destroyed (by its [`TestLab`]) also on failure.
struct Lab(TestLab);

impl Lab {
    /// Writes the lab file with `backend` (`None`: the default, vxlan).
    fn write(&self, backend: Option<&str>) {
        self.0.write(UNDERLAY, PODS, &NODES);
        if let Some(b) = backend {
            let text = std::fs::read_to_string(&self.0.file).unwrap().replacen(
                "\nnodes:\n",
                &format!("\n  backend: {{type: {b}}}\nnodes:\n"),
                1,
            );
            std::fs::write(&self.0.file, text).unwrap();
        }
    }
    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.0.name)
    }
    /// Runs a command inside a node's namespace: its output, success or not.
    fn on(&self, node: &str, argv: &[&str]) -> (bool, String) {
        let out = in_netns(&self.ns(node), argv);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
    fn up(&self) -> String {
        let out = self.0.up();
        assert!(out.status.success(), "labctl up failed: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn verify(&self) -> (i32, Value) {
        let out = labctl(&["--output", "json", "verify", self.0.path()]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", show(&out)));
        (out.status.code().unwrap_or(-1), report)
    }
    /// verify passes; returns the report.
    fn green(&self, after: &str) -> Value {
        let (code, report) = self.verify();
        assert_eq!(code, 0, "verify should pass {after}: {report:#}");
        report
    }
    /// The `vxlan` check of a report.
    fn vxlan_check(report: &Value) -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "vxlan")
            .cloned()
            .expect("a vxlan check")
    }
    /// Asserts node `node` has host-gw's data plane: a route via each
    /// peer's node IP on eth1, no flannel.1, MTU 1500 on cni0 and the pod.
    fn assert_host_gw(&self, node: &str) {
        let (exists, _) = self.on(node, &["ip", "link", "show", "flannel.1"]);
        assert!(!exists, "{node} still has flannel.1");
        let (_, routes) = self.on(node, &["ip", "-4", "route"]);
        for (i, peer) in NODES.iter().enumerate().filter(|(_, p)| **p != node) {
            let want = format!("10.95.{i}.0/24 via 192.168.95.{} dev eth1", 10 + i);
            assert!(
                routes.contains(&want),
                "{node} → {peer}: no `{want}` in:\n{routes}"
            );
        }
        assert!(
            !routes.contains("flannel.1"),
            "{node}: a vxlan route is left:\n{routes}"
        );
        let (_, neighbours) = self.on(node, &["ip", "neigh", "show", "nud", "permanent"]);
        assert!(neighbours.trim().is_empty(), "{node}: {neighbours}");
        let (_, cni0) = self.on(node, &["cat", "/sys/class/net/cni0/mtu"]);
        assert_eq!(cni0.trim(), "1500", "{node} cni0");
        let pod = format!("{}-busybox", self.ns(node));
        let (_, eth0) = self.on(node, &["ip", "-n", &pod, "-o", "link", "show", "eth0"]);
        assert!(eth0.contains(" mtu 1500 "), "{node} pod eth0: {eth0}");
        let env = self.0.exec(node, &["cat", "/run/flannel/subnet.env"]);
        let env = String::from_utf8_lossy(&env.stdout).into_owned();
        assert!(env.contains("FLANNEL_MTU=1500"), "{node}: {env}");
        assert!(
            env.contains(&format!(
                "FLANNEL_SUBNET=10.95.{}.1/24",
                NODES.iter().position(|n| *n == node).unwrap()
            )),
            "{node}: {env}"
        );
    }
    /// Asserts node `node` has vxlan's data plane and none of host-gw's.
    fn assert_vxlan(&self, node: &str) {
        let (exists, link) = self.on(node, &["ip", "-d", "link", "show", "flannel.1"]);
        assert!(exists && link.contains("vxlan id 1"), "{node}: {link}");
        let (_, routes) = self.on(node, &["ip", "-4", "route"]);
        assert!(
            !routes.contains("via 192.168.95."),
            "{node}: host-gw route left:\n{routes}"
        );
        assert!(routes.contains("dev flannel.1 onlink"), "{node}:\n{routes}");
        let (_, cni0) = self.on(node, &["cat", "/sys/class/net/cni0/mtu"]);
        assert_eq!(cni0.trim(), "1450", "{node} cni0");
    }
}

#[test]
fn host_gw_lab_comes_up_verifies_repairs_and_switches_backend() {
    let _serial = serial();
    if !can_run("host_gw_lab_comes_up_verifies_repairs_and_switches_backend") {
        return;
    }
    let lab = Lab(TestLab::new(
        &format!("hg{}", std::process::id() % 100000),
        UNDERLAY,
        PODS,
        &NODES,
    ));
    lab.write(Some("host-gw"));
    lab.up();
    for node in NODES {
        lab.assert_host_gw(node);
    }
    let status = labctl(&["status", "--name", &lab.0.name]);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("(netns provider, flannel backend host-gw)"),
        "{}",
        show(&status)
    );
    let report = lab.green("on a fresh host-gw lab");
    for id in NETWORK_CHECKS.iter().chain(&["egress"]) {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == *id);
        assert_eq!(
            check.map(|c| c["outcome"].clone()),
            Some("pass".into()),
            "{id}: {report:#}"
        );
    }
    let underlay = Lab::vxlan_check(&report);
    assert!(
        underlay["proves"]
            .as_str()
            .unwrap()
            .contains("unencapsulated"),
        "{underlay:#}"
    );
    assert_eq!(
        underlay["evidence"]["pairs"].as_array().map(Vec::len),
        Some(3),
        "{underlay:#}"
    );
    let mtu = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "mtu")
        .unwrap();
    assert!(
        mtu["summary"].as_str().unwrap().contains("pod MTU 1500"),
        "{mtu:#}"
    );

    // explain walks host-gw's path: no VXLAN, out on the underlay for the
    // peer's node IP; traced, every hop is seen.
    let out = labctl(&[
        "explain",
        "--trace",
        "worker1/busybox",
        "worker2/busybox",
        lab.0.path(),
    ]);
    let walk = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        walk.contains("10.95.2.0/24 via 192.168.95.12 dev eth1")
            && walk.contains("unencapsulated")
            && !walk.contains("flannel.1")
            && !walk.contains('✗'),
        "{walk}"
    );

    // Converged: a second `up` changes nothing.
    let again = lab.up();
    assert!(again.contains("no changes"), "{again}");

    // A deleted peer route is named on its node, and `up` puts it back.
    let (ok, _) = lab.on("worker1", &["ip", "route", "del", "10.95.2.0/24"]);
    assert!(ok, "deleting worker1's route to worker2's pods");
    let (code, report) = lab.verify();
    assert_eq!(code, 1, "{report:#}");
    let named = report["diagnoses"].as_array().unwrap().iter().any(|d| {
        d["cause"] == "missing-route"
            && d["node"] == "worker1"
            && d["peer"] == "worker2"
            && d["fix"].as_str().is_some_and(|f| {
                f.contains("ip route replace 10.95.2.0/24 via 192.168.95.12 dev eth1")
            })
    });
    assert!(
        named,
        "expected missing-route on worker1 for worker2: {:#}",
        report["diagnoses"]
    );
    lab.up();
    lab.green("after up repaired the route");

    // vxlan on the live lab: flannel.1 and onlink routes, host-gw's gone.
    lab.write(None);
    lab.up();
    for node in NODES {
        lab.assert_vxlan(node);
    }
    let report = lab.green("after switching to vxlan");
    let vxlan = Lab::vxlan_check(&report);
    assert!(
        vxlan["summary"].as_str().unwrap().contains("as VXLAN"),
        "{vxlan:#}"
    );

    // And back: flannel.1, its neighbours and FDB entries go.
    lab.write(Some("host-gw"));
    lab.up();
    for node in NODES {
        lab.assert_host_gw(node);
    }
    lab.green("after switching back to host-gw");
}

#[test]
fn a_host_gw_lab_across_two_prefixes_is_refused_before_anything_exists() {
    let _serial = serial();
    if !can_run("a_host_gw_lab_across_two_prefixes_is_refused_before_anything_exists") {
        return;
    }
    let name = format!("hp{}", std::process::id() % 100000);
    let dir = std::env::temp_dir().join(format!("labctl-test-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: {UNDERLAY}\n  \
             podNetwork: {PODS}\n  backend: {{type: host-gw}}\nnodes:\n  - name: master\n    role: control-plane\n  \
             - name: worker1\n    ip: 192.168.96.11\n"
        ),
    )
    .unwrap();
    let out = labctl(&["up", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "nodes[1].ip",
        "192.168.96.11",
        "host-gw",
        "one L2 segment",
        "vxlan",
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing: {}",
            show(&out)
        );
    }
    let namespaces = support::netns::host("ip", &["netns", "list"]);
    assert!(!namespaces.contains(&name), "{namespaces}");
    let list = labctl(&["list"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "{}",
        show(&list)
    );
}
