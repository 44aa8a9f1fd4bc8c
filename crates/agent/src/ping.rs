//! `ping`: ICMP echo probes from this network namespace (a pod's, entered
//! with `--netns`) to many targets at once: one raw socket, every target
//! per round, replies matched by identifier and payload, optionally with
//! don't-fragment set (the path MTU check). One process does what would
//! otherwise be a `ping` process per pair: a 50-node mesh (2,450 pairs) is
//! 50 agent runs. Prints a `labctl_nodeplan::probe::PingReport`.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use labctl_nodeplan::probe::{PingReport, PingResult};
use nix::libc;

use crate::error::{describe_io, failed, AgentError, Result};

/// How to ping.
#[derive(Clone, Debug)]
pub struct PingOptions {
    /// Echo requests per target.
    pub count: u32,
    /// ICMP payload bytes (ping's `-s`).
    pub payload: usize,
    /// Pause between rounds.
    pub interval: Duration,
    /// How long to wait for the last replies after the last round.
    pub wait: Duration,
    /// Set DF and ignore any cached path MTU (ping's `-M probe`): the packet
    /// goes out at its full size and a hop that cannot carry it must say so.
    pub dont_fragment: bool,
    /// Each round after the first goes only to the targets that have not
    /// answered yet: a retry for the lost, no second load on the healthy
    /// (a mesh of 40,000 pairs is that many echoes fewer).
    pub until_answered: bool,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            count: 3,
            payload: 56,
            interval: Duration::from_millis(40),
            wait: Duration::from_millis(800),
            dont_fragment: false,
            until_answered: false,
        }
    }
}

/// What came back from one target, while probing.
#[derive(Clone, Debug, Default)]
struct Outcome {
    sent: u32,
    received: u32,
    rtt_ms: Vec<f64>,
    error: Option<String>,
}

const ECHO_REPLY: u8 = 0;
const DEST_UNREACH: u8 = 3;
const ECHO_REQUEST: u8 = 8;
const TIME_EXCEEDED: u8 = 11;
/// `ICMP_FILTER` from linux/icmp.h (not in the libc crate).
const ICMP_FILTER: libc::c_int = 1;
const MAGIC: u32 = 0x6c61_6263; // "labc"

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: id, seq, payload = magic, target index, round, filler.
pub fn echo_request(id: u16, seq: u16, target: u32, round: u32, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 8 + payload.max(12)];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&MAGIC.to_be_bytes());
    p[12..16].copy_from_slice(&target.to_be_bytes());
    p[16..20].copy_from_slice(&round.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(20) {
        *b = i as u8;
    }
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// What a received IPv4 packet (raw socket: IP header included) says about
/// our probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// An echo reply for (target index, round).
    Reply {
        target: u32,
        round: u32,
    },
    /// An ICMP error about a probe we sent to `dst`.
    Error {
        dst: Ipv4Addr,
        text: String,
    },
    Other,
}

/// Classifies one packet read from the raw socket.
pub fn classify(packet: &[u8], id: u16) -> Received {
    let Some(ihl) = packet.first().map(|b| usize::from(b & 0x0f) * 4) else {
        return Received::Other;
    };
    let Some(icmp) = packet.get(ihl..) else {
        return Received::Other;
    };
    if icmp.len() < 8 {
        return Received::Other;
    }
    match icmp[0] {
        ECHO_REPLY if icmp.len() >= 20 && u16::from_be_bytes([icmp[4], icmp[5]]) == id => {
            if u32::from_be_bytes([icmp[8], icmp[9], icmp[10], icmp[11]]) != MAGIC {
                return Received::Other;
            }
            Received::Reply {
                target: u32::from_be_bytes([icmp[12], icmp[13], icmp[14], icmp[15]]),
                round: u32::from_be_bytes([icmp[16], icmp[17], icmp[18], icmp[19]]),
            }
        }
        DEST_UNREACH | TIME_EXCEEDED => {
            // The error quotes our IP header and the first 8 bytes of our ICMP.
            let inner = &icmp[8..];
            let Some(inner_ihl) = inner.first().map(|b| usize::from(b & 0x0f) * 4) else {
                return Received::Other;
            };
            let Some(inner_icmp) = inner.get(inner_ihl..inner_ihl + 8) else {
                return Received::Other;
            };
            if inner_icmp[0] != ECHO_REQUEST
                || u16::from_be_bytes([inner_icmp[4], inner_icmp[5]]) != id
            {
                return Received::Other;
            }
            let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
            let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let text = match (icmp[0], icmp[1]) {
                (DEST_UNREACH, 4) => format!(
                    "fragmentation needed (DF set), mtu {} (from {from})",
                    u16::from_be_bytes([icmp[6], icmp[7]])
                ),
                (DEST_UNREACH, 0) => format!("network unreachable (from {from})"),
                (DEST_UNREACH, 1) => format!("host unreachable (from {from})"),
                (DEST_UNREACH, 3) => format!("port unreachable (from {from})"),
                (DEST_UNREACH, 13) => format!("administratively prohibited (from {from})"),
                (DEST_UNREACH, code) => {
                    format!("destination unreachable code {code} (from {from})")
                }
                _ => format!("time to live exceeded (from {from})"),
            };
            Received::Error { dst, text }
        }
        _ => Received::Other,
    }
}

fn os_error(what: &str) -> AgentError {
    failed(what, describe_io(&std::io::Error::last_os_error()))
}

fn raw_socket(dont_fragment: bool) -> Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(os_error(
            "cannot open a raw ICMP socket (the agent needs root)",
        ));
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level, name, value: libc::c_int| {
        // SAFETY: value lives across the call; size matches its type.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            Err(os_error("setsockopt"))
        } else {
            Ok(())
        }
    };
    let mode = if dont_fragment {
        libc::IP_PMTUDISC_PROBE
    } else {
        libc::IP_PMTUDISC_DONT
    };
    set(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)?;
    // A raw socket gets a copy of every ICMP packet of the namespace,
    // including the other pods' echo requests to this pod: let only echo
    // replies and errors through (ICMP_FILTER: a set bit blocks that type).
    let allowed: u32 = (1 << ECHO_REPLY) | (1 << DEST_UNREACH) | (1 << TIME_EXCEEDED);
    set(libc::SOL_RAW, ICMP_FILTER, !allowed as libc::c_int)?;
    // Plenty of buffer: up to 49 peers × rounds of replies arrive at once
    // (FORCE: above rmem_max, which root may do; fall back if refused).
    if set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20).is_err() {
        set(libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20)?;
    }
    Ok(sock)
}

fn send_to(sock: &OwnedFd, dst: Ipv4Addr, packet: &[u8]) -> std::io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: packet and addr are valid for the call.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits up to `timeout` for one packet; `None` on timeout.
fn recv_until(sock: &OwnedFd, buf: &mut [u8], timeout: Duration) -> Option<usize> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready <= 0 {
        return None;
    }
    // SAFETY: buf is valid for its length.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    (n >= 0).then_some(n as usize)
}

/// Pings every target from the calling process's namespace; the report
/// lists one result per target, in order.
pub fn run(
    namespace: Option<&str>,
    targets: &[Ipv4Addr],
    opts: &PingOptions,
) -> Result<PingReport> {
    if targets.is_empty() {
        return Err(AgentError::Input(
            "ping needs at least one TARGET address".into(),
        ));
    }
    let sock = raw_socket(opts.dont_fragment)?;
    let id = (std::process::id() as u16).rotate_left(7) ^ 0x5a5a;
    let mut out = vec![Outcome::default(); targets.len()];
    let rounds = opts.count.max(1);
    let mut sent_at = vec![vec![None::<Instant>; rounds as usize]; targets.len()];
    let mut buf = vec![0u8; 65536];
    let mut seq: u16 = 0;
    let mut drain =
        |until: Instant, out: &mut Vec<Outcome>, sent_at: &mut Vec<Vec<Option<Instant>>>| {
            loop {
                // Nothing outstanding (all answered, or every send failed
                // locally, e.g. EMSGSIZE): no reply can come, stop waiting.
                if sent_at.iter().all(|v| v.iter().all(Option::is_none)) {
                    break;
                }
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let Some(n) = recv_until(&sock, &mut buf, until - now) else {
                    break;
                };
                match classify(&buf[..n], id) {
                    Received::Reply { target, round } => {
                        let (t, r) = (target as usize, round as usize);
                        if let Some(Some(at)) = sent_at
                            .get_mut(t)
                            .and_then(|v| v.get_mut(r))
                            .map(Option::take)
                        {
                            out[t].received += 1;
                            out[t].rtt_ms.push(at.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    Received::Error { dst, text } => {
                        for (i, ip) in targets.iter().enumerate() {
                            if *ip == dst && out[i].error.is_none() {
                                out[i].error = Some(text.clone());
                            }
                        }
                    }
                    Received::Other => {}
                }
            }
        };
    for round in 0..rounds {
        for (i, ip) in targets.iter().enumerate() {
            if opts.until_answered && round > 0 && out[i].received > 0 {
                continue;
            }
            seq = seq.wrapping_add(1);
            let packet = echo_request(id, seq, i as u32, round, opts.payload);
            out[i].sent += 1;
            match send_to(&sock, *ip, &packet) {
                Ok(()) => sent_at[i][round as usize] = Some(Instant::now()),
                Err(e) => {
                    let text = if e.raw_os_error() == Some(libc::EMSGSIZE) {
                        format!(
                            "message too long for the local MTU ({} bytes with headers)",
                            packet.len() + 20
                        )
                    } else {
                        format!("cannot send: {e}")
                    };
                    out[i].error.get_or_insert(text);
                }
            }
        }
        let pause = if round + 1 == rounds {
            opts.wait
        } else {
            opts.interval
        };
        drain(Instant::now() + pause, &mut out, &mut sent_at);
    }
    let (report_version, command) = crate::report::header::<PingReport>();
    Ok(PingReport {
        report_version,
        command,
        node: crate::report::hostname(),
        namespace: namespace.map(str::to_string),
        count: rounds,
        payload: opts.payload as u32,
        dont_fragment: opts.dont_fragment,
        targets: targets
            .iter()
            .zip(out)
            .map(|(target, o)| PingResult {
                target: *target,
                sent: o.sent,
                received: o.received,
                rtt_avg_ms: (!o.rtt_ms.is_empty())
                    .then(|| o.rtt_ms.iter().sum::<f64>() / o.rtt_ms.len() as f64),
                // An error that some replies outlived (e.g. one lost
                // round) is not the target's outcome.
                error: o.error.filter(|_| o.received == 0),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let p = echo_request(0x1234, 7, 3, 1, 56);
        assert_eq!(p.len(), 64);
        assert_eq!(checksum(&p), 0);
        let odd = echo_request(1, 1, 0, 0, 1423);
        assert_eq!(odd.len(), 1431);
        assert_eq!(checksum(&odd), 0);
    }

    fn ip_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[9] = 1;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        h
    }

    #[test]
    fn replies_and_errors_are_matched_by_id() {
        let mut reply = echo_request(42, 1, 5, 2, 56);
        reply[0] = ECHO_REPLY;
        let mut pkt = ip_header([10, 244, 1, 2], [10, 244, 0, 2]);
        pkt.extend_from_slice(&reply);
        assert_eq!(
            classify(&pkt, 42),
            Received::Reply {
                target: 5,
                round: 2
            }
        );
        assert_eq!(classify(&pkt, 43), Received::Other);

        let request = echo_request(42, 1, 0, 0, 1422);
        let mut err = ip_header([10, 244, 2, 0], [10, 244, 2, 2]);
        err.extend_from_slice(&[DEST_UNREACH, 4, 0, 0, 0, 0, 0x05, 0x78]);
        err.extend_from_slice(&ip_header([10, 244, 2, 2], [10, 244, 0, 2]));
        err.extend_from_slice(&request[..8]);
        match classify(&err, 42) {
            Received::Error { dst, text } => {
                assert_eq!(dst, Ipv4Addr::new(10, 244, 0, 2));
                assert!(text.contains("mtu 1400"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
