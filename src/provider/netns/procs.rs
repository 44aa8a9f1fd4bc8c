//! Stopping the processes a netns lab started (sshd, dnsmasq) and whatever
//! else still runs inside its namespaces (a learner's command left behind),
//! so that deleting a namespace really frees it.

use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// [`stop_pids`] for one process.
fn stop_pid(pid: u32) -> Result<()> {
    match stop_pids(&[pid]).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How long the processes get between checks that they are going.
const WAIT_WINDOW: Duration = Duration::from_secs(2);
/// The longest wait for killed processes that are still exiting.
const KILLED_WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Whether to give processes another [`WAIT_WINDOW`] after one ended with
/// `now` of the `before` it started with still running, `waited` in all.
/// SIGTERM gets one window. A SIGKILLed process cannot refuse, but its exit
/// can take long: the last process of a node's mount namespace tears that
/// namespace down, on a 1,000-node lab thousands of mounts each, one
/// namespace after another. They get more windows while some exit in each,
/// up to [`KILLED_WAIT_LIMIT`].
fn keep_waiting(killed: bool, before: usize, now: usize, waited: Duration) -> bool {
    killed && now < before && waited < KILLED_WAIT_LIMIT
}

/// Stops many processes at once: SIGTERM to all, wait up to 2 s for all,
/// SIGKILL to what is left, wait while they exit ([`keep_waiting`]). A lab
/// of a thousand nodes then waits seconds, not a thousand times. Returns
/// an error per pid that could not be stopped.
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
        let started = Instant::now();
        let mut window_start = (started, left.len());
        while !left.is_empty() {
            left.retain(|&pid| {
                reap(pid);
                alive(pid)
            });
            let now = Instant::now();
            if now.duration_since(window_start.0) >= WAIT_WINDOW {
                let killed = signal == libc::SIGKILL;
                if !keep_waiting(killed, window_start.1, left.len(), now - started) {
                    break;
                }
                window_start = (now, left.len());
            }
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

/// The processes in each of the network namespaces registered at `files`
/// (/run/netns entries, a node's pod folder), found with one pass over
/// /proc: a process is in a namespace when its /proc/PID/ns/net is the
/// same file. Namespaces that do not exist get no entry.
pub fn pids_in_namespaces(files: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let mut by_inode: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    for file in files {
        if let Ok(m) = std::fs::metadata(file) {
            by_inode.insert((m.dev(), m.ino()), file.clone());
        }
    }
    let mut found: BTreeMap<PathBuf, Vec<u32>> = BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killed_processes_are_waited_for_while_they_exit() {
        let s = Duration::from_secs;
        // SIGTERM: one window, whatever happened in it.
        assert!(!keep_waiting(false, 10, 5, s(2)));
        // SIGKILL: another window while some exited in the last one...
        assert!(keep_waiting(true, 10, 5, s(2)));
        assert!(keep_waiting(true, 1000, 999, s(40)));
        // ... not when none did, nor past the limit.
        assert!(!keep_waiting(true, 10, 10, s(2)));
        assert!(!keep_waiting(true, 10, 5, s(60)));
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed() {
        // An ignored signal stays ignored across exec: sleep ignores it.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        // Let the shell install its trap before the signal comes.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let errors = stop_pids(&[child.id()]);
        assert!(errors.is_empty(), "{errors:?}");
        // stop_pids reaped it (our child): wait finds nothing left.
        assert!(!alive(child.id()));
        let _ = child.wait();
        // SIGTERM's window, then the kill: not the 30 s of its sleep.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
