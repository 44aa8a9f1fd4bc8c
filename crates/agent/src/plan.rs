//! Reading and sanity-checking the plan. The plan is computed by labctl and
//! trusted for policy; these checks only catch what would make the agent
//! misbehave (names the kernel rejects, text that would break an
//! iptables-restore payload, relative paths).

use std::io::Read;

use ipnet::Ipv4Net;
use labctl_nodeplan::{Backend, ChainPlan, NodePlan, VxlanPlan};

use crate::error::{AgentError, Result};

/// Reads the plan from `path`, or from stdin when `path` is None or `-`.
pub fn load(path: Option<&str>) -> Result<NodePlan> {
    let text = match path {
        Some(p) if p != "-" => std::fs::read_to_string(p).map_err(|e| {
            AgentError::Input(format!(
                "cannot read plan file {p}: {}",
                crate::error::describe_io(&e)
            ))
        })?,
        _ => read_stdin("the plan")?,
    };
    crate::timing::lap("plan read");
    let plan = NodePlan::from_json(&text).map_err(AgentError::Input)?;
    crate::timing::lap("plan parsed");
    validate(&plan)?;
    Ok(plan)
}

/// All of stdin (`what`: what it holds, for the error).
pub fn read_stdin(what: &str) -> Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| {
        AgentError::Input(format!(
            "cannot read {what} from stdin: {}",
            crate::error::describe_io(&e)
        ))
    })?;
    Ok(s)
}

fn bad(msg: String) -> AgentError {
    AgentError::Input(format!("invalid plan: {msg}"))
}

/// A name the kernel takes for a network device: 1-15 characters, no
/// `/`, `:` or whitespace.
pub fn is_ifname(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.contains(['/', ' ', '\t', '\n', ':'])
}

fn check_ifname(what: &str, name: &str) -> Result<()> {
    if !is_ifname(name) {
        return Err(bad(format!(
            "{what} {name:?} is not a valid interface name (1-15 characters, no / : or spaces)"
        )));
    }
    Ok(())
}

fn check_label(what: &str, v: &str) -> Result<()> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(bad(format!(
            "{what} {v:?} must be letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

fn check_chain(table: &str, c: &ChainPlan) -> Result<()> {
    check_label(&format!("{table} chain"), &c.chain)?;
    check_label(&format!("{table} parent chain"), &c.parent)?;
    let prefix = format!("-A {} ", c.chain);
    for r in &c.rules {
        if !r.starts_with(&prefix) || r.contains('\n') {
            return Err(bad(format!(
                "{table} rule {r:?} must be one line starting with {prefix:?}"
            )));
        }
    }
    let jump_prefix = format!("-A {} ", c.parent);
    if !c.jump.starts_with(&jump_prefix)
        || !c.jump.ends_with(&format!(" -j {}", c.chain))
        || c.jump.contains('\n')
    {
        return Err(bad(format!(
            "{table} jump {:?} must be `-A {} ... -j {}`",
            c.jump, c.parent, c.chain
        )));
    }
    Ok(())
}

/// No two subnets (this node's and its peers') overlap. Sorted by first
/// address, CIDR blocks overlap exactly when one starts before the
/// previous one ends, so this is one sort and one pass, not a comparison
/// of every pair (a 1,000-peer plan would cost half a million).
fn check_subnets_disjoint(plan: &NodePlan) -> Result<()> {
    let mut subnets: Vec<(Ipv4Net, Option<&str>)> = std::iter::once((plan.subnet, None))
        .chain(plan.peers.iter().map(|p| (p.subnet, Some(p.node.as_str()))))
        .collect();
    subnets.sort_by_key(|(s, _)| (s.network(), std::cmp::Reverse(s.prefix_len())));
    let owner = |node: Option<&str>| match node {
        Some(n) => format!("peer {n}"),
        None => format!("node {}", plan.node),
    };
    // The previous block; with no overlap so far it is also the one that
    // reaches furthest, since CIDR blocks either nest or are disjoint.
    let mut previous: Option<(Ipv4Net, Option<&str>)> = None;
    for &(s, node) in &subnets {
        if let Some((p, p_node)) = previous {
            if u32::from(s.network()) <= u32::from(p.broadcast()) {
                return Err(bad(format!(
                    "{} subnet {s} overlaps {} subnet {p}",
                    owner(node),
                    owner(p_node)
                )));
            }
        }
        previous = Some((s, node));
    }
    Ok(())
}

/// Checks the VXLAN device of a vxlan plan.
fn check_vxlan(vx: &VxlanPlan) -> Result<()> {
    check_ifname("vxlan device name", &vx.name)?;
    if vx.vni == 0 || vx.vni > 0x00ff_ffff {
        return Err(bad(format!("VNI {} is outside 1..16777215", vx.vni)));
    }
    if vx.mtu < 68 {
        return Err(bad("MTUs must be at least 68".into()));
    }
    if !vx.mac.is_local_unicast() {
        return Err(bad(format!(
            "VTEP MAC {} must be unicast and locally administered",
            vx.mac
        )));
    }
    Ok(())
}

/// Checks what the agent relies on.
pub fn validate(plan: &NodePlan) -> Result<()> {
    check_label("lab name", &plan.lab)?;
    check_label("node name", &plan.node)?;
    check_ifname("bridge name", &plan.bridge.name)?;
    match (plan.backend, &plan.vxlan) {
        (Backend::Vxlan, Some(vx)) => check_vxlan(vx)?,
        (Backend::HostGw, None) => {}
        (Backend::Vxlan, None) => {
            return Err(bad("the vxlan backend needs a `vxlan` device".into()));
        }
        (Backend::HostGw, Some(vx)) => {
            return Err(bad(format!(
                "the host-gw backend has no VXLAN device, but the plan holds {}",
                vx.name
            )));
        }
    }
    if plan.bridge.mtu < 68 {
        return Err(bad("MTUs must be at least 68".into()));
    }
    if !plan.subnet.contains(&plan.bridge.address.addr())
        || plan.bridge.address.prefix_len() != plan.subnet.prefix_len()
    {
        return Err(bad(format!(
            "bridge address {} is not a host address of subnet {}",
            plan.bridge.address, plan.subnet
        )));
    }
    check_subnets_disjoint(plan)?;
    for p in &plan.peers {
        if p.vtep_mac.0[0] & 1 != 0 {
            return Err(bad(format!(
                "peer {} VTEP MAC {} is multicast",
                p.node, p.vtep_mac
            )));
        }
    }
    if let Some(nat) = &plan.iptables.nat {
        check_chain("nat", nat)?;
    }
    check_chain("filter", &plan.iptables.filter)?;
    for f in &plan.files {
        if !f.path.starts_with('/') || f.path.ends_with('/') {
            return Err(bad(format!(
                "file path {:?} must be an absolute file path",
                f.path
            )));
        }
        if f.mode > 0o7777 {
            return Err(bad(format!(
                "file {} mode {:o} is not a permission mode",
                f.path, f.mode
            )));
        }
    }
    if !plan.state_dir.starts_with('/') || plan.state_dir.trim_end_matches('/').is_empty() {
        return Err(bad(format!(
            "state directory {:?} must be an absolute path other than /",
            plan.state_dir
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(subnet: &str, peers: &[&str]) -> NodePlan {
        let peers: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    r#"{{"node":"p{i}","underlayIp":"192.168.56.{}","subnet":"{s}","vtepMac":"0e:00:00:00:00:{:02x}"}}"#,
                    i + 20,
                    i + 1
                )
            })
            .collect();
        let json = format!(
            r#"{{"schema":1,"lab":"l","node":"n0","underlayIp":"192.168.56.10","underlayMtu":1500,
            "network":"10.244.0.0/16","subnet":"{subnet}",
            "vxlan":{{"name":"flannel.1","vni":1,"port":8472,"mtu":1450,"mac":"0e:00:00:00:00:00","address":"10.244.0.0/32"}},
            "bridge":{{"name":"cni0","address":"{gw}/24","mtu":1450}},
            "peers":[{peers}],"ipMasq":true,"dnsServiceIp":"10.96.0.10","apiServiceIp":"10.96.0.1",
            "dnsDomain":"cluster.local",
            "iptables":{{"nat":null,"filter":{{"chain":"FLANNEL-FWD","parent":"FORWARD",
              "jump":"-A FORWARD -j FLANNEL-FWD","rules":[]}}}},
            "files":[],"stateDir":"/run/x"}}"#,
            gw = subnet.replace(".0/24", ".1"),
            peers = peers.join(",")
        );
        NodePlan::from_json(&json).unwrap()
    }

    #[test]
    fn disjoint_subnets_pass_and_any_overlap_is_named() {
        let ok = plan_with(
            "10.244.0.0/24",
            &["10.244.2.0/24", "10.244.1.0/24", "10.245.0.0/24"],
        );
        assert!(validate(&ok).is_ok());
        let dup = plan_with("10.244.0.0/24", &["10.244.1.0/24", "10.244.0.0/24"]);
        let e = validate(&dup).unwrap_err().to_string();
        assert!(e.contains("overlaps") && e.contains("10.244.0.0/24"), "{e}");
        let nested = plan_with("10.244.0.0/24", &["10.244.3.0/24", "10.244.0.0/16"]);
        let e = validate(&nested).unwrap_err().to_string();
        assert!(e.contains("peer p1 subnet 10.244.0.0/16"), "{e}");
        let far = plan_with("10.244.0.0/24", &["10.0.0.0/8", "10.250.0.0/24"]);
        assert!(
            validate(&far).is_err(),
            "a wide block overlapping a later one"
        );
    }

    #[test]
    fn the_backend_and_the_vxlan_device_must_agree() {
        let vxlan = plan_with("10.244.0.0/24", &["10.244.1.0/24"]);
        assert!(validate(&vxlan).is_ok());
        let mut host_gw = vxlan.clone();
        host_gw.backend = Backend::HostGw;
        let e = validate(&host_gw).unwrap_err().to_string();
        assert!(
            e.contains("host-gw backend has no VXLAN device") && e.contains("flannel.1"),
            "{e}"
        );
        host_gw.vxlan = None;
        assert!(validate(&host_gw).is_ok());
        let mut headless = host_gw.clone();
        headless.backend = Backend::Vxlan;
        let e = validate(&headless).unwrap_err().to_string();
        assert!(e.contains("vxlan backend needs"), "{e}");
    }
}
