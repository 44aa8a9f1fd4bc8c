//! `labctl-agent --netns POD [--seconds S] pod-exec -- PROGRAM ARGS...`:
//! runs PROGRAM inside pod namespace POD as `ip netns exec POD` would (the
//! namespace, a mount namespace of its own with the namespace's /sys and
//! the files of /etc/netns/POD bound over /etc's), bounded like
//! `timeout S`: after S seconds (15 by default) it is killed and the exit
//! status is 124. verify's in-pod commands on namespace labs (the DNS
//! lookup in every pod) ran `ip netns exec POD timeout 15 sh -c …`: two
//! dynamically linked programs more per pod and round.
//!
//! Exits with PROGRAM's status (128 + the signal when a signal ended it);
//! a bad name or an empty PROGRAM is refused (exit 2) before anything runs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{AgentError, Result};

/// `timeout`'s status for a command it stopped.
pub const EXIT_TIMED_OUT: i32 = 124;
/// The bound when none is given.
const DEFAULT_SECONDS: f64 = 15.0;
/// The longest bound a caller may ask for.
const MAX_SECONDS: f64 = 600.0;

/// Runs `argv` in pod `pod` for at most `seconds`.
pub fn run(pod: &str, seconds: Option<f64>, argv: &[String]) -> Result<i32> {
    crate::netns_links::validate(&[pod])?;
    let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
        return Err(AgentError::Input(
            "pod-exec needs a program after `--`".into(),
        ));
    };
    let seconds = seconds.unwrap_or(DEFAULT_SECONDS);
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(AgentError::Input(format!(
            "pod-exec: --seconds {seconds} is not between 0 and {MAX_SECONDS}"
        )));
    }
    crate::require_root()?;
    crate::netns::enter(pod)?;
    enter_mounts(pod)?;
    // A process group of its own, ended whole on the deadline, as
    // `timeout` does (a shell's children go with it).
    let mut child = Command::new(program)
        .args(&argv[1..])
        .process_group(0)
        .spawn()
        .map_err(|e| {
            AgentError::Failed(format!(
                "cannot run {program} in {pod}: {}",
                crate::error::describe_io(&e)
            ))
        })?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| AgentError::Failed(format!("cannot wait for {program}: {e}")))?
        {
            return Ok(status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }));
        }
        let now = Instant::now();
        if now >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
            eprintln!("labctl-agent: {program} in {pod} did not end within {seconds} s");
            return Ok(EXIT_TIMED_OUT);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// What `ip netns exec` does after entering the network namespace: a mount
/// namespace of this process's own (mounts made here stay here), the
/// namespace's own sysfs on /sys, and each file of /etc/netns/POD bound
/// over its namesake in /etc (resolv.conf: the pod's DNS).
fn enter_mounts(pod: &str) -> Result<()> {
    let failed = |what: &str, e: nix::Error| {
        AgentError::Environment(format!("pod-exec {pod}: {what}: {}", e.desc()))
    };
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| failed("cannot make a mount namespace", e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| failed("cannot make / a slave mount", e))?;
    // The node's sysfs shows the node's devices; the pod's shows its own.
    let read_only = nix::sys::statvfs::statvfs("/sys")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
        let flags = if read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        mount(Some(pod), "/sys", Some("sysfs"), flags, None::<&str>)
            .map_err(|e| failed("cannot mount the namespace's /sys", e))?;
    }
    let etc = Path::new("/etc/netns").join(pod);
    let Ok(entries) = fs::read_dir(&etc) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let target = Path::new("/etc").join(entry.file_name());
        mount(
            Some(&entry.path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| failed(&format!("cannot bind {}", entry.path().display()), e))?;
    }
    Ok(())
}
