//! `labctl doctor`, the real binary on this host:
//! - for labs/netns.yaml: the exit status agrees with the lines, every line
//!   is `✓|!|✗ [id] message` (with ` — fix: ...` unless ✓), and the JSON
//!   says the same;
//! - in a fresh network namespace whose only route is one to the lab's
//!   underlay: doctor fails naming that route (exit 3), and `up` stops
//!   with the same line before creating anything (exit 2: the lab file's
//!   networks are the fix, as when they clash with another lab's).
//!
//! Needs root (the netns lab's checks, a network namespace).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::netns::{can_run, show};

fn labctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("labctl runs")
}

/// Checks the line format; returns the ids of the ✗ lines.
fn failed_ids(stdout: &str) -> Vec<String> {
    let mut failed = Vec::new();
    for line in stdout.lines() {
        let (mark, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let (id, message) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once("] "))
            .unwrap_or_else(|| panic!("no [id]: {line:?}"));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c)),
            "{line:?}"
        );
        assert!(!message.is_empty(), "{line:?}");
        match mark {
            "✓" => assert!(!message.contains(" — fix: "), "{line:?}"),
            "!" | "✗" => assert!(
                message.contains(" — fix: "),
                "a problem without its fix: {line:?}"
            ),
            _ => panic!("unknown mark: {line:?}"),
        }
        if mark == "✗" {
            failed.push(id.to_string());
        }
    }
    failed
}

#[test]
fn doctor_for_the_netns_lab_on_this_host() {
    if !can_run("doctor_for_the_netns_lab_on_this_host") {
        return;
    }
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/labs/netns.yaml");
    let out = labctl(&["doctor", lab]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed = failed_ids(&stdout);
    // Root, the tools and the modules are here (can_run saw to the tools);
    // only a lab of another project on 192.168.56.0/24 could clash.
    assert!(
        failed.iter().all(|id| id == "route-overlap"),
        "{}",
        show(&out)
    );
    let expected = if failed.is_empty() { 0 } else { 3 };
    assert_eq!(out.status.code(), Some(expected), "{}", show(&out));
    for id in [
        "[privileges] running as root",
        "[kernel-module-vxlan]",
        "[kernel-module-bridge]",
        "[iptables-backend]",
        "[route-overlap]",
    ] {
        assert!(stdout.contains(id), "{id}: {}", show(&out));
    }

    let json = labctl(&["doctor", "--output", "json", lab]);
    assert_eq!(json.status.code(), Some(expected), "{}", show(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["lab"], "flannel");
    assert_eq!(report["ok"], failed.is_empty());
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), stdout.lines().count());
    assert!(findings
        .iter()
        .all(|f| ["ok", "warn", "fail"].contains(&f["severity"].as_str().unwrap())));
}

/// A network namespace removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", show(&out));
}

#[test]
fn a_host_route_to_the_underlay_fails_doctor_and_stops_up() {
    if !can_run("a_host_route_to_the_underlay_fails_doctor_and_stops_up") {
        return;
    }
    let tag = format!("doc{}", std::process::id() % 100_000);
    let ns = Netns(format!("{tag}-host"));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "dd0", "type", "veth", "peer", "name", "dd1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "dd0", "up"]);
    ip(&["-n", &ns.0, "route", "add", "192.168.77.0/24", "dev", "dd0"]);

    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab.yaml");
    std::fs::write(
        &lab,
        format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {tag}\nnetwork:\n  underlay: 192.168.77.0/24\n  \
             podNetwork: 10.77.0.0/16\nnodes:\n  - name: master\n    role: control-plane\n"
        ),
    )
    .unwrap();
    let lab = lab.to_str().unwrap();
    let in_ns = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_labctl")])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let line = "✗ [route-overlap] the lab's underlay 192.168.77.0/24 overlaps the host route \
                `192.168.77.0/24 dev dd0` — fix: choose another network for the lab in the lab file";

    let out = in_ns(&["doctor", lab]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == line), "{}", show(&out));
    assert_eq!(failed_ids(&stdout), ["route-overlap"], "{}", show(&out));

    // Should a regression let `up` go ahead, the lab goes again (before the
    // namespace guard: declared later, dropped first).
    let _lab = support::ssh_lab::LabGuard(tag.clone());
    let out = in_ns(&["up", lab]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("labctl stopped before creating anything"),
        "{}",
        show(&out)
    );
    assert!(stderr.lines().any(|l| l == line), "{}", show(&out));
    let state = Path::new("/var/lib/labctl/labs").join(&tag);
    assert!(!state.exists(), "nothing created: {}", state.display());
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(&format!("{tag}-master")));
}
