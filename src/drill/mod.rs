//! `labctl drill`: break-and-fix exercises on a lab. `start` injects one
//! real fault on a node (over SSH, as root, like every node command) and
//! prints the symptom; `hint` climbs a ladder from the symptom to the
//! command to look with and the fix; `check` runs verify and says whether
//! the lab is whole again (naming the cause only once it is, or after the
//! last hint); `reset` undoes what the plan does not own and converges the
//! node back to its saved plan with the agent.
//!
//! [`table`]: the drills as data; [`values`]: the lab values their
//! commands are filled with; [`record`]: the active drill on disk.

pub mod record;
pub mod table;
pub mod values;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use labctl_nodeplan::report::ApplyReport;

use crate::exit::ExitError;
use crate::output::GlobalOpts;
use crate::ssh::{HostKeyPolicy, Session};
// A lab on this host and its state.
use crate::lab_select::ExistingLab as Lab;
use crate::state::LabDir;
use record::ActiveDrill;
use table::Drill;

/// `labctl drill list | start NAME | hint | check | reset`.
#[derive(Clone, Debug, clap::Args)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub action: DrillAction,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum DrillAction {
    /// The drills.
    List,
    /// Inject a drill's fault and show its symptom.
    Start {
        /// The drill (see `labctl drill list`).
        name: String,
        /// The lab, as a file or a name (default: the only lab on this host).
        #[arg(long)]
        lab: Option<String>,
        /// The node to break (default: the first worker).
        #[arg(long)]
        node: Option<String>,
    },
    /// The next hint for the active drill.
    Hint {
        /// The lab (default: the one with an active drill).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Run verify: is the fault fixed?
    Check {
        /// The lab (default: the one with an active drill).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Undo the active drill's fault and restore the lab.
    Reset {
        /// The lab (default: the one with an active drill).
        #[arg(long)]
        lab: Option<String>,
    },
}

pub fn run(args: &DrillArgs, _global: &GlobalOpts) -> Result<ExitCode> {
    match &args.action {
        DrillAction::List => {
            for d in table::DRILLS {
                println!("{:<18} {}", d.name, d.title);
            }
            Ok(ExitCode::SUCCESS)
        }
        DrillAction::Start { name, lab, node } => start(name, lab.as_deref(), node.as_deref()),
        DrillAction::Hint { lab } => hint(lab.as_deref()),
        DrillAction::Check { lab } => check(lab.as_deref()),
        DrillAction::Reset { lab } => reset(lab.as_deref()),
    }
}

/// `--lab FILE|NAME`: a lab that exists on this host (the name checked
/// before any path is built from it).
fn lab_named(word: &str) -> Result<Lab> {
    let name = crate::lab_select::lab_word(Some(word))?;
    crate::lab_select::existing(&name, "drill")
}

/// The lab `word` names, or else the only one (`start`) or the only one
/// with an active drill (the other actions).
fn lab_for(word: Option<&str>, with_drill: bool) -> Result<Lab> {
    if let Some(w) = word {
        return lab_named(w);
    }
    let labs: Vec<String> = crate::state::lab_names()
        .into_iter()
        .filter(|n| !with_drill || LabDir::new(n).is_ok_and(|d| record::path(&d).is_file()))
        .collect();
    match labs.as_slice() {
        [only] => lab_named(only),
        [] if with_drill => Err(ExitError::usage(anyhow!(
            "no lab on this host has an active drill; start one with `labctl drill start NAME`"
        ))),
        [] => Err(ExitError::usage(anyhow!(
            "no lab exists on this host; bring one up with `labctl up LAB.yaml`"
        ))),
        many => Err(ExitError::usage(anyhow!(
            "several labs could be meant ({}); choose one with --lab",
            many.join(", ")
        ))),
    }
}

fn active(lab: &Lab) -> Result<(ActiveDrill, &'static Drill)> {
    let active = record::load(&lab.dir)?.ok_or_else(|| {
        ExitError::usage(anyhow!(
            "lab {} has no active drill; start one with `labctl drill start NAME`",
            lab.state.name
        ))
    })?;
    drill_of(lab, active)
}

/// The table's drill an active record names.
fn drill_of(lab: &Lab, active: ActiveDrill) -> Result<(ActiveDrill, &'static Drill)> {
    let drill = table::find(&active.drill).ok_or_else(|| {
        anyhow!(
            "{} names drill {}, which this labctl does not know; remove it and run `labctl up`",
            record::path(&lab.dir).display(),
            active.drill
        )
    })?;
    Ok((active, drill))
}

/// How many rungs [`table::ladder`] has for `drill`.
fn rungs(drill: &Drill) -> usize {
    drill.hints.len() + 1
}

fn values_for(lab: &Lab, a: &ActiveDrill) -> Result<values::Values> {
    let plan = lab.dir.saved_plan(&a.node)?;
    values::values(&lab.state.name, &plan, Some(&a.peer))
}

fn connect(lab: &Lab, node: &str) -> Result<Session> {
    crate::nodes::connect(
        &lab.dir,
        &lab.state,
        node,
        &HostKeyPolicy::RequireKnown,
        Duration::from_secs(20),
    )
}

/// Runs each filled argv on the node; the first failure names the node,
/// the command and its stderr.
fn run_all(session: &Session, argvs: &[&[&str]], v: &values::Values) -> Result<()> {
    for argv in argvs {
        let words = values::fill_argv(argv, v)?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        session.run_ok(&words, None)?;
    }
    Ok(())
}

fn start(name: &str, lab: Option<&str>, node: Option<&str>) -> Result<ExitCode> {
    let drill = table::find(name).ok_or_else(|| {
        ExitError::usage(anyhow!(
            "there is no drill {} (drills: {})",
            crate::names::quoted(name),
            table::names()
        ))
    })?;
    let lab = lab_for(lab, false)?;
    let _lock = lab.dir.lock("drill start")?;
    if let Some(a) = record::load(&lab.dir)? {
        return Err(ExitError::usage(anyhow!(
            "lab {} already runs drill {} on {}: `labctl drill reset` first",
            lab.state.name,
            a.drill,
            a.node
        )));
    }
    let node = match node {
        Some(n) => {
            crate::nodes::endpoint(&lab.dir, &lab.state, n)?;
            n.to_string()
        }
        None => lab
            .state
            .nodes
            .iter()
            .find(|(_, n)| !n.control_plane)
            .or_else(|| lab.state.nodes.iter().next())
            .map(|(name, _)| name.clone())
            .ok_or_else(|| anyhow!("lab {} has no nodes", lab.state.name))?,
    };
    if drill.needs_pod
        && (lab.state.kubernetes || !lab.state.nodes[&node].pods.contains_key("busybox"))
    {
        return Err(ExitError::usage(anyhow!(
            "drill {name} needs labctl's busybox pod on {node}, which lab {} does not run (kubeadm labs run real pods): choose another drill",
            lab.state.name
        )));
    }
    let plan = lab.dir.saved_plan(&node)?;
    let v = values::values(&lab.state.name, &plan, None)?;
    let active = ActiveDrill {
        drill: drill.name.to_string(),
        node: node.clone(),
        peer: v["peer"].clone(),
        hints_shown: 0,
    };
    // Recorded first: a start cut short still leaves `reset` its record.
    record::save(&lab.dir, &active)?;
    let session = match connect(&lab, &node) {
        Ok(s) => s,
        Err(e) => {
            // Nothing was injected: no drill to reset.
            record::clear(&lab.dir)?;
            return Err(e);
        }
    };
    run_all(&session, drill.fault, &v)
        .with_context(|| format!("injecting drill {name} on {node}"))?;
    println!("Drill {name} started on lab {}.", lab.state.name);
    println!("Symptom: {}", values::fill(drill.symptom, &v)?);
    println!(
        "Find and fix it; `labctl drill hint` helps, `labctl drill check` says when it is fixed."
    );
    Ok(ExitCode::SUCCESS)
}

fn hint(lab: Option<&str>) -> Result<ExitCode> {
    let lab = lab_for(lab, true)?;
    let _lock = lab.dir.lock("drill hint")?;
    let (mut a, drill) = active(&lab)?;
    let v = values_for(&lab, &a)?;
    let ladder = table::ladder(drill, &v)?;
    let rung = a.hints_shown.min(ladder.len() - 1);
    println!("Hint {} of {}: {}", rung + 1, ladder.len(), ladder[rung]);
    if rung + 1 == ladder.len() {
        println!("That was the last hint; `labctl drill check` now names the cause.");
    }
    a.hints_shown = rung + 1;
    record::save(&lab.dir, &a)?;
    Ok(ExitCode::SUCCESS)
}

/// The lab file verify should read: the one `up` was given, else the copy
/// in the state folder.
fn lab_file(lab: &Lab) -> std::path::PathBuf {
    lab.state
        .lab_file
        .clone()
        .filter(|f| f.is_file())
        .unwrap_or_else(|| lab.dir.lab_copy())
}

fn check(lab: Option<&str>) -> Result<ExitCode> {
    let lab = lab_for(lab, true)?;
    let (a, drill) = active(&lab)?;
    let report = crate::verify::verify(&crate::verify::VerifyArgs {
        lab: Some(lab_file(&lab)),
        ..Default::default()
    })?;
    if report.passed {
        println!(
            "Fixed: verify passes on lab {}. The fault was: {} on {} (verify's cause: {}).",
            lab.state.name, drill.title, a.node, drill.cause
        );
        println!("`labctl drill reset` forgets the drill (and restores anything left over).");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Not fixed yet: verify still fails on lab {}.",
        lab.state.name
    );
    for c in report
        .checks
        .iter()
        .filter(|c| c.outcome == crate::verify::model::Outcome::Fail)
    {
        println!("  {}: {}", c.id, c.summary);
    }
    if a.hints_shown >= rungs(drill) {
        for d in &report.diagnoses {
            let on = d.node.as_deref().unwrap_or("the lab");
            println!("Cause ({}, {on}): {}", d.cause, d.message);
            println!("  fix: {}", d.fix);
        }
    } else {
        println!("`labctl drill hint` for a hint.");
    }
    Ok(ExitCode::from(1))
}

fn reset(lab: Option<&str>) -> Result<ExitCode> {
    let lab = lab_for(lab, true)?;
    let _lock = lab.dir.lock("drill reset")?;
    let Some(record) = record::load(&lab.dir)? else {
        // Reset twice is fine.
        println!(
            "lab {} has no active drill: nothing to reset",
            lab.state.name
        );
        return Ok(ExitCode::SUCCESS);
    };
    let (a, drill) = drill_of(&lab, record)?;
    let plan = lab.dir.saved_plan(&a.node)?;
    let v = values::values(&lab.state.name, &plan, Some(&a.peer))?;
    let session = connect(&lab, &a.node)?;
    for undo in drill.undo {
        if let Some(probe) = undo.only_if {
            let words = values::fill_argv(probe, &v)?;
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            if !session.run(&words, None)?.success() {
                continue;
            }
        }
        run_all(&session, &[undo.run], &v)
            .with_context(|| format!("undoing drill {} on {}", drill.name, a.node))?;
    }
    // The agent this labctl embeds (an older one may judge differently).
    crate::nodes::ensure_agent(&session)?;
    let report: ApplyReport = crate::nodes::agent(&session, &plan, &["apply"])?;
    record::clear(&lab.dir)?;
    println!(
        "Drill {} reset: {} converged to its plan ({} changes).",
        drill.name,
        a.node,
        report.changes()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
