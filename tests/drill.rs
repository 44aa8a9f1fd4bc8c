//! `labctl drill` on a real netns lab: for every drill, `start` injects
//! its fault, verify fails with the drill's cause on the node, `check`
//! says not fixed (naming the cause only after the last hint), the fix
//! the last hint gives (run as written) makes `check` say fixed; then the
//! same drill started again and left alone is undone by `reset`, and
//! verify passes. One lab for all drills; destroyed at the end (and on
//! failure, from Drop). Needs root.

mod support;

use labctl::drill::table::DRILLS;
use serde_json::Value;
use support::netns::{can_run, labctl, show, TestLab};

const NODE: &str = "worker1";

fn ok(args: &[&str]) -> String {
    let out = labctl(args);
    assert!(out.status.success(), "labctl {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `labctl --output json verify LAB`: exit status and report.
fn verify(lab: &TestLab) -> (i32, Value) {
    let out = labctl(&["--output", "json", "verify", lab.path()]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", show(&out)));
    (out.status.code().unwrap_or(-1), report)
}

/// `labctl drill check`: exit status and what it printed.
fn check(lab: &TestLab) -> (i32, String) {
    let out = labctl(&["drill", "check", "--lab", &lab.name]);
    assert!(out.stderr.is_empty(), "drill check: {}", show(&out));
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the `labctl exec NODE -- ...` lines of the last hint as a shell
/// would, with this build of labctl and this lab.
fn apply_fix(lab: &TestLab, last_hint: &str) {
    let fix = last_hint
        .lines()
        .find_map(|l| l.split_once("Fix: ").map(|(_, f)| f.to_string()))
        .unwrap_or_else(|| panic!("no fix in the last hint: {last_hint}"));
    for line in fix.split(" ; ") {
        let rest = line
            .strip_prefix("labctl exec ")
            .unwrap_or_else(|| panic!("not a labctl exec line: {line}"));
        let script = format!(
            "{} exec --lab {} {rest}",
            env!("CARGO_BIN_EXE_labctl"),
            lab.name
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", show(&out));
    }
}

#[test]
fn every_drill_is_named_by_verify_and_fixed_as_the_hints_say() {
    if !can_run("every_drill_is_named_by_verify_and_fixed_as_the_hints_say") {
        return;
    }
    let n = std::process::id() % 20;
    let lab = TestLab::new(
        &format!("dr{}", std::process::id() % 100000),
        &format!("192.168.{}.0/24", 120 + n),
        &format!("10.{}.0.0/16", 201 + n),
        &["master", NODE, "worker2"],
    )
    .with_service_network(&format!("10.{}.0.0/16", 221 + n));
    let out = lab.up();
    assert!(out.status.success(), "labctl up failed: {}", show(&out));
    let (code, report) = verify(&lab);
    assert_eq!(code, 0, "a fresh lab passes verify: {report:#}");

    let out = labctl(&[
        "drill",
        "start",
        "fdb-entry",
        "--lab",
        &lab.name,
        "--node",
        "nosuch",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch"),
        "{}",
        show(&out)
    );
    let out = labctl(&["drill", "hint", "--lab", &lab.name]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no drill was started: {}",
        show(&out)
    );

    let listed = ok(&["drill", "list"]);
    assert_eq!(listed.lines().count(), DRILLS.len(), "{listed}");
    for drill in DRILLS {
        let name = drill.name;
        assert!(listed.contains(name), "{listed}");
        let started = ok(&["drill", "start", name, "--lab", &lab.name]);
        assert!(started.contains("Symptom: "), "{name}: {started}");
        assert!(!started.contains(drill.cause), "{name}: {started}");

        let (code, report) = verify(&lab);
        assert_eq!(code, 1, "{name}: verify should fail: {report:#}");
        let found = report["diagnoses"].as_array().cloned().unwrap_or_default();
        assert!(
            found
                .iter()
                .any(|d| d["cause"] == drill.cause && d["node"] == NODE),
            "{name}: expected cause {} on {NODE}, got {:#}",
            drill.cause,
            report["diagnoses"]
        );

        let (code, said) = check(&lab);
        assert_eq!(code, 1, "{name}: {said}");
        assert!(
            said.contains("Not fixed yet") && !said.contains("Cause ("),
            "{name}: {said}"
        );

        let mut last = String::new();
        for rung in 1..=drill.hints.len() + 1 {
            last = ok(&["drill", "hint", "--lab", &lab.name]);
            assert!(
                last.starts_with(&format!("Hint {rung} of ")),
                "{name}: {last}"
            );
        }
        let again = ok(&["drill", "hint", "--lab", &lab.name]);
        assert_eq!(again, last, "{name}: the ladder stops at its last rung");
        let (code, said) = check(&lab);
        assert_eq!(code, 1, "{name}: {said}");
        assert!(
            said.contains(&format!("Cause ({}, {NODE})", drill.cause)),
            "{name}: after the last hint check names the cause: {said}"
        );

        apply_fix(&lab, &last);
        let (code, said) = check(&lab);
        assert_eq!(code, 0, "{name}: fixed as the hint says: {said}");
        assert!(said.starts_with("Fixed"), "{name}: {said}");
        ok(&["drill", "reset", "--lab", &lab.name]);

        // Started again and left alone: reset alone restores the lab.
        ok(&["drill", "start", name, "--lab", &lab.name]);
        let said = ok(&["drill", "reset", "--lab", &lab.name]);
        assert!(said.contains("reset"), "{name}: {said}");
        let (code, report) = verify(&lab);
        assert_eq!(code, 0, "{name}: verify passes after reset: {report:#}");
    }
    let out = labctl(&["drill", "check", "--lab", &lab.name]);
    assert_eq!(out.status.code(), Some(2), "no drill left: {}", show(&out));
    let again = ok(&["drill", "reset", "--lab", &lab.name]);
    assert!(again.contains("nothing to reset"), "{again}");
}

#[test]
fn unknown_drills_and_bad_lab_names_are_refused() {
    let out = labctl(&["drill", "start", "no-such-drill", "--lab", "nolab1"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-drill") && err.contains("fdb-entry"),
        "{err}"
    );
    let out = labctl(&["drill", "start", "fdb-entry", "--lab", "bad;name"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}
