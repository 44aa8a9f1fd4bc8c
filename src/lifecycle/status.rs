//! `labctl status [LAB]` (per node: SSH reachability, agent version, drift
//! from the plan via the agent's `check`, pods with their IPs) and
//! `labctl list` (labs on this host). Both speak `--output json`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::{nodes, resolve, ListArgs, StatusArgs};
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
    pub differences: Vec<Value>,
    pub pods: Vec<PodStatus>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PodStatus {
    pub name: String,
    pub ip: String,
}

pub fn status(args: &StatusArgs, global: &GlobalOpts) -> Result<ExitCode> {
    let name = resolve::lab_name(args.lab.as_deref(), args.name.as_deref())?;
    let lab = resolve::existing(&name)?;
    // The plans come from the lab file as last brought up (kept in the
    // state folder), so status works wherever it is run from.
    // Each node's plan as `up` last applied it wins: in kubeadm labs the
    // subnets are the podCIDRs the cluster assigned, not the lab file's.
    let mut plans = std::fs::read_to_string(lab.dir.lab_copy())
        .ok()
        .and_then(|text| labctl_lab::parse(&lab.dir.lab_copy().display().to_string(), &text).ok())
        .map(|l| labctl_lab::plan(&l))
        .unwrap_or_default();
    for plan in plans.iter_mut() {
        if let Ok(saved) = crate::provider::ssh::teardown::saved_plan(&lab.dir, &plan.node) {
            *plan = saved;
        }
    }
    let names: Vec<String> = lab.state.nodes.keys().cloned().collect();
    let statuses = nodes::parallel(&names, |node| {
        node_status(
            &lab.dir,
            &lab.state,
            node,
            plans.iter().find(|p| p.node == node),
        )
    });
    let healthy = statuses.iter().all(|s| s.reachable && s.drift == "in sync");
    if global.output == OutputFormat::Json {
        let doc =
            serde_json::json!({"lab": name, "provider": lab.state.provider, "nodes": statuses});
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
                    } else {
                        "unreachable".into()
                    },
                    s.agent_version.clone().unwrap_or_else(|| "-".into()),
                    s.drift.clone(),
                    pods.join(" "),
                ]
            })
            .collect();
        println!("Lab {name} ({} provider)", lab.state.provider);
        print!(
            "{}",
            table(&["NODE", "IP", "SSH", "AGENT", "DRIFT", "PODS"], &rows)
        );
        for s in statuses.iter().filter(|s| s.error.is_some()) {
            eprintln!("{}: {}", s.node, s.error.as_deref().unwrap_or_default());
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}

fn node_status(
    dir: &LabDir,
    st: &state::LabState,
    node: &str,
    plan: Option<&labctl_nodeplan::NodePlan>,
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
    };
    let session = match nodes::connect(dir, st, node, Duration::from_secs(5)) {
        Ok(session) => session,
        Err(e) => {
            s.error = Some(format!("{e:#}"));
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
        s.drift = "no plan (lab file copy unreadable)".into();
        return s;
    };
    // `check` exits 1 when the node drifted, still printing its report.
    let argv = [nodes::AGENT_PATH, "check"];
    match session.run(&argv, Some(plan.to_json().as_bytes())) {
        Ok(out) => match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(report) if out.status == 0 || out.status == 1 => {
                s.differences = report
                    .get("differences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                s.drift = match s.differences.len() {
                    0 => "in sync".into(),
                    1 => "1 difference".into(),
                    n => format!("{n} differences"),
                };
            }
            _ => {
                s.drift = "check failed".into();
                s.error = Some(format!(
                    "`labctl-agent check` exited with status {}: {}",
                    out.status,
                    out.stderr_text().trim()
                ));
            }
        },
        Err(e) => {
            s.drift = "check failed".into();
            s.error = Some(e.to_string());
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
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
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
