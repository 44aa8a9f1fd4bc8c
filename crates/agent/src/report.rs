//! Filling and printing the reports of `labctl_nodeplan::report`: a
//! collector of per-object outcomes and differences while converging,
//! summarised into `apply`'s and `check`'s reports.

use std::collections::BTreeMap;

pub use labctl_nodeplan::report::{Action, Difference, ObjectKind};
use labctl_nodeplan::report::{
    AgentReport, ApplyReport, CheckReport, ObjectOutcome, REPORT_VERSION,
};
use serde::Serialize;

/// Collects outcomes, differences and errors while converging.
///
/// Objects that match the plan are only counted, per kind, unless
/// `verbose` asks for every object by name: a no-op apply of a 1,000-peer
/// node would otherwise build, print and parse 3,000 entries that say
/// nothing.
#[derive(Debug, Default)]
pub struct Collector {
    /// Objects that changed, failed or differ (all objects when verbose).
    pub objects: Vec<ObjectOutcome>,
    /// How many objects of each kind matched the plan.
    pub unchanged: BTreeMap<ObjectKind, usize>,
    pub errors: Vec<String>,
    /// List unchanged objects by name too.
    pub verbose: bool,
    /// The filter table in `iptables -S` form, when the iptables rules
    /// were listed (not when the verifier proved them unchanged).
    pub filter_rules: Option<Vec<String>>,
}

impl Collector {
    /// A collector that lists unchanged objects by name when `verbose`.
    pub fn new(verbose: bool) -> Collector {
        Collector {
            verbose,
            ..Default::default()
        }
    }

    /// Records an object of `kind` and what happened to it.
    pub fn object(
        &mut self,
        kind: ObjectKind,
        object: impl Into<String>,
        action: Action,
        changes: Vec<Difference>,
    ) {
        if action == Action::Unchanged {
            self.unchanged_count(kind, 1);
            if !self.verbose {
                return;
            }
        }
        self.objects.push(ObjectOutcome {
            kind,
            object: object.into(),
            action,
            changes,
        });
    }

    /// Records an object that matched the plan.
    pub fn unchanged(&mut self, kind: ObjectKind, object: impl Into<String>) {
        self.object(kind, object, Action::Unchanged, Vec::new());
    }

    /// Counts `n` more objects of `kind` that matched the plan, for callers
    /// that count by themselves (they name each one when `verbose`).
    pub fn unchanged_count(&mut self, kind: ObjectKind, n: usize) {
        if n > 0 {
            *self.unchanged.entry(kind).or_default() += n;
        }
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

/// `apply`'s report from the collected outcomes.
pub fn apply_report(node: &str, c: Collector) -> ApplyReport {
    let count = |a: Action| c.objects.iter().filter(|o| o.action == a).count();
    ApplyReport {
        report_version: REPORT_VERSION,
        command: ApplyReport::COMMAND.into(),
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

/// `check`'s report from the collected differences.
pub fn check_report(node: &str, c: &Collector) -> CheckReport {
    let differences = c.differences();
    CheckReport {
        report_version: REPORT_VERSION,
        command: CheckReport::COMMAND.into(),
        node: node.to_string(),
        in_sync: differences.is_empty(),
        differences,
    }
}

/// The header fields of a `T` report: version and command.
pub fn header<T: AgentReport>() -> (u32, String) {
    (REPORT_VERSION, T::COMMAND.to_string())
}

/// This machine's hostname (a report's `node` when no plan names it).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
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
