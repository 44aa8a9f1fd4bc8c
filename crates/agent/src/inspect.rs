//! `labctl-agent inspect [--check] [POD...]`: what verify's node check
//! asks of a node, in one run: the agent's version, the links of the pod
//! namespaces named (as `links`), and with `--check` the check against the
//! plan on stdin and the node's filter table in `iptables -S` form (for
//! diagnosis; from the check's own `iptables-save` when it listed). One typed `labctl_nodeplan::report::InspectReport`; it
//! replaces a shell script that started a process for each part and
//! tagged its text.

use std::process::{Command, Stdio};

use labctl_nodeplan::report::{InspectReport, REPORT_VERSION};

use crate::error::{Result, EXIT_DRIFT, EXIT_OK};
use crate::links::Mode;

/// Inspects this node; the report and the exit status (1 when the check
/// found differences). A bad pod name or plan is refused (exit 2) before
/// anything is read.
pub fn run(check: bool, pods: &[&str], plan_path: Option<&str>) -> Result<(InspectReport, i32)> {
    crate::netns_links::validate(pods)?;
    let plan = if check {
        Some(crate::plan::load(plan_path)?)
    } else {
        None
    };
    if check || !pods.is_empty() {
        crate::require_root()?;
    }
    let mut report = InspectReport {
        report_version: REPORT_VERSION,
        command: "inspect".into(),
        node: plan
            .as_ref()
            .map_or_else(crate::report::hostname, |p| p.node.clone()),
        version: crate::version_line(),
        pods: Vec::new(),
        check: None,
        check_error: None,
        filter_rules: None,
    };
    if !pods.is_empty() {
        report.pods = crate::netns_links::run(pods).namespaces;
    }
    let mut status = EXIT_OK;
    if let Some(plan) = plan {
        let mut listed = None;
        match crate::node::converge(&plan, Mode::Check, false) {
            Ok(out) => {
                let checked = crate::report::check_report(&plan.node, &out);
                if !checked.in_sync {
                    status = EXIT_DRIFT;
                }
                report.check = Some(checked);
                listed = out.filter_rules;
            }
            Err(e) => report.check_error = Some(e.to_string()),
        }
        // The check's own listing when it made one: an `iptables -S` fewer
        // per node and verify.
        report.filter_rules = match listed {
            Some(lines) => Some(lines.iter().map(|l| format!("{l}\n")).collect()),
            None => filter_rules(),
        };
    }
    Ok((report, status))
}

/// `iptables -w -S` (the filter table), or `None` when it does not run.
fn filter_rules() -> Option<String> {
    let out = Command::new("iptables")
        .args(["-w", "-S"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
