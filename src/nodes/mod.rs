//! The node layer, which lifecycle, providers and verify stand on: talking
//! to a lab's nodes over SSH (endpoints from the lab state, host keys
//! under a policy), running things on all nodes in parallel (one SSH
//! session per node, an adaptive number of nodes at once: [`pool`]) with
//! every failure reported at once ([`fail_with_all`]), and the agent
//! operations (`apply`, `check`, `pod add`) with their typed reports.

pub mod converge;
pub mod keeper;
pub mod pool;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use labctl_nodeplan::report::{self, AgentReport};
use labctl_nodeplan::NodePlan;

use crate::ssh::{Endpoint, HostKeyPolicy, Output, Session};
use crate::state::{LabDir, LabState};

/// The pod every node gets, and the DNS pod on the control plane (labs
/// where labctl runs the pods: netns and network-only vagrant/ssh labs).
pub const BUSYBOX_POD: &str = "busybox";
pub const DNS_POD: &str = "coredns";

/// Where the agent binary lives on a node. On a netns node /run/labctl-agent
/// is the node's own folder (bound from the lab's state folder), so the
/// binary goes away with the lab and never lands in the host's /usr; on a VM
/// /run is a tmpfs, and `up` after a reboot uploads it again.
pub const AGENT_PATH: &str = "/run/labctl-agent/bin/labctl-agent";

/// How long `up` keeps trying to reach a node that is starting.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(20);

/// The SSH endpoint of `node`; a word that is no node of the lab (as typed
/// after `ssh` or `exec`) is refused with exit 2, quoted, with the lab's nodes.
pub fn endpoint(dir: &LabDir, state: &LabState, node: &str) -> Result<Endpoint> {
    let n = state.nodes.get(node).ok_or_else(|| {
        crate::exit::ExitError::usage(anyhow!(
            "lab {} has no node {} (nodes: {})",
            state.name,
            crate::names::quoted(node),
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
    // A handshake that timed out means this host or the nodes are too busy:
    // the fan-out works on fewer nodes at once.
    let on_timeout = || pool::throttle().overloaded();
    let connected = match keeper::for_lab(dir) {
        Some(socket) => Session::connect_kept(&socket, &ep, policy, deadline, &on_timeout),
        None => Session::connect_observed(&ep, policy, deadline, &on_timeout),
    };
    let mut session = connected.map_err(|e| {
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

/// Runs `f` for every node, a bounded and adaptive number at a time
/// ([`pool::fan_out`] under [`pool::throttle`]), results in input order.
pub fn parallel<T: Send>(nodes: &[String], f: impl Fn(&str) -> T + Sync) -> Vec<T> {
    let items: Vec<&str> = nodes.iter().map(String::as_str).collect();
    pool::fan_out(pool::throttle(), items, f)
}

/// Stages the embedded agent where netns nodes will find it (each node's
/// own /run/labctl-agent folder in the lab's state folder), hard-linked
/// from one copy per lab, written only when it differs, with the stamp
/// that vouches for it: the nodes' converge command then finds the right
/// binary, hashes nothing, and nothing is sent.
pub fn stage_agent<'a>(
    dir: &LabDir,
    node_agent_folders: impl Iterator<Item = &'a Path>,
) -> Result<()> {
    let copy = lab_agent_copy(dir)?;
    let meta =
        std::fs::metadata(&copy).with_context(|| format!("cannot read {}", copy.display()))?;
    let copy_inode = std::os::unix::fs::MetadataExt::ino(&meta);
    // The stamp `labctl-agent converge` checks next to itself (hash, then
    // size, mtime and inode), written here once instead of each node
    // hashing the same file.
    let stamp = format!(
        "{} {} {} {copy_inode}\n",
        crate::embedded::agent_sha256(),
        std::os::unix::fs::MetadataExt::size(&meta),
        std::os::unix::fs::MetadataExt::mtime(&meta),
    );
    for folder in node_agent_folders {
        let bin = folder.join("bin");
        std::fs::create_dir_all(&bin)
            .with_context(|| format!("cannot create {}", bin.display()))?;
        let target = bin.join("labctl-agent");
        let same = std::fs::metadata(&target)
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == copy_inode);
        if !same {
            let _ = std::fs::remove_file(&target);
            std::fs::hard_link(&copy, &target)
                .with_context(|| format!("cannot link {}", target.display()))?;
        }
        let stamp_path = bin.join("labctl-agent.stamp");
        if std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
            crate::state::write_mode(&stamp_path, stamp.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}

/// The lab's copy of the agent (written when missing or not this build):
/// what netns nodes run, and what a netns lab's host runs to set up the
/// nodes' underlay (`labctl-agent underlay`).
///
/// Checked once per run and lab: `up` asks for it twice (the underlay,
/// then staging), and each check reads the whole copy.
pub fn lab_agent_copy(dir: &LabDir) -> Result<PathBuf> {
    static CHECKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let copy = dir.path.join("labctl-agent");
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if checked.contains(&copy) && copy.is_file() {
        return Ok(copy);
    }
    let bytes = crate::embedded::agent_bytes();
    if std::fs::read(&copy).map(|b| b != bytes).unwrap_or(true) {
        crate::state::write_mode(&copy, bytes, 0o755)?;
    }
    checked.push(copy.clone());
    Ok(copy)
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

/// Runs an agent command with the node's plan on stdin and decodes its
/// report (a `T`: version and command checked). A non-zero exit is an
/// error naming the node and the command, with the report's errors or
/// stderr.
pub fn agent<T: AgentReport>(session: &Session, plan: &NodePlan, args: &[&str]) -> Result<T> {
    let out = agent_run::<T>(session, plan, args)?;
    Ok(report::decode(&plan.node, &out.stdout_text())?)
}

/// Runs the agent's `check` with the node's plan: every difference between
/// the plan and the node. `check` exits 1 when there are some, still
/// printing its report; any other failure is an error naming the node.
pub fn check(session: &Session, plan: &NodePlan) -> Result<report::CheckReport> {
    let out = session.run(&[AGENT_PATH, "check"], Some(plan.to_json().as_bytes()))?;
    if out.status != 0 && out.status != 1 {
        return Err(anyhow!(
            "`labctl-agent check` on node {} failed with exit status {}: {}",
            plan.node,
            out.status,
            out.stderr_text().trim()
        ));
    }
    Ok(report::decode(&plan.node, &out.stdout_text())?)
}

/// Runs an agent command like [`agent`] but reads its report only when it
/// fails: for `teardown`, which must work with whatever agent a node has.
pub fn agent_run<T: AgentReport>(
    session: &Session,
    plan: &NodePlan,
    args: &[&str],
) -> Result<Output> {
    let mut argv = vec![AGENT_PATH];
    argv.extend_from_slice(args);
    let out = session.run(&argv, Some(plan.to_json().as_bytes()))?;
    if out.success() {
        return Ok(out);
    }
    let errors = report::decode::<T>(&plan.node, &out.stdout_text())
        .ok()
        .map(|r| r.errors().join("; "))
        .filter(|s| !s.is_empty());
    let stderr = out.stderr_text();
    let detail = errors.unwrap_or_else(|| stderr.trim().to_string());
    Err(anyhow!(
        "`labctl-agent {}` on node {} failed with exit status {}: {detail}",
        args.join(" "),
        plan.node,
        out.status
    ))
}

/// One error, or all of them in one message.
pub fn fail_with_all(mut errors: Vec<anyhow::Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            if let Some(i) = errors
                .iter()
                .position(|e| e.is::<crate::ui::progress::Interrupted>())
            {
                return Err(errors.remove(i));
            }
            let all: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            let error = anyhow!("{n} nodes failed:\n  {}", all.join("\n  "));
            // Nodes lacking a tool: still an environment error (exit 3).
            let environment = errors
                .iter()
                .any(|e| crate::exit::exit_code_for(e) == crate::exit::ENVIRONMENT);
            Err(if environment {
                crate::exit::ExitError::environment(error)
            } else {
                error
            })
        }
    }
}
