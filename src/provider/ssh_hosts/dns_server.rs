//! The cluster DNS server of an ssh or vagrant lab (see
//! [`crate::provider::dns`]): dnsmasq started ON the control-plane node,
//! over SSH, inside the DNS pod's namespace. Its configuration, pid file
//! and log sit in the agent's folder (/run/labctl-agent), so they go away
//! with the lab and with a reboot.

use anyhow::{anyhow, Result};
use sha2::{Digest, Sha256};

use crate::nodes;
use crate::provider::dns_records::config;
use crate::provider::DnsRecords;
use crate::ssh::Session;
use crate::state::{LabDir, LabState};

pub const CONF: &str = "/run/labctl-agent/dnsmasq.conf";
pub const PID_FILE: &str = "/run/labctl-agent/dnsmasq.pid";
pub const LOG: &str = "/run/labctl-agent/dnsmasq.log";

/// Stops the dnsmasq of pid file $1 (only if that pid still runs dnsmasq)
/// and removes the pid file. Prints `stopped` when it stopped one.
const STOP: &str = r#"pid=$(cat "$1" 2>/dev/null || true)
if [ -n "$pid" ] && grep -qx dnsmasq "/proc/$pid/comm" 2>/dev/null; then
  kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  echo stopped
fi
rm -f "$1""#;

/// Starts dnsmasq in namespace $1 with config $2 and pid file $3 unless it
/// runs already. dnsmasq daemonizes (its own session, stdio closed), so
/// the SSH channel ends; startup errors are kept in $4.
const START: &str = r#"pid=$(cat "$3" 2>/dev/null || true)
if [ -n "$pid" ] && grep -qx dnsmasq "/proc/$pid/comm" 2>/dev/null; then exit 0; fi
ip netns exec "$1" dnsmasq --conf-file="$2" --pid-file="$3" </dev/null >/dev/null 2>"$4" || { cat "$4" >&2; exit 1; }
echo started"#;

/// Makes the control-plane node serve `dns`. Returns true when it started
/// (or restarted) the server.
pub fn serve(dir: &LabDir, state: &LabState, dns: &DnsRecords) -> Result<bool> {
    let cp = state
        .nodes
        .iter()
        .find(|(_, n)| n.control_plane)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| anyhow!("lab {} has no control-plane node", state.name))?;
    let session = nodes::connect(
        dir,
        state,
        &cp,
        &crate::ssh::HostKeyPolicy::RequireKnown,
        nodes::CONNECT_DEADLINE,
    )?;
    let text = config(dns, LOG);
    let sha: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if session.ensure_file(text.as_bytes(), &sha, CONF, 0o644)? {
        stop(&session)?;
    }
    let start_log = format!("{LOG}.start");
    let argv = [
        "sh",
        "-c",
        START,
        "sh",
        &dns.server_netns,
        CONF,
        PID_FILE,
        &start_log,
    ];
    let out = session.run_ok(&argv, None)?;
    Ok(out.stdout_text().contains("started"))
}

/// Stops the node's DNS server, if it runs one.
pub fn stop(session: &Session) -> Result<bool> {
    let out = session.run_ok(&["sh", "-c", STOP, "sh", PID_FILE], None)?;
    Ok(out.stdout_text().contains("stopped"))
}
