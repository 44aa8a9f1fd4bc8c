//! Defaults and checks for the `network` block: the three IPv4 networks,
//! MTU, per-node subnet length and flannel's backend (vxlan or host-gw).

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::{is_dns_label, Checker};
use crate::model::{Backend, Network};
use crate::raw::{RawBackend, RawNetwork};

pub const DEFAULT_UNDERLAY: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 56, 0), 24);
pub const DEFAULT_POD_NETWORK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16);
pub const DEFAULT_SERVICE_NETWORK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12);
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;
pub const DEFAULT_SUBNET_LEN: u8 = 24;
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
pub const DEFAULT_VNI: u32 = 1;
pub const DEFAULT_VXLAN_PORT: u16 = 8472;
/// VXLAN encapsulation (outer IPv4 + UDP + VXLAN + inner Ethernet) costs this.
pub const VXLAN_OVERHEAD: u32 = 50;
/// Pods need at least 1280 bytes (the IPv6 minimum).
pub const MIN_POD_MTU: u32 = 1280;
/// ... after VXLAN's 50 (host-gw adds nothing).
pub const MIN_UNDERLAY_MTU: u32 = MIN_POD_MTU + VXLAN_OVERHEAD;
/// The backends `network.backend.type` accepts.
pub const BACKEND_TYPES: [&str; 2] = ["vxlan", "host-gw"];
/// Jumbo frames.
pub const MAX_UNDERLAY_MTU: u32 = 9000;
/// A /30 holds the bridge gateway and one pod.
pub const MAX_SUBNET_LEN: u8 = 30;
pub const MAX_VNI: u64 = (1 << 24) - 1;

/// The network block after defaults; a network that did not parse is `None`
/// so that checks depending on it are skipped instead of piling up.
pub(crate) struct NetworkDraft {
    pub underlay: Option<Ipv4Net>,
    pub pod_network: Option<Ipv4Net>,
    pub service_network: Option<Ipv4Net>,
    underlay_mtu: u32,
    subnet_len: u8,
    dns_domain: String,
    backend: Backend,
    ip_masq: bool,
}

impl NetworkDraft {
    /// True for flannel's host-gw backend (every node on one L2 segment).
    pub fn host_gw(&self) -> bool {
        self.backend == Backend::HostGw
    }

    /// The final network (only used when no error was found, so the
    /// fallbacks never show).
    pub fn into_network(self) -> Network {
        Network {
            underlay: self.underlay.unwrap_or(DEFAULT_UNDERLAY),
            underlay_mtu: self.underlay_mtu,
            pod_network: self.pod_network.unwrap_or(DEFAULT_POD_NETWORK),
            subnet_len: self.subnet_len,
            service_network: self.service_network.unwrap_or(DEFAULT_SERVICE_NETWORK),
            dns_domain: self.dns_domain,
            backend: self.backend,
            ip_masq: self.ip_masq,
        }
    }
}

pub(crate) fn network(check: &mut Checker, raw: RawNetwork, node_count: usize) -> NetworkDraft {
    let underlay = cidr(check, "network.underlay", raw.underlay, DEFAULT_UNDERLAY);
    let pod_network = cidr(
        check,
        "network.podNetwork",
        raw.pod_network,
        DEFAULT_POD_NETWORK,
    );
    let service_network = cidr(
        check,
        "network.serviceNetwork",
        raw.service_network,
        DEFAULT_SERVICE_NETWORK,
    );

    let backend = backend(check, raw.backend.unwrap_or_default());
    let mtu = raw.underlay_mtu.unwrap_or(u64::from(DEFAULT_UNDERLAY_MTU));
    let min_mtu = MIN_POD_MTU + backend.overhead();
    if mtu < u64::from(min_mtu) {
        let why = match backend {
            Backend::Vxlan { .. } => {
                format!("VXLAN takes {VXLAN_OVERHEAD} bytes and pods need at least {MIN_POD_MTU}")
            }
            Backend::HostGw => format!("pods need at least {MIN_POD_MTU}"),
        };
        check.error(
            "network.underlayMTU",
            format!("{mtu} is too small: {why}"),
            format!("use {min_mtu} or more (1500 on most networks)"),
        );
    } else if mtu > u64::from(MAX_UNDERLAY_MTU) {
        check.error(
            "network.underlayMTU",
            format!("{mtu} is larger than {MAX_UNDERLAY_MTU} (jumbo frames)"),
            "use the MTU of the network the nodes share, usually 1500",
        );
    }

    let subnet_len = raw.subnet_len.unwrap_or(u64::from(DEFAULT_SUBNET_LEN));
    subnet_len_checks(check, subnet_len, pod_network, node_count);

    let pairs = [
        ("network.podNetwork", pod_network, "the underlay", underlay),
        (
            "network.serviceNetwork",
            service_network,
            "the underlay",
            underlay,
        ),
        (
            "network.serviceNetwork",
            service_network,
            "the pod network",
            pod_network,
        ),
    ];
    for (path, net, other_name, other) in pairs {
        if let (Some(net), Some(other)) = (net, other) {
            if net.contains(&other.network()) || other.contains(&net.network()) {
                check.error(
                    path,
                    format!("{net} overlaps {other_name} {other}"),
                    "the underlay, pod network and service network must not share addresses",
                );
            }
        }
    }
    if let Some(service) = service_network {
        if service.prefix_len() > 28 {
            check.error(
                "network.serviceNetwork",
                format!("{service} is too small: it must hold the API service IP (+1) and the DNS service IP (+10)"),
                "use a /28 or larger, e.g. 10.96.0.0/12",
            );
        }
    }

    let dns_domain = raw
        .dns_domain
        .unwrap_or_else(|| DEFAULT_DNS_DOMAIN.to_string());
    if dns_domain.len() > 253 || !dns_domain.split('.').all(|l| is_dns_label(l, 63)) {
        check.error(
            "network.dnsDomain",
            format!("`{dns_domain}` is not a DNS domain"),
            format!("use lowercase labels separated by dots, e.g. {DEFAULT_DNS_DOMAIN}"),
        );
    }

    NetworkDraft {
        underlay,
        pod_network,
        service_network,
        underlay_mtu: u32::try_from(mtu).unwrap_or(DEFAULT_UNDERLAY_MTU),
        subnet_len: u8::try_from(subnet_len).unwrap_or(DEFAULT_SUBNET_LEN),
        dns_domain,
        backend,
        ip_masq: raw.ip_masq.unwrap_or(true),
    }
}

fn subnet_len_checks(check: &mut Checker, len: u64, pod: Option<Ipv4Net>, node_count: usize) {
    const PATH: &str = "network.subnetLen";
    if len > u64::from(MAX_SUBNET_LEN) {
        check.error(
            PATH,
            format!("/{len} is too long: a node subnet must hold the bridge gateway and pods"),
            format!("use at most {MAX_SUBNET_LEN} (24 is usual)"),
        );
        return;
    }
    let Some(pod) = pod else { return };
    let prefix = u64::from(pod.prefix_len());
    if len <= prefix {
        check.error(
            PATH,
            format!("/{len} is not longer than the pod network's /{prefix}: every node needs its own part of {pod}"),
            format!("use a value from {} to {MAX_SUBNET_LEN}", prefix + 1),
        );
        return;
    }
    // len - prefix <= 30 here, so the shift cannot overflow.
    let available = 1u64 << (len - prefix);
    if (node_count as u64) > available {
        check.error(
            PATH,
            format!(
                "{pod} has only {available} subnets of /{len}, but the lab has {node_count} nodes"
            ),
            "use a larger podNetwork or a longer subnetLen",
        );
    }
}

fn backend(check: &mut Checker, raw: RawBackend) -> Backend {
    let kind = raw.kind.unwrap_or_else(|| "vxlan".to_string());
    match kind.as_str() {
        "vxlan" => vxlan_backend(check, raw.vni, raw.port),
        "host-gw" => {
            // Settings of the VXLAN device mean nothing here: refused, so
            // nobody believes they changed something.
            for (field, given) in [("vni", raw.vni.is_some()), ("port", raw.port.is_some())] {
                if given {
                    check.error(
                        &format!("network.backend.{field}"),
                        format!("`{field}` is a VXLAN setting; the host-gw backend has no tunnel"),
                        format!("remove `{field}`, or use `type: vxlan`"),
                    );
                }
            }
            Backend::HostGw
        }
        other => {
            check.error(
                "network.backend.type",
                format!(
                    "`{other}` is not one of: {} (flannel's backends labctl builds)",
                    BACKEND_TYPES.join(", ")
                ),
                "use `type: vxlan` (works across routed networks) or `type: host-gw` (every node on one L2 segment)",
            );
            vxlan_backend(check, raw.vni, raw.port)
        }
    }
}

fn vxlan_backend(check: &mut Checker, vni: Option<u64>, port: Option<u64>) -> Backend {
    let vni = vni.unwrap_or(u64::from(DEFAULT_VNI));
    if !(1..=MAX_VNI).contains(&vni) {
        check.error(
            "network.backend.vni",
            format!("VNI {vni} is outside 1..{MAX_VNI} (VXLAN IDs have 24 bits)"),
            "flannel uses 1",
        );
    }
    let port = port.unwrap_or(u64::from(DEFAULT_VXLAN_PORT));
    if !(1..=65535).contains(&port) {
        check.error(
            "network.backend.port",
            format!("port {port} is outside 1..65535"),
            "flannel and Linux use 8472",
        );
    }
    Backend::Vxlan {
        vni: u32::try_from(vni).unwrap_or(DEFAULT_VNI),
        port: u16::try_from(port).unwrap_or(DEFAULT_VXLAN_PORT),
    }
}

/// Parses an IPv4 network in CIDR form whose host bits are zero.
fn cidr(check: &mut Checker, path: &str, raw: Option<String>, default: Ipv4Net) -> Option<Ipv4Net> {
    let Some(text) = raw else {
        return Some(default);
    };
    let text = text.trim();
    if let Ok(net) = text.parse::<Ipv4Net>() {
        if net.trunc() != net {
            check.error(
                path,
                format!("`{text}` has host bits set"),
                format!("write the network address: {}", net.trunc()),
            );
            return None;
        }
        return Some(net);
    }
    if text.parse::<Ipv4Addr>().is_ok() {
        check.error(
            path,
            format!("`{text}` is an address, not a network"),
            format!("add the prefix length, e.g. {text}/24"),
        );
    } else if matches!(text.parse::<IpNet>(), Ok(IpNet::V6(_))) || text.contains(':') {
        check.error(
            path,
            format!("`{text}` is an IPv6 network; labctl supports IPv4 only"),
            format!("use an IPv4 network, e.g. {default}"),
        );
    } else {
        check.error(
            path,
            format!("`{text}` is not an IPv4 network in CIDR form"),
            format!("write it like {default}"),
        );
    }
    None
}
