//! Packet capture without tcpdump: an AF_PACKET socket in a node's (or the
//! outside world's) network namespace records, per interface and direction,
//! the VXLAN packets (outer addresses, UDP port, VNI, inner addresses) and
//! plain ICMP packets it sees. The frame parser is pure and unit-tested.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use anyhow::{anyhow, Result};
use serde::Serialize;

/// An IPv4 packet's addresses and, for ICMP, its type and identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub icmp_type: Option<u8>,
    pub icmp_id: Option<u16>,
}

/// What one frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Seen {
    /// UDP to the VXLAN port carrying an Ethernet frame.
    Vxlan {
        outer: Ip,
        dport: u16,
        vni: u32,
        inner: Option<Ip>,
    },
    /// Any other IPv4 packet.
    Plain(Ip),
}

fn ipv4(packet: &[u8]) -> Option<(Ip, &[u8])> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let payload = packet.get(ihl..)?;
    let protocol = packet[9];
    let (icmp_type, icmp_id) = if protocol == 1 && payload.len() >= 8 {
        (
            Some(payload[0]),
            Some(u16::from_be_bytes([payload[4], payload[5]])),
        )
    } else {
        (None, None)
    };
    let ip = Ip {
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        protocol,
        icmp_type,
        icmp_id,
    };
    Some((ip, payload))
}

/// The IPv4 packet inside an Ethernet frame (one optional VLAN tag).
fn ethernet_ipv4(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut at = 14;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        at = 18;
    }
    (ethertype == 0x0800).then(|| frame.get(at..)).flatten()
}

/// Parses an Ethernet frame; VXLAN is recognised by UDP destination port.
pub fn parse_frame(frame: &[u8], vxlan_port: u16) -> Option<Seen> {
    let (outer, payload) = ipv4(ethernet_ipv4(frame)?)?;
    if outer.protocol == 17 && payload.len() >= 16 {
        let dport = u16::from_be_bytes([payload[2], payload[3]]);
        if dport == vxlan_port {
            let vxlan = &payload[8..];
            let vni = u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]);
            let inner = vxlan
                .get(8..)
                .and_then(ethernet_ipv4)
                .and_then(ipv4)
                .map(|(ip, _)| ip);
            return Some(Seen::Vxlan {
                outer,
                dport,
                vni,
                inner,
            });
        }
    }
    Some(Seen::Plain(outer))
}

/// One frame seen on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    pub ifindex: u32,
    /// Sent by this namespace (PACKET_OUTGOING) rather than received.
    pub outgoing: bool,
    pub seen: Seen,
}

/// What a capture thread hands back.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Interface name → index in the captured namespace, for the names asked.
    pub interfaces: Vec<(String, u32)>,
    pub records: Vec<Record>,
}

impl Captured {
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.interfaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| *i)
    }
}

/// Most records one capture keeps (a lab probe sends a few hundred).
const MAX_RECORDS: usize = 200_000;

/// Captures in the calling thread's namespace until `stop` is set; sends
/// `()` on `ready` once the socket is open (start the traffic after that).
pub fn capture_here(
    names: &[&str],
    vxlan_port: u16,
    stop: &AtomicBool,
    ready: mpsc::Sender<()>,
) -> Result<Captured> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with constant arguments; owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol),
        )
    };
    if fd < 0 {
        return Err(anyhow!(
            "cannot open an AF_PACKET socket to capture (verify needs root): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is fresh and valid.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let interfaces = names
        .iter()
        .filter_map(|n| super::enter::if_index(n).map(|i| (n.to_string(), i)))
        .collect();
    let _ = ready.send(());
    let mut records = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
            continue;
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are valid for the given sizes.
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n <= 0 {
            continue;
        }
        if let Some(seen) = parse_frame(&buf[..n as usize], vxlan_port) {
            if records.len() < MAX_RECORDS {
                records.push(Record {
                    ifindex: from.sll_ifindex as u32,
                    outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
                    seen,
                });
            }
        }
    }
    Ok(Captured {
        interfaces,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ip(src: [u8; 4], dst: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[9] = protocol;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn vxlan_frame_with_inner_icmp() {
        let icmp = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let inner = eth(0x0800, &ip([10, 244, 0, 2], [10, 244, 1, 2], 1, &icmp));
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vxlan.extend_from_slice(&inner);
        let mut udp = vec![0xc3, 0x50, 0x21, 0x18, 0, 0, 0, 0];
        udp.extend_from_slice(&vxlan);
        let frame = eth(
            0x0800,
            &ip([192, 168, 56, 10], [192, 168, 56, 11], 17, &udp),
        );
        match parse_frame(&frame, 8472) {
            Some(Seen::Vxlan {
                outer,
                dport,
                vni,
                inner: Some(inner),
            }) => {
                assert_eq!(outer.src, Ipv4Addr::new(192, 168, 56, 10));
                assert_eq!(dport, 8472);
                assert_eq!(vni, 1);
                assert_eq!(inner.dst, Ipv4Addr::new(10, 244, 1, 2));
                assert_eq!((inner.icmp_type, inner.icmp_id), (Some(8), Some(0x1234)));
            }
            other => panic!("{other:?}"),
        }
        // Another port is plain UDP.
        assert!(matches!(parse_frame(&frame, 4789), Some(Seen::Plain(_))));
    }

    #[test]
    fn plain_and_vlan_and_garbage() {
        let icmp = [0u8, 0, 0, 0, 0, 9, 0, 1];
        let packet = ip([10, 244, 1, 2], [198, 18, 0, 1], 1, &icmp);
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        tagged.extend_from_slice(&packet);
        match parse_frame(&tagged, 8472) {
            Some(Seen::Plain(ip)) => assert_eq!(
                (ip.src, ip.icmp_id),
                (Ipv4Addr::new(10, 244, 1, 2), Some(9))
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_frame(&eth(0x0806, &[0; 28]), 8472), None);
        assert_eq!(parse_frame(&[1, 2, 3], 8472), None);
    }
}
