//! Reads the kernel's network state into plain records the agent compares
//! with the plan: links (with their VXLAN settings), IPv4 addresses,
//! neighbours, VXLAN forwarding entries and main-table routes. Each record
//! renders as the line `ip`/`bridge` would print, which is what reports show.
//!
//! The dumps are plain netlink (`dump.rs`), parsed by `decode.rs`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_nodeplan::{MacAddr, PeerPlan};
use serde::Serialize;

use crate::decode::{
    dump_addresses, dump_links, dump_main_routes, dump_neighbours, get_neighbour, parse_fdb,
    parse_neighbour, AF_BRIDGE, AF_INET,
};
use crate::dump::DumpSocket;
use crate::netlink::NlError;

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
    /// Dumps links and IPv4 addresses only.
    pub fn read_links() -> Result<Kernel, NlError> {
        let mut socket = DumpSocket::open()?;
        Ok(Kernel {
            links: dump_links(&mut socket)?,
            addresses: dump_addresses(&mut socket)?,
            ..Kernel::default()
        })
    }

    /// Dumps links, IPv4 addresses, the main routing table and the
    /// neighbours and forwarding entries of device `dev` (none when it does
    /// not exist or there is none: host-gw). The kernel filters by device
    /// and table where it can.
    ///
    /// Neighbours are the exception (see [`look_up_neighbours`]): in a
    /// host whose neighbour table is large, the entries of `peers` are
    /// looked up one by one, and the device's others are read only when
    /// its forwarding entries or routes show something no peer accounts
    /// for.
    ///
    /// One socket, one dump after the other: rtnetlink dumps largely
    /// serialise in the kernel anyway, and a second thread for the routes
    /// measured slower (thread start and exit cost more than it overlapped).
    pub fn read_with_peers(dev: Option<&str>, peers: &[PeerPlan]) -> Result<Kernel, NlError> {
        let lap = crate::timing::lap;
        let mut socket = DumpSocket::open()?;
        let mut k = Kernel {
            links: dump_links(&mut socket)?,
            addresses: dump_addresses(&mut socket)?,
            ..Kernel::default()
        };
        lap("  links and addresses dumped");
        k.routes = dump_main_routes(&mut socket)?;
        k.routes.retain(|r| r.table == MAIN_TABLE);
        lap("  routes dumped");
        if let Some(index) = dev.and_then(|d| k.link(d)).map(|l| l.index) {
            k.fdb = dump_neighbours(&mut socket, AF_BRIDGE, index, parse_fdb)?;
            k.fdb.retain(|f| f.index == index);
            lap("  fdb dumped");
            if look_up_neighbours(&k, index, peers) {
                for peer in peers {
                    let gateway = peer.subnet.network();
                    k.neighbours
                        .extend(get_neighbour(&mut socket, index, gateway)?);
                }
                lap("  neighbours looked up");
            } else {
                k.neighbours = dump_neighbours(&mut socket, AF_INET, index, parse_neighbour)?;
                k.neighbours.retain(|n| n.index == index);
                lap("  neighbours dumped");
            }
        }
        Ok(k)
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

/// The neighbour state bit of a permanent (static) entry.
pub const NUD_PERMANENT: u16 = 0x80;
/// An entry that needs no resolution: bridge(8) sets it on every FDB
/// entry it adds, and `ip neigh flush` leaves such neighbours alone.
pub const NUD_NOARP: u16 = 0x40;

/// The kernel's main routing table number.
pub const MAIN_TABLE: u32 = 254;

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

/// Above this many peers, their neighbours are looked up one by one.
const LOOK_UP_ABOVE_PEERS: usize = 64;

/// Whether to look the peers' neighbours up one by one instead of dumping
/// the device's. The kernel keeps one neighbour table for every network
/// namespace of the host, and a dump walks all of it, whatever namespace
/// and device asked: in a 200-node netns lab that is 80,000 entries for
/// each node's 199 (5.5 of a converged node's 7.6 ms in the agent), in a
/// 1,000-node lab two million. A lookup costs one request per peer
/// (about 4 µs). A node cannot see how large the host's table is (its
/// counter is shown only in the host's own namespace), so the number of
/// peers decides: with few, a dump is cheap wherever the node runs; with
/// many, lookups cost a few milliseconds on a VM and save seconds in a
/// netns lab.
///
/// Lookups cannot see entries no peer accounts for, which `apply`
/// removes. flannel adds each peer's neighbour with its forwarding entry
/// and route and takes them away together, so the device's neighbours
/// are still dumped whenever its forwarding entries or routes show
/// anything that is not a peer's (a peer that left the plan). A lone
/// neighbour added by hand for an address of no peer is then left alone.
fn look_up_neighbours(k: &Kernel, index: u32, peers: &[PeerPlan]) -> bool {
    peers.len() > LOOK_UP_ABOVE_PEERS && only_peers_on(k, index, peers)
}

/// Whether every forwarding entry and route on device `index` belongs to
/// one of `peers`.
fn only_peers_on(k: &Kernel, index: u32, peers: &[PeerPlan]) -> bool {
    let mut macs: Vec<MacAddr> = peers.iter().map(|p| p.vtep_mac).collect();
    macs.sort_unstable();
    let mut subnets: Vec<Ipv4Net> = peers.iter().map(|p| p.subnet).collect();
    subnets.sort_unstable();
    let fdb_ok = k
        .fdb
        .iter()
        .filter(|f| f.index == index)
        .all(|f| macs.binary_search(&f.mac).is_ok());
    let routes_ok = k
        .routes
        .iter()
        .filter(|r| r.oif == Some(index))
        .all(|r| subnets.binary_search(&r.dst).is_ok());
    fdb_ok && routes_ok
}
