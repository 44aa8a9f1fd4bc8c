//! The vagrant provider: the lab's own SSH key made, the lab's Vagrantfile
//! rendered into the lab folder, `vagrant up` (logged to
//! `logs/vagrant.log`, summarised per machine), endpoints from `vagrant
//! ssh-config`, the box's insecure key replaced by the lab key on every
//! machine ([`key_swap`]), each hostname set over SSH (cheaper than
//! Vagrant's hostname step), then the same node sequence as the ssh
//! provider.
//!
//! `destroy` is `vagrant destroy -f` in the lab folder plus the folder
//! itself: it needs neither the lab file nor reachable machines.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use labctl_lab::Lab;

mod key_swap;

use super::ssh_hosts::hosts;
use super::Provider;
use crate::state::{LabDir, LabState};
use crate::ui::progress::Progress;
use crate::vagrant_cli::{ensure_lab_key, stage_identities, stage_identity, Vagrant};

/// The vagrant provider.
pub struct VagrantProvider;

/// The folder holding the lab's Vagrantfile and Vagrant's `.vagrant`.
pub fn vagrant_dir(dir: &LabDir) -> PathBuf {
    dir.path.join("vagrant")
}

fn log(dir: &LabDir) -> PathBuf {
    dir.logs().join("vagrant.log")
}

fn vagrant(lab: &Lab, dir: &LabDir) -> Vagrant {
    let name = crate::render::vagrant_provider_name(lab.provider.vagrant_provider);
    Vagrant::new(vagrant_dir(dir)).with_provider(name)
}

impl Provider for VagrantProvider {
    fn kind(&self) -> &'static str {
        "vagrant"
    }

    fn preflight(&self, lab: &Lab, dir: &LabDir, _install_deps: bool) -> Result<()> {
        // Vagrant, its provider, WSL's traps (what would make `vagrant up`
        // wait 15 minutes for nothing), memory, CPUs, host-only ranges.
        crate::doctor::preflight(lab, &dir.path, &[])
    }

    fn create(
        &self,
        lab: &Lab,
        dir: &LabDir,
        state: &mut LabState,
        progress: &Progress,
    ) -> Result<u64> {
        state.kubernetes = lab.kubernetes.enabled;
        let vagrant = vagrant(lab, dir);
        let folder = vagrant_dir(dir);
        // Machines no longer in the lab file go while the old Vagrantfile
        // still defines them.
        let gone: Vec<String> = state
            .nodes
            .keys()
            .filter(|n| !lab.nodes.iter().any(|l| &l.name == *n))
            .cloned()
            .collect();
        if !gone.is_empty() && folder.join("Vagrantfile").is_file() {
            let names: Vec<&str> = gone.iter().map(String::as_str).collect();
            progress.step(None, "Destroying removed machines", || {
                vagrant.destroy_machines(&names, &log(dir))
            })?;
        }
        for node in &gone {
            state.forget_node(node, dir)?;
            let _ = std::fs::remove_dir_all(dir.node_dir(node));
        }
        dir.save(state)?;

        // Before rendering: the Vagrantfile hands Vagrant this key (and
        // leaves the key swap to labctl) only when it exists.
        let lab_key = ensure_lab_key(&dir.path, &lab.name)?;
        progress.step(None, "Rendering the Vagrantfile", || {
            let text = crate::render::vagrantfile(lab)?;
            crate::render::write_atomic(&folder.join("Vagrantfile"), text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write the Vagrantfile in {}", folder.display()))
        })?;
        forget_machines_to_create(&vagrant, dir, state, progress)?;
        let summary = progress.step(None, "vagrant up", || vagrant.up(&log(dir)))?;
        for line in summary.lines() {
            progress.line(&format!("  {line}"));
        }

        let names: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
        let entries = progress.step(None, "Reading vagrant ssh-config", || {
            vagrant.ssh_config_of(&names)
        })?;
        let mut swaps = Vec::new();
        for node in &lab.nodes {
            let entry = entries.get(&node.name).ok_or_else(|| {
                anyhow!(
                    "`vagrant ssh-config` in {} printed nothing for machine {}",
                    folder.display(),
                    node.name
                )
            })?;
            let first = entry.identity_files.first().ok_or_else(|| {
                anyhow!(
                    "`vagrant ssh-config` names no private key for machine {}",
                    node.name
                )
            })?;
            // The lab key first: Vagrant's other keys are the insecure ones
            // to replace. Otherwise (a Vagrantfile that does not know the
            // lab key) Vagrant swapped keys itself: use its key.
            let key = if same_file(first, &lab_key) {
                let insecure = stage_identities(&entry.identity_files[1..], &dir.path)?;
                swaps.push(key_swap::Swap {
                    node: node.name.clone(),
                    insecure_keys: insecure,
                });
                lab_key.clone()
            } else {
                stage_identity(first, &dir.path)?
            };
            let (host, user) = (entry.host_name.clone(), entry.user.clone());
            let address = (host, entry.port);
            let change = hosts::AddressChange::SameMachine;
            hosts::record_node(dir, state, node, address, user, key, change)?;
        }
        if !swaps.is_empty() {
            dir.save(state)?;
            key_swap::replace_insecure_keys(dir, state, &lab_key, &swaps, progress)?;
        }
        hosts::check_nodes(lab, dir, state, progress, true)?;
        Ok(0)
    }

    fn destroy(&self, dir: &LabDir, _state: &LabState, progress: &Progress) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        let folder = vagrant_dir(dir);
        if folder.join("Vagrantfile").is_file() {
            let result = progress.step(None, "vagrant destroy -f", || {
                Vagrant::new(&folder).destroy(&log(dir))
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        hosts::remove_folder(dir, progress, &mut errors);
        errors
    }
}

/// Drops the pins of recorded nodes whose machine does not exist (destroyed
/// outside labctl): `vagrant up` is about to create them, and a new machine
/// has a new host key, which `up` then pins. A machine that exists keeps
/// its pin, so a changed key on it is refused.
fn forget_machines_to_create(
    vagrant: &Vagrant,
    dir: &LabDir,
    state: &LabState,
    progress: &Progress,
) -> Result<()> {
    if state.nodes.is_empty() || !dir.known_hosts().is_file() {
        return Ok(());
    }
    let machines = progress.step(None, "vagrant status", || vagrant.status())?;
    for (node, rec) in &state.nodes {
        if machines.get(node).is_some_and(|m| m.state == "not_created") {
            rec.forget_pins(node, dir)?;
        }
    }
    Ok(())
}

/// Whether two paths name the same file (symlinks and `..` resolved).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
