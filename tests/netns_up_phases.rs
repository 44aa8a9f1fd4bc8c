//! `labctl up` ends with the wall time of each phase: a table after the
//! summary in text mode, `phases` in `--output json`, nothing with `-q`.
//! On a real 2-node netns lab (root; skipped otherwise, failing under CI).

mod support;

use support::netns::{can_run, labctl, serial, show, TestLab};

/// The phases a netns lab goes through, in table order (no kubeadm).
/// ("data plane" is the node's one agent command: apply and the pods.)
const NETNS_PHASES: [&str; 5] = ["nodes", "ssh", "agent", "data plane", "dns"];

/// `(phase, seconds)` rows of the table under the `phase  time` header.
fn table_rows(stdout: &str) -> Vec<(String, f64)> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("phase"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no phase table:\n{stdout}"));
    assert!(header.split_whitespace().eq(["phase", "time"]), "{header}");
    lines
        .map(|l| {
            let (name, time) = l.rsplit_once(' ').unwrap_or_else(|| panic!("row {l:?}"));
            let secs = time
                .strip_suffix('s')
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("time in {l:?}"));
            (name.trim().to_string(), secs)
        })
        .collect()
}

#[test]
fn up_ends_with_a_phase_table_and_json_phases() {
    if !can_run("up_ends_with_a_phase_table_and_json_phases") {
        return;
    }
    let _serial = serial();
    let lab = TestLab::numbered("ph", 87, &["master", "worker1"]);

    let started = std::time::Instant::now();
    let out = lab.up();
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.find(&format!("Lab {} is up", lab.name));
    let table = stdout.find("phase");
    assert!(
        matches!((summary, table), (Some(s), Some(t)) if s < t),
        "the table follows the summary:\n{stdout}"
    );
    let rows = table_rows(&stdout);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected: Vec<&str> = NETNS_PHASES.to_vec();
    expected.push("total");
    assert_eq!(names, expected, "{stdout}");
    let total = rows.last().unwrap().1;
    assert!(
        total > 0.0 && total <= wall + 0.01,
        "total {total}s, run took {wall:.2}s"
    );
    for (name, secs) in &rows {
        // Every phase did real work (namespaces, sshd, an upload, netlink,
        // a pod, dnsmasq): none is instant, none outlasts the whole run.
        assert!(
            *secs > 0.0 && *secs <= total + 0.01,
            "{name}: {secs}s of {total}s\n{stdout}"
        );
    }

    // Again, converging: JSON carries the same phases with seconds.
    let out = labctl(&["up", "--output", "json", lab.path()]);
    assert!(out.status.success(), "{}", show(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!(doc["changes"], 0, "{doc}");
    let phases = doc["phases"].as_array().unwrap_or_else(|| panic!("{doc}"));
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(names, NETNS_PHASES, "{doc}");
    let total = doc["seconds"].as_f64().unwrap();
    for phase in phases {
        let secs = phase["seconds"].as_f64().unwrap();
        assert!(secs > 0.0 && secs <= total, "{phase} of {total}s");
    }

    // -q: no summary, no table.
    let out = labctl(&["up", "-q", lab.path()]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{}", show(&out));
}
