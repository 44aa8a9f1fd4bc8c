//! The session keeper: one background labctl process per lab that holds an
//! authenticated SSH session to each node it has reached, so a later
//! command (`up` with nothing to change, `verify`, `exec`) costs a channel
//! on a session that is already there instead of a login (a TCP and SSH
//! handshake, key exchange, authentication and three sshd processes on the
//! node). As OpenSSH's ControlMaster with ControlPersist, but for labctl's
//! own client.
//!
//! - The keeper listens on a Unix socket in the lab's state folder (0700;
//!   the socket itself 0600) and serves only its own user (checked with
//!   SO_PEERCRED on every connection).
//! - It never pins a host key: it logs in only to hosts whose key is pinned
//!   in the lab's known_hosts, and checks each held session's key against
//!   that file again whenever it hands the session out.
//! - It ends when its socket is removed or replaced (the lab folder is
//!   gone), when `destroy` asks, or after [`IDLE`] without requests.
//! - A session the keeper lost before a command ran (the node restarted)
//!   is replaced by a direct connection; a command the keeper could not
//!   finish fails as a direct session's would. Without a keeper, labctl
//!   connects directly, as before.

mod client;
mod serve;
mod wire;

use std::time::Duration;

pub(super) use client::Kept;
pub use client::{is_listening, stop};
pub use serve::serve;

/// How long a keeper without requests lives on.
pub const IDLE: Duration = Duration::from_secs(600);
