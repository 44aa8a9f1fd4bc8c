//! verify warns, without failing, when the neighbour table cannot hold
//! what the lab needs: on a real 2-node netns lab whose host limits
//! (net.ipv4.neigh.default.gc_thresh1/2, shared by every namespace: they
//! are not per namespace) are lowered below that after `up`, the warning
//! names the nodes and the sysctl to raise with its value. The host's
//! values are saved first and put back by a guard, also on failure. Root
//! only (skipped otherwise, failing under CI).

mod support;

use support::netns::{can_run, labctl, serial, show, TestLab};

const DIR: &str = "/proc/sys/net/ipv4/neigh/default";
const NAMES: [&str; 3] = ["gc_thresh1", "gc_thresh2", "gc_thresh3"];

fn read_limits() -> [String; 3] {
    NAMES.map(|n| {
        std::fs::read_to_string(format!("{DIR}/{n}"))
            .unwrap_or_else(|e| panic!("{DIR}/{n}: {e}"))
            .trim()
            .to_string()
    })
}

/// Puts the host's gc_thresh values back when dropped (the cap last when
/// lowering, first when raising, so gc_thresh2 never exceeds gc_thresh3).
struct RestoreLimits([String; 3]);

impl Drop for RestoreLimits {
    fn drop(&mut self) {
        for i in [2, 1, 0] {
            let _ = std::fs::write(format!("{DIR}/{}", NAMES[i]), &self.0[i]);
        }
        for i in [0, 1, 2] {
            let _ = std::fs::write(format!("{DIR}/{}", NAMES[i]), &self.0[i]);
        }
    }
}

#[test]
fn verify_warns_when_gc_thresh_is_below_the_labs_need() {
    if !can_run("verify_warns_when_gc_thresh_is_below_the_labs_need") {
        return;
    }
    let _serial = serial();
    let lab = TestLab::numbered("nl", 41, &["cp", "w1"]);
    lab.up_ok();

    let saved = read_limits();
    let restore = RestoreLimits(saved.clone());
    // 2 nodes need 2·1 + 6·2 = 14 entries: gc_thresh2 = 12 is too low,
    // gc_thresh3 stays (nothing is refused, other labs keep working).
    std::fs::write(format!("{DIR}/gc_thresh1"), "8").unwrap();
    std::fs::write(format!("{DIR}/gc_thresh2"), "12").unwrap();
    let verify = labctl(&["verify", lab.path(), "--output", "json"]);
    let text = labctl(&["verify", lab.path(), "--check", "nodes"]);
    drop(restore);
    assert_eq!(read_limits(), saved, "the host's limits are back");

    let report: serde_json::Value =
        serde_json::from_slice(&verify.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&verify)));
    let warnings = report["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"));
    let w = warnings
        .iter()
        .find(|w| w["id"] == "neighbour-table-limits")
        .unwrap_or_else(|| panic!("no neighbour warning: {report:#}"));
    let nodes: Vec<&str> = w["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(nodes, ["cp", "w1"], "{w}");
    let fix = w["fix"].as_str().unwrap();
    assert!(
        fix.contains("net.ipv4.neigh.default.gc_thresh2=512"),
        "{fix}"
    );
    assert!(
        fix.contains("net.ipv4.neigh.default.gc_thresh1=128"),
        "{fix}"
    );
    let message = w["message"].as_str().unwrap();
    assert!(
        message.contains("not per namespace") && message.contains("= 12"),
        "{message}"
    );
    // A warning, not a failure.
    assert!(text.status.success(), "{}", show(&text));
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown.contains("warning neighbour-table-limits on cp, w1")
            && shown.contains("net.ipv4.neigh.default.gc_thresh2=512"),
        "{shown}"
    );
}
