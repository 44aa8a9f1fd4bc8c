//! Where a netns lab's pod namespaces are registered.
//!
//! A node's `/run/netns` is a folder of its own, `pod-netns/<node netns>` in the
//! lab's state folder, below one shared mount per lab (`pod-netns`): a pod
//! namespace the agent registers inside a node (an nsfs bind on
//! `/run/netns/POD`) propagates to this host under that folder and to no
//! other node. The host's `/run/netns` gets a symlink per pod, so `ip
//! netns exec POD` and `ip netns list` work here as before.
//!
//! Why not share the host's `/run/netns` with every node: then every
//! namespace registered anywhere is copied into every node's mount
//! namespace. At 1,000 nodes that is 2,000 entries in each of 1,000
//! namespaces, two million mounts the kernel copies at each node's start,
//! propagates at each pod's creation and tears down at each node's end.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::launch::NETNS_DIR;
use super::{mounts, names};
use crate::state::{LabDir, LabState};

/// The lab's shared mount holding every node's pod namespaces.
pub fn root(dir: &LabDir) -> PathBuf {
    dir.path.join("pod-netns")
}

/// What the node with network namespace `node_netns` sees as its
/// `/run/netns`.
pub fn node_folder(dir: &LabDir, node_netns: &str) -> PathBuf {
    root(dir).join(node_netns)
}

/// Makes `path` exist and be a shared mount of its own: a bind of itself
/// (as iproute2 does for `/run/netns`), made private before shared, so it
/// starts a peer group of its own. A bind inside a shared mount (`/` on
/// systemd hosts) would otherwise join that mount's peer group, and every
/// pod registered below it would be copied onto each of those peers too.
/// Idempotent.
pub fn ensure_shared(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    let c = mounts::cpath(path)?;
    let shared = libc::MS_SHARED | libc::MS_REC;
    match mounts::mount(None, &c, shared) {
        Ok(()) => return Ok(()),
        // EINVAL: not a mount point yet.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot make {} shared", path.display())),
    }
    mounts::mount(Some(&c), &c, libc::MS_BIND)
        .and_then(|()| mounts::mount(None, &c, libc::MS_PRIVATE))
        .and_then(|()| mounts::mount(None, &c, shared))
        .with_context(|| format!("cannot make {} a shared mount", path.display()))
}

/// Makes the lab's shared mount.
pub fn ensure_root(dir: &LabDir) -> Result<()> {
    ensure_shared(&root(dir))
}

/// Makes a node's folder in the lab's shared mount.
pub fn ensure_node(dir: &LabDir, node_netns: &str) -> Result<PathBuf> {
    let folder = node_folder(dir, node_netns);
    fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    Ok(folder)
}

/// The host's `/run/netns/POD` for every pod the lab recorded: a symlink
/// to the pod's entry in its node's folder. Returns how many were made or
/// corrected. An entry that is no symlink was registered there by a node
/// started before pods were kept apart: it stays while the pod is not in
/// the node's folder, and is replaced (its mount detached) once the node,
/// started again, registered the pod there.
pub fn link_pods(dir: &LabDir, state: &LabState) -> Result<u64> {
    let mut made = 0;
    for (node, rec) in &state.nodes {
        let node_ns = names::node_netns(&state.name, node);
        for pod in rec.pods.keys() {
            // Names from the state file: never a path.
            if pod.is_empty() || pod.contains('/') || pod.starts_with('.') {
                anyhow::bail!(
                    "node {node} has a pod named {pod:?} in the lab's state: not a pod name"
                );
            }
            let name = format!("{node_ns}-{pod}");
            let target = node_folder(dir, &node_ns).join(&name);
            let link = Path::new(NETNS_DIR).join(&name);
            match fs::read_link(&link) {
                Ok(now) if now == target => continue,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    if !target.exists() {
                        continue;
                    }
                    mounts::detach(&link)?;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", link.display())),
            }
            match fs::remove_file(&link) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot replace {}", link.display()))
                }
                _ => {}
            }
            std::os::unix::fs::symlink(&target, &link).with_context(|| {
                format!("cannot link {} to {}", link.display(), target.display())
            })?;
            made += 1;
        }
    }
    Ok(made)
}

/// The namespace files a node registered in its folder.
pub fn registered(dir: &LabDir, node_netns: &str) -> Vec<PathBuf> {
    registered_in(&node_folder(dir, node_netns))
}

fn registered_in(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Removes a node's folder: each pod namespace's mount detached (the
/// kernel frees a namespace nothing else holds), then the folder.
pub fn remove_folder(folder: &Path) -> Result<()> {
    for file in registered_in(folder) {
        mounts::detach(&file)?;
    }
    match fs::remove_dir_all(folder) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", folder.display()))
        }
        _ => Ok(()),
    }
}
