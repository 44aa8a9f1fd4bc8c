//! Stopping the processes a netns lab started (sshd, dnsmasq) and whatever
//! else still runs inside its namespaces (a learner's command left behind),
//! so that deleting a namespace really frees it.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::hostcmd;
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
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return Err(anyhow!("pid {pid} is out of range"));
    };
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")] {
        // SAFETY: kill(2) on a pid we verified runs our process.
        if unsafe { libc::kill(raw, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(anyhow!("cannot send {name} to pid {pid}: {err}"));
        }
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            reap(pid);
            if !alive(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Err(anyhow!("pid {pid} is still running after SIGKILL"))
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

/// Stops every process running in network namespace `netns`.
pub fn stop_all_in(netns: &str) -> Result<usize> {
    let out = hostcmd::output("ip", &["netns", "pids", netns], None)?;
    if !out.status.success() {
        // The namespace does not exist (any more): nothing runs in it.
        return Ok(0);
    }
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != std::process::id())
        .collect();
    for &pid in &pids {
        stop_pid(pid).map_err(|e| e.context(format!("stopping a process in namespace {netns}")))?;
    }
    Ok(pids.len())
}
