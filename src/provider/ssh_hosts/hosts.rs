//! Reaching the nodes of an ssh or vagrant lab: recording each node's
//! endpoint in the lab state, then checking every node over SSH (root
//! through `sudo -n`, the tools labctl needs, and for VMs the hostname).
//!
//! labctl never installs packages on machines it did not create: a missing
//! tool is an environment error (exit 3) naming the package to install.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use labctl_lab::{Lab, Role};

use crate::exit::ExitError;
use crate::nodes;
use crate::provider::dns_records::{DNSMASQ, DNSMASQ_PACKAGE};
use crate::ssh::{HostKeyPolicy, Session};
use crate::state::{LabDir, LabState, NodeState};
use crate::ui::progress::Progress;

/// Prints each argument that is not a command on PATH.
const MISSING_TOOLS: &str =
    r#"for t in "$@"; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done"#;

/// Sets the hostname ($1) now and for the next boot, and makes it resolve
/// (sudo looks it up on every call). Prints `changed` when it did
/// anything. Writes in place: /etc/hostname may be a bind mount.
const SET_HOSTNAME: &str = r#"set -e
changed=
[ "$(hostname)" = "$1" ] || { hostname "$1"; changed=1; }
[ "$(cat /etc/hostname 2>/dev/null)" = "$1" ] || { printf '%s\n' "$1" > /etc/hostname; changed=1; }
grep -qxF "127.0.1.1 $1" /etc/hosts || { printf '127.0.1.1 %s\n' "$1" >> /etc/hosts; changed=1; }
[ -z "$changed" ] || echo changed"#;

/// What `record_node` does with the pin of a node whose address changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChange {
    /// Another machine (the lab file names another host): the pin goes.
    OtherMachine,
    /// The same machine behind another port (Vagrant's forwarded ports):
    /// the pin moves with it.
    SameMachine,
}

/// Records how to reach `node` in the lab state, keeping the pods it
/// already has; when its address changed, its pin goes or moves
/// (`change`).
pub fn record_node(
    dir: &LabDir,
    state: &mut LabState,
    node: &labctl_lab::Node,
    (host, port): (String, u16),
    user: String,
    key: PathBuf,
    change: AddressChange,
) -> Result<()> {
    if let Some(old) = state.nodes.get(&node.name) {
        if (old.ssh_host.as_str(), old.ssh_port) != (host.as_str(), port) {
            let known_hosts = dir.known_hosts();
            let old_address = [(old.ssh_host.as_str(), old.ssh_port)];
            match change {
                AddressChange::OtherMachine => {
                    crate::ssh::forget_node(&known_hosts, &node.name, &old_address)?
                }
                AddressChange::SameMachine => {
                    crate::ssh::move_pins(&known_hosts, &node.name, &old_address, &host, port)?
                }
            }
        }
    }
    let pods = state
        .nodes
        .get(&node.name)
        .map(|n| n.pods.clone())
        .unwrap_or_default();
    let record = NodeState {
        ip: node.ip,
        control_plane: node.role == Role::ControlPlane,
        ssh_host: host,
        ssh_port: port,
        ssh_user: user,
        ssh_key: Some(key),
        pods,
    };
    state.nodes.insert(node.name.clone(), record);
    Ok(())
}

/// Removes the lab folder once everything else is gone (the folder stays
/// when something failed, so that another `destroy` can retry).
pub fn remove_folder(dir: &LabDir, progress: &Progress, errors: &mut Vec<anyhow::Error>) {
    if errors.is_empty() {
        if let Err(e) = progress.step(None, "Removing the lab folder", || dir.remove()) {
            errors.push(e);
        }
    }
}

/// A key path as written in a lab file: `~/` is the home folder, a
/// relative path is relative to the lab file's folder.
pub fn resolve_key(key: &str, lab_file: Option<&Path>) -> PathBuf {
    if let Some(rest) = key.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(key);
    match lab_file.and_then(Path::parent) {
        Some(folder) if path.is_relative() => folder.join(path),
        _ => path,
    }
}

/// The tools a node needs, each with the package that has it.
fn needed_tools(lab: &Lab, control_plane: bool) -> Vec<(&'static str, &'static str)> {
    if lab.kubernetes.enabled {
        // The preparation script installs the rest.
        return vec![("bash", "bash")];
    }
    let mut tools = vec![
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
        ("sha256sum", "coreutils"),
    ];
    if control_plane {
        tools.push((DNSMASQ, DNSMASQ_PACKAGE));
    }
    tools
}

/// How `up` treats a node's host key when it reaches the node here, the
/// first connection of `up` to ssh and vagrant nodes: a node without a pin
/// (new, or re-created by labctl, which dropped its pin) gets one — in an
/// ssh lab only if it matches the lab file's `ssh.hostKey`, else the
/// user's `~/.ssh/known_hosts` entries for it when there are any; a pinned
/// node must match its pin.
fn first_contact_policy(lab: &Lab, node: &str) -> HostKeyPolicy {
    let ssh = lab
        .nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.ssh.as_ref());
    match ssh {
        Some(target) => HostKeyPolicy::PinNew {
            expected: target.host_key.clone(),
            user_known_hosts: std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".ssh/known_hosts")),
        },
        // Vagrant machines: the user's known_hosts knows nothing of them
        // (their forwarded ports are reused by every VM).
        None => HostKeyPolicy::PinNew {
            expected: None,
            user_known_hosts: None,
        },
    }
}

/// Saves the recorded endpoints, then connects to every node of `lab` in
/// parallel and checks it: root works
/// without a password, the tools are there (exit 3 naming the packages
/// when not), and with `set_hostname` the hostname is the node's name.
pub fn check_nodes(
    lab: &Lab,
    dir: &LabDir,
    state: &LabState,
    progress: &Progress,
    set_hostname: bool,
) -> Result<()> {
    dir.save(state)?;
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let results = nodes::parallel(&names, |name| {
        let cp = lab.control_plane().name == name;
        let policy = first_contact_policy(lab, name);
        progress.step(Some(name), "Checking the node", || {
            let session = nodes::connect(dir, state, name, &policy, nodes::CONNECT_DEADLINE)?;
            if let Some(pin) = session.new_pin() {
                progress.line(&format!("{name}: {pin}"));
            }
            check_root(&session)?;
            check_tools(&session, &needed_tools(lab, cp))?;
            if set_hostname {
                session.run_ok(&["sh", "-c", SET_HOSTNAME, "sh", name], None)?;
            }
            Ok(())
        })
    });
    crate::nodes::fail_with_all(results.into_iter().filter_map(Result::err).collect())
}

fn check_root(session: &Session) -> Result<()> {
    let out = session.run(&["id", "-u"], None)?;
    if out.success() && out.stdout_text().trim() == "0" {
        return Ok(());
    }
    let ep = session.endpoint();
    Err(ExitError::environment(anyhow!(
        "node {}: user {} cannot run commands as root without a password (`sudo -n`): {}; \
         give it passwordless sudo (a line `{} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/) or use root",
        ep.node,
        ep.user,
        out.stderr_text().trim(),
        ep.user
    )))
}

fn check_tools(session: &Session, tools: &[(&str, &str)]) -> Result<()> {
    let mut argv = vec!["sh", "-c", MISSING_TOOLS, "sh"];
    argv.extend(tools.iter().map(|(t, _)| *t));
    let out = session.run_ok(&argv, None)?.stdout_text();
    let missing: Vec<&str> = out.split_whitespace().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = tools
        .iter()
        .filter(|(t, _)| missing.contains(t))
        .map(|(_, p)| *p)
        .collect();
    packages.dedup();
    Err(ExitError::environment(anyhow!(
        "node {} lacks {}: install {} there (labctl does not install packages on machines it did not create)",
        session.endpoint().node,
        missing.join(", "),
        packages.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_from_home_and_the_lab_folder() {
        let lab = Path::new("/labs/mine/lab.yaml");
        assert_eq!(
            resolve_key("keys/id", Some(lab)),
            PathBuf::from("/labs/mine/keys/id")
        );
        assert_eq!(resolve_key("/k/id", Some(lab)), PathBuf::from("/k/id"));
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                resolve_key("~/.ssh/id", None),
                PathBuf::from(home).join(".ssh/id")
            );
        }
    }
}
