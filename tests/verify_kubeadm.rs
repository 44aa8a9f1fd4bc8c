//! `labctl verify` on a kubeadm lab, end to end against real hosts (see
//! tests/support/hosts.rs: network namespaces with their own sshd and
//! mounts), with a `kubectl` stand-in on the control plane.
//!
//! The lab is brought up as a network-only ssh lab (no Kubernetes can run
//! here), so the agent builds the real data plane and one real busybox pod
//! namespace per host (`<lab>-<node>-busybox`) with labctl's DNS server;
//! then its state is marked `kubernetes: true` and verify takes the
//! kubeadm path: nodes and dataplane through the agents, every pod probe
//! through `kubectl` on the control plane over SSH, the vxlan capture by
//! the agents while `kubectl exec` pings, the MTU pings from the nodes.
//!
//! The stand-in (a shell script bound over /usr/local/bin in the control
//! plane's own mount namespace only) and its limits:
//! - `get nodes` / `-n kube-system get pods` replay the recorded JSON of
//!   tests/fixtures/recorded/ with this lab's addresses and subnets;
//! - `apply -f -` records the manifest verify generated (checked below)
//!   and creates nothing: `-n labctl-verify get pods` then answers the
//!   recorded pod list with each pod Running on the IP of the node's real
//!   pod namespace; no scheduler, kubelet, image pull or API server runs;
//! - `exec POD -- CMD…` runs `busybox CMD…` inside that pod's real
//!   namespace (`ip netns exec`, applets on PATH): the mesh, vxlan and DNS
//!   probes are real traffic, but the busybox is this machine's (not
//!   1.28) and DNS is labctl's dnsmasq rather than CoreDNS;
//! - `delete namespace` records the call (checked: verify cleans up, also
//!   after a failing run).
//!
//! Needs root, sshd, busybox, dnsmasq and br_netfilter loaded: skipped
//! otherwise, with the reason printed.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::fixtures;
use support::hosts::Hosts;
use support::netns::show;
use support::ssh_lab::{
    assert_passed, check, delete_postrouting_jump, delete_route, diagnosed, three_hosts_or_skip,
    up, verify_json, FarEnd, LabGuard, NETWORK_CHECKS,
};

const PREFIX: [u8; 3] = [192, 168, 77];
const POD_NETWORK: &str = "10.77.0.0/16";

fn recorded(name: &str) -> Value {
    serde_json::from_str(&fixtures::recorded(name)).unwrap()
}

/// The stand-in; `@STATE@`, `@LAB@`, `@NODES@` and `@APPLETS@` are
/// filled in by the test (test code: the values are its own).
const STANDIN: &str = r#"#!/bin/sh
# kubectl stand-in of tests/verify_kubeadm.rs (see its doc comment).
state=@STATE@
printf '%s\n' "$*" >> "$state/calls.log"
[ "$1" = --kubeconfig ] && shift 2
ns=default
if [ "$1" = -n ]; then ns=$2; shift 2; fi
case "$1" in
  apply)
    cat > "$state/applied.json" && touch "$state/applied"
    echo 'namespace/labctl-verify created'; exit 0 ;;
  delete)
    rm -f "$state/applied"; echo 'namespace "labctl-verify" deleted'; exit 0 ;;
  get)
    case "$2" in
      nodes) cat "$state/nodes.json"; exit 0 ;;
      pods)
        [ "$ns" = kube-system ] && { cat "$state/coredns.json"; exit 0; }
        [ -e "$state/applied" ] || { echo '{"apiVersion":"v1","items":[],"kind":"List"}'; exit 0; }
        text=$(cat "$state/pods.json")
        for node in @NODES@; do
          ip=$(ip -n "@LAB@-$node-busybox" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
          text=$(printf '%s' "$text" | sed "s/@IP_$node@/$ip/g")
        done
        printf '%s\n' "$text"; exit 0 ;;
    esac ;;
  exec)
    pod=$2; shift 2; [ "$1" = -- ] && shift
    exec ip netns exec "@LAB@-${pod#busybox-}-busybox" env PATH=@APPLETS@ busybox "$@" ;;
esac
echo "kubectl stand-in: not supported: $*" >&2
exit 1
"#;

/// Turns the lab back into the network-only lab it is before its
/// [`LabGuard`] destroys it, whatever happens (before the hosts go).
struct KubernetesLabGuard(LabGuard);

impl Drop for KubernetesLabGuard {
    fn drop(&mut self) {
        // Runs before the field's own drop: destroy sees a network-only lab.
        set_kubernetes(&self.0 .0, false);
    }
}

fn set_kubernetes(lab: &str, on: bool) {
    let Ok(dir) = labctl::state::LabDir::new(lab) else {
        return;
    };
    if let Ok(mut state) = dir.load() {
        state.kubernetes = on;
        dir.save(&state).expect("lab state saved");
    }
}

/// The recorded node list with this lab's InternalIPs and podCIDRs (the
/// network-only plan: node i has 10.77.i.0/24); `nat` registers that node
/// on the NAT address instead.
fn nodes_json(hosts: &Hosts, nat: Option<&str>) -> String {
    let mut doc = recorded("kubectl-nodes-ready.json");
    for (i, h) in hosts.hosts.iter().enumerate() {
        let item = doc["items"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["metadata"]["name"] == h.name.as_str())
            .expect("the recorded list has the node");
        let cidr = format!("10.77.{i}.0/24");
        item["spec"]["podCIDR"] = cidr.clone().into();
        item["spec"]["podCIDRs"] = serde_json::json!([cidr]);
        let ip = if nat == Some(h.name.as_str()) {
            "10.0.2.15".to_string()
        } else {
            h.ip.to_string()
        };
        for a in item["status"]["addresses"].as_array_mut().unwrap() {
            if a["type"] == "InternalIP" {
                a["address"] = ip.clone().into();
            }
        }
    }
    doc.to_string()
}

/// The recorded verify pods with placeholders for the real pod IPs.
fn pods_json(hosts: &Hosts) -> String {
    let mut doc = recorded("kubectl-pods-verify.json");
    for item in doc["items"].as_array_mut().unwrap() {
        let node = item["spec"]["nodeName"].as_str().unwrap().to_string();
        let h = hosts.by_name(&node);
        let ip = format!("@IP_{node}@");
        item["status"]["podIP"] = ip.clone().into();
        item["status"]["podIPs"] = serde_json::json!([{ "ip": ip }]);
        item["status"]["hostIP"] = h.ip.to_string().into();
        item["status"]["hostIPs"] = serde_json::json!([{ "ip": h.ip.to_string() }]);
    }
    serde_json::to_string_pretty(&doc).unwrap()
}

/// Writes the stand-in and its recorded answers; returns (bin folder,
/// state folder).
fn standin(hosts: &Hosts) -> (PathBuf, PathBuf) {
    let root = hosts.dir.path().join("kubectl-standin");
    let (bin, state, applets) = (root.join("bin"), root.join("state"), root.join("applets"));
    for d in [&bin, &state, &applets] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = std::process::Command::new("busybox")
        .args(["--install", "-s"])
        .arg(&applets)
        .output()
        .unwrap();
    assert!(out.status.success(), "busybox --install: {}", show(&out));
    let names: Vec<&str> = hosts.hosts.iter().map(|h| h.name.as_str()).collect();
    let script = STANDIN
        .replace("@STATE@", &state.display().to_string())
        .replace("@LAB@", &hosts.tag)
        .replace("@NODES@", &names.join(" "))
        .replace("@APPLETS@", &applets.display().to_string());
    let path = bin.join("kubectl");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(state.join("nodes.json"), nodes_json(hosts, None)).unwrap();
    std::fs::write(state.join("pods.json"), pods_json(hosts)).unwrap();
    std::fs::write(
        state.join("coredns.json"),
        recorded("kubectl-pods-coredns.json").to_string(),
    )
    .unwrap();
    (bin, state)
}

fn calls(state: &Path) -> String {
    std::fs::read_to_string(state.join("calls.log")).unwrap_or_default()
}

#[test]
fn verify_kubeadm_lab_through_kubectl_on_the_control_plane() {
    let test = "verify_kubeadm_lab_through_kubectl_on_the_control_plane";
    let Some((_serial, hosts)) = three_hosts_or_skip(test, "tk", PREFIX) else {
        return;
    };
    let tag = hosts.tag.clone();
    let (bin, state) = standin(&hosts);
    let bind = bin.display().to_string();
    let out = hosts
        .by_name("master")
        .in_mounts(&["mount", "--bind", &bind, "/usr/local/bin"]);
    assert!(out.status.success(), "stand-in on master: {}", show(&out));
    let (file, lab) = up(&hosts, POD_NETWORK);
    let _lab = KubernetesLabGuard(lab);
    let file = file.as_str();
    set_kubernetes(&tag, true);

    // Everything passes; egress is skipped with its reason. kubectl runs
    // over the control plane's node session, which the lab's session keeper
    // has held since `up`: no SSH login there at all (kubectl on a session
    // of its own would be one).
    let sshd_log = hosts.by_name("master").folder.join("sshd.log");
    let logins = || {
        std::fs::read_to_string(&sshd_log)
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    };
    let logins_before = logins();
    let started = std::time::Instant::now();
    let (code, report, text) = verify_json(file, &[]);
    eprintln!(
        "labctl verify on a kubeadm lab took {:?}",
        started.elapsed()
    );
    for c in report["checks"].as_array().into_iter().flatten() {
        eprintln!("  {} {} ms: {}", c["id"], c["duration_ms"], c["summary"]);
    }
    assert_eq!(code, Some(0), "verify: {text}");
    assert_eq!(
        logins() - logins_before,
        0,
        "verify logs in to the control plane, kubectl included"
    );
    assert_passed(&report, &NETWORK_CHECKS);
    assert_passed(&report, &["kubernetes"]);
    assert_eq!(check(&report, "egress")["outcome"], "skip");
    let pods = report["pods"].as_array().unwrap();
    for (i, h) in hosts.hosts.iter().enumerate() {
        let p = pods.iter().find(|p| p["node"] == h.name.as_str()).unwrap();
        assert_eq!(p["name"], format!("busybox-{}", h.name));
        let ip = p["ip"].as_str().unwrap();
        assert!(ip.starts_with(&format!("10.77.{i}.")), "{p}");
    }
    let mesh = check(&report, "pod-mesh");
    assert!(
        mesh["summary"]
            .as_str()
            .unwrap()
            .starts_with("6/6 pod pairs answered"),
        "{mesh:#}"
    );
    let vxlan = &check(&report, "vxlan")["evidence"]["pairs"];
    for pair in vxlan.as_array().unwrap() {
        assert!(pair["sender_out"].as_u64().unwrap_or(0) > 0, "{pair}");
        assert!(pair["receiver_in"].as_u64().unwrap_or(0) > 0, "{pair}");
    }
    let mtu = check(&report, "mtu");
    assert!(
        mtu["summary"]
            .as_str()
            .unwrap()
            .contains("DF pings sent from the nodes across flannel.1"),
        "{mtu:#}"
    );
    let links = mtu["evidence"]["links"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l["device"] == "pod busybox-worker2 eth0" && l["mtu"] == 1450),
        "{links:?}"
    );
    let k = &check(&report, "kubernetes")["evidence"];
    assert_eq!(k["nodes"][1]["pod_cidr"], "10.77.1.0/24", "{k:#}");
    assert_eq!(k["coredns"].as_array().unwrap().len(), 2);

    // What verify asked of kubectl: the manifest it generated, exec per
    // pod, and the namespace deleted at the end without waiting.
    let applied: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("applied.json")).unwrap())
            .unwrap();
    let nodes: Vec<&str> = applied["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "Pod")
        .map(|i| i["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["master", "worker1", "worker2"]);
    let log = calls(&state);
    assert!(
        log.contains("--kubeconfig /etc/kubernetes/admin.conf apply -f -"),
        "{log}"
    );
    assert!(
        log.contains("-n labctl-verify exec busybox-worker1 -- sh -c"),
        "{log}"
    );
    assert!(
        log.trim_end()
            .ends_with("delete namespace labctl-verify --wait=false --ignore-not-found"),
        "{log}"
    );
    assert!(!state.join("applied").exists());

    let delete_at = log.find("delete namespace labctl-verify").unwrap();
    assert!(
        delete_at < log.find("apply -f -").unwrap(),
        "a leftover namespace is deleted before apply: {log}"
    );

    // worker1's pod ended (its container exited with an error): the pods
    // check names pod, node, phase and reason; the mesh goes on with the
    // others.
    let mut failed: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("pods.json")).unwrap()).unwrap();
    let w1 = &mut failed["items"][1];
    assert_eq!(w1["spec"]["nodeName"], "worker1");
    w1["status"]["phase"] = "Failed".into();
    w1["status"]["containerStatuses"][0]["state"] = serde_json::json!({
        "terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-29T14:10:08Z", "finishedAt": "2026-11-29T14:10:09Z", "containerID": "containerd://0"}
    });
    let original = std::fs::read_to_string(state.join("pods.json")).unwrap();
    std::fs::write(state.join("pods.json"), failed.to_string()).unwrap();
    let (code, report, text) = verify_json(file, &["--check", "pods", "--check", "pod-mesh"]);
    std::fs::write(state.join("pods.json"), original).unwrap();
    assert_eq!(code, Some(1), "verify with a failed pod: {text}");
    let pods_check = check(&report, "pods");
    assert_eq!(pods_check["outcome"], "fail");
    assert!(
        pods_check["details"].as_array().unwrap().iter().any(|d| d
            .as_str()
            .unwrap()
            .starts_with("✗ worker1: busybox-worker1 is not Running with an IP after")
            && d.as_str().unwrap().ends_with(": Failed (Error)")),
        "{pods_check:#}"
    );
    assert_eq!(check(&report, "pod-mesh")["outcome"], "pass", "{report:#}");
    assert!(calls(&state)
        .trim_end()
        .ends_with("--wait=false --ignore-not-found"));

    // A fault: worker1 loses its route to worker2's pods. The kubeadm path
    // names it like the others, and still cleans up.
    std::fs::remove_file(state.join("calls.log")).unwrap();
    delete_route(&tag, "worker1", "10.77.2.0/24");
    let (code, report, text) = verify_json(file, &[]);
    assert_eq!(code, Some(1), "verify with a fault: {text}");
    assert_eq!(check(&report, "pod-mesh")["outcome"], "fail");
    assert!(
        diagnosed(&report, "missing-route", "worker1", Some("worker2")),
        "missing-route on worker1: {report:#}"
    );
    assert!(calls(&state).contains("delete namespace labctl-verify"));

    // The kubelet of worker2 registered on the NAT address.
    std::fs::write(
        state.join("nodes.json"),
        nodes_json(&hosts, Some("worker2")),
    )
    .unwrap();
    let (code, report, text) = verify_json(file, &["--check", "kubernetes"]);
    assert_eq!(code, Some(1), "verify kubernetes: {text}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 1);
    assert!(
        diagnosed(&report, "nat-nic", "worker2", None),
        "nat-nic on worker2: {report:#}"
    );

    // egress, opt-in: with `verify.egressTarget` (a namespace this test
    // puts on the hosts' bridge) the pods ping it by `kubectl exec` while
    // the agents capture what leaves each node; without worker1's
    // POSTROUTING jump to FLANNEL-POSTRTG its pod's address leaves instead.
    let _far = FarEnd::start(&hosts, "192.168.77.200");
    let mut text = std::fs::read_to_string(file).unwrap();
    text.push_str("verify:\n  egressTarget: 192.168.77.200\n");
    std::fs::write(file, text).unwrap();
    let (code, report, text) = verify_json(file, &["--check", "egress"]);
    assert_eq!(code, Some(0), "verify egress: {text}");
    let egress = check(&report, "egress");
    assert!(
        egress["summary"]
            .as_str()
            .unwrap()
            .starts_with("3/3 pods reach 192.168.77.200 masqueraded"),
        "{egress:#}"
    );
    assert!(
        calls(&state).contains("-n labctl-verify exec busybox-worker2 -- sh -c"),
        "the pings go through kubectl exec"
    );
    delete_postrouting_jump(&tag, "worker1");
    let (code, report, text) = verify_json(file, &["--check", "egress"]);
    assert_eq!(code, Some(1), "verify egress with the fault: {text}");
    assert_eq!(check(&report, "egress")["outcome"], "fail");
    assert!(
        diagnosed(&report, "postrouting-jump-missing", "worker1", None),
        "postrouting-jump-missing on worker1: {report:#}"
    );
}
