//! Helpers shared by labctl's integration tests (`mod support;` in a test).

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod faults;
pub mod fixtures;
pub mod hosts;
pub mod netns;
pub mod ssh_lab;
pub mod sshd;

/// Says why `test` cannot run here and returns false, so the test returns;
/// under CI (`CI` set, not `false`/`0`), where .ci/run provides root and
/// every tool, it fails instead: a test must not pass there by skipping.
pub fn skip(test: &str, why: &str) -> bool {
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!in_ci, "{test} cannot run in CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Asserts that `message` contains every one of `needles`.
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}
