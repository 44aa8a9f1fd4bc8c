//! Removing an ssh lab from its machines: on every node, only what labctl
//! put there — the DNS server (control plane), the LABCTL-SERVICES and
//! LABCTL-POSTROUTING chains, the agent's data plane and pods
//! (`labctl-agent teardown` with the plan the node was built from), the
//! kubeadm cluster (`kubeadm reset -f`) for kubeadm labs, the agent and
//! labctl's files. Nothing else on the hosts is touched.

use std::time::Duration;

use anyhow::{Context, Result};
use labctl_nodeplan::report::TeardownReport;
use labctl_nodeplan::NodePlan;

use super::dns_server;
use crate::kubeadm::steps::REMOTE_DIR;
use crate::nodes;
use crate::ssh::Session;
use crate::state::{LabDir, LabState};
use crate::ui::progress::Progress;

/// Removes the jumps to LABCTL-SERVICES and LABCTL-POSTROUTING and the
/// chains, if present.
const REMOVE_SERVICES: &str = r#"for c in PREROUTING OUTPUT; do
  while iptables -w -t nat -D "$c" -j LABCTL-SERVICES 2>/dev/null; do :; done
done
while iptables -w -t nat -D POSTROUTING -j LABCTL-POSTROUTING 2>/dev/null; do :; done
for chain in LABCTL-SERVICES LABCTL-POSTROUTING; do
  if iptables -w -t nat -S "$chain" >/dev/null 2>&1; then
    iptables -w -t nat -F "$chain" && iptables -w -t nat -X "$chain"
  fi
done"#;

/// Removes the agent and the DNS server's files, unmounting first the exec
/// tmpfs `ensure_agent` mounted on the agent's `bin` folder (that one only:
/// it is the tmpfs named `labctl-agent`), then the agent's folder itself
/// unless it is a mount point someone else made (a test host's bind
/// mount), which stays, empty. Fails, naming what is left, when it cannot.
const REMOVE_FILES: &str = r#"set -e
dir=/run/labctl-agent
mounted() { grep -qs "^$1 $2 " /proc/mounts; }
if mounted labctl-agent "$dir/bin"; then umount "$dir/bin"; fi
rm -rf "$dir/bin" "$dir/dnsmasq.conf" "$dir/dnsmasq.pid" "$dir/dnsmasq.log" "$dir/dnsmasq.log.start"
if [ -d "$dir" ] && ! mounted '[^ ]*' "$dir"; then
  rmdir "$dir" || { echo "$dir still holds: $(ls -A "$dir" | tr '\n' ' ')" >&2; exit 1; }
fi"#;

/// `labctl-agent teardown`. The agent empties its state folder and leaves
/// mount points in and on it for whoever mounted them (see
/// `REMOVE_FILES`), so any error it reports is a failure.
fn agent_teardown(session: &Session, plan: &NodePlan) -> Result<()> {
    nodes::agent_run::<TeardownReport>(session, plan, &["teardown"])
        .map(drop)
        .with_context(|| {
            format!(
                "cannot remove the data plane from node {}",
                session.endpoint().node
            )
        })
}

/// Tears every node of the lab down, in parallel; every error is returned.
pub fn nodes(dir: &LabDir, state: &LabState, progress: &Progress) -> Vec<anyhow::Error> {
    let names: Vec<String> = state.nodes.keys().cloned().collect();
    nodes::parallel(&names, |name| {
        if never_reached(dir, state, name)? {
            progress.line(&format!(
                "{name}: never reached (no pinned host key), so nothing of the lab is there"
            ));
            return Ok(());
        }
        progress.step(Some(name), "Removing the lab from the node", || {
            remove_reached(dir, state, name)
        })
    })
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Whether the lab's known_hosts has no pin for `name`'s address.
fn never_reached(dir: &LabDir, state: &LabState, name: &str) -> Result<bool> {
    let Some(rec) = state.nodes.get(name) else {
        return Ok(false);
    };
    let known_hosts = dir.known_hosts();
    let pinned = crate::ssh::is_pinned(&known_hosts, &rec.ssh_host, rec.ssh_port)
        .with_context(|| format!("cannot read {}", known_hosts.display()))?;
    Ok(!pinned)
}

/// Tears one node down. A node with no pinned host key was never reached
/// (`up` pins before anything else), so labctl put nothing there: it is
/// left alone rather than trusted now.
pub fn node(dir: &LabDir, state: &LabState, name: &str) -> Result<()> {
    if never_reached(dir, state, name)? {
        return Ok(());
    }
    remove_reached(dir, state, name)
}

/// Tears down a node labctl reached (its pin already checked).
fn remove_reached(dir: &LabDir, state: &LabState, name: &str) -> Result<()> {
    let session = nodes::connect(
        dir,
        state,
        name,
        &crate::ssh::HostKeyPolicy::RequireKnown,
        Duration::from_secs(10),
    )?;
    dns_server::stop(&session)?;
    session.run_ok(&["sh", "-c", REMOVE_SERVICES], None)?;
    let has_agent = session
        .run(&["test", "-x", nodes::AGENT_PATH], None)?
        .success();
    if has_agent {
        agent_teardown(&session, &dir.saved_plan(name)?)?;
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
