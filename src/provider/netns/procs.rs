//! Stopping the processes a netns lab started (sshd, dnsmasq) and whatever
//! else still runs inside its namespaces (a learner's command left behind),
//! so that deleting a namespace really frees it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::state::TrackedProcess;

/// Stops a tracked process: SIGTERM, then SIGKILL after 2 s. Does nothing
/// (Ok(false)) when its pid is gone or now runs something else.
pub fn stop_tracked(process: &TrackedProcess) -> Result<bool> {
    if !process.is_running() {
        reap(process.pid);
        return Ok(false);
    }
    stop_pid(process.pid)?;
    Ok(true)
}

/// SIGTERM, wait up to 2 s, SIGKILL, wait up to 2 s.
fn stop_pid(pid: u32) -> Result<()> {
    match stop_pids(&[pid]).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops many processes at once: SIGTERM to all, wait up to 2 s for all,
/// SIGKILL to what is left, wait up to 2 s. A lab of a thousand nodes
/// then waits seconds, not a thousand times. Returns an error per pid that
/// could not be stopped.
pub fn stop_pids(pids: &[u32]) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    let mut left: Vec<u32> = pids.to_vec();
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")] {
        left.retain(|&pid| {
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                errors.push(anyhow!("pid {pid} is out of range"));
                return false;
            };
            // SAFETY: kill(2) on a pid the caller found running a lab process.
            if unsafe { libc::kill(raw, signal) } == 0 {
                return true;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                errors.push(anyhow!("cannot send {name} to pid {pid}: {err}"));
            }
            false
        });
        let until = Instant::now() + Duration::from_secs(2);
        while !left.is_empty() && Instant::now() < until {
            left.retain(|&pid| {
                reap(pid);
                alive(pid)
            });
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if left.is_empty() {
            return errors;
        }
    }
    errors.extend(
        left.iter()
            .map(|pid| anyhow!("pid {pid} is still running after SIGKILL")),
    );
    errors
}

/// The processes in each of the named network namespaces (under
/// /run/netns), found with one pass over /proc: a process is in a
/// namespace when its /proc/PID/ns/net is the same file. Namespaces that
/// do not exist get no entry.
pub fn pids_in_namespaces(names: &[String]) -> BTreeMap<String, Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let mut by_inode: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for name in names {
        if let Ok(m) = std::fs::metadata(format!("{}/{name}", super::launch::NETNS_DIR)) {
            by_inode.insert((m.dev(), m.ino()), name.clone());
        }
    }
    let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    if by_inode.is_empty() {
        return found;
    }
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if let Some(name) = by_inode.get(&(m.dev(), m.ino())) {
            found.entry(name.clone()).or_default().push(pid);
        }
    }
    found
}

/// Collects the exit status of a child of ours (a process this labctl
/// started earlier in the same run), so it does not linger as a zombie.
fn reap(pid: u32) {
    if let Ok(raw) = libc::pid_t::try_from(pid) {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on a pid; harmless if not our child.
        unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) };
    }
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Running processes named `program` (as /proc shows the name) whose
/// command line contains `needle`, oldest first. A labctl killed between
/// starting a process and recording it leaves one of these: `up` adopts or
/// stops it instead of starting a second that cannot bind its address.
pub fn unrecorded(program: &str, needle: &str) -> Vec<TrackedProcess> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == program)
        })
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .map(|pid| TrackedProcess {
            pid,
            cmdline_contains: needle.to_string(),
        })
        .filter(TrackedProcess::is_running)
        .collect()
}
