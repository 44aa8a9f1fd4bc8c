//! `labctl verify [LAB]`: proves the lab's pod network works end to end,
//! shows the evidence, and names the cause when it does not.
//!
//! - [`model`]: the checks and the report; [`evidence`]: what probes
//!   record; [`parse`]: probe output parsers; [`checks`]: pass/fail from
//!   evidence; [`diagnose`]: named causes with fixes; [`render`] and
//!   [`junit`]: the outputs. All pure and unit-tested.
//! - [`probe`]: the one probe path of every provider, over one SSH
//!   session per node: the node's agent checks, captures and pings; the
//!   pods are entered by the agent on their node (as `ip netns exec`
//!   does) or, in kubeadm
//!   labs, by `kubectl exec` ([`kube`]: creating those pods and the
//!   `kubernetes` check); [`neighbours`]: the host's neighbour table,
//!   which netns nodes share; `target` loads the lab and its state.
//!
//! Exit 0 when every selected check passes, 1 when one fails, 3 when verify
//! could not run (no such lab, not root).

pub mod checks;
pub mod diagnose;
pub mod evidence;
pub mod junit;
pub mod kube;
pub mod model;
mod neighbours;
pub mod parse;
use crate::nodes::pool;
pub mod probe;
#[cfg(test)]
mod recorded;
pub mod render;
pub mod target;
pub mod underlay;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use crate::exit::ExitError;
use crate::output::{GlobalOpts, OutputFormat};
use evidence::Evidence;
use model::{CheckId, CheckResult, Outcome, Report};

/// `labctl verify [LAB] [--check ID]... [--junit FILE]`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct VerifyArgs {
    /// The lab file (default: ./lab.yaml, else the only lab on this host).
    pub lab: Option<PathBuf>,
    /// Run only these checks (repeatable): nodes, dataplane, pods, pod-mesh,
    /// vxlan, mtu, dns, egress, kubernetes; and throughput, which only runs
    /// when named.
    #[arg(long = "check", value_name = "ID", value_enum)]
    pub checks: Vec<CheckId>,
    /// Also write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Which pod pairs pod-mesh pings: every pair, a sample (each pod to
    /// the pods 1, 2, 4, … places after it), or auto: every pair up to 200
    /// pods, a sample above.
    #[arg(long, value_enum, default_value_t = MeshMode::Auto)]
    pub mesh: MeshMode,
}

/// `--mesh`: which pod pairs pod-mesh pings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MeshMode {
    #[default]
    Auto,
    Full,
    Sampled,
}

impl MeshMode {
    /// Every pair (`Some(true)`), a sample (`Some(false)`), or by size.
    fn full(self) -> Option<bool> {
        match self {
            MeshMode::Auto => None,
            MeshMode::Full => Some(true),
            MeshMode::Sampled => Some(false),
        }
    }
}

/// Runs verify and prints the report; the exit code says how it went.
pub fn run(args: &VerifyArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let report = verify(args)?;
    match global.output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&report)
                .context("cannot encode the report as JSON")?;
            println!("{text}");
        }
        OutputFormat::Text => {
            if !global.quiet || report.exit_status() != 0 {
                print!("{}", render::render(&report, global.color));
            }
        }
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::junit(&report)).map_err(|e| {
            ExitError::environment(anyhow!(
                "cannot write the JUnit report {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(ExitCode::from(report.exit_status()))
}

/// Runs the selected checks on the lab `args` names and returns the report
/// (no printing). Errors mean verify could not run (exit 3 or 2).
pub fn verify(args: &VerifyArgs) -> Result<Report> {
    let started = Instant::now();
    let target = target::Target::load(args.lab.as_deref())?;
    let selected: Vec<CheckId> = if args.checks.is_empty() {
        CheckId::DEFAULT.to_vec()
    } else {
        CheckId::ALL
            .iter()
            .copied()
            .filter(|c| args.checks.contains(c))
            .collect()
    };
    let report = probe::verify(&target, &selected, args.mesh.full(), started);
    target.refused_host_keys()?;
    Ok(report)
}

/// Diagnoses the evidence, ties each diagnosis to the failed checks it
/// explains, and builds the report.
pub fn assemble(
    view: &model::LabView,
    ev: Evidence,
    mut results: Vec<CheckResult>,
    started: Instant,
) -> Report {
    let found = diagnose::diagnose(view, &ev);
    let failed: Vec<CheckId> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| r.id)
        .collect();
    // Show only what explains a failure (a diagnosis about a check that was
    // not run or passed is noise).
    let diagnoses: Vec<model::Diagnosis> = found
        .into_iter()
        .filter(|d| d.checks.iter().any(|c| failed.contains(c)))
        .collect();
    for r in results.iter_mut().filter(|r| r.outcome == Outcome::Fail) {
        for d in diagnoses.iter().filter(|d| d.checks.contains(&r.id)) {
            if !r.diagnoses.contains(&d.cause) {
                r.diagnoses.push(d.cause.clone());
            }
        }
    }
    let passed = results.iter().all(|r| r.outcome != Outcome::Fail);
    let warnings = neighbours::warnings(view, &ev);
    Report {
        lab: view.name.clone(),
        provider: view.provider.clone(),
        checks: results,
        pods: ev.pods,
        mesh: ev.mesh,
        diagnoses,
        warnings,
        total_ms: started.elapsed().as_millis() as u64,
        passed,
    }
}
