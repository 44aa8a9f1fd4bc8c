//! A network-only ssh lab on the test hosts of [`super::hosts`]: its lab
//! file, a guard that destroys it whatever happens, a fault to inject, and
//! lookups in the report `labctl verify --output json` prints.

use std::sync::MutexGuard;

use serde_json::Value;

use super::faults::postrouting_jump;
use super::hosts::{bridge_netfilter_present_or_skip, Hosts};
use super::netns::{can_run, labctl, serial, show};

/// The test hosts master, worker1 and worker2 on `prefix`.0/24, tagged
/// `tag_start` and this process's id, with the lock of the tests that use
/// namespaces held (keep it until the hosts are gone); `None`, with the
/// reason printed, where `test` cannot run.
pub fn three_hosts_or_skip(
    test: &str,
    tag_start: &str,
    prefix: [u8; 3],
) -> Option<(MutexGuard<'static, ()>, Hosts)> {
    if !can_run(test) || !bridge_netfilter_present_or_skip(test) {
        return None;
    }
    let serial = serial();
    let tag = format!("{tag_start}{}", std::process::id() % 100_000);
    let hosts = Hosts::start(&tag, prefix, &["master", "worker1", "worker2"]);
    Some((serial, hosts))
}

/// Writes the [`lab_file`] into the hosts' folder and brings the lab up;
/// returns the file's path and the guard that destroys the lab (made
/// before `up`, so a failed `up` is cleaned up too).
pub fn up(hosts: &Hosts, pod_network: &str) -> (String, LabGuard) {
    up_with(hosts, pod_network, "")
}

/// [`up`] with `extra` (e.g. a `verify:` block) appended to the lab file.
pub fn up_with(hosts: &Hosts, pod_network: &str, extra: &str) -> (String, LabGuard) {
    let file = hosts.dir.path().join("lab.yaml");
    std::fs::write(&file, lab_file(hosts, pod_network) + extra).unwrap();
    let file = file.to_str().unwrap().to_string();
    let guard = LabGuard(hosts.tag.clone());
    let out = labctl(&["up", &file]);
    assert!(out.status.success(), "up: {}", show(&out));
    (file, guard)
}

/// The lab file of an ssh lab named after the hosts' tag on their subnet
/// (`kubernetes: {enabled: false}`): the first host is the control plane,
/// the others are workers, all reached as root with the hosts' client key.
pub fn lab_file(hosts: &Hosts, pod_network: &str) -> String {
    let [a, b, c] = hosts.prefix;
    let mut text = format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {}\nprovider:\n  type: ssh\n\
         kubernetes:\n  enabled: false\nnetwork:\n  underlay: {a}.{b}.{c}.0/24\n  podNetwork: {pod_network}\nnodes:\n",
        hosts.tag
    );
    for (i, h) in hosts.hosts.iter().enumerate() {
        let role = if i == 0 { "control-plane" } else { "worker" };
        text.push_str(&format!(
            "  - name: {}\n    role: {role}\n    ip: {}\n    ssh: {{host: {}, port: 22, user: root, key: {}}}\n",
            h.name,
            h.ip,
            h.ip,
            hosts.client_key.display()
        ));
    }
    text
}

/// Destroys the lab it names when dropped, whatever happened: declare it
/// after the [`Hosts`], so that it goes first.
pub struct LabGuard(pub String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let out = labctl(&["destroy", "--name", &self.0]);
        if !out.status.success() {
            eprintln!("cleanup of lab {} failed:\n{}", self.0, show(&out));
            // The hosts are namespaces the Hosts guard removes anyway; only
            // labctl's record of the lab would outlive the test.
            let out = labctl(&["destroy", "--name", &self.0, "--forget"]);
            if !out.status.success() {
                eprintln!("forgetting lab {} failed:\n{}", self.0, show(&out));
            }
        }
    }
}

/// The fault both verify tests inject: `node` loses its route to the pod
/// subnet `cidr` (`labctl exec … ip route del`).
pub fn delete_route(lab: &str, node: &str, cidr: &str) {
    let out = labctl(&["exec", "--lab", lab, node, "--", "ip", "route", "del", cidr]);
    assert!(out.status.success(), "delete route: {}", show(&out));
}

/// The fault both egress tests inject: `node` loses flannel's jump from
/// nat POSTROUTING to FLANNEL-POSTRTG, so its pods leave unmasqueraded.
pub fn delete_postrouting_jump(lab: &str, node: &str) {
    let mut args = vec!["exec", "--lab", lab, node, "--"];
    args.extend(postrouting_jump("-D"));
    let out = labctl(&args);
    assert!(
        out.status.success(),
        "delete the POSTROUTING jump: {}",
        show(&out)
    );
}

/// `labctl verify FILE --output json EXTRA…`: its exit code, its report
/// (null when it printed none) and all it printed, for messages.
pub fn verify_json(file: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["verify", file, "--output", "json"];
    args.extend_from_slice(extra);
    let out = labctl(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, show(&out))
}

/// The checks every network-only lab must pass (kubeadm labs add
/// `kubernetes`; egress needs a target).
pub const NETWORK_CHECKS: [&str; 7] = [
    "nodes",
    "dataplane",
    "pods",
    "pod-mesh",
    "vxlan",
    "mtu",
    "dns",
];

/// Asserts that every check in `ids` passed in `report`.
pub fn assert_passed(report: &Value, ids: &[&str]) {
    for id in ids {
        assert_eq!(
            check(report, id)["outcome"],
            "pass",
            "check {id}: {report:#}"
        );
    }
}

/// The check `id` in a verify report.
pub fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

/// Whether a verify report names `cause` on `node` (and, when given, with
/// `peer`).
pub fn diagnosed(report: &Value, cause: &str, node: &str, peer: Option<&str>) -> bool {
    report["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["cause"] == cause && d["node"] == node && peer.is_none_or(|p| d["peer"] == p))
}

/// A far end for the egress check: namespace `<tag>-far` with `ip`/24 on
/// a veth plugged into the hosts' bridge (so it is on the hosts' underlay
/// and never on this machine's real networks); removed on drop.
pub struct FarEnd {
    pub netns: String,
}

impl FarEnd {
    pub fn start(hosts: &Hosts, ip: &str) -> FarEnd {
        let far = FarEnd {
            netns: format!("{}-far", hosts.tag),
        };
        let link = format!("lhf{}", hosts.tag);
        let [a, b, c] = hosts.prefix;
        assert!(
            ip.starts_with(&format!("{a}.{b}.{c}.")),
            "{ip} on the hosts' subnet"
        );
        let ns = far.netns.as_str();
        for args in [
            vec!["netns", "add", ns],
            vec![
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
            vec!["link", "set", &link, "master", &hosts.bridge, "up"],
            vec!["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            vec!["-n", ns, "link", "set", "eth0", "up"],
            vec!["-n", ns, "link", "set", "lo", "up"],
        ] {
            let out = std::process::Command::new("ip")
                .args(&args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", show(&out));
        }
        far
    }
}

impl Drop for FarEnd {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}
