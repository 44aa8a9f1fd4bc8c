//! `labctl verify [LAB]`: proves the lab's pod network works end to end,
//! shows the evidence, and names the cause when it does not.
//!
//! - [`model`]: the nine checks and the report; [`evidence`]: what probes
//!   record; [`parse`]: probe output parsers; [`checks`]: pass/fail from
//!   evidence; [`diagnose`]: named causes with fixes; [`render`] and
//!   [`junit`]: the outputs. All pure and unit-tested.
//! - [`netns`]: the probes for netns labs (everything runs on this host);
//!   [`remote`]: the probes for network-only VM labs (ssh, vagrant), run
//!   over one SSH session per node; [`kube`]: the probes for kubeadm labs
//!   (pods through kubectl on the control plane, node checks and captures
//!   as in `remote`); [`run`] wires lab, state, SSH and probes together.
//!
//! Exit 0 when every selected check passes, 1 when one fails, 3 when verify
//! could not run (no such lab, not root).

pub mod checks;
pub mod diagnose;
pub mod evidence;
pub mod junit;
pub mod kube;
pub mod model;
pub mod netns;
pub mod parse;
mod pool;
#[cfg(test)]
mod recorded;
pub mod remote;
pub mod render;
mod target;

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
    /// vxlan, mtu, dns, egress, kubernetes.
    #[arg(long = "check", value_name = "ID", value_enum)]
    pub checks: Vec<CheckId>,
    /// Also write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
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

/// How verify probes a netns lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsProbes {
    /// Everything from this process, entering the namespaces.
    InProcess,
    /// Over each node's SSH session and agent, as on VM labs.
    OverSsh,
}

/// Runs the selected checks on the lab `args` names and returns the report
/// (no printing). Errors mean verify could not run (exit 3 or 2).
pub fn verify(args: &VerifyArgs) -> Result<Report> {
    verify_with(args, NetnsProbes::InProcess)
}

/// [`verify`], probing a netns lab as `probes` says.
pub fn verify_with(args: &VerifyArgs, probes: NetnsProbes) -> Result<Report> {
    let started = Instant::now();
    let target = target::Target::load(args.lab.as_deref())?;
    let selected: Vec<CheckId> = if args.checks.is_empty() {
        CheckId::ALL.to_vec()
    } else {
        CheckId::ALL
            .iter()
            .copied()
            .filter(|c| args.checks.contains(c))
            .collect()
    };
    if target.view.provider != "netns" || probes == NetnsProbes::OverSsh {
        if target.state.kubernetes {
            return Ok(kube::verify(&target, &selected, started));
        }
        return Ok(remote::verify(&target, &selected, started));
    }
    // Entries the neighbour table refused from here on count against the lab.
    let arp_fulls_before = netns::neighbours::table_fulls();
    let mut ev = Evidence::default();
    let mut results: Vec<CheckResult> = Vec::new();
    let wants = |id: CheckId| selected.contains(&id);
    let timed = |f: &mut dyn FnMut() -> CheckResult| {
        let t = Instant::now();
        f().timed(t)
    };

    let view = &target.view;
    // One SSH session per node serves both node checks.
    let mut sessions = Vec::new();
    if wants(CheckId::Nodes) || wants(CheckId::Dataplane) {
        let t = Instant::now();
        let (s, reach) = target.connect_all();
        ev.reach = reach;
        sessions = s;
        if wants(CheckId::Nodes) {
            results.push(checks::nodes(&ev, crate::embedded::AGENT_VERSION).timed(t));
        }
    }
    if wants(CheckId::Dataplane) {
        let mut open = Some(std::mem::take(&mut sessions));
        results.push(timed(&mut || {
            // iptables -S in the node namespaces runs while the agents check.
            let (errors, firewall) = std::thread::scope(|s| {
                let firewall = s.spawn(|| netns::firewall(view));
                let (_, errors) =
                    target.agent_check(open.take().unwrap_or_default(), false, &mut ev);
                (errors, firewall.join().unwrap_or_default())
            });
            ev.firewall = firewall;
            checks::dataplane(view, &ev, &errors)
        }));
    }
    target::disconnect_all(sessions);
    // Egress probes from the pods here too.
    let needs_pods = [CheckId::Pods, CheckId::Egress]
        .iter()
        .chain(&CheckId::FROM_PODS)
        .any(|c| wants(*c));
    if needs_pods {
        let t = Instant::now();
        let mut pods = target.pods.clone();
        netns::inspect_pods(&mut pods);
        ev.pods = pods;
        if wants(CheckId::Pods) {
            results.push(checks::pods(view, &ev).timed(t));
        }
    }
    if ev.firewall.is_empty()
        && [CheckId::PodMesh, CheckId::Vxlan, CheckId::Egress]
            .iter()
            .any(|c| wants(*c))
    {
        ev.firewall = netns::firewall(view);
    }
    if wants(CheckId::PodMesh) {
        results.push(timed(&mut || {
            ev.mesh = Some(netns::mesh(&ev.pods));
            checks::pod_mesh(ev.mesh.as_ref().unwrap_or(&Default::default()))
        }));
    }
    if wants(CheckId::Vxlan) {
        results.push(timed(&mut || {
            ev.vxlan = netns::vxlan(view, &ev.pods);
            ev.bad_checksums = netns::kernel_log(view);
            checks::vxlan(view, &ev)
        }));
    }
    if wants(CheckId::Mtu) {
        results.push(timed(&mut || {
            let (probes, links) = netns::mtu(view, &ev.pods);
            ev.mtu = probes;
            ev.link_mtus = links;
            checks::mtu(view, &ev)
        }));
    }
    if wants(CheckId::Dns) {
        results.push(timed(&mut || {
            ev.dns = netns::dns(view, &ev.pods);
            checks::dns(view, &ev)
        }));
    }
    if wants(CheckId::Egress) {
        results.push(timed(&mut || match netns::egress(view, &ev.pods) {
            Ok(probes) => {
                ev.egress = probes;
                checks::egress(view, &ev)
            }
            Err(e) => CheckResult::new(
                CheckId::Egress,
                Outcome::Fail,
                format!("could not probe egress: {e:#}"),
            ),
        }));
    }
    if needs_pods {
        ev.neighbour_table = netns::neighbours::observe(view.nodes.len(), arp_fulls_before);
    }
    if wants(CheckId::Kubernetes) {
        results.push(CheckResult::skip(
            CheckId::Kubernetes,
            "netns labs run no Kubernetes (kubeadm labs only)",
        ));
    }
    Ok(assemble(view, ev, results, started))
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
    let diagnoses: Vec<diagnose::Diagnosis> = found
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
    Report {
        lab: view.name.clone(),
        provider: view.provider.clone(),
        checks: results,
        pods: ev.pods,
        mesh: ev.mesh,
        diagnoses,
        total_ms: started.elapsed().as_millis() as u64,
        passed,
    }
}
