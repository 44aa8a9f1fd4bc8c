//! Removing a netns lab (or one of its nodes) from this host: exactly what
//! state.json names, plus the pod namespaces the agent made for the lab's
//! nodes (`<lab>-<node>-<pod>`), and nothing else. Every removal is tried;
//! errors are collected, never stop the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::launch::NETNS_DIR;
use super::{mounts, network, pod_mounts, procs};
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
/// veth, its pod namespaces and namespace, /etc/netns folders.
pub fn remove_node(lab: &str, node: &NetnsNode, errors: &mut Vec<anyhow::Error>) {
    remove_nodes(lab, &[node], None, &[], errors);
}

/// A namespace of the lab's besides the nodes' (the outside world) and
/// the host end of its veth.
struct ExtraNamespace<'a> {
    netns: &'a str,
    host_veth: &'a str,
}

/// Removes the nodes, the `extra` namespace and the `extra_links` on the
/// host in one sweep, however many: their sshds and every process in
/// their namespaces get their signals together (one wait for all), the
/// host links go in one request, and the namespaces are unmounted in this
/// process (what `ip netns del` does, without a process each).
///
/// Links before namespaces. The kernel frees a namespace that nothing
/// holds any more in the background, and a node's costs it an
/// `rcu_barrier()` for its bridge under the RTNL lock: waiting for it to
/// drop the host ends of the nodes' veths with their namespaces made
/// destroy last as long as all of that (7.8 s for 200 nodes). Deleted
/// first, the veths take their eth1 ends and the VXLAN devices on them
/// (a grace period each, for the VXLAN socket: 3.3 s for 200 nodes), and
/// the host is clean when destroy returns; the bridges the kernel still
/// frees then are in namespaces no one can reach.
fn remove_nodes(
    lab: &str,
    nodes: &[&NetnsNode],
    extra: Option<ExtraNamespace>,
    extra_links: &[String],
    errors: &mut Vec<anyhow::Error>,
) {
    let existing = network::netns_list().unwrap_or_default();
    let others = other_labs_namespaces(lab);
    let dir = LabDir::new(lab).ok();
    let mut namespaces: Vec<String> = Vec::new();
    // Pods registered in the nodes' folders, with or without their host
    // link (an `up` killed before it made them).
    let mut pod_files: Vec<PathBuf> = Vec::new();
    for node in nodes {
        namespaces.extend(pod_namespaces(&node.netns, &existing, &others));
        namespaces.push(node.netns.clone());
        if let Some(dir) = &dir {
            pod_files.extend(pod_mounts::registered(dir, &node.netns));
        }
    }
    namespaces.extend(extra.as_ref().map(|e| e.netns.to_string()));
    let files: Vec<PathBuf> = namespaces
        .iter()
        .map(|n| Path::new(NETNS_DIR).join(n))
        .chain(pod_files.iter().cloned())
        .collect();
    let mut pids: Vec<u32> = nodes
        .iter()
        .filter_map(|n| n.sshd.as_ref())
        .filter(|p| p.is_running())
        .map(|p| p.pid)
        .collect();
    let inside = procs::pids_in_namespaces(&files);
    pids.extend(inside.values().flatten().copied());
    pids.sort_unstable();
    pids.dedup();
    errors.extend(
        procs::stop_pids(&pids)
            .into_iter()
            .map(|e| e.context(format!("stopping the processes of lab {lab}"))),
    );
    let links: Vec<String> = nodes
        .iter()
        .map(|n| n.host_veth.clone())
        .chain(extra.as_ref().map(|e| e.host_veth.to_string()))
        .chain(extra_links.iter().cloned())
        .collect();
    delete_links(&links, errors);
    // A pod registered in its node's folder but never linked on the host
    // (an `up` interrupted in between) has an /etc/netns folder all the
    // same: its name comes from the lab's own folder.
    for name in pod_files
        .iter()
        .filter_map(|f| f.file_name()?.to_str())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
    {
        if !namespaces.iter().any(|n| n == name) {
            namespaces.push(name.to_string());
        }
    }
    delete_namespaces(&namespaces, &existing, errors);
    if let Some(dir) = &dir {
        for node in nodes {
            if let Err(e) = pod_mounts::remove_folder(&pod_mounts::node_folder(dir, &node.netns)) {
                errors.push(e.context(format!("removing the pod folder of {}", node.netns)));
            }
        }
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
/// it). A pod's symlink is removed, never followed (what it points to is
/// detached with its node's folder). Validated names only: they come from
/// the lab state.
fn delete_netns(name: &str) -> Result<()> {
    let path = format!("{NETNS_DIR}/{name}");
    mounts::detach(Path::new(&path))?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove {path}"))),
    }
}

/// Deletes the host links that still exist. Each deletion request costs
/// the kernel an `rcu_barrier()` (tens of milliseconds on a busy host,
/// seconds for a lab's hundreds of veths), so several links are deleted
/// in one request: they join a link group no other link is in, and `ip
/// link del group` removes the group at once. If that cannot be done
/// safely, one `ip -force -batch` deletes them one by one.
fn delete_links(names: &[String], errors: &mut Vec<anyhow::Error>) {
    let Ok(groups) = network::link_groups() else {
        return;
    };
    let present: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| groups.contains_key(*n))
        .collect();
    if present.is_empty() {
        return;
    }
    if present.len() > 1 && delete_as_group(&present, &groups).is_ok() {
        return;
    }
    delete_one_by_one(&present, errors);
}

/// The first link group from a fixed base that no link is in: a lab's
/// links join it only for the moment of their deletion.
fn unused_group(groups: &BTreeMap<String, String>) -> u32 {
    const BASE: u32 = 0x4c61_6200;
    let used: BTreeSet<&str> = groups.values().map(String::as_str).collect();
    (BASE..)
        .find(|g| !used.contains(g.to_string().as_str()))
        .unwrap_or(BASE)
}

/// Moves `names` into an unused group, checks that the group holds
/// exactly them, and deletes it in one request. An error leaves whatever
/// is left to [`delete_one_by_one`].
fn delete_as_group(names: &[&str], groups: &BTreeMap<String, String>) -> Result<()> {
    let group = unused_group(groups).to_string();
    let lines: Vec<String> = names
        .iter()
        .map(|n| format!("link set dev {n} group {group}"))
        .collect();
    hostcmd::ip_batch(None, &lines)?;
    // A group named in /etc/iproute2/group would not show as a number
    // above: delete only if the group is exactly these links.
    let members = network::links_in_group(&group)?;
    let wanted: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    if members != wanted {
        anyhow::bail!("link group {group} holds other links too");
    }
    hostcmd::run("ip", &["link", "del", "group", &group])?;
    Ok(())
}

/// Deletes links in one `ip -force -batch` (it goes on past a failed
/// line: a link already gone is no error), each a request of its own.
fn delete_one_by_one(names: &[&str], errors: &mut Vec<anyhow::Error>) {
    let lines: Vec<String> = names.iter().map(|n| format!("link del {n}")).collect();
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
    let outside = ExtraNamespace {
        netns: &ns.ext_netns,
        host_veth: &ns.ext_veth,
    };
    remove_nodes(
        &state.name,
        &nodes,
        Some(outside),
        std::slice::from_ref(&ns.bridge),
        &mut errors,
    );
    errors
}

/// Removes the lab's state folder and, when it was the last lab, the host
/// folders labs needed.
pub fn remove_state(dir: &LabDir) -> Result<()> {
    // The pods' shared mount first: the folder is removed through it.
    mounts::detach(&pod_mounts::root(dir))?;
    dir.remove()?;
    super::hostdirs::release_if_last().context("removing host folders netns labs created")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKS: &str = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
7: lcb1a2b: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group 1281450496 qlen 1000\\    link/ether 02:4c:c0:a8:40:01 brd ff:ff:ff:ff:ff:ff
9: lcv1a2b3@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master lcb1a2b state UP mode DEFAULT group mine qlen 1000\\    link/ether 6e:1d:3c:aa:01:02 brd ff:ff:ff:ff:ff:ff link-netns lab-n1
";

    #[test]
    fn link_groups_are_read_by_name_without_the_peer() {
        let groups = network::parse_link_groups(LINKS);
        assert_eq!(groups["lo"], "default");
        assert_eq!(groups["lcb1a2b"], "1281450496");
        assert_eq!(groups["lcv1a2b3"], "mine");
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn the_group_for_deletion_is_one_no_link_is_in() {
        // 0x4c616200 is taken by lcb1a2b above: the next one is free.
        let groups = network::parse_link_groups(LINKS);
        assert_eq!(unused_group(&groups), 0x4c61_6201);
        assert_eq!(unused_group(&BTreeMap::new()), 0x4c61_6200);
    }
}
