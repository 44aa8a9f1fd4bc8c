//! The JSON the agent prints: per-object outcomes for `apply`, differences
//! for `check`, removals and errors for `teardown`.

use std::collections::BTreeMap;

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
///
/// Objects that match the plan are only counted, per kind (the first word
/// of the object's name: `neighbour`, `fdb`, `route`, ...), unless
/// `verbose` asks for every object by name: a no-op apply of a 1,000-peer
/// node would otherwise build, print and parse 3,000 entries that say
/// nothing.
#[derive(Debug, Default)]
pub struct Collector {
    /// Objects that changed, failed or differ (all objects when verbose).
    pub objects: Vec<ObjectOutcome>,
    /// How many objects of each kind matched the plan.
    pub unchanged: BTreeMap<String, usize>,
    pub errors: Vec<String>,
    /// List unchanged objects by name too.
    pub verbose: bool,
}

/// The kind of an object: the first word of its name.
fn kind_of(object: &str) -> &str {
    object.split(' ').next().unwrap_or(object)
}

impl Collector {
    /// A collector that lists unchanged objects by name when `verbose`.
    pub fn new(verbose: bool) -> Collector {
        Collector {
            verbose,
            ..Default::default()
        }
    }

    /// Records an object and what happened to it.
    pub fn object(&mut self, object: impl Into<String>, action: Action, changes: Vec<Difference>) {
        let object = object.into();
        if action == Action::Unchanged {
            self.count_unchanged(kind_of(&object));
            if !self.verbose {
                return;
            }
        }
        self.objects.push(ObjectOutcome {
            object,
            action,
            changes,
        });
    }

    /// Records an object that matched the plan.
    pub fn unchanged(&mut self, object: impl Into<String>) {
        self.object(object, Action::Unchanged, Vec::new());
    }

    /// Counts `n` more objects of `kind` that matched the plan, for callers
    /// that count by themselves (they name each one when `verbose`).
    pub fn unchanged_count(&mut self, kind: &str, n: usize) {
        if n > 0 {
            *self.unchanged.entry(kind.to_string()).or_default() += n;
        }
    }

    fn count_unchanged(&mut self, kind: &str) {
        self.unchanged_count(kind, 1);
    }

    /// True when any object was created, updated, removed or failed.
    pub fn changed(&self) -> bool {
        self.objects.iter().any(|o| o.action != Action::Unchanged)
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

/// `apply`'s report. `objects` lists what changed (or failed); objects
/// that matched the plan are counted in `unchanged` and, per kind, in
/// `unchanged_by_kind` (with `--verbose` they are listed in `objects` too).
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub command: &'static str,
    pub node: String,
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub unchanged_by_kind: BTreeMap<String, usize>,
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
            unchanged: c.unchanged.values().sum(),
            failed: count(Action::Failed),
            unchanged_by_kind: c.unchanged,
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
    /// What teardown left in place on purpose, and why (a state folder
    /// that is a mount point, a module still in use). Not errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    pub errors: Vec<String>,
}

/// Reports larger than this are printed compact: a cold apply of a
/// 1,000-peer node lists 3,000 created objects, and indenting them costs
/// more time and bytes than anyone reading them gains.
const PRETTY_LIMIT: usize = 64 << 10;

/// Prints a report as JSON on stdout: pretty, or compact when large.
pub fn print<T: Serialize>(report: &T) {
    let text = serde_json::to_string(report).and_then(|compact| {
        if compact.len() > PRETTY_LIMIT {
            Ok(compact)
        } else {
            serde_json::to_string_pretty(report)
        }
    });
    match text {
        Ok(s) => {
            use std::io::Write;
            // A closed stdout (reader gone) is not worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{s}");
        }
        Err(e) => eprintln!("labctl-agent: cannot encode the report as JSON: {e}"),
    }
}
