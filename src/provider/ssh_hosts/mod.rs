//! The ssh provider: existing machines (cloud VMs, bare metal) given in the
//! lab file by address, user and key (`nodes[].ssh`). labctl creates
//! nothing on this host but the lab folder; on the machines it runs as root
//! (`sudo -n` for another user) and puts only its agent, the data plane,
//! pods, the DNS server and (kubeadm labs) a kubeadm cluster there — all of
//! which `destroy` removes again.
//!
//! The parts every provider that ends in existing machines shares (the
//! vagrant provider after `vagrant up`) live here too: [`hosts`] (checking
//! nodes), [`dns_server`] (the DNS server on the control plane) and
//! [`node_removal`]. The kubeadm cluster around the data plane is
//! `crate::kubeadm::bootstrap`, which both use.

pub mod dns_server;
pub mod hosts;
pub mod node_removal;

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use labctl_lab::Lab;

use super::Provider;
use crate::exit::ExitError;
use crate::state::{LabDir, LabState};
use crate::ui::progress::Progress;

/// The ssh provider.
pub struct SshProvider;

impl Provider for SshProvider {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn preflight(&self, lab: &Lab, dir: &LabDir, _install_deps: bool) -> Result<()> {
        for node in &lab.nodes {
            let Some(target) = &node.ssh else {
                return Err(ExitError::usage(anyhow!(
                    "node {} has no ssh block: the ssh provider needs one for every node",
                    node.name
                )));
            };
            let key = hosts::resolve_key(&target.key, None);
            if key.is_absolute() && !key.is_file() {
                return Err(ExitError::usage(anyhow!(
                    "node {}: the SSH key {} does not exist",
                    node.name,
                    key.display()
                )));
            }
        }
        // The host's side: ssh tools, the pod and service networks
        // against this host's routes.
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
        // A node no longer in the lab file is torn down and forgotten.
        let wanted: BTreeSet<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
        let gone: Vec<String> = state
            .nodes
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for node in gone {
            progress.step(Some(&node), "Removing node", || {
                node_removal::node(dir, state, &node)?;
                state.forget_node(&node, dir)?;
                let _ = std::fs::remove_dir_all(dir.node_dir(&node));
                dir.save(state)
            })?;
        }
        let lab_file = state.lab_file.clone();
        for node in &lab.nodes {
            let target = node
                .ssh
                .as_ref()
                .ok_or_else(|| anyhow!("node {} has no ssh block", node.name))?;
            let key = hosts::resolve_key(&target.key, lab_file.as_deref());
            let (host, user) = (target.host.clone(), target.user.clone());
            let address = (host, target.port);
            let change = hosts::AddressChange::OtherMachine;
            hosts::record_node(dir, state, node, address, user, key, change)?;
        }
        hosts::check_nodes(lab, dir, state, progress, false)?;
        Ok(0)
    }

    fn destroy(&self, dir: &LabDir, state: &LabState, progress: &Progress) -> Vec<anyhow::Error> {
        let mut errors = node_removal::nodes(dir, state, progress);
        hosts::remove_folder(dir, progress, &mut errors);
        errors
    }
}
