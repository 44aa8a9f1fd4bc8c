//! The keeper process: accepts labctl's connections on the lab's socket,
//! hands each a held session (or logs in for it), runs its commands, and
//! keeps the session for the next one when the connection ends cleanly.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::client::{connect_own, peer_uid};
use super::wire::{self, Reply, Request};
use crate::ssh::host_key::{self, HostKeyPolicy};
use crate::ssh::pump::{Pump, PumpError};
use crate::ssh::session::login;
use crate::ssh::{Endpoint, SshError};

/// How long the ending keeper waits for its connections' last answers.
const CLOSING_LIMIT: Duration = Duration::from_secs(2);
/// Connections served at once, a thread each: more than labctl's own
/// fan-out ever opens; past it a client logs in directly.
const MAX_CONNECTIONS: usize = 2048;

/// What identifies a node's session: the same address, user, key and
/// known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    host: String,
    port: u16,
    user: String,
    key: PathBuf,
    known_hosts: PathBuf,
}

/// A logged-in session waiting for its next connection.
struct Held {
    ssh: ssh2::Session,
    /// The host key the session was opened with.
    host_key: Vec<u8>,
}

impl Drop for Held {
    /// Says goodbye so the node's sshd logs a clean disconnect; bounded in
    /// time so a dead node cannot hold the keeper up.
    fn drop(&mut self) {
        self.ssh.set_blocking(true);
        self.ssh.set_timeout(2000);
        let _ = self
            .ssh
            .disconnect(None, "labctl's session keeper is done", None);
    }
}

struct Keeper {
    idle: Mutex<HashMap<Identity, Vec<Held>>>,
    connections: AtomicUsize,
    stopping: AtomicBool,
    /// The last request's time (the keeper's start before the first).
    last_request: Mutex<Instant>,
    /// Set once the sessions and the socket are gone.
    finished: Mutex<bool>,
    finished_changed: Condvar,
}

impl Keeper {
    fn new() -> Keeper {
        Keeper {
            idle: Mutex::default(),
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            last_request: Mutex::new(Instant::now()),
            finished: Mutex::new(false),
            finished_changed: Condvar::new(),
        }
    }
    fn sessions(&self) -> MutexGuard<'_, HashMap<Identity, Vec<Held>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn touch(&self) {
        *self.last_request.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
    fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.finished_changed.notify_all();
    }
    /// Waits (at most `limit`) for the main loop to have closed everything.
    fn wait_finished(&self, limit: Duration) {
        let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .finished_changed
            .wait_timeout_while(finished, limit, |finished| !*finished);
    }
    fn idle_for(&self) -> Duration {
        self.last_request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// Serves the socket at `socket` until it is removed or replaced, a Stop
/// request comes, or nothing was asked for `idle`. Returns at once when
/// another keeper already serves there.
pub fn serve(socket: &Path, idle: Duration) -> Result<()> {
    let Some(listener) = bind(socket)? else {
        return Ok(());
    };
    raise_open_files_limit();
    let inode = std::fs::metadata(socket)
        .with_context(|| format!("cannot read {}", socket.display()))?
        .ino();
    listener.set_nonblocking(true)?;
    let keeper = Arc::new(Keeper::new());
    loop {
        wait_readable(&listener, Duration::from_secs(1));
        loop {
            match listener.accept() {
                Ok((connection, _)) => {
                    // Past the bound the connection is closed unanswered:
                    // its client logs in directly instead.
                    if keeper.connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        continue;
                    }
                    let keeper = Arc::clone(&keeper);
                    keeper.connections.fetch_add(1, Ordering::SeqCst);
                    let socket = socket.to_path_buf();
                    std::thread::spawn(move || {
                        let _ = connection.set_nonblocking(false);
                        handle(&keeper, &connection, &socket);
                        keeper.touch();
                        keeper.connections.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("labctl session keeper: accepting a connection: {e}");
                    break;
                }
            }
        }
        let ours = std::fs::symlink_metadata(socket).is_ok_and(|m| m.ino() == inode);
        let unused = keeper.connections.load(Ordering::SeqCst) == 0 && keeper.idle_for() >= idle;
        if keeper.stopping.load(Ordering::SeqCst) || !ours || unused {
            if ours {
                let _ = std::fs::remove_file(socket);
            }
            break;
        }
        // Said goodbye to outside the lock (each bounded to 2 s).
        drop(send_keepalives(&keeper));
    }
    keeper.sessions().clear();
    keeper.finish();
    // The process ends when this returns: let the Stop reply (and any
    // other answer being written) go out first.
    let closing = Instant::now();
    while keeper.connections.load(Ordering::SeqCst) > 0 && closing.elapsed() < CLOSING_LIMIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Sends each held session's keepalive when one is due (every
/// KEEPALIVE_SECS), without blocking: the pool stays locked meanwhile. A
/// session that cannot take one (its peer is gone, or reads nothing, so
/// its send buffer is full) is taken out of the pool and returned.
fn send_keepalives(keeper: &Keeper) -> Vec<Held> {
    let mut sessions = keeper.sessions();
    let mut gone = Vec::new();
    for held in sessions.values_mut() {
        let (live, dead): (Vec<Held>, Vec<Held>) =
            std::mem::take(held).into_iter().partition(|h| {
                h.ssh.set_blocking(false);
                let sent = h.ssh.keepalive_send().is_ok();
                h.ssh.set_blocking(true);
                sent
            });
        *held = live;
        gone.extend(dead);
    }
    sessions.retain(|_, held| !held.is_empty());
    gone
}

/// A session per node is a socket per node: a 1,000-node lab needs more
/// than the usual soft limit of 1,024 open files. Raised to the hard limit.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Listens on `socket` (0600), replacing a socket nobody serves; `None`
/// when a keeper of this user already listens there.
fn bind(socket: &Path) -> Result<Option<UnixListener>> {
    if connect_own(socket).is_some() {
        return Ok(None);
    }
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(socket)
                .with_context(|| format!("cannot remove the stale {}", socket.display()))?;
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is no socket: not touching it",
            socket.display()
        ),
        Err(_) => {}
    }
    // SAFETY: umask only changes this process's file creation mask.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(socket);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(previous) };
    let listener = bound.with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket.display()))?;
    Ok(Some(listener))
}

fn wait_readable(listener: &UnixListener, limit: Duration) {
    let mut poll_fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd owned by this frame for the call's duration.
    unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
}

/// One connection: a Stop, or a session and the commands run on it.
fn handle(keeper: &Keeper, connection: &UnixStream, socket: &Path) {
    if peer_uid(connection) != Some(crate::process::effective_uid()) {
        return;
    }
    match wire::receive::<Request>(connection) {
        Ok(Some(Request::Stop)) => {
            keeper.stopping.store(true, Ordering::SeqCst);
            // Wakes the main loop, which then closes everything.
            drop(UnixStream::connect(socket));
            keeper.wait_finished(Duration::from_secs(10));
            let _ = wire::send(
                connection,
                &Reply::Stopped {
                    pid: std::process::id(),
                },
            );
        }
        Ok(Some(Request::Session {
            node,
            host,
            port,
            user,
            key,
            known_hosts,
            deadline_ms,
            during_up,
        })) => {
            let identity = Identity {
                host,
                port,
                user,
                key,
                known_hosts,
            };
            let ep = Endpoint {
                node,
                host: identity.host.clone(),
                port: identity.port,
                user: identity.user.clone(),
                key: identity.key.clone(),
                known_hosts: identity.known_hosts.clone(),
            };
            let deadline = Duration::from_millis(deadline_ms);
            if let Some(held) = session_for(keeper, connection, &identity, &ep, deadline, during_up)
            {
                run_commands(keeper, connection, identity, held);
            }
        }
        _ => {}
    }
}

/// A held session whose host key is still the pinned one, or a new login;
/// tells the client which. `None` when the login failed (the client was
/// told why).
fn session_for(
    keeper: &Keeper,
    connection: &UnixStream,
    identity: &Identity,
    ep: &Endpoint,
    deadline: Duration,
    during_up: bool,
) -> Option<Held> {
    keeper.touch();
    loop {
        let held = keeper.sessions().get_mut(identity).and_then(Vec::pop);
        let Some(held) = held else { break };
        // The pin may have changed since (the node was re-created).
        if matches!(
            host_key::check(ep, &HostKeyPolicy::RequireKnown, &held.host_key),
            Ok(None)
        ) {
            wire::send(connection, &Reply::Ready { timeouts: 0 }).ok()?;
            return Some(held);
        }
    }
    let timeouts = AtomicU32::new(0);
    let on_timeout = || {
        timeouts.fetch_add(1, Ordering::SeqCst);
    };
    let result = login(ep, &HostKeyPolicy::RequireKnown, deadline, &on_timeout);
    let timeouts = timeouts.load(Ordering::SeqCst);
    match result {
        Ok((ssh, _)) => {
            let host_key = ssh
                .host_key()
                .map(|(blob, _)| blob.to_vec())
                .unwrap_or_default();
            wire::send(connection, &Reply::Ready { timeouts }).ok()?;
            Some(Held { ssh, host_key })
        }
        Err(mut error) => {
            if let SshError::HostKeyChanged { during_up: d, .. } = &mut error {
                *d = during_up;
            }
            let _ = wire::send(connection, &Reply::Refused { error, timeouts });
            None
        }
    }
}

/// Runs the connection's commands one after another; keeps the session for
/// the next connection when this one ends between commands.
fn run_commands(keeper: &Keeper, connection: &UnixStream, identity: Identity, held: Held) {
    loop {
        let request = match wire::receive::<Request>(connection) {
            Ok(Some(request)) => request,
            // Closed between commands: the session is fine.
            Ok(None) => break,
            Err(_) => return,
        };
        let Request::Run {
            command,
            timeout_ms,
        } = request
        else {
            return;
        };
        let Ok(stdin) = wire::receive_bytes(connection) else {
            return;
        };
        keeper.touch();
        let pump = Pump {
            ssh: &held.ssh,
            timeout: timeout_ms.map(Duration::from_millis),
        };
        let reply = match pump.exchange(&command, Some(&stdin)) {
            Ok(output) => {
                let sent = wire::send(
                    connection,
                    &Reply::Done {
                        status: output.status,
                    },
                )
                .and_then(|()| wire::write_frame(connection, &output.stdout))
                .and_then(|()| wire::write_frame(connection, &output.stderr));
                if sent.is_err() {
                    return;
                }
                continue;
            }
            Err(PumpError::NotStarted(cause)) => Reply::Lost { cause },
            Err(PumpError::Broken(cause)) => Reply::Broken { cause },
        };
        // The session is in an unknown state: it goes.
        let _ = wire::send(connection, &reply);
        return;
    }
    keeper.sessions().entry(identity).or_default().push(held);
}
