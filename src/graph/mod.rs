//! `labctl graph [LAB] [--format svg|mermaid|dot] [-o FILE]`: the lab as a
//! picture. When the lab is up on this host, each node's agent checks the
//! node against its plan (through the node layer, typed reports) and what
//! differs is drawn broken with the difference; otherwise the picture is
//! the plan's, and its title says so. The model ([`model`]) and the
//! renderers ([`svg`], [`mermaid`], [`dot`]) are pure; this module finds
//! the lab, asks the nodes and writes the file.

pub mod dot;
pub mod mermaid;
pub mod model;
pub mod svg;
mod text;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use labctl_nodeplan::NodePlan;

use crate::exit::ExitError;
use crate::output::GlobalOpts;
use crate::state::{LabDir, LabState};
use model::{NodeInput, NodeLive, Pod};

/// The picture's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// One standalone SVG file (opens in any browser).
    Svg,
    /// A Mermaid flowchart (Markdown ```mermaid blocks).
    Mermaid,
    /// Graphviz DOT (`dot -Tpng`).
    Dot,
}

/// `labctl graph`.
#[derive(Clone, Debug, clap::Args)]
pub struct GraphArgs {
    /// The lab file; default ./lab.yaml, else the only lab on this host.
    pub lab: Option<PathBuf>,
    /// The format; default from -o's extension (.mmd, .dot), else svg.
    #[arg(long, value_enum)]
    pub format: Option<GraphFormat>,
    /// Where to write the picture (replaced if it exists); `-` or none: stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// The format asked for, else the one -o's extension names, else SVG.
pub fn format_for(format: Option<GraphFormat>, file: Option<&Path>) -> GraphFormat {
    let ext = file
        .and_then(|f| f.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    format.unwrap_or(match ext.as_deref() {
        Some("mmd" | "mermaid") => GraphFormat::Mermaid,
        Some("dot" | "gv") => GraphFormat::Dot,
        _ => GraphFormat::Svg,
    })
}

pub fn run(args: &GraphArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let out = args.output_file.as_deref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = out {
        crate::paths::check_output_file(path, "lab.svg")?;
    }
    let file_lab = match &args.lab {
        Some(path) => Some(crate::labfile::load(Some(path))?.lab),
        None if Path::new(crate::labfile::DEFAULT_LAB).is_file() => {
            Some(crate::labfile::load(None)?.lab)
        }
        None => None,
    };
    let name = match &file_lab {
        Some(lab) => lab.name.clone(),
        None => crate::lab_select::lab_name(None, None)?,
    };
    let dir = LabDir::new(&name)?;
    let graph = if dir.exists() {
        let state = dir.load()?;
        live_graph(&dir, &state, file_lab.as_ref())?
    } else {
        // Another user's lab is named with the command that reaches it.
        crate::lab_owner::refuse_if_elsewhere(&name, "graph", ExitError::environment)?;
        let lab = file_lab
            .ok_or_else(|| ExitError::usage(anyhow!("lab {name} does not exist on this host")))?;
        plan_graph(&lab)
    };
    let text = match format_for(args.format, out) {
        GraphFormat::Svg => svg::render(&graph),
        GraphFormat::Mermaid => mermaid::render(&graph),
        GraphFormat::Dot => dot::render(&graph),
    };
    match out {
        Some(path) => {
            labctl_atomicfile::write(path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !global.quiet {
                let broken = if graph.broken() {
                    "; something is broken, drawn in red"
                } else {
                    ""
                };
                eprintln!("wrote {} ({}{broken})", path.display(), graph.title());
            }
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The pods labctl starts on a node of `lab` (none on kubeadm labs: the
/// cluster runs its own), with no address until `up` gives them one.
fn planned_pods(lab: &labctl_lab::Lab, control_plane: bool) -> Vec<Pod> {
    let names: &[&str] = match (lab.kubernetes.enabled, control_plane) {
        (true, _) => &[],
        (false, true) => &[crate::nodes::BUSYBOX_POD, crate::nodes::DNS_POD],
        (false, false) => &[crate::nodes::BUSYBOX_POD],
    };
    names
        .iter()
        .map(|n| Pod {
            name: n.to_string(),
            ip: None,
        })
        .collect()
}

/// The picture of a lab file's plan.
fn plan_graph(lab: &labctl_lab::Lab) -> model::Graph {
    let cp = lab.control_plane().name.clone();
    let inputs: Vec<NodeInput> = labctl_lab::plan(lab)
        .into_iter()
        .map(|plan| {
            let control_plane = plan.node == cp;
            NodeInput {
                pods: planned_pods(lab, control_plane),
                plan,
                control_plane,
                live: None,
            }
        })
        .collect();
    model::build(&lab.name, Some(lab.network.underlay), &inputs)
}

/// The picture of a lab that is up: each node's saved plan (the lab file's
/// for a node without one), checked by its agent.
fn live_graph(
    dir: &LabDir,
    state: &LabState,
    file_lab: Option<&labctl_lab::Lab>,
) -> Result<model::Graph> {
    let names: Vec<String> = state.nodes.keys().cloned().collect();
    let copy = || {
        std::fs::read_to_string(dir.lab_copy())
            .ok()
            .and_then(|t| labctl_lab::parse(&dir.lab_copy().display().to_string(), &t).ok())
    };
    let lab_plans: Vec<NodePlan> = match file_lab.cloned().or_else(copy) {
        Some(lab) => labctl_lab::plan(&lab),
        None => Vec::new(),
    };
    let plan_of = |node: &str| {
        dir.saved_plan(node)
            .ok()
            .or_else(|| lab_plans.iter().find(|p| p.node == node).cloned())
    };
    let lives = crate::nodes::parallel(&names, |node| {
        let plan = plan_of(node)?;
        Some((plan.clone(), check_node(dir, state, &plan)))
    });
    let mut inputs = Vec::new();
    for (name, found) in names.iter().zip(lives) {
        let Some((plan, live)) = found else {
            return Err(anyhow!(
                "no plan for node {name} of lab {}: neither a saved plan nor a readable lab file; run `labctl up` again",
                state.name
            ));
        };
        let rec = &state.nodes[name];
        let pods = rec
            .pods
            .iter()
            .map(|(n, ip)| Pod {
                name: n.clone(),
                ip: Some(*ip),
            })
            .collect();
        inputs.push(NodeInput {
            plan,
            control_plane: rec.control_plane,
            pods,
            live: Some(live),
        });
    }
    // The state lists nodes by name; the picture follows the lab's order.
    inputs.sort_by_key(|i| {
        lab_plans
            .iter()
            .position(|p| p.node == i.plan.node)
            .unwrap_or(usize::MAX)
    });
    Ok(model::build(&state.name, state.underlay, &inputs))
}

/// One node's `check`, or why it could not be run.
fn check_node(dir: &LabDir, state: &LabState, plan: &NodePlan) -> NodeLive {
    let policy = crate::ssh::HostKeyPolicy::RequireKnown;
    let checked = crate::nodes::connect(dir, state, &plan.node, &policy, Duration::from_secs(5))
        .and_then(|session| crate::nodes::check(&session, plan));
    match checked {
        Ok(report) => NodeLive::Checked(report.differences),
        Err(e) => NodeLive::Unreachable(format!("{e:#}")),
    }
}
