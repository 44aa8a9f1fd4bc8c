//! `labctl verify --check throughput` on a real 2-node netns lab: one run
//! measures pod to pod across the nodes (VXLAN) and node to node on the
//! underlay, and reports both with their ratio; the default check set
//! leaves it out. Root only (skipped otherwise, failing under CI).

mod support;

use support::netns::{can_run, labctl, serial, show, TestLab};

#[test]
fn throughput_reports_pod_and_underlay_rates_and_their_ratio() {
    if !can_run("throughput_reports_pod_and_underlay_rates_and_their_ratio") {
        return;
    }
    let _serial = serial();
    let lab = TestLab::numbered("tp", 42, &["cp", "w1"]);
    lab.up_ok();

    let out = labctl(&[
        "verify",
        lab.path(),
        "--check",
        "throughput",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{report:#}");
    let check = &checks[0];
    assert_eq!(check["id"], "throughput", "{check:#}");
    assert_eq!(check["outcome"], "pass", "{check:#}");
    let ev = &check["evidence"];
    let pod = ev["pod_bits_per_second"].as_f64();
    let underlay = ev["underlay_bits_per_second"].as_f64();
    let (Some(pod), Some(underlay)) = (pod, underlay) else {
        panic!("no rates: {ev:#}");
    };
    // Real TCP through veths and flannel.1: far above a megabit.
    assert!(pod > 1e6 && underlay > 1e6, "{ev:#}");
    let ratio = ev["ratio"].as_f64().unwrap_or_else(|| panic!("{ev:#}"));
    assert!((ratio - pod / underlay).abs() < 1e-6, "{ev:#}");
    assert_eq!(
        (ev["from"].as_str(), ev["to"].as_str()),
        (Some("cp"), Some("w1"))
    );
    // iperf3 is on this host (.ci/run installs it), so netns nodes have it.
    assert_eq!(ev["tool"], "iperf3", "{ev:#}");
    let summary = check["summary"].as_str().unwrap();
    assert!(
        summary.contains("ratio") && summary.contains("Gbit/s"),
        "{summary}"
    );

    // Not part of the default set.
    let out = labctl(&["verify", lab.path(), "--output", "json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&"throughput") && ids.contains(&"pod-mesh"),
        "{ids:?}"
    );
}
