//! Builders for the netlink change requests the agent sends, one function
//! per operation (the `ip`/`bridge` command each one mirrors is named in its
//! doc). They only build messages; `Netlink::run`/`run_all` send them.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use ipnet::Ipv4Net;
use labctl_nodeplan::MacAddr;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVxlan};

use crate::netlink::Op;

fn create(message: RouteNetlinkMessage) -> Op {
    Op {
        message,
        flags: NLM_F_CREATE | NLM_F_EXCL,
    }
}

fn replace(message: RouteNetlinkMessage) -> Op {
    Op {
        message,
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

fn plain(message: RouteNetlinkMessage) -> Op {
    Op { message, flags: 0 }
}

/// What a VXLAN device is made of.
#[derive(Debug, Clone)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    pub lower_index: u32,
    pub mtu: u32,
    pub mac: MacAddr,
}

/// `ip link add NAME address MAC mtu M type vxlan id VNI local IP dev LOWER
/// dstport PORT nolearning ttl 0` plus `up`, in one request so the MAC is
/// never a kernel-chosen one, not even briefly.
pub fn create_vxlan(spec: &VxlanSpec) -> Op {
    let msg = LinkVxlan::new(&spec.name, spec.vni)
        .dev(spec.lower_index)
        .local(spec.local)
        .port(spec.port)
        .learning(false)
        .ttl(0)
        .mtu(spec.mtu)
        .address(spec.mac.0.to_vec())
        .up()
        .build();
    create(RouteNetlinkMessage::NewLink(msg))
}

/// `ip link add NAME mtu M type bridge` plus `up`.
pub fn create_bridge(name: &str, mtu: u32) -> Op {
    let msg = LinkBridge::new(name).mtu(mtu).up().build();
    create(RouteNetlinkMessage::NewLink(msg))
}

/// `ip link add HOST mtu M master BRIDGE up type veth peer name PEER mtu M
/// netns NSFD`: the pod end is born inside the pod's namespace, so its
/// name cannot clash with a device of the node.
pub fn create_veth(host: &str, peer: &str, peer_netns: RawFd, mtu: u32, bridge_index: u32) -> Op {
    let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .mtu(mtu)
        .setns_by_fd(peer_netns)
        .build();
    let mut msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(host.to_string())
        .mtu(mtu)
        .controller(bridge_index)
        .up()
        .build();
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    create(RouteNetlinkMessage::NewLink(msg))
}

/// `ip link set dev INDEX [mtu M] [address MAC] [up]`.
pub fn set_link(index: u32, mtu: Option<u32>, mac: Option<MacAddr>, up: bool) -> Op {
    let mut b = LinkUnspec::new_with_index(index);
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = mac {
        b = b.address(mac.0.to_vec());
    }
    if up {
        b = b.up();
    }
    plain(RouteNetlinkMessage::SetLink(b.build()))
}

/// `ip link set dev INDEX type vxlan nolearning ttl 0` (both can change on a
/// live device).
pub fn set_vxlan_nolearning(index: u32) -> Op {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(vec![
            InfoVxlan::Learning(false),
            InfoVxlan::Ttl(0),
        ])),
    ]));
    plain(RouteNetlinkMessage::NewLink(msg))
}

/// `ip link set dev INDEX type bridge_slave hairpin on`: frames may leave
/// the bridge port they came in on, so a pod reaches a service whose
/// endpoint is itself (the CNI bridge plugin's `hairpinMode: true`).
pub fn set_bridge_port_hairpin(index: u32) -> Op {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    plain(RouteNetlinkMessage::NewLink(msg))
}

/// `ip link del dev INDEX`.
pub fn delete_link(index: u32) -> Op {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    plain(RouteNetlinkMessage::DelLink(msg))
}

/// `ip link set dev INDEX up` for the loopback or any device.
pub fn link_up(index: u32) -> Op {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    plain(RouteNetlinkMessage::SetLink(msg))
}

fn address_message(index: u32, net: Ipv4Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.attributes
        .push(AddressAttribute::Local(net.addr().into()));
    msg.attributes
        .push(AddressAttribute::Address(net.addr().into()));
    if net.prefix_len() < 31 {
        msg.attributes
            .push(AddressAttribute::Broadcast(net.broadcast()));
    }
    msg
}

/// `ip addr add NET dev INDEX`.
pub fn add_address(index: u32, net: Ipv4Net) -> Op {
    create(RouteNetlinkMessage::NewAddress(address_message(index, net)))
}

/// `ip addr del NET dev INDEX`.
pub fn delete_address(index: u32, net: Ipv4Net) -> Op {
    plain(RouteNetlinkMessage::DelAddress(address_message(index, net)))
}

/// `ip neigh replace IP lladdr MAC dev INDEX nud permanent`.
pub fn replace_neighbour(index: u32, ip: Ipv4Addr, mac: MacAddr) -> Op {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.kind = RouteType::Unspec;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    replace(RouteNetlinkMessage::NewNeighbour(msg))
}

/// `ip neigh del IP dev INDEX`.
pub fn delete_neighbour(index: u32, ip: Ipv4Addr) -> Op {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    plain(RouteNetlinkMessage::DelNeighbour(msg))
}

fn fdb_message(index: u32, mac: MacAddr, dst: Option<Ipv4Addr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.header.kind = RouteType::Unspec;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    if let Some(dst) = dst {
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    }
    msg
}

/// `bridge fdb replace MAC dev INDEX dst IP self permanent`.
pub fn replace_fdb(index: u32, mac: MacAddr, dst: Ipv4Addr) -> Op {
    replace(RouteNetlinkMessage::NewNeighbour(fdb_message(
        index,
        mac,
        Some(dst),
    )))
}

/// `bridge fdb del MAC dev INDEX [dst IP] self`.
pub fn delete_fdb(index: u32, mac: MacAddr, dst: Option<Ipv4Addr>) -> Op {
    plain(RouteNetlinkMessage::DelNeighbour(fdb_message(
        index, mac, dst,
    )))
}

fn route_message(dst: Ipv4Net, gateway: Option<Ipv4Addr>, oif: Option<u32>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    if dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.network(),
            )));
    }
    if let Some(gw) = gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    }
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

/// `ip route replace DST via GW dev INDEX onlink`.
pub fn replace_onlink_route(dst: Ipv4Net, gateway: Ipv4Addr, oif: u32) -> Op {
    let mut msg = route_message(dst, Some(gateway), Some(oif));
    msg.header.flags = RouteFlags::Onlink;
    replace(RouteNetlinkMessage::NewRoute(msg))
}

/// `ip route replace DST dev INDEX scope link`.
pub fn replace_link_route(dst: Ipv4Net, oif: u32) -> Op {
    let mut msg = route_message(dst, None, Some(oif));
    msg.header.scope = RouteScope::Link;
    replace(RouteNetlinkMessage::NewRoute(msg))
}

/// `ip route replace DST via GW dev INDEX` (host-gw: the gateway is on
/// the device's own network, so no onlink flag).
pub fn replace_route(dst: Ipv4Net, gateway: Ipv4Addr, oif: u32) -> Op {
    replace(RouteNetlinkMessage::NewRoute(route_message(
        dst,
        Some(gateway),
        Some(oif),
    )))
}

/// `ip route add default via GW`.
pub fn add_default_route(gateway: Ipv4Addr) -> Op {
    let msg = route_message("0.0.0.0/0".parse().expect("literal"), Some(gateway), None);
    create(RouteNetlinkMessage::NewRoute(msg))
}

/// `ip route del DST [via GW] [dev INDEX] [metric M] table T`, matching one
/// route the agent read from the kernel.
pub fn delete_route(
    dst: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    oif: Option<u32>,
    table: u32,
    priority: Option<u32>,
) -> Op {
    let mut msg = route_message(dst, gateway, oif);
    msg.header.protocol = RouteProtocol::Unspec;
    msg.header.scope = RouteScope::NoWhere;
    msg.header.kind = RouteType::Unspec;
    if table > 255 {
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes.push(RouteAttribute::Table(table));
    } else {
        msg.header.table = table as u8;
    }
    if let Some(p) = priority {
        msg.attributes.push(RouteAttribute::Priority(p));
    }
    plain(RouteNetlinkMessage::DelRoute(msg))
}
