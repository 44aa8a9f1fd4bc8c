//! The JSON the agent prints: per-object outcomes for `apply`, differences
//! for `check`, removals and errors for `teardown`.

use serde::Serialize;
use serde_json::Value;

/// What `apply` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Removed,
    Unchanged,
    /// The change was attempted and failed (the error is in `errors`).
    Failed,
}

/// One difference between the plan and the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// What differs, e.g. `vxlan flannel.1 mtu` or `route 10.244.1.0/24`.
    pub object: String,
    /// What the plan wants (null: the object must not exist).
    pub expected: Value,
    /// What the node has (null: the object is missing).
    pub actual: Value,
}

impl Difference {
    /// A difference between two texts.
    pub fn new(
        object: impl Into<String>,
        expected: Option<String>,
        actual: Option<String>,
    ) -> Self {
        Difference {
            object: object.into(),
            expected: expected.map_or(Value::Null, Value::String),
            actual: actual.map_or(Value::Null, Value::String),
        }
    }
}

/// One object `apply` looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectOutcome {
    pub object: String,
    pub action: Action,
    /// What was different before the change (empty when unchanged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Difference>,
}

/// Collects outcomes, differences and errors while converging.
#[derive(Debug, Default)]
pub struct Collector {
    pub objects: Vec<ObjectOutcome>,
    pub errors: Vec<String>,
}

impl Collector {
    /// Records an object and what happened to it.
    pub fn object(&mut self, object: impl Into<String>, action: Action, changes: Vec<Difference>) {
        self.objects.push(ObjectOutcome {
            object: object.into(),
            action,
            changes,
        });
    }

    /// Records an object that matched the plan.
    pub fn unchanged(&mut self, object: impl Into<String>) {
        self.object(object, Action::Unchanged, Vec::new());
    }

    /// All differences found (what `check` prints).
    pub fn differences(&self) -> Vec<Difference> {
        self.objects
            .iter()
            .flat_map(|o| o.changes.iter().cloned())
            .collect()
    }

    /// Marks the outcome for `object` failed and records the error.
    pub fn fail(&mut self, object: &str, error: String) {
        if let Some(o) = self.objects.iter_mut().rev().find(|o| o.object == object) {
            o.action = Action::Failed;
        }
        self.errors.push(error);
    }
}

/// `apply`'s report.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub command: &'static str,
    pub node: String,
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub objects: Vec<ObjectOutcome>,
    pub errors: Vec<String>,
}

impl ApplyReport {
    /// Summarises the collected outcomes.
    pub fn new(node: &str, c: Collector) -> ApplyReport {
        let count = |a: Action| c.objects.iter().filter(|o| o.action == a).count();
        ApplyReport {
            command: "apply",
            node: node.to_string(),
            created: count(Action::Created),
            updated: count(Action::Updated),
            removed: count(Action::Removed),
            unchanged: count(Action::Unchanged),
            objects: c.objects,
            errors: c.errors,
        }
    }
}

/// `check`'s report.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub command: &'static str,
    pub node: String,
    pub in_sync: bool,
    pub differences: Vec<Difference>,
}

/// `teardown`'s report.
#[derive(Debug, Default, Serialize)]
pub struct TeardownReport {
    pub command: &'static str,
    pub node: String,
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

/// Prints a report as pretty JSON on stdout.
pub fn print<T: Serialize>(report: &T) {
    match serde_json::to_string_pretty(report) {
        Ok(s) => {
            use std::io::Write;
            // A closed stdout (reader gone) is not worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{s}");
        }
        Err(e) => eprintln!("labctl-agent: cannot encode the report as JSON: {e}"),
    }
}
