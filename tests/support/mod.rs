//! Helpers shared by labctl's integration tests (`mod support;` in a test).

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod faults;
pub mod fixtures;
pub mod host_snapshot;
pub mod hosts;
pub mod netns;
pub mod snapshot;
pub mod ssh_lab;
pub mod sshd;

/// Says why a test cannot run here and returns false; fails under CI
/// (the workspace's one rule, in crates/testenv).
pub use labctl_testenv::skip;

/// Asserts that `message` contains every one of `needles`.
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}
