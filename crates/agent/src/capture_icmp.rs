//! `capture --icmp-to ADDR`: watches every interface of the node with one
//! AF_PACKET socket and counts the ICMP echo requests to ADDR that LEAVE
//! the node (packet type outgoing), by source address and interface. An
//! outgoing packet is seen after POSTROUTING, so its source shows whether
//! the node masqueraded a pod's traffic: the node's address when it did,
//! the pod's when the POSTROUTING jump to FLANNEL-POSTRTG is missing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use labctl_nodeplan::report::{Departure, IcmpCaptureReport};
use nix::libc;

use crate::capture::{ethernet_ipv4_start, ipv4_at, packet_socket};
use crate::error::{AgentError, Result};
use crate::observe::Kernel;
use crate::report::header;

/// Ethernet's hardware type in `sll_hatype`.
const ARPHRD_ETHER: u16 = 1;

/// The source of an ICMP echo request to `to` in `frame`, which starts
/// with an Ethernet header when `ethernet`, else with the IPv4 header
/// (tunnel devices without a link-layer header).
pub fn echo_request_source(frame: &[u8], ethernet: bool, to: Ipv4Addr) -> Option<Ipv4Addr> {
    let at = if ethernet {
        ethernet_ipv4_start(frame)?
    } else {
        0
    };
    let (src, dst, proto, icmp) = ipv4_at(frame, at)?;
    // Type 8 code 0: echo request.
    (proto == 1 && dst == to && frame.get(icmp..icmp + 2)? == [8, 0]).then_some(src)
}

/// Captures for `seconds` (or until `max` echo requests left); `ready`: a
/// file to create once the socket is open.
pub fn run(
    node: &str,
    to: Ipv4Addr,
    seconds: f64,
    max: Option<u64>,
    ready: Option<&str>,
) -> Result<IcmpCaptureReport> {
    let watch = open(node, to)?;
    crate::capture::signal_ready(ready)?;
    Ok(watch.watch(seconds, max))
}

/// An echo-request capture whose socket is open.
pub struct Watch {
    node: String,
    to: Ipv4Addr,
    links: Kernel,
    fd: OwnedFd,
}

/// Opens a socket that sees every interface of this network namespace.
pub fn open(node: &str, to: Ipv4Addr) -> Result<Watch> {
    let links =
        Kernel::read_links().map_err(|e| AgentError::Failed(format!("cannot read links: {e}")))?;
    // Interface 0: every interface of this network namespace.
    let fd = packet_socket(0)?;
    Ok(Watch {
        node: node.to_string(),
        to,
        links,
        fd,
    })
}

impl Watch {
    /// Counts for `seconds`, or until `max` echo requests to the target
    /// left.
    pub fn watch(self, seconds: f64, max: Option<u64>) -> IcmpCaptureReport {
        let Watch {
            node,
            to,
            links: k,
            fd,
        } = self;
        let (start, deadline) = crate::capture::window(&fd, seconds);
        let mut packets = 0u64;
        let mut seen: BTreeMap<(u32, Ipv4Addr), u64> = BTreeMap::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline && max.is_none_or(|m| packets < m) {
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid start value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf is valid for buf.len() bytes and `from`/`len`
            // describe a sockaddr_ll the kernel may fill.
            let n = unsafe {
                libc::recvfrom(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n <= 0 || from.sll_pkttype != libc::PACKET_OUTGOING {
                continue;
            }
            let ethernet = from.sll_hatype == ARPHRD_ETHER;
            let Some(src) = echo_request_source(&buf[..n as usize], ethernet, to) else {
                continue;
            };
            packets += 1;
            *seen.entry((from.sll_ifindex as u32, src)).or_default() += 1;
        }
        let (report_version, command) = header::<IcmpCaptureReport>();
        IcmpCaptureReport {
            report_version,
            command,
            node,
            icmp_to: to,
            seconds: start.elapsed().as_secs_f64(),
            packets,
            departures: seen
                .into_iter()
                .map(|((index, src), packets)| Departure {
                    interface: k.link_name(index),
                    src,
                    packets,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame (or bare IPv4 packet) of ICMP type `kind` from
    /// `src` to `dst`.
    fn frame(
        ethernet: bool,
        vlan: bool,
        proto: u8,
        kind: u8,
        src: [u8; 4],
        dst: [u8; 4],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        if ethernet {
            f.extend([0u8; 12]);
            if vlan {
                f.extend([0x81, 0x00, 0, 5]);
            }
            f.extend([0x08, 0x00]);
        }
        f.extend([0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend(src);
        f.extend(dst);
        f.extend([kind, 0, 0, 0, 0, 1, 0, 1]);
        f
    }

    #[test]
    fn finds_the_source_of_echo_requests_to_the_target_only() {
        let to = Ipv4Addr::new(198, 18, 0, 1);
        let node = [192, 168, 71, 11];
        let pod = [10, 244, 1, 2];
        let t = [198, 18, 0, 1];
        assert_eq!(
            echo_request_source(&frame(true, false, 1, 8, node, t), true, to),
            Some(Ipv4Addr::from(node))
        );
        assert_eq!(
            echo_request_source(&frame(true, true, 1, 8, pod, t), true, to),
            Some(Ipv4Addr::from(pod))
        );
        assert_eq!(
            echo_request_source(&frame(false, false, 1, 8, pod, t), false, to),
            Some(Ipv4Addr::from(pod))
        );
        // Replies, other targets, other protocols, truncated frames: no.
        assert_eq!(
            echo_request_source(&frame(true, false, 1, 0, node, t), true, to),
            None
        );
        assert_eq!(
            echo_request_source(&frame(true, false, 1, 8, node, [198, 18, 0, 2]), true, to),
            None
        );
        assert_eq!(
            echo_request_source(&frame(true, false, 17, 8, node, t), true, to),
            None
        );
        let f = frame(true, false, 1, 8, node, t);
        assert_eq!(echo_request_source(&f[..30], true, to), None);
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(echo_request_source(&arp, true, to), None);
    }
}
