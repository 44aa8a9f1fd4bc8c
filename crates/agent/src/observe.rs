//! Reads the kernel's network state into plain records the agent compares
//! with the plan: links (with their VXLAN settings), IPv4 addresses,
//! neighbours, VXLAN forwarding entries and main-table routes. Each record
//! renders as the line `ip`/`bridge` would print, which is what reports show.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use labctl_nodeplan::MacAddr;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage,
};
use rtnetlink::packet_route::AddressFamily;
use serde::Serialize;

use crate::netlink::{Netlink, NlError};

/// A network device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `vxlan`, `bridge`, `veth`, ... or empty for a plain device.
    pub kind: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub up: bool,
    /// Index of the bridge this device is a port of.
    pub controller: Option<u32>,
    pub vxlan: Option<Vxlan>,
}

/// The settings of a VXLAN device, as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Vxlan {
    pub id: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<Ipv4Addr>,
    pub lower_index: Option<u32>,
    pub learning: Option<bool>,
    pub group: Option<Ipv4Addr>,
    pub ttl: Option<u8>,
}

/// An IPv4 address on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub index: u32,
    pub net: Ipv4Net,
}

/// An IPv4 neighbour (ARP) entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub mac: Option<MacAddr>,
    pub state: u16,
}

/// A forwarding database entry of a device (`bridge fdb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fdb {
    pub index: u32,
    pub mac: MacAddr,
    pub dst: Option<Ipv4Addr>,
    pub state: u16,
    /// NTF_SELF: the entry lives in the device's own table.
    pub own: bool,
}

/// An IPv4 route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub table: u32,
    pub priority: Option<u32>,
    pub onlink: bool,
}

/// Everything the agent reads from the kernel, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Kernel {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub neighbours: Vec<Neighbour>,
    pub fdb: Vec<Fdb>,
    pub routes: Vec<Route>,
}

impl Kernel {
    /// Dumps links, addresses, neighbours, forwarding entries and routes.
    pub fn read(nl: &Netlink) -> Result<Kernel, NlError> {
        Ok(Kernel {
            links: nl.links()?.iter().map(decode_link).collect(),
            addresses: nl.addresses()?.iter().filter_map(decode_address).collect(),
            neighbours: nl
                .neighbours(AddressFamily::Inet)?
                .iter()
                .filter_map(decode_neighbour)
                .collect(),
            fdb: nl
                .neighbours(AddressFamily::Bridge)?
                .iter()
                .filter_map(decode_fdb)
                .collect(),
            routes: nl.routes()?.iter().filter_map(decode_route).collect(),
        })
    }

    /// The device called `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The name of device `index` (or `if<index>` when it is gone).
    pub fn link_name(&self, index: u32) -> String {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }

    /// IPv4 addresses of device `index`.
    pub fn addresses_of(&self, index: u32) -> Vec<Ipv4Net> {
        self.addresses
            .iter()
            .filter(|a| a.index == index)
            .map(|a| a.net)
            .collect()
    }

    /// The device holding IPv4 address `ip`.
    pub fn link_with_address(&self, ip: Ipv4Addr) -> Option<&Link> {
        let a = self.addresses.iter().find(|a| a.net.addr() == ip)?;
        self.links.iter().find(|l| l.index == a.index)
    }
}

pub fn decode_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        controller: None,
        vxlan: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(a);
                link.mac = Some(MacAddr(b));
            }
            LinkAttribute::Controller(c) => link.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = kind_name(k),
                        LinkInfo::Data(InfoData::Vxlan(v)) => link.vxlan = Some(decode_vxlan(v)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn kind_name(kind: &InfoKind) -> String {
    kind.to_string()
}

fn decode_vxlan(infos: &[InfoVxlan]) -> Vxlan {
    let mut v = Vxlan::default();
    for info in infos {
        match info {
            InfoVxlan::Id(id) => v.id = Some(*id),
            InfoVxlan::Port(p) => v.port = Some(*p),
            InfoVxlan::Local(l) => v.local = Some(*l),
            InfoVxlan::Link(i) => v.lower_index = Some(*i),
            InfoVxlan::Learning(l) => v.learning = Some(*l),
            InfoVxlan::Group(g) if !g.is_unspecified() => v.group = Some(*g),
            InfoVxlan::Ttl(t) => v.ttl = Some(*t),
            _ => {}
        }
    }
    v
}

fn decode_address(msg: &AddressMessage) -> Option<Address> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let ip = local.or(address)?;
    Some(Address {
        index: msg.header.index,
        net: Ipv4Net::new(ip, msg.header.prefix_len).ok()?,
    })
}

fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    (bytes.len() == 6).then(|| {
        let mut b = [0u8; 6];
        b.copy_from_slice(bytes);
        MacAddr(b)
    })
}

fn decode_neighbour(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
            _ => {}
        }
    }
    Some(Neighbour {
        index: msg.header.ifindex,
        ip: ip?,
        mac,
        state: msg.header.state.into(),
    })
}

fn decode_fdb(msg: &NeighbourMessage) -> Option<Fdb> {
    let mut dst = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(*a),
            // Bridge-family messages carry the VXLAN remote as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(l),
            _ => {}
        }
    }
    Some(Fdb {
        index: msg.header.ifindex,
        mac: mac?,
        dst,
        state: msg.header.state.into(),
        own: msg.header.flags.contains(NeighbourFlags::Own),
    })
}

fn decode_route(msg: &RouteMessage) -> Option<Route> {
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    let mut table = u32::from(msg.header.table);
    let mut priority = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => priority = Some(*p),
            _ => {}
        }
    }
    Some(Route {
        dst: Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        table,
        priority,
        onlink: msg.header.flags.contains(RouteFlags::Onlink),
    })
}

/// The kernel's main routing table number.
pub const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// `ip -d link` style text for a VXLAN device.
pub fn vxlan_text(link: &Link, lower_name: &str) -> String {
    let v = link.vxlan.clone().unwrap_or_default();
    format!(
        "vxlan id {} local {} dev {} dstport {} {}ttl {} mtu {} address {} {}",
        v.id.map_or("?".into(), |i| i.to_string()),
        v.local.map_or("?".into(), |i| i.to_string()),
        lower_name,
        v.port.map_or("?".into(), |i| i.to_string()),
        if v.learning.unwrap_or(true) {
            "learning "
        } else {
            "nolearning "
        },
        match v.ttl {
            Some(0) | None => "auto".to_string(),
            Some(t) => t.to_string(),
        },
        link.mtu,
        link.mac.map_or("?".into(), |m| m.to_string()),
        if link.up { "up" } else { "down" }
    )
}

/// `ip neigh` style text.
pub fn neighbour_text(n: &Neighbour, dev: &str) -> String {
    format!(
        "{} dev {} lladdr {} {}",
        n.ip,
        dev,
        n.mac.map_or("none".into(), |m| m.to_string()),
        state_text(n.state)
    )
}

/// `bridge fdb` style text.
pub fn fdb_text(f: &Fdb, dev: &str) -> String {
    format!(
        "{} dev {}{}{} {}",
        f.mac,
        dev,
        f.dst.map_or(String::new(), |d| format!(" dst {d}")),
        if f.own { " self" } else { "" },
        state_text(f.state)
    )
}

/// `ip route` style text.
pub fn route_text(r: &Route, dev: &str) -> String {
    let mut s = r.dst.to_string();
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    s.push_str(&format!(" dev {dev}"));
    if let Some(p) = r.priority {
        s.push_str(&format!(" metric {p}"));
    }
    if r.onlink {
        s.push_str(" onlink");
    }
    if r.table != MAIN_TABLE {
        s.push_str(&format!(" table {}", r.table));
    }
    s
}

fn state_text(state: u16) -> String {
    const NAMES: [(u16, &str); 8] = [
        (0x01, "incomplete"),
        (0x02, "reachable"),
        (0x04, "stale"),
        (0x08, "delay"),
        (0x10, "probe"),
        (0x20, "failed"),
        (0x40, "noarp"),
        (0x80, "permanent"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| state & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(" ")
    }
}
