//! `captures start` / `captures collect`: in a fresh node namespace with
//! a pod behind it and a far end on 198.18.72.0/24, one request arms an
//! echo-request capture (with the route to the far end) and a VXLAN
//! capture whose underlay address is not on the node; `start` returns
//! once the sockets are open, the pod's pings are seen leaving
//! masqueraded, the broken capture is reported failed without stopping
//! the other, and `collect` removes the capture folder. Needs root.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use common::*;
use labctl_nodeplan::report::{
    CaptureOutcome, CaptureSpec, CapturesCollected, CapturesRequest, CapturesStarted,
};

#[test]
fn one_start_and_one_collect_run_every_capture_of_a_node() {
    if !root_or_skip("one_start_and_one_collect_run_every_capture_of_a_node") {
        return;
    }
    let p = prefix("cs");
    let lab = NodeFarPod::new(&p, 72);
    let (n, q) = (&lab.node.name, &lab.pod.name);
    nsh(
        n,
        "iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE",
    );
    let far_end = Ipv4Addr::new(198, 18, 72, 2);
    // The plan's underlay address is not on the node: its VXLAN capture
    // cannot open.
    let spec = NodeSpec {
        name: "n".into(),
        number: 1,
        ip: Ipv4Addr::new(198, 18, 99, 1),
    };
    let dir = TempDir::new(&format!("{p}d"));
    let mut plan = plan(&p, &spec, std::slice::from_ref(&spec), &dir.path());
    plan.peers.clear();
    let request = CapturesRequest {
        plan,
        route_to: Some(far_end),
        captures: vec![
            CaptureSpec::IcmpTo {
                to: far_end,
                seconds: 4.0,
                count: Some(2),
            },
            CaptureSpec::Vxlan {
                seconds: 1.0,
                count: None,
            },
        ],
    };
    let json = serde_json::to_string(&request).unwrap();
    let (code, stdout, stderr) = agent_args(&["--netns", n, "captures", "start", &json]);
    assert_eq!(code, 0, "{stderr}");
    let started: CapturesStarted = labctl_nodeplan::report::decode("n", &stdout).unwrap();
    // /dev/shm when it is a tmpfs (no disk inode per capture file).
    let shm_is_tmpfs = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/dev/shm") && l.split(' ').nth(2) == Some("tmpfs"));
    let base = if shm_is_tmpfs { "/dev/shm" } else { "/tmp" };
    assert!(
        started.dir.starts_with(&format!("{base}/labctl-verify.")),
        "{started:?}"
    );
    assert!(Path::new(&started.dir).is_dir());
    let route = started.route.clone().unwrap_or_default();
    assert!(
        route.starts_with("198.18.72.2 dev eth1 src 198.18.72.1"),
        "{route}"
    );

    // start returned with the sockets open: these pings are seen.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            q,
            "busybox",
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "198.18.72.2",
        ])
        .output();
    let (code, stdout, stderr) = agent_args(&[
        "captures",
        "collect",
        &started.dir,
        "--seconds",
        "4",
        "--kernel-log",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let got: CapturesCollected = labctl_nodeplan::report::decode("n", &stdout).unwrap();
    assert_eq!(got.captures.len(), 2, "{got:#?}");
    match &got.captures[0] {
        CaptureOutcome::IcmpTo { report } => {
            let sources: Vec<(&str, Ipv4Addr)> = report
                .departures
                .iter()
                .map(|d| (d.interface.as_str(), d.src))
                .collect();
            assert_eq!(sources, [("eth1", Ipv4Addr::new(198, 18, 72, 1))]);
            assert_eq!(report.packets, 2, "{report:#?}");
        }
        other => panic!("the echo capture gave {other:?}"),
    }
    match &got.captures[1] {
        CaptureOutcome::Failed { error } => {
            assert!(error.contains("198.18.99.1"), "{error}")
        }
        other => panic!("the VXLAN capture without an underlay gave {other:?}"),
    }
    let log = got.kernel_log.expect("--kernel-log asked for the log");
    assert!(log.uptime > 0.0);
    assert!(
        !Path::new(&started.dir).exists(),
        "collect left {}",
        started.dir
    );

    // Collected once: a second collect names the missing capture.
    let (code, _, stderr) = agent_args(&["captures", "collect", &started.dir]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("was it started, and not collected yet?"),
        "{stderr}"
    );
}

#[test]
fn captures_refuse_bad_requests_and_folders_not_theirs() {
    let (code, _, stderr) = agent_args(&["captures", "start", "{\"plan\":1}"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the request is not valid"), "{stderr}");
    for dir in ["/etc", "/tmp/labctl-verify./../etc", "/tmp/labctl-verify."] {
        let (code, _, stderr) = agent_args(&["captures", "collect", dir]);
        assert_eq!(code, 2, "{dir}: {stderr}");
        assert!(stderr.contains("is not a capture folder"), "{stderr}");
    }
    let (code, _, stderr) = agent_args(&["captures", "stop"]);
    assert_eq!(code, 2, "{stderr}");
}
