//! Removing a netns lab (or one of its nodes) from this host: exactly what
//! state.json names, plus the pod namespaces the agent made for the lab's
//! nodes (`<lab>-<node>-<pod>`), and nothing else. Every removal is tried;
//! errors are collected, never stop the rest.

use std::collections::BTreeSet;
use std::fs;

use anyhow::{Context, Result};

use super::{network, procs};
use crate::hostcmd;
use crate::state::{LabDir, LabState, NetnsNode, NetnsState};

/// Namespaces that belong to other labs on this host (never touched).
fn other_labs_namespaces(this_lab: &str) -> Vec<String> {
    let mut names = Vec::new();
    for lab in crate::state::lab_names() {
        if lab == this_lab {
            continue;
        }
        let Ok(dir) = LabDir::new(&lab) else { continue };
        if let Ok(LabState {
            netns: Some(ns), ..
        }) = dir.load()
        {
            names.push(ns.ext_netns.clone());
            names.extend(ns.nodes.values().map(|n| n.netns.clone()));
        }
    }
    names
}

/// The pod namespaces of a node: `<node netns>-*`, minus anything another
/// lab owns (a lab named `a` with node `b-c` versus a lab `a-b` ...).
fn pod_namespaces(node_netns: &str, existing: &BTreeSet<String>, others: &[String]) -> Vec<String> {
    let prefix = format!("{node_netns}-");
    existing
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| {
            !others
                .iter()
                .any(|o| *n == o || n.starts_with(&format!("{o}-")))
        })
        .cloned()
        .collect()
}

/// Removes one node: its sshd, everything running in its namespaces, its
/// pod namespaces, its namespace and veth, /etc/netns folders.
pub fn remove_node(lab: &str, node: &NetnsNode, errors: &mut Vec<anyhow::Error>) {
    let existing = network::netns_list().unwrap_or_default();
    let others = other_labs_namespaces(lab);
    if let Some(sshd) = &node.sshd {
        if let Err(e) = procs::stop_tracked(sshd) {
            errors.push(e.context(format!("stopping sshd of {}", node.netns)));
        }
    }
    let mut namespaces = pod_namespaces(&node.netns, &existing, &others);
    namespaces.push(node.netns.clone());
    delete_namespaces(&namespaces, &existing, errors);
    delete_links(std::slice::from_ref(&node.host_veth), errors);
}

fn delete_namespaces(
    names: &[String],
    existing: &BTreeSet<String>,
    errors: &mut Vec<anyhow::Error>,
) {
    for name in names {
        if existing.contains(name) {
            if let Err(e) = procs::stop_all_in(name) {
                errors.push(e);
            }
            if let Err(e) = hostcmd::run("ip", &["netns", "del", name]) {
                errors.push(e.context(format!("deleting network namespace {name}")));
            }
        }
        // `ip netns exec` reads /etc/netns/<name>/ (the pods' resolv.conf).
        let etc = format!("/etc/netns/{name}");
        match fs::remove_dir_all(&etc) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(anyhow::Error::new(e).context(format!("removing {etc}"))),
        }
    }
}

/// Deletes host links that still exist. A veth whose peer's namespace was
/// just deleted disappears asynchronously; deleting it explicitly makes the
/// host clean when destroy returns.
fn delete_links(names: &[String], errors: &mut Vec<anyhow::Error>) {
    let Ok(existing) = network::link_list() else {
        return;
    };
    for name in names.iter().filter(|n| existing.contains(*n)) {
        let out = match hostcmd::output("ip", &["link", "del", name], None) {
            Ok(out) => out,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("Cannot find device") {
            errors.push(hostcmd::failure(&format!("ip link del {name}"), &out));
        }
    }
}

/// Removes the whole lab's host objects. Returns every error met.
pub fn destroy_lab(state: &LabState, ns: &NetnsState) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    if let Some(dns) = &ns.dns {
        if let Err(e) = procs::stop_tracked(dns) {
            errors.push(e.context("stopping the DNS server"));
        }
    }
    for node in ns.nodes.values() {
        remove_node(&state.name, node, &mut errors);
    }
    let existing = network::netns_list().unwrap_or_default();
    delete_namespaces(std::slice::from_ref(&ns.ext_netns), &existing, &mut errors);
    delete_links(&[ns.ext_veth.clone(), ns.bridge.clone()], &mut errors);
    errors
}

/// Removes the lab's state folder and, when it was the last lab, the host
/// folders labs needed.
pub fn remove_state(dir: &LabDir) -> Result<()> {
    dir.remove()?;
    super::hostdirs::release_if_last().context("removing host folders netns labs created")
}
