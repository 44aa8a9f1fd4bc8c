//! Talking to a lab's nodes over SSH: endpoints from the lab state, running
//! things on all nodes in parallel (one thread and one SSH session per
//! node), and the agent operations (`apply`, `check`, `pod add`).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use labctl_nodeplan::NodePlan;
use serde_json::Value;

use crate::ssh::{Endpoint, HostKeyPolicy, Session};
use crate::state::{LabDir, LabState};

/// Where the agent binary lives on a node. On a netns node /run/labctl-agent
/// is the node's own folder (bound from the lab's state folder), so the
/// binary goes away with the lab and never lands in the host's /usr; on a VM
/// /run is a tmpfs, and `up` after a reboot uploads it again.
pub const AGENT_PATH: &str = "/run/labctl-agent/bin/labctl-agent";

/// How long `up` keeps trying to reach a node that is starting.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(20);

/// The SSH endpoint of `node`.
pub fn endpoint(dir: &LabDir, state: &LabState, node: &str) -> Result<Endpoint> {
    let n = state.nodes.get(node).ok_or_else(|| {
        crate::exit::ExitError::usage(anyhow!(
            "lab {} has no node {node} (nodes: {})",
            state.name,
            state.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    Ok(n.endpoint(node, dir))
}

/// Connects to `node` as root (through `sudo -n` when its SSH user is not
/// root), its host key checked under `policy` (only `up` reaching a
/// machine for the first time may pin: everything else passes
/// [`HostKeyPolicy::RequireKnown`]), adding the tail of its sshd log
/// (netns) to the error.
pub fn connect(
    dir: &LabDir,
    state: &LabState,
    node: &str,
    policy: &HostKeyPolicy,
    deadline: Duration,
) -> Result<Session> {
    let ep = endpoint(dir, state, node)?;
    let mut session = Session::connect(&ep, policy, deadline).map_err(|e| {
        let log = dir.logs().join(format!("sshd-{node}.log"));
        let tail = std::fs::read_to_string(&log)
            .ok()
            .map(|t| {
                t.lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .filter(|t| !t.trim().is_empty());
        match tail {
            Some(t) => anyhow::Error::new(e).context(format!("sshd log {}: {t}", log.display())),
            None => anyhow::Error::new(e),
        }
    })?;
    // Everything labctl does on a node needs root (sudo -n for a VM's or
    // cloud image's user).
    session.run_as_root();
    Ok(session)
}

/// Runs `f` for every node at once (one thread each), results in input
/// order.
pub fn parallel<T: Send>(nodes: &[String], f: impl Fn(&str) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes.iter().map(|n| scope.spawn(|| f(n))).collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Stages the embedded agent where a netns node will find it (its own
/// /run/labctl-agent folder in the lab's state folder), hard-linked from
/// one copy per lab: `ensure_file` then finds the right binary and sends
/// nothing.
pub fn stage_agent(dir: &LabDir, node_agent_folder: &Path) -> Result<()> {
    let copy = dir.path.join("labctl-agent");
    let bytes = crate::embedded::agent_bytes();
    if std::fs::read(&copy).map(|b| b != bytes).unwrap_or(true) {
        crate::state::write_mode(&copy, bytes, 0o755)?;
    }
    let bin = node_agent_folder.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let target = bin.join("labctl-agent");
    let same = match (std::fs::metadata(&copy), std::fs::metadata(&target)) {
        (Ok(a), Ok(b)) => {
            std::os::unix::fs::MetadataExt::ino(&a) == std::os::unix::fs::MetadataExt::ino(&b)
        }
        _ => false,
    };
    if !same {
        let _ = std::fs::remove_file(&target);
        std::fs::hard_link(&copy, &target)
            .with_context(|| format!("cannot link {}", target.display()))?;
    }
    Ok(())
}

/// Creates the agent's folder. /run is mounted noexec on many systems
/// (initramfs-tools mounts it so on Debian and Ubuntu): the folder then gets
/// its own small tmpfs that allows executing the agent; teardown unmounts it.
const AGENT_FOLDER: &str = r#"mkdir -p /run/labctl-agent/bin
if ! grep -qs ' /run/labctl-agent/bin ' /proc/mounts &&
  findmnt -no OPTIONS -T /run/labctl-agent/bin | grep -qw noexec; then
  mount -t tmpfs -o mode=0755,size=64m labctl-agent /run/labctl-agent/bin
fi"#;

/// Uploads the agent unless the node has this exact binary. Returns true
/// when it sent it.
pub fn ensure_agent(session: &Session) -> Result<bool> {
    session.run_ok(&["sh", "-c", AGENT_FOLDER], None)?;
    Ok(session.ensure_file(
        crate::embedded::agent_bytes(),
        crate::embedded::agent_sha256(),
        AGENT_PATH,
        0o755,
    )?)
}

/// Runs an agent command with the node's plan on stdin and returns its JSON
/// report. A non-zero exit is an error naming the command, with the
/// report's errors and stderr.
pub fn agent(session: &Session, plan: &NodePlan, args: &[&str]) -> Result<Value> {
    let mut argv = vec![AGENT_PATH];
    argv.extend_from_slice(args);
    let out = session.run(&argv, Some(plan.to_json().as_bytes()))?;
    let report: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if out.success() {
        return report
            .ok_or_else(|| anyhow!("`labctl-agent {}` printed no JSON report", args.join(" ")));
    }
    let errors = report
        .as_ref()
        .and_then(|r| r.get("errors"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty());
    let stderr = out.stderr_text();
    let detail = errors.unwrap_or_else(|| stderr.trim().to_string());
    Err(anyhow!(
        "`labctl-agent {}` failed with exit status {}: {detail}",
        args.join(" "),
        out.status
    ))
}

/// Objects an `apply` report says it created, updated or removed.
pub fn changes(report: &Value) -> u64 {
    ["created", "updated", "removed"]
        .iter()
        .filter_map(|k| report.get(*k).and_then(Value::as_u64))
        .sum()
}

/// The pod's IPv4 address from a `pod add` report: the first string value
/// (searched depth-first) that is an address or CIDR inside `subnet`.
pub fn pod_ip(report: &Value, subnet: ipnet::Ipv4Net) -> Option<Ipv4Addr> {
    match report {
        Value::String(s) => {
            let addr = s.split('/').next()?.parse::<Ipv4Addr>().ok()?;
            (subnet.contains(&addr)
                && addr != subnet.network()
                && Some(addr) != subnet.hosts().next())
            .then_some(addr)
        }
        Value::Array(items) => items.iter().find_map(|v| pod_ip(v, subnet)),
        Value::Object(map) => {
            // Prefer explicit address keys, then anything else.
            let preferred = ["ip", "address", "podIP", "podIp"];
            preferred
                .iter()
                .filter_map(|k| map.get(*k))
                .chain(map.values())
                .find_map(|v| pod_ip(v, subnet))
        }
        _ => None,
    }
}

/// The nat chain that makes the DNS service IP work on a node, the way
/// kube-proxy programs a ClusterIP, in `iptables -S` form.
pub const SERVICES_CHAIN: &str = "LABCTL-SERVICES";

fn services_rules(dns_service: Ipv4Addr, dns_pod: Ipv4Addr) -> Vec<String> {
    ["udp", "tcp"]
        .iter()
        .map(|proto| {
            format!(
                "-A {SERVICES_CHAIN} -d {dns_service}/32 -p {proto} -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m {proto} --dport 53 -j DNAT --to-destination {dns_pod}:53"
            )
        })
        .collect()
}

const SHOW_SERVICES: &str = "iptables -w -t nat -S LABCTL-SERVICES 2>/dev/null; echo ---; \
     iptables -w -t nat -S PREROUTING; echo ---; iptables -w -t nat -S OUTPUT";

const APPLY_SERVICES: &str = "set -e; iptables-restore -w --noflush; \
     for c in PREROUTING OUTPUT; do \
       iptables -w -t nat -C $c -j LABCTL-SERVICES 2>/dev/null || iptables -w -t nat -A $c -j LABCTL-SERVICES; \
     done";

/// Makes the node's LABCTL-SERVICES chain DNAT the DNS service IP (udp and
/// tcp 53) to the DNS pod. Returns true when it changed something.
pub fn ensure_services(
    session: &Session,
    dns_service: Ipv4Addr,
    dns_pod: Ipv4Addr,
) -> Result<bool> {
    let rules = services_rules(dns_service, dns_pod);
    let shown = session.run_shell(SHOW_SERVICES)?.stdout_text();
    let mut parts = shown.split("---\n");
    let chain: Vec<&str> = parts
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with("-A "))
        .collect();
    let jump = format!("-j {SERVICES_CHAIN}");
    let jumps_ok = parts.all(|p| p.lines().any(|l| l.ends_with(&jump)));
    if jumps_ok && chain == rules.iter().map(String::as_str).collect::<Vec<_>>() {
        return Ok(false);
    }
    let payload = format!(
        "*nat\n:{SERVICES_CHAIN} - [0:0]\n{}\nCOMMIT\n",
        rules.join("\n")
    );
    session.run_ok(&["sh", "-c", APPLY_SERVICES], Some(payload.as_bytes()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ip_is_found_in_reports() {
        let subnet: ipnet::Ipv4Net = "10.244.1.0/24".parse().unwrap();
        let r = serde_json::json!({"node": "w1", "pod": {"name": "busybox", "ip": "10.244.1.2/24", "gateway": "10.244.1.1"}});
        assert_eq!(pod_ip(&r, subnet), Some("10.244.1.2".parse().unwrap()));
        let r = serde_json::json!({"gateway": "10.244.1.1", "address": "10.244.1.7"});
        assert_eq!(pod_ip(&r, subnet), Some("10.244.1.7".parse().unwrap()));
        assert_eq!(
            pod_ip(&serde_json::json!({"x": "192.168.56.10"}), subnet),
            None
        );
    }

    #[test]
    fn change_count_sums_report_counters() {
        let r = serde_json::json!({"created": 2, "updated": 1, "removed": 0, "unchanged": 9});
        assert_eq!(changes(&r), 3);
    }
}
