//! What labctl and its session keeper say to each other over the keeper's
//! Unix socket: frames of a little-endian `u32` length and that many
//! bytes; requests and replies are JSON frames ([`Request`], [`Reply`]),
//! a command's stdin, stdout and stderr raw frames after them.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ssh::{Endpoint, SshError};

/// Largest frame accepted: the biggest stdin labctl sends is the agent
/// binary (a few MiB) or a 1,000-node lab's plan.
const MOST_BYTES: usize = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// A session to this node, to run commands on until the connection
    /// closes. The key must be pinned in `known_hosts`: the keeper never
    /// pins a key.
    Session {
        node: String,
        host: String,
        port: u16,
        user: String,
        key: PathBuf,
        known_hosts: PathBuf,
        /// How long the keeper may keep trying to log in, when it holds no
        /// session to the node.
        deadline_ms: u64,
        /// The caller is `up` (only wording: which fix a changed key names).
        during_up: bool,
    },
    /// Runs a command on the session; its stdin follows in one frame.
    Run {
        command: String,
        timeout_ms: Option<u64>,
    },
    /// Ends the keeper (destroy): its sessions are closed.
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The session is there: `timeouts` login attempts timed out on the way
    /// (the caller's fan-out works on fewer nodes at once for each).
    Ready { timeouts: u32 },
    /// The keeper could not log in: the same error a direct login gives.
    Refused { error: SshError, timeouts: u32 },
    /// The command ran: stdout and stderr follow in one frame each.
    Done { status: i32 },
    /// Nothing ran: the session had ended (the node restarted, its sshd
    /// was replaced). The caller may connect itself and run the command.
    Lost { cause: String },
    /// The command started and its session broke or timed out.
    Broken { cause: String },
    /// The keeper closed its sessions and its socket; its process `pid`
    /// is ending.
    Stopped { pid: u32 },
}

impl Request {
    pub fn session(ep: &Endpoint, deadline_ms: u64, during_up: bool) -> Request {
        // The keeper runs in `/`: relative paths would mean something else there.
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.into());
        Request::Session {
            node: ep.node.clone(),
            host: ep.host.clone(),
            port: ep.port,
            user: ep.user.clone(),
            key: absolute(&ep.key),
            known_hosts: absolute(&ep.known_hosts),
            deadline_ms,
            during_up,
        }
    }
}

pub fn write_frame(mut w: impl Write, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|n| (*n as usize) <= MOST_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&length.to_le_bytes())?;
    w.write_all(bytes)
}

/// The next frame; `None` at a clean end of stream (before a frame).
pub fn read_frame(mut r: impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match r.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > MOST_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes, more than the {MOST_BYTES} allowed"),
        ));
    }
    let mut bytes = vec![0u8; length];
    r.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

pub fn send<T: Serialize>(w: impl Write, message: &T) -> io::Result<()> {
    let json = serde_json::to_vec(message).map_err(io::Error::other)?;
    write_frame(w, &json)
}

/// The next JSON message; `None` at a clean end of stream.
pub fn receive<T: for<'de> Deserialize<'de>>(r: impl Read) -> io::Result<Option<T>> {
    match read_frame(r)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// The next raw frame, which must be there.
pub fn receive_bytes(r: impl Read) -> io::Result<Vec<u8>> {
    read_frame(r)?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "frame missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buffer = Vec::new();
        send(&mut buffer, &Reply::Done { status: 3 }).unwrap();
        write_frame(&mut buffer, b"out").unwrap();
        let mut reader = &buffer[..];
        assert!(matches!(
            receive::<Reply>(&mut reader).unwrap(),
            Some(Reply::Done { status: 3 })
        ));
        assert_eq!(receive_bytes(&mut reader).unwrap(), b"out");
        assert!(read_frame(&mut reader).unwrap().is_none());
    }

    #[test]
    fn an_oversized_or_cut_frame_is_an_error() {
        let huge = (MOST_BYTES as u32 + 1).to_le_bytes();
        assert_eq!(
            read_frame(&huge[..]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let cut = [5u8, 0, 0, 0, b'a'];
        assert_eq!(
            read_frame(&cut[..]).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_refusal_carries_the_typed_error() {
        let error = SshError::HostKeyUnknown {
            node: "n1".into(),
            address: "10.0.0.1:22".into(),
            seen: "SHA256:x (ssh-ed25519)".into(),
            known_hosts: "/lab/known_hosts".into(),
        };
        let mut buffer = Vec::new();
        send(&mut buffer, &Reply::Refused { error, timeouts: 2 }).unwrap();
        let Some(Reply::Refused { error, timeouts }) = receive(&buffer[..]).unwrap() else {
            panic!("not a refusal");
        };
        assert_eq!(timeouts, 2);
        assert!(error.is_host_key_refusal());
        assert!(error.to_string().contains("only `labctl up` pins keys"));
    }
}
