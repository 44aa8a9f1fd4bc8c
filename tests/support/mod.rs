//! Helpers shared by labctl's integration tests (`mod support;` in a test).

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod faults;
pub mod fixtures;
pub mod hosts;
pub mod netns;
pub mod ssh_lab;
pub mod sshd;

/// Says why a test cannot run here and returns false; fails under CI
/// (the workspace's one rule, in crates/testenv).
pub use labctl_testenv::skip;
