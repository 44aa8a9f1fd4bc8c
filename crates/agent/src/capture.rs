//! `capture`: watches the underlay interface with an AF_PACKET socket and
//! counts VXLAN packets (UDP to the plan's port) of the plan's VNI, with the
//! inner IPv4 source and destination of each flow. It lets `labctl verify`
//! show that pod traffic really crosses the underlay encapsulated.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use labctl_nodeplan::report::{CaptureReport, Flow};
use labctl_nodeplan::NodePlan;
use nix::libc;

use crate::error::{AgentError, Result};
use crate::node::underlay;
use crate::observe::Kernel;
use crate::report::header;

/// A decoded VXLAN packet: outer addresses, VNI, inner IPv4 header fields.
#[derive(Debug, PartialEq, Eq)]
pub struct VxlanPacket {
    pub outer: (Ipv4Addr, Ipv4Addr),
    pub vni: u32,
    pub inner: Option<(Ipv4Addr, Ipv4Addr, u8)>,
}

/// Where the IPv4 header starts in an Ethernet frame (one 802.1Q tag
/// skipped); `None` when the frame carries no IPv4.
pub(crate) fn ethernet_ipv4_start(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    if ethertype == 0x8100 {
        at += 4;
        ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    }
    (ethertype == 0x0800).then_some(at + 2)
}

/// The IPv4 header at `at`: source, destination, protocol and where its
/// payload starts.
pub(crate) fn ipv4_at(b: &[u8], at: usize) -> Option<(Ipv4Addr, Ipv4Addr, u8, usize)> {
    let h = b.get(at..at + 20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    Some((src, dst, h[9], at + ihl))
}

/// Decodes an Ethernet frame carrying UDP to `port` as VXLAN.
pub fn decode(frame: &[u8], port: u16) -> Option<VxlanPacket> {
    let (src, dst, proto, udp) = ipv4_at(frame, ethernet_ipv4_start(frame)?)?;
    if proto != 17 {
        return None;
    }
    let u = frame.get(udp..udp + 8)?;
    if u16::from_be_bytes([u[2], u[3]]) != port {
        return None;
    }
    let v = frame.get(udp + 8..udp + 16)?;
    let vni = u32::from_be_bytes([0, v[4], v[5], v[6]]);
    let inner_eth = udp + 16;
    let inner = match frame.get(inner_eth + 12..inner_eth + 14) {
        Some([0x08, 0x00]) => ipv4_at(frame, inner_eth + 14).map(|(s, d, p, _)| (s, d, p)),
        _ => None,
    };
    Some(VxlanPacket {
        outer: (src, dst),
        vni,
        inner,
    })
}

/// A raw packet socket for every protocol, bound to interface `ifindex`
/// (0: every interface of the namespace).
pub(crate) fn packet_socket(ifindex: u32) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(AgentError::Environment(format!(
            "cannot open a packet socket: {}",
            nix::errno::Errno::last().desc()
        )));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid start value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is a valid sockaddr_ll and the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(AgentError::Failed(format!(
            "cannot bind the packet socket to interface {ifindex}: {}",
            nix::errno::Errno::last().desc()
        )));
    }
    Ok(fd)
}

/// Creates `path` (when given) once the capture socket is open: whoever
/// starts traffic after it appears knows it will be seen.
pub(crate) fn signal_ready(path: Option<&str>) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, b"")
            .map_err(|e| AgentError::Environment(format!("cannot create the ready file {p}: {e}"))),
        None => Ok(()),
    }
}

/// Starts a capture's window of `seconds` on socket `fd`: a receive
/// timeout of 100 ms lets its loop see the deadline. When it started and
/// when it ends.
pub(crate) fn window(fd: &OwnedFd, seconds: f64) -> (Instant, Instant) {
    let timeout = nix::sys::time::TimeVal::new(0, 100_000);
    let _ = nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout);
    let start = Instant::now();
    (start, start + Duration::from_secs_f64(seconds.max(0.0)))
}

/// Captures for `seconds` (or until `max` matching packets were seen);
/// `ready`: a file to create once the socket is open.
pub fn run(
    plan: &NodePlan,
    seconds: f64,
    max: Option<u64>,
    ready: Option<&str>,
) -> Result<CaptureReport> {
    let watch = open(plan)?;
    signal_ready(ready)?;
    Ok(watch.watch(seconds, max))
}

/// A VXLAN capture whose socket is open: packets from here on are seen.
pub struct Watch {
    node: String,
    interface: String,
    port: u16,
    vni: u32,
    fd: OwnedFd,
}

/// Opens the capture socket on `plan`'s underlay interface.
pub fn open(plan: &NodePlan) -> Result<Watch> {
    let Some(vx) = plan.vxlan.as_ref() else {
        return Err(AgentError::Input(format!(
            "node {} uses the {} backend: no VXLAN packets to capture (pod packets cross the \
             underlay unencapsulated: watch them with `capture --icmp-to POD-IP`)",
            plan.node, plan.backend
        )));
    };
    let k =
        Kernel::read_links().map_err(|e| AgentError::Failed(format!("cannot read links: {e}")))?;
    let link = underlay(&k, plan)?;
    let fd = packet_socket(link.index)?;
    Ok(Watch {
        node: plan.node.clone(),
        interface: link.name,
        port: vx.port,
        vni: vx.vni,
        fd,
    })
}

impl Watch {
    /// Counts for `seconds`, or until `max` packets of the VNI were seen.
    pub fn watch(self, seconds: f64, max: Option<u64>) -> CaptureReport {
        let Watch {
            node,
            interface,
            port,
            vni,
            fd,
        } = self;
        let (start, deadline) = window(&fd, seconds);
        let (mut packets, mut other_vni) = (0u64, 0u64);
        let mut flows: BTreeMap<(Ipv4Addr, Ipv4Addr, Ipv4Addr, Ipv4Addr, u8), u64> =
            BTreeMap::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline && max.is_none_or(|m| packets < m) {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let Some(p) = decode(&buf[..n as usize], port) else {
                continue;
            };
            if p.vni != vni {
                other_vni += 1;
                continue;
            }
            packets += 1;
            if let Some((s, d, proto)) = p.inner {
                *flows
                    .entry((p.outer.0, p.outer.1, s, d, proto))
                    .or_default() += 1;
            }
        }
        let (report_version, command) = header::<CaptureReport>();
        CaptureReport {
            report_version,
            command,
            node,
            interface,
            port,
            vni,
            seconds: start.elapsed().as_secs_f64(),
            packets,
            other_vni,
            flows: flows
                .into_iter()
                .map(|((os, od, is, id, p), n)| Flow {
                    outer_src: os,
                    outer_dst: od,
                    inner_src: is,
                    inner_dst: id,
                    inner_protocol: p,
                    packets: n,
                })
                .collect(),
        }
    }
}
