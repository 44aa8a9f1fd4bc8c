//! `inspect [--check] [POD...]`: all verify's node check asks of a node,
//! in one agent run and one typed report: the agent's version, the links
//! of the node's pod namespaces, and with `--check` the check against the
//! plan on stdin and the node's `iptables -S` (filter table) for
//! diagnosis. It replaces a shell script that tagged each part's text.

use serde::{Deserialize, Serialize};

use super::{AgentReport, CheckReport, NamespaceLinks};

/// `inspect`'s report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InspectReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    /// As `--version` prints it: `labctl-agent VERSION sha256:HEX`.
    pub version: String,
    /// One entry per pod namespace named, in order (`links`'s).
    #[serde(default)]
    pub pods: Vec<NamespaceLinks>,
    /// With `--check`: the check's report, or why it could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
    /// With `--check`: `iptables -w -S` (filter table), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_rules: Option<String>,
}

impl AgentReport for InspectReport {
    const COMMAND: &'static str = "inspect";
}
