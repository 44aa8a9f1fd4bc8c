//! What a report says about one object: its kind, a difference between
//! plan and node, and what `apply` did to it.

use serde::{Deserialize, Serialize};

/// The kinds of objects the agent owns on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A device: the VXLAN device or the bridge (`name`: the device).
    Link,
    /// An IPv4 address on a device (`name`: the address with its prefix).
    Address,
    /// A main-table route (`name`: its destination).
    Route,
    /// A neighbour entry on the VXLAN device (`name`: its IP).
    Neighbour,
    /// An FDB entry on the VXLAN device (`name`: its MAC).
    Fdb,
    /// An iptables chain the agent owns (`name`: the chain, `table` set).
    Chain,
    /// The rule jumping to an owned chain from a built-in chain (`name`:
    /// the chain jumped to, `table` set).
    Rule,
    /// A file the agent owns (`name`: its path).
    File,
    /// A sysctl (`name`: its key).
    Sysctl,
    /// A kernel module (`name`: the module).
    Module,
}

impl ObjectKind {
    /// The kind as reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Link => "link",
            ObjectKind::Address => "address",
            ObjectKind::Route => "route",
            ObjectKind::Neighbour => "neighbour",
            ObjectKind::Fdb => "fdb",
            ObjectKind::Chain => "chain",
            ObjectKind::Rule => "rule",
            ObjectKind::File => "file",
            ObjectKind::Sysctl => "sysctl",
            ObjectKind::Module => "module",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value a difference compares: one text (`ip`-style entry, a number, a
/// file's contents) or lines (a chain's rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum State {
    Text(String),
    Lines(Vec<String>),
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Text(s) => f.write_str(s),
            State::Lines(l) => f.write_str(&l.join("; ")),
        }
    }
}

/// One difference between the plan and the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Difference {
    pub kind: ObjectKind,
    /// A label for people, e.g. `vxlan flannel.1 mtu`, `route 10.244.1.0/24`.
    pub object: String,
    /// The object's node-local identity (see [`ObjectKind`]).
    pub name: String,
    /// The attribute that differs (a link's `mtu`, `local`, ...; a file's
    /// `mode`); absent when the object itself differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Chains and rules: the iptables table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Routes, neighbours and FDB entries the plan wants: the peer node
    /// they lead to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What the plan wants (null: the object must not exist).
    pub expected: Option<State>,
    /// What the node has (null: the object is missing).
    pub actual: Option<State>,
}

impl Difference {
    /// A difference in `name`, an object of `kind`, labelled `object`;
    /// expected and actual still null.
    pub fn new(kind: ObjectKind, object: impl Into<String>, name: impl Into<String>) -> Self {
        Difference {
            kind,
            object: object.into(),
            name: name.into(),
            attribute: None,
            table: None,
            peer: None,
            expected: None,
            actual: None,
        }
    }
    /// Of one attribute of the object.
    pub fn attribute(mut self, a: &str) -> Self {
        self.attribute = Some(a.to_string());
        self
    }
    /// In iptables table `t`.
    pub fn table(mut self, t: &str) -> Self {
        self.table = Some(t.to_string());
        self
    }
    /// Serving peer node `p`.
    pub fn peer(mut self, p: &str) -> Self {
        self.peer = Some(p.to_string());
        self
    }
    /// What the plan wants (`None`: nothing).
    pub fn expected(mut self, v: Option<String>) -> Self {
        self.expected = v.map(State::Text);
        self
    }
    /// What the node has (`None`: nothing).
    pub fn actual(mut self, v: Option<String>) -> Self {
        self.actual = v.map(State::Text);
        self
    }
    /// Lines the plan wants.
    pub fn expected_lines(mut self, v: Vec<String>) -> Self {
        self.expected = Some(State::Lines(v));
        self
    }
    /// Lines the node has (`None`: the object is missing).
    pub fn actual_lines(mut self, v: Option<Vec<String>>) -> Self {
        self.actual = v.map(State::Lines);
        self
    }
}

/// What `apply` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Removed,
    Unchanged,
    /// The change was attempted and failed (the error is in `errors`).
    Failed,
}

/// One object `apply` looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectOutcome {
    pub kind: ObjectKind,
    pub object: String,
    pub action: Action,
    /// What was different before the change (empty when unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Difference>,
}
