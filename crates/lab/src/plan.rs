//! The pure network plan: one `NodePlan` per node, from a validated lab.
//! No randomness, no clock, no I/O: same lab, same plans, byte for byte.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use labctl_nodeplan::{BridgePlan, MacAddr, NodePlan, PeerPlan, VxlanPlan, PLAN_SCHEMA};

use crate::model::Backend;

use crate::flannel;
use crate::model::{Lab, ProviderType};

/// Where the agent keeps its own state on a node.
pub const STATE_DIR: &str = "/run/labctl-agent";

/// One plan per node, in the lab file's node order. Node i gets the i-th
/// `subnetLen` subnet of the pod network. Same lab, same plans, byte for
/// byte.
///
/// A lab from [`crate::parse`] always has enough subnets; a hand-built lab
/// with too few gets plans for the nodes that fit only.
pub fn plan(lab: &Lab) -> Vec<NodePlan> {
    let subnets: Vec<Ipv4Net> = match lab.network.pod_network.subnets(lab.network.subnet_len) {
        Ok(all) => all.take(lab.nodes.len()).collect(),
        Err(_) => Vec::new(),
    };
    build(lab, &subnets)
}

/// Like [`plan`], but with each node's pod subnet given (kubeadm labs: the
/// podCIDR the cluster assigned, read back from the API), keyed by node
/// name.
///
/// Fails, naming the node, when a node has no subnet in the map, a subnet
/// lies outside the pod network, or two nodes' subnets overlap.
pub fn plan_with_subnets(
    lab: &Lab,
    subnets: &BTreeMap<String, Ipv4Net>,
) -> Result<Vec<NodePlan>, String> {
    let mut ordered: Vec<Ipv4Net> = Vec::with_capacity(lab.nodes.len());
    for node in &lab.nodes {
        let subnet = *subnets
            .get(&node.name)
            .ok_or_else(|| format!("node {} has no pod subnet assigned", node.name))?;
        let pod = lab.network.pod_network;
        if !pod.contains(&subnet) {
            return Err(format!(
                "node {}'s pod subnet {subnet} is outside the pod network {pod}",
                node.name
            ));
        }
        if let Some((j, other)) = ordered
            .iter()
            .enumerate()
            .find(|(_, o)| o.contains(&subnet.network()) || subnet.contains(&o.network()))
        {
            return Err(format!(
                "node {}'s pod subnet {subnet} overlaps node {}'s {other}",
                node.name, lab.nodes[j].name
            ));
        }
        ordered.push(subnet);
    }
    Ok(build(lab, &ordered))
}

/// The VTEP MAC of the node owning `subnet`: `0e:fa:` and the four bytes of
/// the subnet's network address (10.244.1.0/24 → 0e:fa:0a:f4:01:00). Stable
/// across re-creation, distinct for distinct subnets, unicast and locally
/// administered (0x0e: I/G bit clear, U/L bit set).
pub fn vtep_mac(subnet: Ipv4Net) -> MacAddr {
    let [a, b, c, d] = subnet.network().octets();
    MacAddr([0x0e, 0xfa, a, b, c, d])
}

fn build(lab: &Lab, subnets: &[Ipv4Net]) -> Vec<NodePlan> {
    let net = &lab.network;
    // The pod MTU: VXLAN's 50 bytes less than the underlay, host-gw's none.
    let mtu = net.underlay_mtu.saturating_sub(net.backend.overhead());
    let placed: Vec<_> = lab.nodes.iter().zip(subnets.iter().copied()).collect();
    placed
        .iter()
        .enumerate()
        .map(|(i, &(node, subnet))| NodePlan {
            schema: PLAN_SCHEMA,
            lab: lab.name.clone(),
            node: node.name.clone(),
            underlay_ip: node.ip,
            underlay_mtu: net.underlay_mtu,
            network: net.pod_network,
            subnet,
            backend: match net.backend {
                Backend::Vxlan { .. } => labctl_nodeplan::Backend::Vxlan,
                Backend::HostGw => labctl_nodeplan::Backend::HostGw,
            },
            vxlan: match net.backend {
                Backend::Vxlan { vni, port } => Some(VxlanPlan {
                    name: format!("flannel.{vni}"),
                    vni,
                    port,
                    mtu,
                    mac: vtep_mac(subnet),
                    // A /32 is always a valid prefix.
                    address: Ipv4Net::new(subnet.network(), 32).unwrap_or(subnet),
                }),
                Backend::HostGw => None,
            },
            bridge: BridgePlan {
                name: flannel::BRIDGE_NAME.to_string(),
                address: flannel::gateway(subnet),
                mtu,
            },
            peers: placed
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &(peer, peer_subnet))| PeerPlan {
                    node: peer.name.clone(),
                    underlay_ip: peer.ip,
                    subnet: peer_subnet,
                    vtep_mac: vtep_mac(peer_subnet),
                })
                .collect(),
            ip_masq: net.ip_masq,
            dns_service_ip: lab.dns_service_ip(),
            api_service_ip: lab.api_service_ip(),
            dns_domain: net.dns_domain.clone(),
            iptables: flannel::iptables(net.pod_network, subnet, net.ip_masq),
            files: vec![
                flannel::subnet_env(net.pod_network, subnet, mtu, net.ip_masq),
                flannel::cni_conflist(net.pod_network, subnet, mtu),
            ],
            state_dir: STATE_DIR.to_string(),
            // A netns node shares this host's kernel: loading br_netfilter
            // there would change every bridge on the host.
            bridge_netfilter: lab.provider.kind != ProviderType::Netns,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtep_mac_spells_the_subnet() {
        let mac = vtep_mac("10.244.1.0/24".parse().unwrap());
        assert_eq!(mac.to_string(), "0e:fa:0a:f4:01:00");
        assert!(mac.is_local_unicast());
    }
}
