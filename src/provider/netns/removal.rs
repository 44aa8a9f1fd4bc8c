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
    remove_nodes(lab, &[node], &[], errors);
}

/// Removes the nodes and the `extra` namespaces in one sweep, however
/// many: their sshds and every process in their namespaces get their
/// signals together (one wait for all), the namespaces are unmounted in
/// this process (what `ip netns del` does, without a process each), and
/// the host veths left go in one `ip -batch`.
fn remove_nodes(
    lab: &str,
    nodes: &[&NetnsNode],
    extra: &[String],
    errors: &mut Vec<anyhow::Error>,
) {
    let existing = network::netns_list().unwrap_or_default();
    let others = other_labs_namespaces(lab);
    let mut namespaces: Vec<String> = Vec::new();
    for node in nodes {
        namespaces.extend(pod_namespaces(&node.netns, &existing, &others));
        namespaces.push(node.netns.clone());
    }
    namespaces.extend(extra.iter().cloned());
    let mut pids: Vec<u32> = nodes
        .iter()
        .filter_map(|n| n.sshd.as_ref())
        .filter(|p| p.is_running())
        .map(|p| p.pid)
        .collect();
    let inside = procs::pids_in_namespaces(&namespaces);
    pids.extend(inside.values().flatten().copied());
    pids.sort_unstable();
    pids.dedup();
    errors.extend(
        procs::stop_pids(&pids)
            .into_iter()
            .map(|e| e.context(format!("stopping the processes of lab {lab}"))),
    );
    delete_namespaces(&namespaces, &existing, errors);
    let veths: Vec<String> = nodes.iter().map(|n| n.host_veth.clone()).collect();
    wait_for_links_gone(&veths);
    delete_links(&veths, errors);
}

/// The kernel removes a deleted namespace's devices, and with them the
/// host ends of their veths, in batches (one RCU grace period for many);
/// deleting each host veth ourselves costs one each. Waits up to 10 s for
/// the kernel, and leaves what is still there to [`delete_links`].
fn wait_for_links_gone(names: &[String]) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < until {
        let Ok(existing) = network::link_list() else {
            return;
        };
        if !names.iter().any(|n| existing.contains(n)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn delete_namespaces(
    names: &[String],
    existing: &BTreeSet<String>,
    errors: &mut Vec<anyhow::Error>,
) {
    for name in names {
        if existing.contains(name) {
            if let Err(e) = delete_netns(name) {
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

/// `ip netns del NAME` in this process: detach the namespace's bind mount
/// and remove the file (the kernel frees the namespace once nothing uses
/// it). Validated names only: they come from the lab state.
fn delete_netns(name: &str) -> Result<()> {
    let path = format!("{}/{name}", super::launch::NETNS_DIR);
    let c_path = std::ffi::CString::new(path.as_str())
        .with_context(|| format!("{path} contains a NUL byte"))?;
    // SAFETY: umount2 on a NUL-terminated path.
    if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = std::io::Error::last_os_error();
        // EINVAL: not a mount point (a half-made namespace file).
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(anyhow::Error::new(err).context(format!("cannot unmount {path}")));
        }
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove {path}"))),
    }
}

/// Deletes host links that still exist, in one `ip -force -batch` (it
/// goes on past a failed line). A veth whose peer's namespace was just
/// deleted disappears asynchronously; deleting it explicitly makes the
/// host clean when destroy returns.
fn delete_links(names: &[String], errors: &mut Vec<anyhow::Error>) {
    let Ok(existing) = network::link_list() else {
        return;
    };
    let lines: Vec<String> = names
        .iter()
        .filter(|n| existing.contains(*n))
        .map(|n| format!("link del {n}"))
        .collect();
    if lines.is_empty() {
        return;
    }
    let script = lines.join("\n") + "\n";
    let out = match hostcmd::output("ip", &["-force", "-batch", "-"], Some(script.as_bytes())) {
        Ok(out) => out,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Cannot find device") && !l.starts_with("Command failed"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    if !out.status.success() && !real.is_empty() {
        errors.push(anyhow::anyhow!(
            "`ip -force -batch -` deleting {} failed: {}",
            lines.join(", "),
            real.join("; ")
        ));
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
    let nodes: Vec<&NetnsNode> = ns.nodes.values().collect();
    remove_nodes(
        &state.name,
        &nodes,
        std::slice::from_ref(&ns.ext_netns),
        &mut errors,
    );
    delete_links(&[ns.ext_veth.clone(), ns.bridge.clone()], &mut errors);
    errors
}

/// Removes the lab's state folder and, when it was the last lab, the host
/// folders labs needed.
pub fn remove_state(dir: &LabDir) -> Result<()> {
    dir.remove()?;
    super::hostdirs::release_if_last().context("removing host folders netns labs created")
}
