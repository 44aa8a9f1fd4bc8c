//! `verify.egressTarget`: the address VM labs' `egress` check pings from
//! every pod. It must be outside the cluster (not a pod, service or node
//! address), or the check would prove nothing about MASQUERADE.

use std::net::Ipv4Addr;

use super::network::NetworkDraft;
use super::Checker;
use crate::model::{Node, ProviderType};

const PATH: &str = "verify.egressTarget";

/// The parsed target, or `None` when absent or wrong (with the error
/// recorded). netns labs get a warning: their egress check always uses the
/// lab's own outside namespace, so the field does nothing there.
pub(super) fn egress_target(
    check: &mut Checker,
    raw: Option<String>,
    provider: ProviderType,
    network: &NetworkDraft,
    nodes: &[Node],
) -> Option<Ipv4Addr> {
    let text = raw?;
    let text = text.trim();
    let Ok(ip) = text.parse::<Ipv4Addr>() else {
        let hint = if text.contains('/') {
            "write one address without a prefix length, e.g. 198.18.0.1"
        } else {
            "write one IPv4 address outside the lab, e.g. 198.18.0.1"
        };
        check.error(PATH, format!("`{text}` is not an IPv4 address"), hint);
        return None;
    };
    if provider == ProviderType::Netns {
        check.warning(
            PATH,
            "netns labs do not use egressTarget: their egress check pings the lab's own outside namespace (198.18.0.1); it is ignored here",
            "remove it; it is for vagrant and ssh labs",
        );
        return None;
    }
    let outside = "pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router";
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        check.error(
            PATH,
            format!("{ip} is not a unicast address another machine can own"),
            outside,
        );
        return None;
    }
    let inside = [
        (network.pod_network, "the pod network"),
        (network.service_network, "the service network"),
    ]
    .into_iter()
    .find_map(|(net, what)| Some((net?, what)).filter(|(net, _)| net.contains(&ip)));
    if let Some((net, what)) = inside {
        check.error(
            PATH,
            format!("{ip} is inside {what} {net}: pinging it never leaves the cluster, so it proves nothing about MASQUERADE"),
            outside,
        );
        return None;
    }
    if let Some(node) = nodes.iter().find(|n| n.ip == ip) {
        check.error(
            PATH,
            format!(
                "{ip} is node {}'s own address: the egress check needs a far end outside the cluster",
                node.name
            ),
            outside,
        );
        return None;
    }
    Some(ip)
}
