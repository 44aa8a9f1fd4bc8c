//! The CLI paths of verify on a real netns lab: `labctl up LAB --verify`
//! (verify's exit status), `labctl verify LAB` as a learner types it (text
//! report, exit 1 with the cause named, `--check`, `--junit`, `--mesh
//! sampled`), exit 3 for a lab that is not up, a small lab leaving the
//! host's ARP table limits alone, and the lab bridge answering ARP itself. Needs root; the lab has a name and networks unique to this run
//! and is destroyed at the end, also on failure.

mod support;

use support::netns::{can_run, in_netns, labctl, show, TestLab};

fn arp_limits() -> Vec<String> {
    ["gc_thresh1", "gc_thresh2", "gc_thresh3"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/{n}"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn up_verify_and_verify_from_the_command_line() {
    if !can_run("up_verify_and_verify_from_the_command_line") {
        return;
    }
    let n = std::process::id() % 40;
    let name = format!("vc{}", std::process::id() % 100000);
    // Destroyed, with its folder (the JUnit file too), also on failure.
    let lab = TestLab::new(
        &name,
        &format!("192.168.{}.0/24", 160 + n),
        &format!("10.{}.0.0/16", 60 + n),
        &["master", "worker1", "worker2"],
    )
    .with_service_network(&format!("10.{}.0.0/16", 110 + n));
    let path = lab.path();

    // Not up yet: verify cannot run (exit 3) and says how to bring it up.
    let out = labctl(&["verify", path]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(show(&out).contains("labctl up"), "{}", show(&out));

    let limits = arp_limits();
    let out = labctl(&["up", path, "--verify"]);
    assert_eq!(out.status.code(), Some(0), "up --verify: {}", show(&out));
    let shown = show(&out);
    assert!(shown.contains(&format!("Lab {name} is up")), "{shown}");
    assert!(
        shown.contains("pod-mesh") && shown.contains("PASS"),
        "{shown}"
    );
    assert_eq!(
        arp_limits(),
        limits,
        "a 3-node lab fits the default ARP table: the host's limits stay"
    );

    // Break worker1's route to worker2's pods: verify (text, as typed by a
    // learner) fails with exit 1 and names the cause.
    let ns = format!("{name}-worker1");
    let routes = in_netns(&ns, &["ip", "-4", "route", "show", "dev", "flannel.1"]);
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let victim = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .next_back()
        .unwrap_or_else(|| panic!("no flannel.1 routes on worker1: {routes}"))
        .to_string();
    let del = in_netns(&ns, &["ip", "route", "del", &victim]);
    assert!(del.status.success(), "{}", show(&del));
    let out = labctl(&["verify", path]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("missing-route"), "{}", show(&out));

    // `up --verify` repairs it and its exit status is verify's: 0 again.
    let out = labctl(&["up", path, "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // --check and --junit.
    let junit = lab.dir.join("junit.xml");
    let out = labctl(&[
        "verify",
        path,
        "--check",
        "nodes",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("nodes") && !xml.contains("pod-mesh"), "{xml}");

    // --mesh sampled on a small lab: each pod pings the pods 1 and 2
    // places after it (all 6 pairs of 3 pods), and the JSON says so.
    let out = labctl(&[
        "--output", "json", "verify", path, "--check", "pod-mesh", "--mesh", "sampled",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let coverage = &report["mesh"]["coverage"];
    assert_eq!(coverage["kind"], "sampled", "{coverage}");
    assert_eq!(coverage["offsets"], serde_json::json!([1, 2]), "{coverage}");
    assert_eq!(coverage["of"], 6, "{coverage}");
    assert_eq!(report["mesh"]["cells"].as_array().map(Vec::len), Some(6));
    let summary = report["checks"][0]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("sampled from 6 pairs"), "{summary}");

    // The lab bridge answers ARP itself: worker1 resolves master's node IP
    // to the MAC made from it, and worker2 receives nothing meanwhile.
    let master_ip = format!("192.168.{}.10", 160 + n);
    let rx = || {
        let out = in_netns(
            &format!("{name}-worker2"),
            &["cat", "/sys/class/net/eth1/statistics/rx_packets"],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = rx();
    let flush = in_netns(&ns, &["ip", "neigh", "flush", "dev", "eth1"]);
    assert!(flush.status.success(), "{}", show(&flush));
    let ping = in_netns(&ns, &["ping", "-c1", "-W2", &master_ip]);
    assert!(ping.status.success(), "{}", show(&ping));
    let neigh = in_netns(&ns, &["ip", "neigh", "show", &master_ip, "dev", "eth1"]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    assert!(
        neigh.contains(&format!("lladdr 02:4c:c0:a8:{:02x}:0a", 160 + n)),
        "worker1's neighbour entry for master: {neigh}"
    );
    assert_eq!(rx(), before, "worker2 received a frame of worker1's ARP");

    drop(lab);
    assert_eq!(arp_limits(), limits);
}
