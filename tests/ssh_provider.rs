//! End to end: the ssh provider (network-only lab, `kubernetes: {enabled:
//! false}`) driven by the labctl binary against three "existing hosts" —
//! network namespaces with their own sshd, mounts and hostname (see
//! tests/support/hosts.rs). Checks the data plane on every host, pods
//! across hosts, the cluster DNS, `up` again (no changes), and that
//! `destroy` puts every host back as it was (snapshots taken inside each
//! host). Needs root: skipped otherwise, with the reason printed.

mod support;

use support::host_snapshot::snapshot;
use support::netns::{in_netns, labctl, show};
use support::ssh_lab::{
    assert_passed, check, delete_postrouting_jump, delete_route, diagnosed, three_hosts_or_skip,
    up, up_with, verify_json, FarEnd, NETWORK_CHECKS,
};

/// The agent's folder on a node.
const AGENT_DIR: &str = "/run/labctl-agent";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `labctl status --output json` pod IP of `pod` on `node`.
fn pod_ip(lab: &str, node: &str, pod: &str) -> String {
    let out = labctl(&["status", "--output", "json", "--name", lab]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", show(&out)));
    let n = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node}: {doc}"));
    let p = n["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pod);
    p.unwrap_or_else(|| panic!("no pod {pod} on {node}: {doc}"))["ip"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn ssh_provider_network_only_lab_on_existing_hosts() {
    let test = "ssh_provider_network_only_lab_on_existing_hosts";
    let Some((_serial, hosts)) = three_hosts_or_skip(test, "ts", [192, 168, 71]) else {
        return;
    };
    let tag = hosts.tag.clone();
    // master's /run/labctl-agent is noexec, as /run is on Debian and
    // Ubuntu: `up` mounts an exec tmpfs on its bin folder and destroy must
    // unmount exactly that, leaving the folder's own (bind) mount.
    let master = hosts.by_name("master");
    let out = master.in_mounts(&["mount", "-o", "remount,bind,noexec", AGENT_DIR]);
    assert!(out.status.success(), "remount noexec: {}", show(&out));
    let mounts_before = master.mounts_under(AGENT_DIR);
    assert_eq!(mounts_before.len(), 1, "{mounts_before:?}");
    let before = snapshot(&hosts);
    let (file, _lab) = up(&hosts, "10.71.0.0/16");
    let file = file.as_str();
    let exec_tmpfs = format!("{AGENT_DIR}/bin tmpfs labctl-agent");
    assert_eq!(
        master.mounts_under(AGENT_DIR),
        [mounts_before.clone(), vec![exec_tmpfs.clone()]].concat(),
        "up mounts an exec tmpfs on the agent's folder on master"
    );
    for h in ["worker1", "worker2"] {
        assert!(
            !hosts
                .by_name(h)
                .mounts_under(AGENT_DIR)
                .contains(&exec_tmpfs),
            "{h}: no tmpfs where the folder allows executing"
        );
    }

    // The data plane on every host: its subnet, routes to the others'.
    let out = labctl(&[
        "exec",
        "--lab",
        &tag,
        "--all",
        "--",
        "cat",
        "/run/flannel/subnet.env",
    ]);
    assert!(out.status.success(), "exec: {}", show(&out));
    let text = stdout(&out);
    for (node, subnet) in [
        ("master", "10.71.0.1/24"),
        ("worker1", "10.71.1.1/24"),
        ("worker2", "10.71.2.1/24"),
    ] {
        assert!(
            text.contains(&format!("{node}: FLANNEL_SUBNET={subnet}")),
            "{text}"
        );
    }
    let out = labctl(&["exec", "--lab", &tag, "--all", "--", "ip", "route"]);
    assert!(out.status.success(), "exec ip route: {}", show(&out));
    let text = stdout(&out);
    for (node, other) in [
        ("master", "10.71.1.0/24"),
        ("worker1", "10.71.2.0/24"),
        ("worker2", "10.71.0.0/24"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{node}: {other} via"))
                    && l.contains("dev flannel.1")),
            "{node} routes to {other} over flannel.1:\n{text}"
        );
    }
    let out = labctl(&[
        "exec",
        "--lab",
        &tag,
        "--all",
        "--",
        "iptables",
        "-t",
        "nat",
        "-S",
        "FLANNEL-POSTRTG",
    ]);
    assert!(
        out.status.success(),
        "FLANNEL-POSTRTG on every host: {}",
        show(&out)
    );

    // Pods reach each other across hosts; the cluster DNS answers.
    let w2 = pod_ip(&tag, "worker2", "busybox");
    let out = in_netns(
        &format!("{tag}-master-busybox"),
        &["busybox", "ping", "-c1", "-W2", &w2],
    );
    assert!(
        out.status.success(),
        "ping master pod -> worker2 pod: {}",
        show(&out)
    );
    let out = in_netns(
        &format!("{tag}-worker1-busybox"),
        &["busybox", "nslookup", "kubernetes.default"],
    );
    assert!(
        out.status.success() && stdout(&out).contains("10.96.0.1"),
        "DNS from a worker pod: {}",
        show(&out)
    );

    // verify over the node SSH sessions: every check but kubernetes and
    // egress (skipped with a reason) passes.
    let started = std::time::Instant::now();
    let (code, report, text) = verify_json(file, &[]);
    eprintln!("labctl verify on an ssh lab took {:?}", started.elapsed());
    assert_eq!(code, Some(0), "verify: {text}");
    let outcome = |id: &str| check(&report, id)["outcome"].clone();
    assert_passed(&report, &NETWORK_CHECKS);
    for id in ["egress", "kubernetes"] {
        assert_eq!(outcome(id), "skip", "check {id}: {report:#}");
    }
    assert!(
        check(&report, "egress")["summary"]
            .as_str()
            .unwrap()
            .contains("set `verify.egressTarget: ADDRESS` in the lab file"),
        "the skip says how to turn egress on: {report:#}"
    );

    // A fault: worker1 loses its route to worker2's pods. verify names it
    // as a missing route on worker1 (and nothing MTU-shaped); up repairs it.
    delete_route(&tag, "worker1", "10.71.2.0/24");
    let (code, report, text) = verify_json(file, &[]);
    assert_eq!(code, Some(1), "verify with a fault: {text}");
    assert!(
        diagnosed(&report, "missing-route", "worker1", Some("worker2")),
        "missing-route on worker1: {report:#}"
    );
    let diagnoses = report["diagnoses"].as_array().unwrap();
    assert!(
        !diagnoses.iter().any(|d| d["cause"] == "mtu-mismatch"),
        "a missing route is not an MTU mismatch: {report:#}"
    );
    let out = labctl(&["up", file]);
    assert!(out.status.success(), "up repairs: {}", show(&out));
    let out = labctl(&["verify", file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify after repair: {}",
        show(&out)
    );

    // up again: converged, nothing to change.
    let out = labctl(&["up", file]);
    assert!(out.status.success(), "second up: {}", show(&out));
    assert!(
        stdout(&out).contains("no changes"),
        "second up: {}",
        show(&out)
    );

    // An agent of another build on a node (here one too old to know
    // `converge`, as after upgrading labctl): up puts this one back.
    let agent = hosts
        .by_name("worker1")
        .bound(AGENT_DIR)
        .join("bin/labctl-agent");
    let old_agent = "#!/bin/sh\necho \"labctl-agent: unknown command $1\" >&2\nexit 2\n";
    std::fs::write(&agent, old_agent).unwrap();
    let out = labctl(&["up", file]);
    assert!(
        out.status.success(),
        "up after an agent swap: {}",
        show(&out)
    );
    assert!(
        !stdout(&out).contains("no changes"),
        "a new agent is a change: {}",
        show(&out)
    );
    let bytes = std::fs::read(&agent).unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "worker1's agent is labctl's again, not the old one"
    );

    // destroy: every host exactly as before; destroy again is fine.
    let dnsmasq_pid = std::fs::read_to_string(
        hosts
            .by_name("master")
            .bound("/run/labctl-agent")
            .join("dnsmasq.pid"),
    )
    .expect("the DNS server's pid file on master");
    let out = labctl(&["destroy", "--name", &tag]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert!(
        !std::path::Path::new(&format!("/proc/{}", dnsmasq_pid.trim())).exists(),
        "dnsmasq {} still runs after destroy",
        dnsmasq_pid.trim()
    );
    let after = snapshot(&hosts);
    assert_eq!(before, after, "hosts after destroy differ from before up");
    assert_eq!(
        master.mounts_under(AGENT_DIR),
        mounts_before,
        "destroy unmounts the exec tmpfs it mounted, and only that"
    );
    let out = labctl(&["destroy", "--name", &tag]);
    assert!(out.status.success(), "second destroy: {}", show(&out));
}

/// `verify.egressTarget` on an ssh lab: the far end is a namespace this
/// test puts on the hosts' bridge (192.168.74.200). egress passes with
/// every pod's echo requests leaving its node as the node's address; with
/// worker1's POSTROUTING jump to FLANNEL-POSTRTG deleted, they leave
/// worker1 as the pod's address, egress fails and the cause is named;
/// `up` repairs it.
#[test]
fn ssh_lab_egress_check_with_a_target() {
    let test = "ssh_lab_egress_check_with_a_target";
    let Some((_serial, hosts)) = three_hosts_or_skip(test, "te", [192, 168, 74]) else {
        return;
    };
    let _far = FarEnd::start(&hosts, "192.168.74.200");
    let tag = hosts.tag.clone();
    let (file, _lab) = up_with(
        &hosts,
        "10.74.0.0/16",
        "verify:\n  egressTarget: 192.168.74.200\n",
    );
    let file = file.as_str();
    let egress_only = ["--check", "egress"];

    let (code, report, text) = verify_json(file, &egress_only);
    assert_eq!(code, Some(0), "verify egress: {text}");
    let egress = check(&report, "egress");
    assert_eq!(egress["outcome"], "pass", "{report:#}");
    let summary = egress["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("3/3 pods reach 192.168.74.200 masqueraded")
            && summary.contains("leaving each pod's node after POSTROUTING"),
        "{summary}"
    );
    let details = egress["details"].to_string();
    for (node, ip) in [("master", 10), ("worker1", 11), ("worker2", 12)] {
        assert!(
            details.contains(&format!("{node}: pod 10.74."))
                && details.contains(&format!(
                    "left the node as 192.168.74.{ip} (node 192.168.74.{ip})"
                )),
            "{node}: {details}"
        );
    }

    // The fault: worker1 no longer masquerades.
    delete_postrouting_jump(&tag, "worker1");
    let (code, report, text) = verify_json(file, &egress_only);
    assert_eq!(code, Some(1), "verify egress with the fault: {text}");
    let egress = check(&report, "egress");
    assert_eq!(egress["outcome"], "fail", "{report:#}");
    assert!(
        egress["summary"]
            .as_str()
            .unwrap()
            .starts_with("2/3 pods reach"),
        "{report:#}"
    );
    assert!(
        diagnosed(&report, "postrouting-jump-missing", "worker1", None),
        "postrouting-jump-missing on worker1: {report:#}"
    );
    let evidence = report["diagnoses"].to_string();
    assert!(
        evidence.contains("echo requests left worker1 with source 10.74.1."),
        "{evidence}"
    );
    assert!(
        !diagnosed(&report, "postrouting-jump-missing", "master", None)
            && !diagnosed(&report, "postrouting-jump-missing", "worker2", None),
        "only worker1 is blamed: {report:#}"
    );

    let out = labctl(&["up", file]);
    assert!(out.status.success(), "up repairs: {}", show(&out));
    let (code, _, text) = verify_json(file, &egress_only);
    assert_eq!(code, Some(0), "verify egress after repair: {text}");
}
