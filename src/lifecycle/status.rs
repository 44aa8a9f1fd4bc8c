//! `labctl status [LAB]` (per node: SSH reachability, agent version, drift
//! from the plan via the agent's `check`, pods with their IPs) and
//! `labctl list` (labs on this host). Both speak `--output json`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use labctl_nodeplan::report::Difference;
use labctl_nodeplan::NodePlan;
use serde::Serialize;

use super::{ListArgs, StatusArgs};
use crate::lab_select;
use crate::nodes;
use crate::output::{table, GlobalOpts, OutputFormat};
use crate::state::{self, LabDir};

/// One node's status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub node: String,
    pub ip: String,
    pub reachable: bool,
    pub agent_version: Option<String>,
    /// `in sync`, `N differences`, or why it is unknown.
    pub drift: String,
    pub differences: Vec<Difference>,
    pub pods: Vec<PodStatus>,
    pub error: Option<String>,
    /// The node's host key was refused (exit 3 once everything is shown).
    #[serde(skip)]
    pub host_key_refused: bool,
}

#[derive(Debug, Serialize)]
pub struct PodStatus {
    pub name: String,
    pub ip: String,
}

pub fn status(args: &StatusArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let name = lab_select::lab_name(args.lab.as_deref(), args.name.as_deref())?;
    let lab = lab_select::existing(&name, "status")?;
    let names: Vec<String> = lab.state.nodes.keys().cloned().collect();
    let plans = node_plans(
        &names,
        |node| lab.dir.saved_plan(node).ok(),
        || lab_copy_plans(&lab.dir),
    );
    let statuses = nodes::parallel(&names, |node| {
        node_status(
            &lab.dir,
            &lab.state,
            node,
            plans.iter().find(|p| p.node == node),
        )
    });
    let healthy = statuses.iter().all(|s| s.reachable && s.drift == "in sync");
    // flannel's backend, as the plans the nodes were built from say.
    let backend = plans.first().map(|p| p.backend.name());
    if global.output == OutputFormat::Json {
        let doc = serde_json::json!({"lab": name, "provider": lab.state.provider, "backend": backend, "nodes": statuses});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let rows: Vec<Vec<String>> = statuses
            .iter()
            .map(|s| {
                let pods: Vec<String> = s
                    .pods
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.ip))
                    .collect();
                vec![
                    s.node.clone(),
                    s.ip.clone(),
                    if s.reachable {
                        "ok".into()
                    } else if s.host_key_refused {
                        "host key refused".into()
                    } else {
                        "unreachable".into()
                    },
                    s.agent_version.clone().unwrap_or_else(|| "-".into()),
                    s.drift.clone(),
                    pods.join(" "),
                ]
            })
            .collect();
        match backend {
            Some(b) => println!(
                "Lab {name} ({} provider, flannel backend {b})",
                lab.state.provider
            ),
            None => println!("Lab {name} ({} provider)", lab.state.provider),
        }
        print!(
            "{}",
            table(&["NODE", "IP", "SSH", "AGENT", "DRIFT", "PODS"], &rows)
        );
        // Refused host keys come last, in the error (exit 3).
        for s in statuses
            .iter()
            .filter(|s| s.error.is_some() && !s.host_key_refused)
        {
            eprintln!("{}: {}", s.node, s.error.as_deref().unwrap_or_default());
        }
    }
    let refused: Vec<&str> = statuses
        .iter()
        .filter(|s| s.host_key_refused)
        .map(|s| s.node.as_str())
        .collect();
    if !refused.is_empty() {
        return Err(crate::exit::ExitError::environment(anyhow::anyhow!(
            "host key refused on {}: {}",
            refused.join(", "),
            statuses
                .iter()
                .filter(|s| s.host_key_refused)
                .filter_map(|s| s.error.as_deref())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}

/// Each node's plan: the one `up` last applied and saved in the node's
/// folder (in kubeadm labs its subnet is the podCIDR the cluster assigned,
/// not the lab file's), and only for nodes without one (an `up` that
/// stopped before applying) the plan computed by `compute`, which is not
/// called when every node has its saved plan.
fn node_plans(
    names: &[String],
    saved: impl Fn(&str) -> Option<NodePlan>,
    compute: impl FnOnce() -> Vec<NodePlan>,
) -> Vec<NodePlan> {
    let mut plans = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    for name in names {
        match saved(name) {
            Some(plan) => plans.push(plan),
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        plans.extend(compute().into_iter().filter(|p| missing.contains(&&p.node)));
    }
    plans
}

/// The plans of the lab file as last brought up (the copy kept in the
/// lab folder), so status works wherever it is run from; none when the
/// copy is missing or no longer parses.
fn lab_copy_plans(dir: &LabDir) -> Vec<NodePlan> {
    let copy = dir.lab_copy();
    std::fs::read_to_string(&copy)
        .ok()
        .and_then(|text| labctl_lab::parse(&copy.display().to_string(), &text).ok())
        .map(|lab| labctl_lab::plan(&lab))
        .unwrap_or_default()
}

fn node_status(
    dir: &LabDir,
    st: &state::LabState,
    node: &str,
    plan: Option<&NodePlan>,
) -> NodeStatus {
    let rec = st.nodes.get(node);
    let mut s = NodeStatus {
        node: node.to_string(),
        ip: rec.map(|r| r.ip.to_string()).unwrap_or_default(),
        reachable: false,
        agent_version: None,
        drift: "unknown".into(),
        differences: Vec::new(),
        pods: rec
            .map(|r| {
                r.pods
                    .iter()
                    .map(|(n, ip)| PodStatus {
                        name: n.clone(),
                        ip: ip.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        error: None,
        host_key_refused: false,
    };
    let session = match nodes::connect(
        dir,
        st,
        node,
        &crate::ssh::HostKeyPolicy::RequireKnown,
        Duration::from_secs(5),
    ) {
        Ok(session) => session,
        Err(e) => {
            s.error = Some(format!("{e:#}"));
            s.host_key_refused = crate::ssh::is_host_key_refusal(&e);
            return s;
        }
    };
    s.reachable = true;
    match session.run(&[nodes::AGENT_PATH, "--version"], None) {
        Ok(out) if out.success() => {
            // `labctl-agent 0.1.0 sha256:...`
            s.agent_version = out
                .stdout_text()
                .split_whitespace()
                .nth(1)
                .map(str::to_string);
        }
        Ok(_) | Err(_) => {
            s.drift = "no agent".into();
            return s;
        }
    }
    let Some(plan) = plan else {
        s.drift = "no plan (none saved, and the lab file copy is unreadable)".into();
        return s;
    };
    match nodes::check(&session, plan) {
        Ok(report) => {
            s.differences = report.differences;
            s.drift = match s.differences.len() {
                0 => "in sync".into(),
                1 => "1 difference".into(),
                n => format!("{n} differences"),
            };
        }
        Err(e) => {
            s.drift = "check failed".into();
            s.error = Some(format!("{e:#}"));
        }
    }
    s
}

pub fn list(_args: &ListArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let mut labs = Vec::new();
    for name in state::lab_names() {
        let Ok(dir) = LabDir::new(&name) else {
            continue;
        };
        let Ok(st) = dir.load() else { continue };
        labs.push(serde_json::json!({
            "name": name,
            "provider": st.provider,
            "nodes": st.nodes.keys().collect::<Vec<_>>(),
            "underlay": st.underlay.map(|u| u.to_string()),
            "labFile": st.lab_file,
        }));
    }
    if global.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&labs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if labs.is_empty() {
        println!("No labs on this host.");
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let rows: Vec<Vec<String>> = labs
        .iter()
        .map(|l| {
            let nodes = l["nodes"].as_array().map(|a| a.len()).unwrap_or(0);
            vec![
                text(&l["name"]),
                text(&l["provider"]),
                nodes.to_string(),
                text(&l["underlay"]),
                text(&l["labFile"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["NAME", "PROVIDER", "NODES", "UNDERLAY", "LAB FILE"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans_of(lab: &str) -> Vec<NodePlan> {
        let lab = labctl_lab::parse("lab.yaml", lab).unwrap();
        labctl_lab::plan(&lab)
    }

    const LAB: &str = "apiVersion: labctl/v1alpha1\nkind: Lab\nname: st\nnodes:\n\
        - {name: a, role: control-plane, ip: 192.168.56.10}\n\
        - {name: b, role: worker, ip: 192.168.56.11}\n";

    #[test]
    fn saved_plans_win_and_the_lab_copy_is_read_only_for_nodes_without_one() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut saved_a = plans_of(LAB).remove(0);
        saved_a.subnet = "10.244.9.0/24".parse().unwrap();
        let lab_plans = plans_of(LAB);
        let all_saved = |n: &str| lab_plans.iter().find(|p| p.node == n).cloned();
        let plans = node_plans(&names, all_saved, || {
            panic!("computed though all were saved")
        });
        assert_eq!(plans.len(), 2);

        let only_a = |n: &str| (n == "a").then(|| saved_a.clone());
        let plans = node_plans(&names, only_a, || plans_of(LAB));
        assert_eq!(
            plans
                .iter()
                .map(|p| (p.node.as_str(), p.subnet.to_string()))
                .collect::<Vec<_>>(),
            vec![("a", "10.244.9.0/24".into()), ("b", "10.244.1.0/24".into())]
        );
    }
}
