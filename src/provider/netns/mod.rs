//! The netns provider (the embedded default): every node is a network
//! namespace on this host with its own sshd, reached over SSH exactly like a
//! VM. Needs root and iproute2, iptables, openssh-server, openssh-client,
//! busybox-static and dnsmasq-base.
//!
//! What it creates, all recorded in state.json before creation: a host
//! bridge (underlay .1), per node a namespace `<lab>-<node>` with `eth1`,
//! an sshd in that namespace plus a mount namespace with the node's own
//! /run/flannel, /etc/cni/net.d, /run/labctl-agent and /run/netns (its pods,
//! linked from the host's /run/netns: see [`pod_mounts`]), the
//! outside-world namespace `<lab>-ext` (198.18.0.1/15), and the cluster
//! DNS server.

pub mod dns_pod;
pub mod hostdirs;
pub mod launch;
pub mod mounts;
pub mod names;
pub mod neighbour_sysctls;
pub mod network;
pub mod pod_mounts;
pub mod preflight;
pub mod procs;
pub mod rcu;
pub mod removal;
pub mod sshd;

use std::collections::BTreeMap;

use anyhow::Result;
use labctl_lab::{Lab, Role};

use super::{DnsRecords, Provider};
use crate::state::{LabDir, LabState, NetnsNode, NetnsState, NodeState};
use crate::ui::progress::Progress;

/// The netns provider.
pub struct NetnsProvider;

impl Provider for NetnsProvider {
    fn kind(&self) -> &'static str {
        "netns"
    }

    fn preflight(&self, lab: &Lab, dir: &LabDir, install_deps: bool) -> Result<()> {
        if install_deps {
            preflight::install_missing_tools()?;
        }
        preflight::check_other_labs(lab)?;
        crate::doctor::preflight(lab, &dir.path, &[names::bridge(&lab.name)])
    }

    fn create(
        &self,
        lab: &Lab,
        dir: &LabDir,
        state: &mut LabState,
        progress: &Progress,
    ) -> Result<u64> {
        // A destroy killed while it had RCU expedited left it so.
        if let Err(e) = rcu::Knob::host().and_then(|k| rcu::settle(&k)) {
            progress.line(&format!("  warning: {e:#}"));
        }
        progress.step(None, "Preparing host folders and keys", || {
            hostdirs::ensure()?;
            crate::ssh::keygen::ensure_key(&dir.client_key(), &format!("labctl-{}", lab.name))?;
            Ok(())
        })?;

        // Nodes no longer in the lab file go first (their IPs may be reused),
        // and so do nodes whose IP changed (IPs follow node order, so
        // removing one node renumbers the next): those are built anew.
        let wanted: BTreeMap<&str, &labctl_lab::Node> =
            lab.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let gone: Vec<String> = state
            .nodes
            .iter()
            .filter(|(name, rec)| wanted.get(name.as_str()).is_none_or(|n| n.ip != rec.ip))
            .map(|(name, _)| name.clone())
            .collect();
        let renumbered = !gone.is_empty();
        for node in gone {
            progress.step(Some(&node), "Removing node", || {
                let mut errors = Vec::new();
                if let Some(rec) = state.netns.as_ref().and_then(|ns| ns.nodes.get(&node)) {
                    removal::remove_node(&lab.name, rec, &mut errors);
                }
                if let Some(first) = errors.into_iter().next() {
                    return Err(first);
                }
                let _ = std::fs::remove_dir_all(dir.node_dir(&node));
                state.forget_node(&node, dir)?;
                if let Some(ns) = state.netns.as_mut() {
                    ns.nodes.remove(&node);
                }
                dir.save(state)
            })?;
        }

        // Record every name before creating anything.
        let ns = state.netns.get_or_insert_with(|| NetnsState {
            bridge: names::bridge(&lab.name),
            ext_netns: names::ext_netns(&lab.name),
            ext_veth: names::ext_veth(&lab.name),
            ..Default::default()
        });
        for node in &lab.nodes {
            ns.nodes
                .entry(node.name.clone())
                .or_insert_with(|| NetnsNode {
                    netns: names::node_netns(&lab.name, &node.name),
                    host_veth: names::node_veth(&lab.name, &node.name),
                    sshd: None,
                });
            state.nodes.insert(
                node.name.clone(),
                NodeState {
                    ip: node.ip,
                    control_plane: node.role == Role::ControlPlane,
                    ssh_host: node.ip.to_string(),
                    ssh_port: 22,
                    ssh_user: "root".into(),
                    ssh_key: None,
                    pods: state
                        .nodes
                        .get(&node.name)
                        .map(|n| n.pods.clone())
                        .unwrap_or_default(),
                },
            );
        }
        dir.save(state)?;

        progress.step(None, "Generating the nodes' host key", || {
            for node in &lab.nodes {
                std::fs::create_dir_all(dir.node_dir(&node.name))?;
            }
            let (key, kind) = sshd::host_key(dir);
            crate::ssh::keygen::ensure_key_of(kind, &key, &format!("labctl-{}-nodes", lab.name))?;
            // Before "Starting node SSH servers": never trusted on first use.
            let nodes: Vec<(&str, std::net::Ipv4Addr)> =
                lab.nodes.iter().map(|n| (n.name.as_str(), n.ip)).collect();
            sshd::pin_host_keys(dir, &nodes)
        })?;

        let ns = state.netns.clone().unwrap_or_default();
        let repaired = progress.step(None, "Building the lab network", || {
            let net = network::LabNet {
                bridge: &ns.bridge,
                ext_netns: &ns.ext_netns,
                ext_veth: &ns.ext_veth,
                underlay: lab.network.underlay,
                mtu: lab.network.underlay_mtu,
                nodes: lab
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        let rec = ns.nodes.get(&n.name)?;
                        Some(network::NodeNet {
                            netns: &rec.netns,
                            host_veth: &rec.host_veth,
                            ip: n.ip,
                        })
                    })
                    .collect(),
                flush_neighbours: renumbered,
            };
            network::ensure(&net, &crate::nodes::lab_agent_copy(dir)?)
        })?;
        let repaired_count = repaired.len() as u64;
        for line in repaired {
            progress.line(&format!("  repaired {line}"));
        }
        // Big labs outgrow the kernel's shared ARP table (see neighbours).
        if let Some((original, target)) = neighbour_sysctls::plan(state, lab.nodes.len())? {
            let [a, b, c] = target;
            progress.step(
                None,
                &format!("Raising the host's ARP table limits (gc_thresh {a}/{b}/{c})"),
                || neighbour_sysctls::raise(dir, state, original, target),
            )?;
        }

        progress.step(None, "Starting node SSH servers", || {
            // Several at once (each writes its config and starts a process;
            // one after another, 200 nodes took 1.9 s), recorded together at
            // the end. An `up` killed in between leaves sshds it did not
            // record: the next one adopts them (`lab_listeners`), and
            // destroy stops every process in the lab's namespaces.
            let listeners = sshd::lab_listeners(dir);
            pod_mounts::ensure_root(dir)?;
            let template = launch::LazyTemplate::for_labs()?;
            let records = state.netns.as_ref().map(|ns| &ns.nodes);
            let jobs: Vec<_> = lab
                .nodes
                .iter()
                .filter_map(|node| {
                    let rec = records?.get(&node.name)?;
                    Some((node, rec.netns.clone(), rec.sshd.clone()))
                })
                .collect();
            let started = crate::nodes::pool::map(
                jobs,
                crate::nodes::pool::WORKERS,
                |(node, netns, running)| {
                    let started = sshd::ensure_running(
                        dir,
                        &template,
                        &node.name,
                        &netns,
                        node.ip,
                        running.as_ref(),
                        &listeners,
                    );
                    (node.name.clone(), started)
                },
                |i| {
                    let e = anyhow::anyhow!("starting node {i}'s sshd stopped early");
                    (String::new(), Err(e))
                },
            );
            let mut errors = Vec::new();
            let mut recorded = false;
            for (node, result) in started {
                match result {
                    Ok(Some(p)) => {
                        if let Some(rec) =
                            state.netns.as_mut().and_then(|ns| ns.nodes.get_mut(&node))
                        {
                            rec.sshd = Some(p);
                            recorded = true;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => errors.push(e.context(format!("node {node}"))),
                }
            }
            if recorded {
                dir.save(state)?;
            }
            crate::nodes::fail_with_all(errors)
        })?;
        Ok(repaired_count)
    }

    fn link_pods(&self, dir: &LabDir, state: &LabState) -> Result<u64> {
        pod_mounts::link_pods(dir, state)
    }

    fn serve_dns(&self, dir: &LabDir, state: &mut LabState, records: &DnsRecords) -> Result<bool> {
        let running = state.netns.as_ref().and_then(|ns| ns.dns.clone());
        let (process, changed) = dns_pod::ensure(dir, running.as_ref(), records)?;
        if let Some(ns) = state.netns.as_mut() {
            ns.dns = Some(process);
        }
        dir.save(state)?;
        Ok(changed)
    }

    fn destroy(&self, dir: &LabDir, state: &LabState, progress: &Progress) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        let knob = rcu::Knob::host();
        if let Some(ns) = &state.netns {
            let result = progress.step(None, "Removing namespaces, links and processes", || {
                // Each node's VXLAN socket costs an RCU grace period to close.
                let (errs, knob_problem) = match &knob {
                    Ok(knob) => rcu::expedited(knob, || removal::destroy_lab(state, ns)),
                    Err(_) => (removal::destroy_lab(state, ns), None),
                };
                if let Some(e) = knob_problem {
                    progress.line(&format!("  warning: {e:#}"));
                }
                let n = errs.len();
                errors.extend(errs);
                if n > 0 {
                    anyhow::bail!("{n} error(s)");
                }
                Ok(())
            });
            if let Err(e) = result {
                if errors.is_empty() {
                    errors.push(e);
                }
            }
        }
        if let Some(ns) = &state.netns {
            if let Err(e) = neighbour_sysctls::restore(&state.name, ns.neighbour_limits.as_ref()) {
                errors.push(e);
            }
        }
        // The folder stays when something could not be removed, so that
        // another `destroy` can retry from the same records.
        if errors.is_empty() {
            if let Err(e) = progress.step(None, "Removing the lab folder", || {
                removal::remove_state(dir)
            }) {
                errors.push(e);
            }
        }
        errors
    }
}
