//! `ping`: from a fresh "pod" namespace (entered with `--netns`) behind a
//! router namespace whose far link has MTU 1400, the agent pings every
//! target at once and reports each: the router answers, a far host
//! answers at DF payload 1372 and is refused one byte more with the
//! router's "fragmentation needed", an absent address does not answer.
//! Needs root.

mod common;

use std::process::Command;

use common::*;
use labctl_nodeplan::probe::PingReport;
use labctl_nodeplan::report::{decode, REPORT_VERSION};

fn ping(ns: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(AGENT)
        .args(["--netns", ns, "ping"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(ns: &str, args: &[&str]) -> PingReport {
    let (code, stdout, stderr) = ping(ns, args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    decode::<PingReport>("test", &stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"))
}

#[test]
fn ping_reports_every_target_and_the_path_mtu() {
    if !root_or_skip("ping_reports_every_target_and_the_path_mtu") {
        return;
    }
    let p = prefix("pg");
    let pod = Netns::new(&format!("{p}p"));
    let router = Netns::new(&format!("{p}r"));
    let far = Netns::new(&format!("{p}f"));
    let (q, r, f) = (&pod.name, &router.name, &far.name);
    sh(&format!(
        "ip link add eth0 netns {q} type veth peer name veth0 netns {r}"
    ));
    sh(&format!(
        "ip link add eth1 netns {r} type veth peer name eth0 netns {f}"
    ));
    nsh(q, "ip addr add 10.247.1.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.247.1.1");
    nsh(r, "ip addr add 10.247.1.1/24 dev veth0 && ip link set veth0 up && ip addr add 10.247.2.1/24 dev eth1 && ip link set eth1 mtu 1400 up && sysctl -qw net.ipv4.ip_forward=1");
    nsh(f, "ip addr add 10.247.2.2/24 dev eth0 && ip link set eth0 mtu 1400 up && ip route add default via 10.247.2.1");

    let plain = report(
        q,
        &[
            "--count",
            "2",
            "--interval-ms",
            "20",
            "--timeout-ms",
            "400",
            "10.247.1.1",
            "10.247.2.2",
            "10.247.1.99",
        ],
    );
    assert_eq!(
        (plain.report_version, plain.command.as_str()),
        (REPORT_VERSION, "ping")
    );
    assert_eq!(plain.namespace.as_deref(), Some(q.as_str()));
    assert_eq!(plain.count, 2);
    let targets: Vec<String> = plain.targets.iter().map(|t| t.target.to_string()).collect();
    assert_eq!(targets, ["10.247.1.1", "10.247.2.2", "10.247.1.99"]);
    for answered in &plain.targets[..2] {
        assert_eq!((answered.sent, answered.received), (2, 2), "{plain:?}");
        assert!(
            answered.rtt_avg_ms.is_some() && answered.error.is_none(),
            "{plain:?}"
        );
    }
    assert_eq!(plain.targets[2].received, 0, "{plain:?}");
    assert!(plain.targets[2].rtt_avg_ms.is_none(), "{plain:?}");

    // --until-answered: a target that answered is not asked again; the
    // silent one is asked every round. The interval outlasts a reply here.
    let retried = report(
        q,
        &[
            "--count",
            "3",
            "--interval-ms",
            "200",
            "--timeout-ms",
            "300",
            "--until-answered",
            "10.247.1.1",
            "10.247.2.2",
            "10.247.1.99",
        ],
    );
    let sent: Vec<(u32, u32)> = retried
        .targets
        .iter()
        .map(|t| (t.sent, t.received))
        .collect();
    assert_eq!(sent, [(1, 1), (1, 1), (3, 0)], "{retried:?}");

    // DF: 1372 bytes + 28 of headers fit the 1400 link; one more does not,
    // and the router says so (or the kernel refuses it from the cached
    // path MTU: either way a reason, never an answer).
    let fits = report(
        q,
        &[
            "--count",
            "2",
            "--dont-fragment",
            "--payload",
            "1372",
            "10.247.2.2",
        ],
    );
    assert!(fits.dont_fragment && fits.payload == 1372, "{fits:?}");
    assert_eq!(fits.targets[0].received, 2, "{fits:?}");
    let over = report(
        q,
        &[
            "--count",
            "2",
            "--dont-fragment",
            "--payload",
            "1373",
            "--timeout-ms",
            "400",
            "10.247.2.2",
        ],
    );
    assert_eq!(over.targets[0].received, 0, "{over:?}");
    let why = over.targets[0].error.clone().unwrap_or_default();
    assert!(
        why.contains("fragmentation needed (DF set), mtu 1400 (from 10.247.1.1)")
            || why.contains("message too long"),
        "{over:?}"
    );
    // Without DF the same size is fragmented and answered.
    let fragmented = report(q, &["--count", "1", "--payload", "1373", "10.247.2.2"]);
    assert_eq!(fragmented.targets[0].received, 1, "{fragmented:?}");
}

#[test]
fn ping_refuses_bad_targets_and_a_missing_namespace() {
    let (code, _, stderr) = ping("la-no-such-ns", &["nowhere"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("ping target \"nowhere\" is not an IPv4 address"),
        "{stderr}"
    );
    let (code, _, stderr) = ping("la-no-such-ns", &["--count", "two", "10.0.0.1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--count \"two\" is not a number"),
        "{stderr}"
    );
    if !root_or_skip("ping_refuses_bad_targets_and_a_missing_namespace") {
        return;
    }
    let (code, _, stderr) = ping("la-no-such-ns", &["10.0.0.1"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("la-no-such-ns"), "{stderr}");
    let (code, _, stderr) = Command::new(AGENT)
        .arg("ping")
        .output()
        .map(|o| {
            (
                o.status.code(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("at least one TARGET"), "{stderr}");
}
