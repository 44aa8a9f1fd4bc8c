//! `jobs`: several commands on one node side by side, in one agent process
//! (verify's rounds where a node has more than one thing to run: its
//! pods' pings and a capture's collection, the MTU probes). labctl sends a
//! [`JobsRequest`] as one argument; the agent starts every argv at once
//! (no shell: each word arrives as sent), waits for all and prints a
//! [`JobsReport`] with each one's exit status and output, in order.

use serde::{Deserialize, Serialize};

use super::AgentReport;

/// What `labctl-agent jobs REQUEST` is asked (one JSON word).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobsRequest {
    /// The node's name, for the report.
    pub node: String,
    /// Each job's argv; the program is looked up in PATH.
    pub jobs: Vec<Vec<String>>,
    /// The job (index in `jobs`) that reads the `jobs` command's own
    /// stdin (verify's node check, whose plan arrives there); the others
    /// read nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_to: Option<usize>,
}

/// `jobs`: one result per job of the request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobsReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub jobs: Vec<JobResult>,
}

impl AgentReport for JobsReport {
    const COMMAND: &'static str = "jobs";
}

/// How one job ended and what it printed (as text, invalid UTF-8
/// replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobResult {
    /// Its exit status, 128 + the signal's number when a signal ended it
    /// (as a shell reports it); none when it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    pub stdout: String,
    /// Its stderr, or why it could not start.
    pub stderr: String,
}
