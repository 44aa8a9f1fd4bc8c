//! labctl's side of the keeper's socket: opening a kept session, running
//! commands on it, and asking the keeper to stop.

use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::wire::{self, Reply, Request};
use crate::ssh::host_key::HostKeyPolicy;
use crate::ssh::pump::PumpError;
use crate::ssh::{pins, Endpoint, Output, SshError};

/// Extra time a reply may take beyond the login deadline or the command's
/// own limit (which the keeper enforces).
const REPLY_MARGIN: Duration = Duration::from_secs(30);

/// A session the keeper holds for this process until it is dropped (the
/// keeper then keeps it for the next command).
pub struct Kept {
    stream: UnixStream,
}

impl Kept {
    /// A kept session to `ep`, or `None` when the keeper cannot serve this
    /// connection (no keeper on `socket`, another user's, a key the keeper
    /// may not check alone) and the caller should connect itself. `Some(Err)`
    /// is the keeper's failed login: the error a direct login would give.
    pub fn open(
        socket: &Path,
        ep: &Endpoint,
        policy: &HostKeyPolicy,
        deadline: Duration,
        on_timeout: &(dyn Fn() + Sync),
    ) -> Option<Result<Kept, SshError>> {
        let during_up = match policy {
            HostKeyPolicy::RequireKnown => false,
            // Nothing would be pinned: the same check as RequireKnown.
            HostKeyPolicy::PinNew { expected: None, .. } => {
                if !pins::is_pinned(&ep.known_hosts, &ep.host, ep.port).ok()? {
                    return None;
                }
                true
            }
            HostKeyPolicy::PinNew { .. } => return None,
        };
        let stream = connect_own(socket)?;
        stream
            .set_read_timeout(Some(deadline + REPLY_MARGIN))
            .ok()?;
        let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        wire::send(&stream, &Request::session(ep, deadline_ms, during_up)).ok()?;
        let (result, timeouts) = match wire::receive::<Reply>(&stream).ok()?? {
            Reply::Ready { timeouts } => (Ok(Kept { stream }), timeouts),
            Reply::Refused { error, timeouts } => (Err(error), timeouts),
            _ => return None,
        };
        (0..timeouts).for_each(|_| on_timeout());
        Some(result)
    }

    /// Runs `command` on the kept session.
    pub fn run(
        &mut self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, PumpError> {
        let request = Request::Run {
            command: command.to_string(),
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        let gone = |e: std::io::Error| PumpError::NotStarted(format!("the keeper is gone: {e}"));
        wire::send(&self.stream, &request).map_err(gone)?;
        wire::write_frame(&self.stream, stdin.unwrap_or_default()).map_err(gone)?;
        let _ = self
            .stream
            .set_read_timeout(timeout.map(|t| t + REPLY_MARGIN));
        let broken = |e: std::io::Error| {
            PumpError::Broken(format!("the session keeper ended during the command: {e}"))
        };
        match wire::receive::<Reply>(&self.stream).map_err(broken)? {
            Some(Reply::Done { status }) => Ok(Output {
                status,
                stdout: wire::receive_bytes(&self.stream).map_err(broken)?,
                stderr: wire::receive_bytes(&self.stream).map_err(broken)?,
            }),
            Some(Reply::Lost { cause }) => Err(PumpError::NotStarted(cause)),
            Some(Reply::Broken { cause }) => Err(PumpError::Broken(cause)),
            Some(other) => Err(PumpError::Broken(format!(
                "the session keeper answered {other:?}"
            ))),
            None => Err(PumpError::Broken(
                "the session keeper closed the session during the command".into(),
            )),
        }
    }
}

/// Asks the keeper on `socket` to close its sessions and end, and waits
/// until its process has ended. True when a keeper answered.
pub fn stop(socket: &Path) -> bool {
    let Some(stream) = connect_own(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    if wire::send(&stream, &Request::Stop).is_err() {
        return false;
    }
    let Ok(Some(Reply::Stopped { pid })) = wire::receive::<Reply>(&stream) else {
        return false;
    };
    // A keeper serving from a thread of this process (tests) ends with it.
    if pid != std::process::id() {
        let started = std::time::Instant::now();
        while crate::process::is_alive(pid) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    true
}

/// Whether a keeper of this user listens on `socket`.
pub fn is_listening(socket: &Path) -> bool {
    connect_own(socket).is_some()
}

/// Connects to `socket` when a process of this user listens there.
pub(super) fn connect_own(socket: &Path) -> Option<UnixStream> {
    let stream = UnixStream::connect(socket).ok()?;
    (peer_uid(&stream)? == crate::process::effective_uid()).then_some(stream)
}

/// The user id of the process at the other end of `stream`.
pub(super) fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the given length, both owned
    // by this frame, on a socket that stays open for the call.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    };
    (result == 0).then_some(credentials.uid)
}
