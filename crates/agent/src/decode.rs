//! Dump requests and reply parsing for the records in `observe`: the
//! message layouts are the kernel's uapi structs (`ifinfomsg`, `ifaddrmsg`,
//! `ndmsg`, `rtmsg`), the numbers those of `linux/rtnetlink.h`, `if_link.h`
//! and `neighbour.h`. Parsing reads only the attributes the agent compares
//! and skips the rest, straight from the receive buffer.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_nodeplan::MacAddr;

use crate::dump::{attrs, put_attr, u32_of, DumpSocket};
use crate::netlink::NlError;
use crate::observe::{Address, Fdb, Link, Neighbour, Route, Vxlan, MAIN_TABLE};

pub const AF_INET: u8 = 2;
pub const AF_BRIDGE: u8 = 7;
const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const RTM_GETNEIGH: u16 = 30;
const RTM_GETROUTE: u16 = 26;
const IFF_UP: u32 = 1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_GROUP: u16 = 2;
const IFLA_VXLAN_LINK: u16 = 3;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFLA_VXLAN_TTL: u16 = 5;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PORT: u16 = 15;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_IFINDEX: u16 = 8;
const NTF_SELF: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTNH_F_ONLINK: u32 = 4;
/// `rtm_flags`: answer with the matched table entry, not the resulting
/// route (`ip route get fibmatch`, Linux 4.13+).
const RTM_F_FIB_MATCH: u32 = 0x2000;

pub fn dump_links(socket: &mut DumpSocket) -> Result<Vec<Link>, NlError> {
    // struct ifinfomsg, all zero: every device.
    socket.collect(RTM_GETLINK, &[0; 16], parse_link)
}

pub fn dump_addresses(socket: &mut DumpSocket) -> Result<Vec<Address>, NlError> {
    // struct ifaddrmsg with ifa_family AF_INET.
    let mut req = [0u8; 8];
    req[0] = AF_INET;
    socket.collect(RTM_GETADDR, &req, parse_address)
}

/// Neighbours (`AF_INET`) or forwarding entries (`AF_BRIDGE`) of device
/// `index`.
pub fn dump_neighbours<T>(
    socket: &mut DumpSocket,
    family: u8,
    index: u32,
    parse: fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, NlError> {
    // struct ndmsg; the device goes in NDA_IFINDEX (neighbours, both
    // checking modes) or ndm_ifindex (FDB, strict checking only: the
    // legacy parser would read the header as an ifinfomsg).
    let mut req = vec![0u8; 12];
    req[0] = family;
    if family == AF_BRIDGE {
        if socket.strict {
            req[4..8].copy_from_slice(&index.to_ne_bytes());
        }
    } else {
        put_attr(&mut req, NDA_IFINDEX, &index.to_ne_bytes());
    }
    socket.collect(RTM_GETNEIGH, &req, parse)
}

/// The neighbour entry for `ip` on device `index`, if there is one: one
/// request, answered from the neighbour table's hash (Linux 5.0+, strict
/// checking).
pub fn get_neighbour(
    socket: &mut DumpSocket,
    index: u32,
    ip: Ipv4Addr,
) -> Result<Option<Neighbour>, NlError> {
    let mut req = vec![0u8; 12];
    req[0] = AF_INET;
    req[4..8].copy_from_slice(&index.to_ne_bytes());
    put_attr(&mut req, NDA_DST, &ip.octets());
    match socket.get(RTM_GETNEIGH, &req, parse_neighbour) {
        Err(e) if e.is_not_found() => Ok(None),
        other => other,
    }
}

/// IPv4 routes of the main table (of every table on kernels without strict
/// checking).
pub fn dump_main_routes(socket: &mut DumpSocket) -> Result<Vec<Route>, NlError> {
    // struct rtmsg with rtm_family AF_INET; rtm_table selects the table
    // under strict checking.
    let mut req = [0u8; 12];
    req[0] = AF_INET;
    if socket.strict {
        req[4] = MAIN_TABLE as u8;
    }
    socket.collect(RTM_GETROUTE, &req, parse_route)
}

/// The routing table entry `dst` matches (`ip route get fibmatch DST`).
pub fn route_get(socket: &mut DumpSocket, dst: Ipv4Addr) -> Result<Option<Route>, NlError> {
    // struct rtmsg: family, dst_len 32, rtm_flags at bytes 8..12.
    let mut req = vec![0u8; 12];
    req[0] = AF_INET;
    req[1] = 32;
    req[8..12].copy_from_slice(&RTM_F_FIB_MATCH.to_ne_bytes());
    put_attr(&mut req, RTA_DST, &dst.octets());
    socket.get(RTM_GETROUTE, &req, parse_route)
}

/// The way a packet to one address goes, as the kernel answers `ip -4
/// route get DST` (no fibmatch): gateway, device and source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTaken {
    pub dst: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub src: Option<Ipv4Addr>,
}

/// How a packet to `dst` would be routed (`ip -4 route get DST`); the
/// kernel's refusal (no route: ENETUNREACH) is an error.
pub fn route_taken(socket: &mut DumpSocket, dst: Ipv4Addr) -> Result<Option<RouteTaken>, NlError> {
    let mut req = vec![0u8; 12];
    req[0] = AF_INET;
    req[1] = 32;
    put_attr(&mut req, RTA_DST, &dst.octets());
    socket.get(RTM_GETROUTE, &req, parse_route_taken)
}

fn parse_route_taken(p: &[u8]) -> Option<RouteTaken> {
    let h = p.get(..12)?;
    if h[0] != AF_INET {
        return None;
    }
    let mut taken = RouteTaken {
        dst: Ipv4Addr::UNSPECIFIED,
        gateway: None,
        oif: None,
        src: None,
    };
    for (kind, v) in attrs(&p[12..]) {
        match kind {
            RTA_DST => taken.dst = ipv4(v)?,
            RTA_GATEWAY => taken.gateway = ipv4(v),
            RTA_OIF => taken.oif = u32_of(v),
            RTA_PREFSRC => taken.src = ipv4(v),
            _ => {}
        }
    }
    Some(taken)
}

fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = v.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// A NUL-terminated string attribute.
fn text(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    let b: [u8; 6] = bytes.try_into().ok()?;
    Some(MacAddr(b))
}

/// One `RTM_NEWLINK` payload: `struct ifinfomsg` (16 bytes) + attributes.
fn parse_link(p: &[u8]) -> Option<Link> {
    let header = p.get(..16)?;
    let flags = u32_of(&header[8..12])?;
    let mut link = Link {
        index: u32_of(&header[4..8])?,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        mac: None,
        up: flags & IFF_UP != 0,
        controller: None,
        vxlan: None,
    };
    for (kind, v) in attrs(&p[16..]) {
        match kind {
            IFLA_IFNAME => link.name = text(v),
            IFLA_MTU => link.mtu = u32_of(v)?,
            IFLA_ADDRESS => link.mac = mac_of(v),
            IFLA_MASTER => link.controller = u32_of(v),
            IFLA_LINKINFO => {
                let mut data = None;
                for (k, v) in attrs(v) {
                    match k {
                        IFLA_INFO_KIND => link.kind = text(v),
                        IFLA_INFO_DATA => data = Some(v),
                        _ => {}
                    }
                }
                if link.kind == "vxlan" {
                    link.vxlan = data.map(parse_vxlan);
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// The `IFLA_INFO_DATA` of a VXLAN device.
fn parse_vxlan(data: &[u8]) -> Vxlan {
    let mut v = Vxlan::default();
    for (kind, value) in attrs(data) {
        match kind {
            IFLA_VXLAN_ID => v.id = u32_of(value),
            IFLA_VXLAN_PORT => {
                // The only big-endian attribute here (a UDP port).
                v.port = value.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            }
            IFLA_VXLAN_LOCAL => v.local = ipv4(value),
            IFLA_VXLAN_LINK => v.lower_index = u32_of(value),
            IFLA_VXLAN_LEARNING => v.learning = value.first().map(|b| *b != 0),
            IFLA_VXLAN_GROUP => v.group = ipv4(value).filter(|g| !g.is_unspecified()),
            IFLA_VXLAN_TTL => v.ttl = value.first().copied(),
            _ => {}
        }
    }
    v
}

/// One `RTM_NEWADDR` payload: `struct ifaddrmsg` (8 bytes) + attributes.
fn parse_address(p: &[u8]) -> Option<Address> {
    let header = p.get(..8)?;
    if header[0] != AF_INET {
        return None;
    }
    let (mut local, mut address) = (None, None);
    for (kind, v) in attrs(&p[8..]) {
        match kind {
            IFA_LOCAL => local = ipv4(v),
            IFA_ADDRESS => address = ipv4(v),
            _ => {}
        }
    }
    Some(Address {
        index: u32_of(&header[4..8])?,
        net: Ipv4Net::new(local.or(address)?, header[1]).ok()?,
    })
}

/// The fixed part of `struct ndmsg` (12 bytes): family, ifindex, state,
/// flags.
fn ndmsg(p: &[u8]) -> Option<(u8, u32, u16, u8)> {
    let h = p.get(..12)?;
    Some((
        h[0],
        u32_of(&h[4..8])?,
        u16::from_ne_bytes([h[8], h[9]]),
        h[10],
    ))
}

/// One `RTM_NEWNEIGH` payload of family `AF_INET`.
pub fn parse_neighbour(p: &[u8]) -> Option<Neighbour> {
    let (family, index, state, _) = ndmsg(p)?;
    if family != AF_INET {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    for (kind, v) in attrs(&p[12..]) {
        match kind {
            NDA_DST => ip = ipv4(v),
            NDA_LLADDR => mac = mac_of(v),
            _ => {}
        }
    }
    Some(Neighbour {
        index,
        ip: ip?,
        mac,
        state,
    })
}

/// One `RTM_NEWNEIGH` payload of family `AF_BRIDGE` (an FDB entry; on a
/// VXLAN device `NDA_DST` is the remote VTEP).
pub fn parse_fdb(p: &[u8]) -> Option<Fdb> {
    let (family, index, state, flags) = ndmsg(p)?;
    if family != AF_BRIDGE {
        return None;
    }
    let (mut dst, mut mac) = (None, None);
    for (kind, v) in attrs(&p[12..]) {
        match kind {
            NDA_DST => dst = ipv4(v),
            NDA_LLADDR => mac = mac_of(v),
            _ => {}
        }
    }
    Some(Fdb {
        index,
        mac: mac?,
        dst,
        state,
        own: flags & NTF_SELF != 0,
    })
}

/// One `RTM_NEWROUTE` payload: `struct rtmsg` (12 bytes) + attributes.
fn parse_route(p: &[u8]) -> Option<Route> {
    let h = p.get(..12)?;
    if h[0] != AF_INET {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    let mut table = u32::from(h[4]);
    let mut priority = None;
    for (kind, v) in attrs(&p[12..]) {
        match kind {
            RTA_DST => dst = ipv4(v)?,
            RTA_GATEWAY => gateway = ipv4(v),
            RTA_OIF => oif = u32_of(v),
            RTA_TABLE => table = u32_of(v)?,
            RTA_PRIORITY => priority = u32_of(v),
            _ => {}
        }
    }
    Some(Route {
        dst: Ipv4Net::new(dst, h[1]).ok()?,
        gateway,
        oif,
        table,
        priority,
        onlink: u32_of(&h[8..12])? & RTNH_F_ONLINK != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vxlan_link_message_is_read_field_by_field() {
        let mut vxlan = Vec::new();
        put_attr(&mut vxlan, IFLA_VXLAN_ID, &1u32.to_ne_bytes());
        put_attr(&mut vxlan, IFLA_VXLAN_PORT, &8472u16.to_be_bytes());
        put_attr(&mut vxlan, IFLA_VXLAN_LOCAL, &[192, 168, 56, 10]);
        put_attr(&mut vxlan, IFLA_VXLAN_LINK, &2u32.to_ne_bytes());
        put_attr(&mut vxlan, IFLA_VXLAN_LEARNING, &[0]);
        put_attr(&mut vxlan, IFLA_VXLAN_GROUP, &[0, 0, 0, 0]);
        let mut info = Vec::new();
        put_attr(&mut info, IFLA_INFO_KIND, b"vxlan\0");
        put_attr(&mut info, 0x8000 | IFLA_INFO_DATA, &vxlan);
        let mut msg = vec![0u8; 16];
        msg[4..8].copy_from_slice(&7u32.to_ne_bytes());
        msg[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        put_attr(&mut msg, IFLA_IFNAME, b"flannel.1\0");
        put_attr(&mut msg, IFLA_MTU, &1450u32.to_ne_bytes());
        put_attr(&mut msg, IFLA_ADDRESS, &[0x0e, 0xfa, 0, 0, 0, 1]);
        put_attr(&mut msg, 0x8000 | IFLA_LINKINFO, &info);
        let link = parse_link(&msg).unwrap();
        assert_eq!(
            (link.index, link.name.as_str(), link.kind.as_str()),
            (7, "flannel.1", "vxlan")
        );
        assert!(link.up);
        assert_eq!(link.mtu, 1450);
        assert_eq!(link.mac.unwrap().to_string(), "0e:fa:00:00:00:01");
        let v = link.vxlan.unwrap();
        assert_eq!(v.id, Some(1));
        assert_eq!(v.port, Some(8472));
        assert_eq!(v.local, Some(Ipv4Addr::new(192, 168, 56, 10)));
        assert_eq!(v.lower_index, Some(2));
        assert_eq!(v.learning, Some(false));
        assert_eq!(v.group, None, "the unspecified group means none");
    }

    #[test]
    fn a_route_get_answer_gives_gateway_device_and_source() {
        let mut answer = vec![AF_INET, 32, 0, 0, MAIN_TABLE as u8, 3, 0, 1];
        answer.extend_from_slice(&0u32.to_ne_bytes());
        put_attr(&mut answer, RTA_DST, &[198, 18, 0, 1]);
        put_attr(&mut answer, RTA_OIF, &3u32.to_ne_bytes());
        put_attr(&mut answer, RTA_PREFSRC, &[192, 168, 64, 15]);
        put_attr(&mut answer, RTA_GATEWAY, &[192, 168, 64, 1]);
        let r = parse_route_taken(&answer).unwrap();
        assert_eq!(
            r,
            RouteTaken {
                dst: Ipv4Addr::new(198, 18, 0, 1),
                gateway: Some(Ipv4Addr::new(192, 168, 64, 1)),
                oif: Some(3),
                src: Some(Ipv4Addr::new(192, 168, 64, 15)),
            }
        );
        answer[0] = 10; // AF_INET6
        assert_eq!(parse_route_taken(&answer), None);
    }

    #[test]
    fn route_neighbour_and_fdb_messages_are_read() {
        let mut route = vec![AF_INET, 24, 0, 0, MAIN_TABLE as u8, 3, 0, 1];
        route.extend_from_slice(&RTNH_F_ONLINK.to_ne_bytes());
        put_attr(&mut route, RTA_TABLE, &MAIN_TABLE.to_ne_bytes());
        put_attr(&mut route, RTA_DST, &[10, 244, 1, 0]);
        put_attr(&mut route, RTA_GATEWAY, &[10, 244, 1, 0]);
        put_attr(&mut route, RTA_OIF, &5u32.to_ne_bytes());
        let r = parse_route(&route).unwrap();
        assert_eq!(r.dst.to_string(), "10.244.1.0/24");
        assert_eq!(
            (r.gateway, r.oif, r.table, r.priority, r.onlink),
            (
                Some(Ipv4Addr::new(10, 244, 1, 0)),
                Some(5),
                MAIN_TABLE,
                None,
                true
            )
        );

        let header = |family: u8, flags: u8| {
            let mut h = vec![family, 0, 0, 0];
            h.extend_from_slice(&5u32.to_ne_bytes());
            h.extend_from_slice(&0x80u16.to_ne_bytes());
            h.extend_from_slice(&[flags, 0]);
            h
        };
        let mut neigh = header(AF_INET, 0);
        put_attr(&mut neigh, NDA_DST, &[10, 244, 1, 0]);
        put_attr(&mut neigh, NDA_LLADDR, &[0x0e, 0xfa, 0, 0, 0, 1]);
        let n = parse_neighbour(&neigh).unwrap();
        assert_eq!(
            (n.index, n.ip, n.state),
            (5, Ipv4Addr::new(10, 244, 1, 0), 0x80)
        );
        assert!(
            parse_fdb(&neigh).is_none(),
            "an ARP entry is not an FDB entry"
        );

        let mut fdb = header(AF_BRIDGE, NTF_SELF);
        put_attr(&mut fdb, NDA_LLADDR, &[0x0e, 0xfa, 0, 0, 0, 1]);
        put_attr(&mut fdb, NDA_DST, &[192, 168, 56, 11]);
        let f = parse_fdb(&fdb).unwrap();
        assert_eq!(
            (f.dst, f.own, f.state),
            (Some(Ipv4Addr::new(192, 168, 56, 11)), true, 0x80)
        );
    }
}
