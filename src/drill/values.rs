//! The lab values a drill's commands and hints are written with, taken
//! from the node's saved plan (typed addresses, MACs and names the plan
//! validated), and the template filling. Pure: no I/O.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use labctl_nodeplan::NodePlan;

/// `{name}` → value.
pub type Values = BTreeMap<&'static str, String>;

/// An address no VTEP of the lab has: what a VM's NAT NIC usually holds
/// (VirtualBox's 10.0.2.15), the address a wrong `--iface` picks.
const NAT_IP: &str = "10.0.2.15";
/// A locally administered MAC no node of the lab has (plan MACs are
/// derived from node names and never end in ff:ff:ff here).
const STALE_MAC: &str = "02:00:5e:ff:ff:ff";

/// The values for a drill on `plan`'s node against its first peer (or
/// `peer` when given), with labctl's busybox pod of the lab `lab`.
pub fn values(lab: &str, plan: &NodePlan, peer: Option<&str>) -> Result<Values> {
    let p = match peer {
        Some(name) => plan.peers.iter().find(|p| p.node == name),
        None => plan.peers.first(),
    }
    .ok_or_else(|| {
        anyhow!(
            "node {} has no peer{} in its plan: drills need a lab of two nodes or more",
            plan.node,
            peer.map(|n| format!(" {n}")).unwrap_or_default()
        )
    })?;
    let vxlan = plan.vxlan.as_ref().ok_or_else(|| {
        anyhow!(
            "node {} uses flannel's {} backend: the drills break and check the vxlan data plane \
             (flannel.1, its neighbour and FDB entries); drill on a lab with `backend: {{type: vxlan}}`",
            plan.node,
            plan.backend
        )
    })?;
    let subnet_env = plan
        .files
        .iter()
        .find(|f| f.path.ends_with("/subnet.env"))
        .ok_or_else(|| anyhow!("node {}'s plan has no subnet.env", plan.node))?;
    let subnet_line = subnet_env
        .contents
        .lines()
        .find(|l| l.starts_with("FLANNEL_SUBNET="))
        .ok_or_else(|| anyhow!("node {}'s subnet.env has no FLANNEL_SUBNET", plan.node))?;
    let peer_gateway = std::net::Ipv4Addr::from(u32::from(p.subnet.network()).wrapping_add(1));
    // The last host of the node's own subnet: on the pod bridge, never given
    // to a pod, so a resolver there answers nobody.
    let nowhere = std::net::Ipv4Addr::from(u32::from(plan.subnet.broadcast()).wrapping_sub(1));
    let pod_ns = format!("{lab}-{}-busybox", plan.node);
    let mut v = Values::new();
    v.insert("node", plan.node.clone());
    v.insert("node_ip", plan.underlay_ip.to_string());
    v.insert("peer", p.node.clone());
    v.insert("peer_ip", p.underlay_ip.to_string());
    v.insert("peer_subnet", p.subnet.to_string());
    v.insert("peer_net", p.subnet.network().to_string());
    v.insert("peer_mac", p.vtep_mac.to_string());
    v.insert("stale_mac", STALE_MAC.to_string());
    v.insert("nat_ip", NAT_IP.to_string());
    v.insert("vxlan", vxlan.name.clone());
    v.insert("port", vxlan.port.to_string());
    v.insert("pod_mtu", vxlan.mtu.to_string());
    v.insert("underlay_mtu", plan.underlay_mtu.to_string());
    v.insert("bridge", plan.bridge.name.clone());
    v.insert("dns_service", plan.dns_service_ip.to_string());
    v.insert("nowhere", nowhere.to_string());
    v.insert("resolv_conf", format!("/etc/netns/{pod_ns}/resolv.conf"));
    v.insert("pod_ns", pod_ns);
    v.insert("subnet_env", subnet_env.path.clone());
    v.insert("subnet_line", subnet_line.to_string());
    v.insert(
        "wrong_subnet_line",
        format!("FLANNEL_SUBNET={peer_gateway}/{}", p.subnet.prefix_len()),
    );
    Ok(v)
}

/// `template` with every `{name}` replaced; an unknown name is an error
/// (a drill table bug, caught by the unit tests).
pub fn fill(template: &str, values: &Values) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| anyhow!("unclosed {{ in drill template {template:?}"))?;
        let name = &after[..close];
        let value = values
            .get(name)
            .ok_or_else(|| anyhow!("drill template {template:?} uses unknown value {{{name}}}"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Each word of `argv` filled.
pub fn fill_argv(argv: &[&str], values: &Values) -> Result<Vec<String>> {
    argv.iter().map(|w| fill(w, values)).collect()
}
