//! `capture --icmp-to`: in a fresh node namespace with one pod behind it
//! and a far-end namespace on 198.18.71.0/24, the capture sees the pod's
//! echo requests leave the node with the pod's source while nothing
//! masquerades, and with the node's address once a MASQUERADE rule is in
//! POSTROUTING. Needs root.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use common::*;
use labctl_nodeplan::report::IcmpCaptureReport;

/// Runs the capture in `node` while the pod namespace pings the far end;
/// returns the capture's report.
fn capture_while_pinging(
    node: &str,
    pod: &str,
    plan: &labctl_nodeplan::NodePlan,
) -> IcmpCaptureReport {
    let ready = std::env::temp_dir().join(format!("{node}-ready"));
    let _ = std::fs::remove_file(&ready);
    let ready_arg = ready.to_string_lossy().into_owned();
    let capture = spawn_agent_netns(
        node,
        plan,
        &[
            "capture",
            "--icmp-to",
            "198.18.71.2",
            "--seconds",
            "4",
            "--ready-file",
            &ready_arg,
        ],
    );
    // The capture says when its socket is open: no guessing with a sleep.
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "no ready file {ready_arg} after 3 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&ready);
    // The far end may not answer (no route back to a pod address).
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            pod,
            "busybox",
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "198.18.71.2",
        ])
        .output();
    capture_report(capture)
}

fn sources(report: &IcmpCaptureReport) -> Vec<(String, Ipv4Addr)> {
    report
        .departures
        .iter()
        .map(|d| (d.interface.clone(), d.src))
        .collect()
}

#[test]
fn capture_icmp_to_sees_the_source_after_postrouting() {
    if !root_or_skip("capture_icmp_to_sees_the_source_after_postrouting") {
        return;
    }
    let p = prefix("ci");
    let lab = NodeFarPod::new(&p, 71);
    let (n, q) = (&lab.node.name, &lab.pod.name);
    let spec = NodeSpec {
        name: "n".into(),
        number: 1,
        ip: Ipv4Addr::new(198, 18, 71, 1),
    };
    let dir = TempDir::new(&format!("{p}d"));
    let plan = plan(&p, &spec, std::slice::from_ref(&spec), &dir.path());

    // Nothing masquerades: the pod's own address leaves the node.
    let report = capture_while_pinging(n, q, &plan);
    assert_eq!(report.icmp_to, Ipv4Addr::new(198, 18, 71, 2), "{report:#?}");
    assert_eq!(report.node, "n");
    assert_eq!(
        sources(&report),
        [("eth1".to_string(), Ipv4Addr::new(10, 244, 1, 2))],
        "{report:#?}"
    );
    assert!(report.packets >= 2, "{report:#?}");

    // MASQUERADE in POSTROUTING: the node's address leaves instead.
    nsh(
        n,
        "iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE",
    );
    let report = capture_while_pinging(n, q, &plan);
    assert_eq!(
        sources(&report),
        [("eth1".to_string(), Ipv4Addr::new(198, 18, 71, 1))],
        "{report:#?}"
    );
}

#[test]
fn capture_icmp_to_refuses_a_bad_address() {
    let out = Command::new(AGENT)
        .args(["capture", "--icmp-to", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--icmp-to \"nowhere\" is not an IPv4 address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
