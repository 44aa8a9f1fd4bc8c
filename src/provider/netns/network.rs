//! The lab network on this host, built with `ip -batch`:
//!
//! - a bridge holding the underlay's first address (.1), the only thing the
//!   host's root namespace gets (its connected route, with `quickack`; no
//!   forwarding, no other route);
//! - per node a namespace `<lab>-<node>` whose `eth1` (veth, host end on the
//!   bridge) holds the node IP and a MAC made from it, MTU = underlay MTU,
//!   lo up, and `default via 198.18.0.1 dev eth1 onlink`; the bridge answers
//!   ARP for every node and the outside world (`proxy_arp` ports);
//! - the outside world: namespace `<lab>-ext` on the bridge holding
//!   198.18.0.1/15 and a link route back to the underlay, so node egress
//!   (and flannel's masquerade) can be exercised without a real network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;

use crate::hostcmd;

/// The outside world's address (RFC 2544 benchmarking range).
pub const EXT_ADDRESS: &str = "198.18.0.1/15";
/// Nodes' default gateway.
pub const EXT_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// Names of the network namespaces on this host.
pub fn netns_list() -> Result<BTreeSet<String>> {
    let out = hostcmd::run("ip", &["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Names of the links in the root namespace.
pub fn link_list() -> Result<BTreeSet<String>> {
    Ok(link_groups()?.into_keys().collect())
}

/// Names of the links in link group `group` of the root namespace.
pub fn links_in_group(group: &str) -> Result<BTreeSet<String>> {
    let out = hostcmd::run("ip", &["-o", "link", "show", "group", group])?;
    Ok(out.lines().filter_map(link_name).collect())
}

/// The link an `ip -o link show` line is about: `4: eth0: <...>`, or the
/// veth `lcv1234` in `6: lcv1234@if2: <...>`.
fn link_name(line: &str) -> Option<String> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next().unwrap_or(name).to_string())
}

/// The links in the root namespace with their group (`default`, a number,
/// or a name from /etc/iproute2/group).
pub fn link_groups() -> Result<BTreeMap<String, String>> {
    Ok(parse_link_groups(&hostcmd::run(
        "ip",
        &["-o", "link", "show"],
    )?))
}

/// `ip -o link show`'s lines, `4: eth0: <...> mtu 1500 ... group default
/// qlen 1000\ link/ether ...`, as link name to group.
pub(super) fn parse_link_groups(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "group")?;
            Some((link_name(l)?, words.next()?.to_string()))
        })
        .collect()
}

/// One node's network.
pub struct NodeNet<'a> {
    pub netns: &'a str,
    pub host_veth: &'a str,
    pub ip: Ipv4Addr,
    /// The MAC its eth1 was last given, as the lab state says.
    pub eth1_mac_set: Option<&'a str>,
}

/// The whole lab network.
pub struct LabNet<'a> {
    pub bridge: &'a str,
    pub ext_netns: &'a str,
    pub ext_veth: &'a str,
    /// The MAC the outside world's eth1 was last given.
    pub ext_eth1_mac_set: Option<&'a str>,
    pub underlay: Ipv4Net,
    pub mtu: u32,
    pub nodes: Vec<NodeNet<'a>>,
    /// A node was removed or renumbered: forget learned neighbours (a
    /// reused IP would otherwise point at the old node's MAC for seconds).
    pub flush_neighbours: bool,
}

impl LabNet<'_> {
    /// The bridge's IP: the underlay's first host.
    pub fn bridge_ip(&self) -> Result<Ipv4Addr> {
        self.underlay
            .hosts()
            .next()
            .with_context(|| format!("underlay {} has no host addresses", self.underlay))
    }

    /// The bridge's address: its IP with the underlay's prefix.
    pub fn bridge_address(&self) -> Result<String> {
        Ok(format!(
            "{}/{}",
            self.bridge_ip()?,
            self.underlay.prefix_len()
        ))
    }
}

/// The MAC of the `eth1` (or the bridge) holding `ip`: locally
/// administered, `02:4c:` and the address's four bytes, so the bridge can
/// answer ARP for it from the start (see [`ensure`]).
pub fn eth1_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:4c:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Creates what is missing and (re)applies addresses and routes inside every
/// namespace (cheap, and repairs a node whose eth1 address or default route
/// was removed by hand).
pub fn ensure(net: &LabNet) -> Result<()> {
    let have_ns = netns_list()?;
    let have_links = link_list()?;
    let mtu = net.mtu;
    let mut host = Vec::new();
    let mut new_devices = Vec::new();
    let add_ns = |name: &str, lines: &mut Vec<String>| {
        if !have_ns.contains(name) {
            lines.push(format!("netns add {name}"));
        }
    };
    add_ns(net.ext_netns, &mut host);
    for node in &net.nodes {
        add_ns(node.netns, &mut host);
    }
    if !have_links.contains(net.bridge) {
        host.push(format!("link add {} mtu {mtu} type bridge", net.bridge));
        new_devices.push(net.bridge.to_string());
    }
    // A bridge without an address of its own takes its ports' lowest MAC,
    // and every change flushes its neighbour table (the pinned entries
    // below included): it gets a fixed one, made from its IP.
    host.push(format!(
        "link set {} mtu {mtu} address {} up",
        net.bridge,
        eth1_mac(net.bridge_ip()?)
    ));
    host.push(format!(
        "addr replace {} dev {}",
        net.bridge_address()?,
        net.bridge
    ));
    // The connected route again, with `quickack`: labctl's SSH sessions to
    // the nodes go this way, and sshd does not turn Nagle off for commands
    // without a terminal. A small reply then waits for the ACK of the
    // previous one, which this host would delay by 40 ms: once per command
    // and handshake step, for every node.
    host.push(format!(
        "route replace {} dev {} proto kernel scope link src {} quickack 1",
        net.underlay.trunc(),
        net.bridge,
        net.bridge_ip()?
    ));
    if net.flush_neighbours {
        host.push(format!("neigh flush dev {} nud all", net.bridge));
    }
    let veths = std::iter::once((net.ext_veth, net.ext_netns, EXT_GATEWAY))
        .chain(net.nodes.iter().map(|n| (n.host_veth, n.netns, n.ip)));
    // The underlay answers ARP itself, as a cloud network does: every node
    // would otherwise resolve every peer by a broadcast copied to every
    // port (n² requests to n ports: a billion frames at 1,000 nodes). Each
    // port is `proxy_arp` (the bridge replies from its neighbour table and
    // floods nothing to the port), with the node's MAC pinned on it. The
    // nodes still send and see ARP on eth1.
    let mut fdb = Vec::new();
    let mut neighbours = Vec::new();
    for (veth, ns, ip) in veths {
        let mac = eth1_mac(ip);
        if !have_links.contains(veth) {
            host.push(format!(
                "link add {veth} mtu {mtu} type veth peer name eth1 mtu {mtu} address {mac} netns {ns}"
            ));
            new_devices.push(veth.to_string());
        }
        host.push(format!("link set {veth} master {} up", net.bridge));
        host.push(format!(
            "link set dev {veth} type bridge_slave proxy_arp on"
        ));
        neighbours.push(format!(
            "neigh replace {ip} lladdr {mac} dev {} nud permanent",
            net.bridge
        ));
        fdb.push(format!("fdb replace {mac} dev {veth} master static"));
    }
    host.extend(neighbours);
    hostcmd::ip_batch(None, &host).context("building the lab network on the host")?;
    hostcmd::bridge_batch(None, &fdb).context("pinning the nodes' MACs on the lab bridge")?;
    for dev in &new_devices {
        // The lab's host side speaks IPv4 only: no IPv6 link-local chatter.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1");
    }

    let prefix = net.underlay.prefix_len();
    // Setting a MAC, even the same one, flushes the device's neighbours:
    // only where it was never set (a new veth gets it when made).
    let set_mac = |veth: &str, set: Option<&str>, mac: &str| {
        (!new_devices.iter().any(|d| d == veth) && set != Some(mac))
            .then(|| format!("link set eth1 address {mac}"))
    };
    let ext_mac = eth1_mac(EXT_GATEWAY);
    let mut ext = vec![
        "link set lo up".to_string(),
        format!("link set eth1 mtu {mtu} up"),
    ];
    ext.extend(set_mac(net.ext_veth, net.ext_eth1_mac_set, &ext_mac));
    ext.extend([
        format!("addr replace {EXT_ADDRESS} dev eth1"),
        format!("route replace {} dev eth1 scope link", net.underlay.trunc()),
    ]);
    if net.flush_neighbours {
        ext.push("neigh flush dev eth1".to_string());
    }
    hostcmd::ip_batch(Some(net.ext_netns), &ext)
        .context("configuring the outside-world namespace")?;
    // One `ip -n NODE -batch` per node, several at once (a process each).
    let configured = crate::nodes::pool::map(
        net.nodes.iter().collect(),
        crate::nodes::pool::WORKERS,
        |node| {
            let mut lines = vec![
                "link set lo up".to_string(),
                format!("link set eth1 mtu {mtu} up"),
            ];
            lines.extend(set_mac(
                node.host_veth,
                node.eth1_mac_set,
                &eth1_mac(node.ip),
            ));
            lines.extend([
                format!("addr replace {}/{prefix} dev eth1", node.ip),
                format!("route replace default via {EXT_GATEWAY} dev eth1 onlink"),
            ]);
            if net.flush_neighbours {
                lines.push("neigh flush dev eth1".to_string());
            }
            hostcmd::ip_batch(Some(node.netns), &lines)
                .with_context(|| format!("configuring namespace {}", node.netns))
        },
        |i| {
            Err(anyhow::anyhow!(
                "configuring node {i}'s namespace stopped early"
            ))
        },
    );
    configured.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}
