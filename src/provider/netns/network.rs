//! The lab network on this host: the host side (bridge, veths, the
//! bridge's ARP answers) built with `ip -batch` and `bridge -batch`, the
//! inside of every namespace (eth1, lo, the route out) by one
//! `labctl-agent underlay` process, which reads first and changes only
//! what differs:
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
use std::path::Path;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use labctl_nodeplan::report::{
    self, NamespaceUnderlay, UnderlayReport, UnderlayRequest, UnderlayRoute,
};
use labctl_nodeplan::MacAddr;

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
}

/// The whole lab network.
pub struct LabNet<'a> {
    pub bridge: &'a str,
    pub ext_netns: &'a str,
    pub ext_veth: &'a str,
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
pub fn eth1_mac(ip: Ipv4Addr) -> MacAddr {
    let [a, b, c, d] = ip.octets();
    MacAddr([0x02, 0x4c, a, b, c, d])
}

/// Creates what is missing and (re)applies addresses and routes inside every
/// namespace (cheap, and repairs a node whose eth1 address or default route
/// was removed by hand). Returns what it repaired in namespaces that
/// already stood, one line per namespace.
pub fn ensure(net: &LabNet, agent: &Path) -> Result<Vec<String>> {
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

    let report = underlay(net, agent)?;
    // What was repaired where a namespace already stood (a new one's setup
    // is no news).
    Ok(report
        .namespaces
        .into_iter()
        .filter(|n| have_ns.contains(&n.netns) && !n.changed.is_empty())
        .map(|n| format!("{}: {}", n.netns, n.changed.join(", ")))
        .collect())
}

/// The request that sets up every namespace's eth1: the outside world's,
/// then each node's.
fn underlay_request(net: &LabNet) -> Result<UnderlayRequest> {
    let eth1 =
        |netns: &str, ip: Ipv4Addr, address: Ipv4Net, route: UnderlayRoute| NamespaceUnderlay {
            netns: netns.to_string(),
            device: "eth1".into(),
            mtu: net.mtu,
            mac: eth1_mac(ip),
            address,
            route,
            flush_neighbours: net.flush_neighbours,
        };
    let mut namespaces = vec![eth1(
        net.ext_netns,
        EXT_GATEWAY,
        EXT_ADDRESS.parse()?,
        UnderlayRoute::Link {
            dst: net.underlay.trunc(),
        },
    )];
    for node in &net.nodes {
        namespaces.push(eth1(
            node.netns,
            node.ip,
            Ipv4Net::new(node.ip, net.underlay.prefix_len())?,
            UnderlayRoute::Default { via: EXT_GATEWAY },
        ));
    }
    Ok(UnderlayRequest { namespaces })
}

/// Sets up eth1 in every namespace with one agent process (`agent`, the
/// lab's copy), where one `ip -n NODE -batch` each cost a process per node
/// on every `up`; fails naming every namespace that could not be set up.
fn underlay(net: &LabNet, agent: &Path) -> Result<UnderlayReport> {
    let request = serde_json::to_vec(&underlay_request(net)?)?;
    let program = agent.to_string_lossy();
    let out = hostcmd::output(&program, &["underlay"], Some(&request))?;
    let report: UnderlayReport = report::decode("this host", &String::from_utf8_lossy(&out.stdout))
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; it exited {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    let failed: Vec<String> = report
        .namespaces
        .iter()
        .filter_map(|n| Some(format!("namespace {}: {}", n.netns, n.error.as_deref()?)))
        .collect();
    if failed.is_empty() {
        return Ok(report);
    }
    Err(anyhow::anyhow!(
        "configuring the nodes' eth1 failed in {} namespace(s):\n  {}",
        failed.len(),
        failed.join("\n  ")
    ))
}
