//! Netlink dumps read straight from a plain blocking socket, each reply
//! parsed in place into the agent's own records (see `observe`).
//!
//! Change requests go through rtnetlink (`netlink.rs`); reading does not,
//! because a 1,000-peer node dumps 3,000 objects and decoding every one
//! into rtnetlink's attribute vectors through its async connection cost
//! three times what the kernel needs to produce them, which dominated a
//! no-op `apply`.
//!
//! The socket asks for strict checking (Linux 4.20+) so that dumps can be
//! filtered in the kernel (neighbours and FDB entries of one device, one
//! routing table). Older kernels ignore the filters; callers filter again.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::SockType;
use nix::sys::socket::{recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol};

use crate::netlink::NlError;

const NLMSG_HEADER: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x01;
/// Asks for an acknowledgement after the reply (ends a single request).
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP: u16 = 0x300;
/// Set on a reply when the dumped table changed during the dump.
const NLM_F_DUMP_INTR: u16 = 0x10;
const SOL_NETLINK: i32 = 270;
const NETLINK_GET_STRICT_CHK: i32 = 12;
/// How often a dump that a concurrent change interrupted is started again.
const ATTEMPTS: usize = 3;

/// A route netlink socket for dumps, in the network namespace of the
/// thread that opened it.
pub struct DumpSocket {
    fd: OwnedFd,
    seq: u32,
    /// True when the kernel accepted strict checking (filters work).
    pub strict: bool,
    buf: Vec<u8>,
}

/// Rounds up to netlink's 4-byte alignment.
fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends attribute `kind` with `value` (padded) to a request payload.
pub fn put_attr(payload: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    payload.extend_from_slice(&(len as u16).to_ne_bytes());
    payload.extend_from_slice(&kind.to_ne_bytes());
    payload.extend_from_slice(value);
    payload.resize(align(payload.len()), 0);
}

/// The attributes in `data` as (type, value), nesting and byte-order flags
/// stripped from the type. Stops at the first malformed attribute.
pub fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[align(len).min(data.len())..];
        Some((kind, value))
    })
}

/// A native-endian u32 attribute value.
pub fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

impl DumpSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<DumpSocket, NlError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| NlError::local(format!("cannot open a route netlink socket: {}", e.desc())))?;
        let on: i32 = 1;
        // SAFETY: a valid socket, a pointer to a live i32 and its size.
        let strict = unsafe {
            nix::libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_GET_STRICT_CHK,
                (&on as *const i32).cast(),
                std::mem::size_of::<i32>() as nix::libc::socklen_t,
            )
        } == 0;
        Ok(DumpSocket {
            fd,
            seq: 0,
            strict,
            buf: vec![0; 64 << 10],
        })
    }

    /// Dumps `msg_type` with request `payload` (fixed header plus filter
    /// attributes) and keeps what `parse` makes of each reply's payload. A
    /// dump the kernel marks interrupted by a concurrent change is read
    /// again (a few times at most) so the records are consistent.
    pub fn collect<T>(
        &mut self,
        msg_type: u16,
        payload: &[u8],
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, NlError> {
        let mut out = Vec::new();
        for _ in 0..ATTEMPTS {
            out.clear();
            let interrupted = self.exchange(msg_type, NLM_F_DUMP, payload, |p| {
                if let Some(t) = parse(p) {
                    out.push(t);
                }
            })?;
            if !interrupted {
                break;
            }
        }
        Ok(out)
    }

    /// One request that is no dump (e.g. `RTM_GETROUTE` for one address):
    /// what `parse` makes of the reply. A kernel error is returned as such.
    pub fn get<T>(
        &mut self,
        msg_type: u16,
        payload: &[u8],
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, NlError> {
        let mut out = None;
        self.exchange(msg_type, NLM_F_ACK, payload, |p| {
            if out.is_none() {
                out = parse(p);
            }
        })?;
        Ok(out)
    }

    /// One request with `flags` besides NLM_F_REQUEST (a dump, or an
    /// acknowledged request); calls `each` with every reply payload and
    /// returns whether the kernel flagged a dump as interrupted.
    fn exchange(
        &mut self,
        msg_type: u16,
        flags: u16,
        payload: &[u8],
        mut each: impl FnMut(&[u8]),
    ) -> Result<bool, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = NLMSG_HEADER + payload.len();
        let mut request = Vec::with_capacity(len);
        request.extend_from_slice(&(len as u32).to_ne_bytes());
        request.extend_from_slice(&msg_type.to_ne_bytes());
        request.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        request.extend_from_slice(&seq.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes());
        request.extend_from_slice(payload);
        send(self.fd.as_raw_fd(), &request, MsgFlags::empty())
            .map_err(|e| NlError::local(format!("cannot send a netlink request: {}", e.desc())))?;
        let mut interrupted = false;
        loop {
            let n = self.receive()?;
            let mut off = 0;
            while off + NLMSG_HEADER <= n {
                let b = &self.buf[off..n];
                let mlen = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if mlen < NLMSG_HEADER || mlen > b.len() {
                    return Err(NlError::local("the kernel sent a malformed netlink reply"));
                }
                off += align(mlen);
                if mseq != seq {
                    continue;
                }
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                let body = &b[NLMSG_HEADER..mlen];
                match kind {
                    NLMSG_DONE => return Ok(interrupted),
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                        if code == 0 {
                            return Ok(interrupted);
                        }
                        return Err(NlError::kernel(-code));
                    }
                    NLMSG_OVERRUN => {
                        return Err(NlError::local("the netlink dump overran its buffer"));
                    }
                    t if t < 16 => {} // other control messages
                    _ => each(body),
                }
            }
        }
    }

    /// Receives one datagram into the buffer (grown to fit) and returns its
    /// length.
    fn receive(&mut self) -> Result<usize, NlError> {
        let fd = self.fd.as_raw_fd();
        let failed = |e: nix::errno::Errno| {
            NlError::local(format!("cannot read a netlink dump: {}", e.desc()))
        };
        loop {
            // Peek at the size first: a datagram larger than the buffer
            // would otherwise be cut off.
            let size = recv(fd, &mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC);
            match size {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(failed(e)),
                Ok(size) if size > self.buf.len() => self.buf.resize(size, 0),
                Ok(_) => {}
            }
            match recv(fd, &mut self.buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(failed(e)),
                Ok(n) => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut p = Vec::new();
        put_attr(&mut p, 8, &7u32.to_ne_bytes());
        put_attr(&mut p, 3, b"eth0\0");
        put_attr(&mut p, 0x8000 | 18, &[1, 2]);
        let got: Vec<(u16, Vec<u8>)> = attrs(&p).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (8, 7u32.to_ne_bytes().to_vec()),
                (3, b"eth0\0".to_vec()),
                (18, vec![1, 2])
            ]
        );
        assert_eq!(u32_of(&got[0].1), Some(7));
    }

    #[test]
    fn malformed_attributes_end_the_walk() {
        assert_eq!(attrs(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
    }
}
