//! A thin synchronous layer over rtnetlink for change requests: one tokio
//! current-thread runtime and one netlink socket per `Netlink`, and
//! `run_all`, which sends many change requests in few datagrams so a
//! 1,000-peer node is programmed without one round trip per object.
//! (Reading the kernel's state does not go through here: see `dump.rs`.)
//!
//! Request messages are built by the functions in `nlops.rs` (with
//! rtnetlink's builders where they fit); callers never see futures.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use futures_util::{future::join_all, StreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::proto::sys::{protocols::NETLINK_ROUTE, SocketAddr};
use rtnetlink::proto::ConnectionHandle;

/// How many requests go into one datagram. The kernel handles them in order
/// and acknowledges each; 256 small requests stay far below the socket's
/// send buffer limit.
const BATCH: usize = 256;

/// Receive buffer forced on the socket so thousands of acknowledgements fit
/// while we are still sending (a full buffer would make the kernel drop
/// acknowledgements and the wait would never end).
const RECEIVE_BUFFER: usize = 8 << 20;

/// A failed netlink request: the kernel's errno, described by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno (e.g. 17 for EEXIST), 0 when the failure was local.
    pub errno: i32,
    /// What failed, in words.
    pub message: String,
}

impl NlError {
    pub(crate) fn local(message: impl Into<String>) -> NlError {
        NlError {
            errno: 0,
            message: message.into(),
        }
    }
    pub(crate) fn kernel(errno: i32) -> NlError {
        NlError {
            errno,
            message: nix::errno::Errno::from_raw(errno).desc().to_string(),
        }
    }
    /// True when the kernel said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            nix::errno::Errno::from_raw(self.errno),
            nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH | nix::errno::Errno::ENODEV
        )
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One change request: a message plus the netlink header flags it needs.
#[derive(Debug, Clone)]
pub struct Op {
    pub(crate) message: RouteNetlinkMessage,
    pub(crate) flags: u16,
}

/// A netlink connection on the current thread's network namespace.
pub struct Netlink {
    runtime: tokio::runtime::Runtime,
    connection: ConnectionHandle<RouteNetlinkMessage>,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's network
    /// namespace (enter a namespace BEFORE calling this).
    pub fn open() -> Result<Netlink, NlError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| NlError::local(format!("cannot start the I/O runtime: {e}")))?;
        let _entered = runtime.enter();
        let (mut conn, connection, _unsolicited) = rtnetlink::proto::new_connection::<
            RouteNetlinkMessage,
        >(NETLINK_ROUTE)
        .map_err(|e| {
            NlError::local(format!(
                "cannot open a route netlink socket: {}",
                crate::error::describe_io(&e)
            ))
        })?;
        let fd: RawFd = conn.socket_mut().as_raw_fd();
        // SAFETY: the fd belongs to `conn`, which outlives this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        // Best effort: without CAP_NET_ADMIN the default buffer stays and
        // batches are simply smaller in effect.
        let _ = nix::sys::socket::setsockopt(
            &borrowed,
            nix::sys::socket::sockopt::RcvBufForce,
            &RECEIVE_BUFFER,
        );
        // Successful acknowledgements are how run_all knows a request
        // worked; netlink-proto drops them unless asked.
        conn.set_forward_ack(true);
        runtime.spawn(conn);
        Ok(Netlink {
            runtime,
            connection,
        })
    }

    /// Runs one request and waits for its acknowledgement.
    pub fn run(&self, op: Op) -> Result<(), NlError> {
        self.run_all(vec![op]).pop().unwrap_or(Ok(()))
    }

    /// Runs requests in order, many per datagram, and returns one result per
    /// request in the same order. The kernel processes a datagram's
    /// messages one after the other, so order is preserved.
    pub fn run_all(&self, ops: Vec<Op>) -> Vec<Result<(), NlError>> {
        let total = ops.len();
        let mut streams = Vec::new();
        let mut sizes = Vec::new();
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<NetlinkMessage<RouteNetlinkMessage>> = ops
                .by_ref()
                .take(BATCH)
                .map(|op| {
                    let mut m = NetlinkMessage::from(op.message);
                    m.header.flags = op.flags | NLM_F_REQUEST | NLM_F_ACK;
                    m
                })
                .collect();
            sizes.push(chunk.len());
            streams.push(self.connection.request_batch(chunk, SocketAddr::new(0, 0)));
        }
        let mut results: Vec<Result<(), NlError>> = Vec::with_capacity(total);
        let mut waits = Vec::new();
        for stream in streams {
            waits.push(async move {
                match stream {
                    Ok(s) => Ok(s.collect::<Vec<_>>().await),
                    Err(e) => Err(NlError::local(format!("netlink request failed: {e}"))),
                }
            });
        }
        let replies = self.runtime.block_on(join_all(waits));
        for (size, chunk_replies) in sizes.into_iter().zip(replies) {
            match chunk_replies {
                Ok(r) => results.extend(match_acks(size, r)),
                Err(e) => results.extend(std::iter::repeat_n(Err(e), size)),
            }
        }
        results
    }
}

/// Maps the acknowledgements of one batch back to its requests: sequence
/// numbers are consecutive within a batch, so the offset from the smallest
/// one is the request's position.
fn match_acks(
    size: usize,
    replies: Vec<NetlinkMessage<RouteNetlinkMessage>>,
) -> Vec<Result<(), NlError>> {
    let mut out: Vec<Result<(), NlError>> =
        vec![Err(NlError::local("the kernel did not answer this request")); size];
    if std::env::var_os("LABCTL_AGENT_DEBUG").is_some() {
        eprintln!("batch of {size}: {replies:?}");
    }
    let acks: Vec<(u32, Option<i32>)> = replies
        .iter()
        .filter_map(|r| match &r.payload {
            NetlinkPayload::Error(e) => Some((r.header.sequence_number, e.code.map(|c| -c.get()))),
            _ => None,
        })
        .collect();
    let Some(first) = acks.iter().map(|(seq, _)| *seq).min() else {
        return out;
    };
    for (seq, code) in acks {
        let index = seq.wrapping_sub(first) as usize;
        if index < size {
            out[index] = match code {
                None => Ok(()),
                Some(errno) => Err(NlError::kernel(errno)),
            };
        }
    }
    out
}
