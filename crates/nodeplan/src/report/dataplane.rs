//! The reports of the commands about the node's data plane: `apply`,
//! `check`, `teardown` and `show`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AgentReport, Difference, ObjectKind, ObjectOutcome};

/// `apply`: what changed. Objects that matched the plan are counted in
/// `unchanged` and per kind in `unchangedByKind` (listed in `objects`
/// too with `--verbose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub unchanged_by_kind: BTreeMap<ObjectKind, usize>,
    pub objects: Vec<ObjectOutcome>,
    pub errors: Vec<String>,
}

impl ApplyReport {
    /// Objects created, updated or removed.
    pub fn changes(&self) -> usize {
        self.created + self.updated + self.removed
    }
}

impl AgentReport for ApplyReport {
    const COMMAND: &'static str = "apply";
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// `check`: every difference between the plan and the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub in_sync: bool,
    pub differences: Vec<Difference>,
}

impl AgentReport for CheckReport {
    const COMMAND: &'static str = "check";
}

/// `teardown`: what was removed, kept on purpose, and failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeardownReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub removed: Vec<String>,
    /// What teardown left in place on purpose, and why (a state folder
    /// that is a mount point, a module still in use). Not errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    pub errors: Vec<String>,
}

impl AgentReport for TeardownReport {
    const COMMAND: &'static str = "teardown";
    fn errors(&self) -> &[String] {
        &self.errors
    }
}

/// `show`'s VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShowVxlan {
    /// `ip -d link`-style text, e.g. `vxlan id 1 local 192.168.56.10 ...`.
    pub link: String,
    pub addresses: Vec<String>,
}

/// `show`'s bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShowBridge {
    /// The device's kind (`bridge`, or whatever took its name).
    pub kind: String,
    pub mtu: u32,
    pub up: bool,
    pub addresses: Vec<String>,
}

/// `show`'s iptables: each table's jump, `-N` and rules of the owned chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShowIptables {
    pub nat: Vec<String>,
    pub filter: Vec<String>,
    /// Why the rules could not be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `show`: the node's live flannel state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShowReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    /// The interface holding the underlay IP.
    pub underlay: Option<String>,
    pub vxlan: Option<ShowVxlan>,
    pub bridge: Option<ShowBridge>,
    pub neighbours: Vec<String>,
    pub fdb: Vec<String>,
    pub routes: Vec<String>,
    pub iptables: ShowIptables,
    /// Key → value (null: the sysctl does not exist).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// Path → contents (null: the file does not exist).
    pub files: BTreeMap<String, Option<String>>,
}

impl AgentReport for ShowReport {
    const COMMAND: &'static str = "show";
}
