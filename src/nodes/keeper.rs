//! Starting and stopping a lab's session keeper ([`crate::ssh::keeper`]).
//!
//! The first command of a process that connects to a lab's nodes starts the
//! keeper when none runs (a labctl process of its own, in a session of its
//! own so Ctrl-C in the terminal does not reach it, its messages in the
//! lab's `logs/ssh-keeper.log`); `destroy` stops it before removing
//! anything. Only the `labctl` executable starts keepers (`main` says so
//! with [`enable`]), only for a lab folder its own user owns, and never when
//! `LABCTL_KEEP_SESSIONS=0`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::state::LabDir;

/// The labctl executable that runs keepers; unset (no keeper) in tests and
/// other programs using this library.
static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();

/// Per lab socket: whether this process uses a keeper there (decided once).
static DECIDED: Mutex<Option<HashMap<PathBuf, bool>>> = Mutex::new(None);

/// How long a new keeper may take to listen before this command goes on
/// without it.
const START_LIMIT: Duration = Duration::from_secs(2);

/// Lets this process start keepers, which run `executable keep-sessions`.
pub fn enable(executable: PathBuf) {
    let _ = EXECUTABLE.set(executable);
}

/// The keeper's socket in a lab folder.
pub fn socket(dir: &LabDir) -> PathBuf {
    dir.path.join("ssh-keeper.sock")
}

/// The socket of the lab's keeper, started if needed; `None` when this
/// process connects directly (keepers disabled, a lab folder of another
/// user, a path too long for a Unix socket, the keeper did not start).
pub fn for_lab(dir: &LabDir) -> Option<PathBuf> {
    let executable = EXECUTABLE.get()?;
    let socket = socket(dir);
    let mut decided = DECIDED.lock().unwrap_or_else(|p| p.into_inner());
    let decided = decided.get_or_insert_with(HashMap::new);
    let use_it = *decided
        .entry(socket.clone())
        .or_insert_with(|| wanted(dir, &socket) && running(dir, &socket, executable));
    use_it.then_some(socket)
}

/// Stops the lab's keeper (its sessions are closed) and makes this process
/// connect directly from now on: `destroy`, before it removes anything.
pub fn stop(dir: &LabDir) {
    let socket = socket(dir);
    {
        let mut decided = DECIDED.lock().unwrap_or_else(|p| p.into_inner());
        decided
            .get_or_insert_with(HashMap::new)
            .insert(socket.clone(), false);
    }
    crate::ssh::keeper::stop(&socket);
    // A keeper that did not answer ends on its own once its socket is gone.
    if std::fs::symlink_metadata(&socket)
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
    {
        let _ = std::fs::remove_file(&socket);
    }
}

fn wanted(dir: &LabDir, socket: &Path) -> bool {
    if std::env::var_os("LABCTL_KEEP_SESSIONS").is_some_and(|v| v == "0") {
        return false;
    }
    // sun_path holds 108 bytes with the terminating NUL.
    if socket.as_os_str().len() >= 108 {
        return false;
    }
    std::fs::metadata(&dir.path).is_ok_and(|m| m.uid() == crate::process::effective_uid())
}

/// Whether a keeper listens on `socket`, starting one when none does.
fn running(dir: &LabDir, socket: &Path, executable: &Path) -> bool {
    if crate::ssh::keeper::is_listening(socket) {
        return true;
    }
    let Some(name) = dir.path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let log = std::fs::create_dir_all(dir.logs())
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.logs().join("ssh-keeper.log"))
        })
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let mut command = Command::new(executable);
    command
        .args(["keep-sessions", "--name", name])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it only detaches the child from
    // this terminal's session (Ctrl-C and hang-ups stay with labctl).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    if command.spawn().is_err() {
        return false;
    }
    let started = Instant::now();
    while started.elapsed() < START_LIMIT {
        if crate::ssh::keeper::is_listening(socket) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}
