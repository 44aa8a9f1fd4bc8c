//! Reading and sanity-checking the plan. The plan is computed by labctl and
//! trusted for policy; these checks only catch what would make the agent
//! misbehave (names the kernel rejects, text that would break an
//! iptables-restore payload, relative paths).

use std::io::Read;

use labctl_nodeplan::{ChainPlan, NodePlan};

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
        _ => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                AgentError::Input(format!(
                    "cannot read the plan from stdin: {}",
                    crate::error::describe_io(&e)
                ))
            })?;
            s
        }
    };
    let plan = NodePlan::from_json(&text).map_err(AgentError::Input)?;
    validate(&plan)?;
    Ok(plan)
}

fn bad(msg: String) -> AgentError {
    AgentError::Input(format!("invalid plan: {msg}"))
}

fn check_ifname(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\t', '\n', ':']) {
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

/// Checks what the agent relies on.
pub fn validate(plan: &NodePlan) -> Result<()> {
    check_label("lab name", &plan.lab)?;
    check_label("node name", &plan.node)?;
    check_ifname("vxlan device name", &plan.vxlan.name)?;
    check_ifname("bridge name", &plan.bridge.name)?;
    if plan.vxlan.vni == 0 || plan.vxlan.vni > 0x00ff_ffff {
        return Err(bad(format!(
            "VNI {} is outside 1..16777215",
            plan.vxlan.vni
        )));
    }
    if plan.vxlan.mtu < 68 || plan.bridge.mtu < 68 {
        return Err(bad("MTUs must be at least 68".into()));
    }
    if !plan.vxlan.mac.is_local_unicast() {
        return Err(bad(format!(
            "VTEP MAC {} must be unicast and locally administered",
            plan.vxlan.mac
        )));
    }
    if !plan.subnet.contains(&plan.bridge.address.addr())
        || plan.bridge.address.prefix_len() != plan.subnet.prefix_len()
    {
        return Err(bad(format!(
            "bridge address {} is not a host address of subnet {}",
            plan.bridge.address, plan.subnet
        )));
    }
    let mut subnets = vec![plan.subnet];
    for p in &plan.peers {
        if subnets
            .iter()
            .any(|s| s.contains(&p.subnet.network()) || p.subnet.contains(&s.network()))
        {
            return Err(bad(format!(
                "peer {} subnet {} overlaps another node's subnet",
                p.node, p.subnet
            )));
        }
        subnets.push(p.subnet);
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
