//! Removing an ssh lab from its machines: on every node, only what labctl
//! put there — the DNS server (control plane), the LABCTL-SERVICES chain,
//! the agent's data plane and pods (`labctl-agent teardown` with the plan
//! the node was built from), the kubeadm cluster (`kubeadm reset -f`) for
//! kubeadm labs, the agent and labctl's files. Nothing else on the hosts
//! is touched.

use std::time::Duration;

use anyhow::{Context, Result};
use labctl_nodeplan::NodePlan;

use super::dns;
use crate::kubeadm::steps::REMOTE_DIR;
use crate::lifecycle::nodes;
use crate::provider::progress::Progress;
use crate::ssh::Session;
use crate::state::{LabDir, LabState};

/// Removes the jumps to LABCTL-SERVICES and the chain, if present.
const REMOVE_SERVICES: &str = r#"for c in PREROUTING OUTPUT; do
  while iptables -w -t nat -D "$c" -j LABCTL-SERVICES 2>/dev/null; do :; done
done
if iptables -w -t nat -S LABCTL-SERVICES >/dev/null 2>&1; then
  iptables -w -t nat -F LABCTL-SERVICES && iptables -w -t nat -X LABCTL-SERVICES
fi"#;

/// Removes the agent (unmounting its exec tmpfs, see `ensure_agent`) and
/// the DNS server's files, then the agent's folder when empty (it may be a
/// mount point that stays).
const REMOVE_FILES: &str = r#"umount /run/labctl-agent/bin 2>/dev/null
rm -rf /run/labctl-agent/bin /run/labctl-agent/dnsmasq.conf \
  /run/labctl-agent/dnsmasq.pid /run/labctl-agent/dnsmasq.log /run/labctl-agent/dnsmasq.log.start
rmdir /run/labctl-agent 2>/dev/null || true"#;

/// The plan a node was last built from (kept by `up` in the lab folder).
pub fn saved_plan(dir: &LabDir, node: &str) -> Result<NodePlan> {
    let path = dir.node_dir(node).join("plan.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read node {node}'s plan {}", path.display()))?;
    NodePlan::from_json(&text)
        .map_err(|e| anyhow::anyhow!("node {node}'s plan {} is invalid: {e}", path.display()))
}

/// `labctl-agent teardown`. The agent removes its state folder last; when
/// that folder is a mount point (a test host, a node whose /run/labctl-agent
/// is bound from elsewhere) it empties it and reports it busy: that one
/// error is not a failure.
fn agent_teardown(session: &Session, plan: &NodePlan) -> Result<()> {
    let argv = [nodes::AGENT_PATH, "teardown"];
    let out = session.run(&argv, Some(plan.to_json().as_bytes()))?;
    if out.success() {
        return Ok(());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let busy_state_dir = |e: &&str| e.contains(labctl_lab::STATE_DIR) && e.contains("busy");
    if !errors.is_empty() && errors.iter().all(busy_state_dir) {
        return Ok(());
    }
    let detail = if errors.is_empty() {
        out.stderr_text().trim().to_string()
    } else {
        errors.join("; ")
    };
    anyhow::bail!(
        "`labctl-agent teardown` on node {} failed with exit status {}: {detail}",
        session.endpoint().node,
        out.status
    )
}

/// Tears every node of the lab down, in parallel; every error is returned.
pub fn nodes(dir: &LabDir, state: &LabState, progress: &Progress) -> Vec<anyhow::Error> {
    let names: Vec<String> = state.nodes.keys().cloned().collect();
    nodes::parallel(&names, |name| {
        progress.step(Some(name), "Removing the lab from the node", || {
            node(dir, state, name)
        })
    })
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Tears one node down.
pub fn node(dir: &LabDir, state: &LabState, name: &str) -> Result<()> {
    let session = nodes::connect(dir, state, name, Duration::from_secs(10))?;
    dns::stop(&session)?;
    session.run_ok(&["sh", "-c", REMOVE_SERVICES], None)?;
    let has_agent = session
        .run(&["test", "-x", nodes::AGENT_PATH], None)?
        .success();
    if has_agent {
        agent_teardown(&session, &saved_plan(dir, name)?)?;
    }
    if state.kubernetes {
        let reset = session.run(&["kubeadm", "reset", "-f"], None)?;
        // 127: kubeadm was never installed (the lab failed before).
        if !reset.success() && reset.status != 127 {
            anyhow::bail!(
                "`kubeadm reset -f` on node {name} failed with exit status {}: {}",
                reset.status,
                reset.stderr_text().trim()
            );
        }
        session.run_ok(&["rm", "-rf", REMOTE_DIR], None)?;
    }
    session.run_ok(&["sh", "-c", REMOVE_FILES], None)?;
    Ok(())
}
