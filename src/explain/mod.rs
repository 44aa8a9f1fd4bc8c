//! `labctl explain SRC DST [LAB] [--trace]`: the path of one packet, hop by
//! hop, with the live values at each hop and where they disagree with the
//! plan; with `--trace`, one real packet and each hop seen or not.
//!
//! [`endpoints`]: SRC and DST checked against the lab; [`walk`] (with
//! `hops` and [`rules`]): the hops from plans and live reports; [`seen`]: a trace's
//! captures against the hops; all pure. [`trace`]: the captures and the
//! ping on the nodes. This module: the lab, the nodes' reports, printing.

pub mod endpoints;
mod hops;
pub mod model;
pub mod rules;
pub mod seen;
pub mod trace;
pub mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use labctl_nodeplan::report::{RouteGetReport, ShowReport};

use crate::exit::ExitError;
use crate::output::{paint, GlobalOpts, OutputFormat, Style};
use crate::ssh::Session;
use crate::verify::target::Target;
use model::{Explanation, HopStatus, Place, PlaceKind};

/// `labctl explain SRC DST [LAB] [--trace]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ExplainArgs {
    /// Where the packet starts: a pod (NODE/POD, or its namespace), a
    /// node, or their address.
    pub src: String,
    /// Where it goes: a pod, a node, the DNS service (kube-dns), or any
    /// IPv4 address.
    pub dst: String,
    /// The lab file (default: ./lab.yaml, else the only lab on this host).
    pub lab: Option<PathBuf>,
    /// Send one real packet and mark each hop seen or not seen.
    #[arg(long)]
    pub trace: bool,
}

/// The nodes whose live state the walk reads: the source's, the
/// destination's, and the one whose pod subnet holds the destination.
fn nodes_to_ask(target: &Target, src: &Place, dst: &Place) -> Vec<String> {
    let mut nodes: Vec<String> = src.node.iter().chain(dst.node.iter()).cloned().collect();
    nodes.extend(
        target
            .plans
            .iter()
            .filter(|p| p.subnet.contains(&dst.ip))
            .map(|p| p.node.clone()),
    );
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The lab's service rules as a node has them (none when it has no chain).
const SHOW_SERVICES: &str = "iptables -w -t nat -S LABCTL-SERVICES 2>/dev/null || true";

/// Each node's session, `show` report, service rules and route lookups.
type NodeLive = (Session, ShowReport, Vec<String>, Option<RouteGetReport>);

/// Asks `node`'s agent for its live state and the routes `addresses` match.
fn ask(target: &Target, node: &str, addresses: &[String]) -> Result<NodeLive> {
    let plan = target
        .plans
        .iter()
        .find(|p| p.node == node)
        .ok_or_else(|| anyhow!("node {node} has no plan"))?;
    let session = target.connect_node(node).map_err(|e| {
        ExitError::environment(anyhow!(
            "{e:#}\nis the lab up? `labctl up` brings it up (`labctl status` shows its nodes)"
        ))
    })?;
    let show: ShowReport = crate::nodes::agent(&session, plan, &["show"])?;
    let services = session
        .run_shell(SHOW_SERVICES)?
        .stdout_text()
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect();
    let mut argv = vec!["route", "get"];
    argv.extend(addresses.iter().map(String::as_str));
    // An agent from before `route get`: flannel's live routes stand in.
    let lookups = crate::nodes::agent::<RouteGetReport>(&session, plan, &argv).ok();
    Ok((session, show, services, lookups))
}

pub fn run(args: &ExplainArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let target = Target::load(args.lab.as_deref())?;
    let names = endpoints::Names {
        lab: &target.view.name,
        plans: &target.plans,
        pods: target
            .pods
            .iter()
            .chain(target.dns_pod.iter())
            .filter(|p| p.ip.is_some())
            .collect(),
        dns: target
            .dns_pod
            .as_ref()
            .map(|p| (target.view.dns_service_ip, p)),
    };
    let src = names
        .source(&args.src)
        .map_err(|e| ExitError::usage(anyhow!(e)))?;
    let dst = names
        .resolve("DST", &args.dst)
        .map_err(|e| ExitError::usage(anyhow!(e)))?;
    if src.ip == dst.ip {
        return Err(ExitError::usage(anyhow!(
            "SRC {} and DST {} are the same address {}: a packet to itself never leaves {}",
            crate::names::quoted(&args.src),
            crate::names::quoted(&args.dst),
            src.ip,
            if src.kind == PlaceKind::Node {
                "the node"
            } else {
                "the pod"
            }
        )));
    }
    let nodes = nodes_to_ask(&target, &src, &dst);
    // The destination, and a service's endpoint: what the walk looks up.
    let mut addresses = vec![dst.ip.to_string()];
    if let (PlaceKind::Service { .. }, Some((_, pod))) = (&dst.kind, &names.dns) {
        addresses.extend(pod.ip.map(|ip| ip.to_string()));
    }
    let results = crate::nodes::parallel(&nodes, |n| ask(&target, n, &addresses));
    let mut sessions = BTreeMap::new();
    let mut shows = BTreeMap::new();
    let mut services = BTreeMap::new();
    let mut lookups = BTreeMap::new();
    let mut errors = Vec::new();
    for (node, r) in nodes.iter().zip(results) {
        match r {
            Ok((session, show, rules, looked_up)) => {
                if let Some(r) = looked_up {
                    lookups.insert(node.clone(), r);
                }
                sessions.insert(node.clone(), session);
                shows.insert(node.clone(), show);
                services.insert(node.clone(), rules);
            }
            Err(e) => errors.push(e),
        }
    }
    crate::nodes::fail_with_all(errors)?;
    let planned_services = match (&target.dns_pod, target.dns_pod.as_ref().and_then(|p| p.ip)) {
        (Some(_), Some(ip)) => labctl_lab::services::service_rules(target.view.dns_service_ip, ip),
        _ => Vec::new(),
    };
    let live = walk::Live {
        plans: &target.plans,
        shows: &shows,
        services: &services,
        planned_services: &planned_services,
        lookups: &lookups,
    };
    let w = walk::walk(&live, &src, &dst).map_err(|e| anyhow!(e))?;
    let mut explanation = Explanation {
        lab: target.view.name.clone(),
        src,
        dst,
        to: w.to,
        hops: w.hops,
        traced: args.trace,
        first_broken: None,
        notes: w.notes,
    };
    if args.trace {
        let obs = run_trace(&target, &sessions, &explanation)?;
        seen::mark(&mut explanation.hops, &obs);
    }
    explanation.first_broken = explanation.find_first_broken();
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
        OutputFormat::Text => print!("{}", render(&explanation, global.color)),
    }
    Ok(if explanation.first_broken.is_some() {
        ExitCode::from(crate::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Connects to the nodes the trace watches that the walk did not need,
/// and runs the trace.
fn run_trace(
    target: &Target,
    sessions: &BTreeMap<String, Session>,
    e: &Explanation,
) -> Result<seen::Observed> {
    let src_node = e.src.node.clone().unwrap_or_default();
    let mut wanted = seen::capture_nodes(&e.hops);
    wanted.entry(src_node.clone()).or_insert(false);
    let mut extra = BTreeMap::new();
    for node in wanted.keys().filter(|n| !sessions.contains_key(*n)) {
        let session = target
            .connect_node(node)
            .map_err(|e| ExitError::environment(anyhow!("{e:#}")))?;
        extra.insert(node.clone(), session);
    }
    let pod_ns = match &e.src.kind {
        PlaceKind::Pod { namespace, .. } => Some(namespace.clone()),
        _ => None,
    };
    let mut captures = Vec::new();
    for (node, vxlan) in &wanted {
        let session = sessions.get(node).or_else(|| extra.get(node));
        let plan = target.plans.iter().find(|p| &p.node == node);
        let (Some(session), Some(plan)) = (session, plan) else {
            continue;
        };
        let sends = *node == src_node;
        captures.push(trace::Capture {
            session,
            plan,
            vxlan: *vxlan,
            pod: if sends { pod_ns.clone() } else { None },
            sends,
        });
    }
    Ok(trace::run(&captures, e.to, pod_ns.as_deref()))
}

/// The numbered walk as text.
pub fn render(e: &Explanation, color: bool) -> String {
    let place = |p: &Place| {
        if p.word == p.ip.to_string() {
            p.word.clone()
        } else {
            format!("{} {}", p.word, p.ip)
        }
    };
    let mut out = format!(
        "{} → {} (lab {}{})\n",
        place(&e.src),
        place(&e.dst),
        e.lab,
        if e.to != e.dst.ip {
            format!(", sent on to {}", e.to)
        } else {
            String::new()
        }
    );
    for h in &e.hops {
        let mark = match (e.traced, h.seen) {
            (false, _) => String::new(),
            (true, Some(true)) => format!("{} ", paint("✓", Style::Green, color)),
            (true, Some(false)) => format!("{} ", paint("✗", Style::Red, color)),
            (true, None) => "  ".into(),
        };
        let node = h
            .node
            .as_deref()
            .map_or(String::new(), |n| format!("{n}: "));
        out.push_str(&format!("{:>2}. {mark}{node}{}\n", h.step, h.summary));
        if h.status == HopStatus::Broken {
            let text = format!(
                "broken: plan {}, live {}",
                h.expected.as_deref().unwrap_or("?"),
                h.actual.as_deref().unwrap_or("?")
            );
            out.push_str(&format!("      {}\n", paint(&text, Style::Red, color)));
        }
        if h.seen == Some(false) {
            if let Some(ev) = &h.evidence {
                out.push_str(&format!("      not seen: {ev}\n"));
            }
        }
    }
    for n in &e.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    if let Some(step) = e.first_broken {
        let what = if e.traced {
            "broken or not seen"
        } else {
            "broken"
        };
        out.push_str(&format!("First hop {what}: {step}\n"));
    }
    out
}
