//! `labctl-agent underlay`: a netns lab's host sets up the underlay device
//! of every node's namespace (and the outside world's) in one process: per
//! namespace, `lo` up, `eth1` up with its MTU and MAC, its address, and its
//! route out. What already matches is only read (one dump of links,
//! addresses and routes per namespace); on a converged lab nothing is
//! written. A namespace that cannot be set up is reported with why; the
//! others still are.
//!
//! Two threads share the namespaces (`netns::each_entered`: setns changes
//! only the calling thread; each opens its sockets after entering).

use std::net::Ipv4Addr;

use labctl_nodeplan::report::{
    NamespaceOutcome, NamespaceUnderlay, UnderlayReport, UnderlayRequest, UnderlayRoute,
    REPORT_VERSION,
};

use crate::decode::{self, AF_INET};
use crate::dump::DumpSocket;
use crate::error::{AgentError, Result};
use crate::netlink::{Netlink, Op};
use crate::nlops;
use crate::observe::{Link, NUD_NOARP, NUD_PERMANENT};

/// Decodes and validates the request (exit 2 before anything is touched).
pub fn parse_request(text: &str) -> Result<UnderlayRequest> {
    let request: UnderlayRequest = serde_json::from_str(text)
        .map_err(|e| AgentError::Input(format!("underlay: the request is not valid: {e}")))?;
    for ns in &request.namespaces {
        validate(ns).map_err(|e| AgentError::Input(format!("underlay: {e}")))?;
    }
    Ok(request)
}

fn validate(ns: &NamespaceUnderlay) -> std::result::Result<(), String> {
    if !crate::netns::is_plain_name(&ns.netns) {
        return Err(format!(
            "namespace {:?} is not a plain name under /run/netns",
            ns.netns
        ));
    }
    if !crate::plan::is_ifname(&ns.device) {
        return Err(format!(
            "namespace {}: {:?} is not a device name",
            ns.netns, ns.device
        ));
    }
    if !(68..=65535).contains(&ns.mtu) {
        return Err(format!(
            "namespace {}: MTU {} is outside 68-65535",
            ns.netns, ns.mtu
        ));
    }
    if ns.mac.0[0] & 0x01 != 0 {
        return Err(format!(
            "namespace {}: {} is a multicast MAC",
            ns.netns, ns.mac
        ));
    }
    Ok(())
}

/// Sets up every namespace of `request`; one outcome each, in order.
pub fn run(request: &UnderlayRequest) -> UnderlayReport {
    let all = &request.namespaces;
    let done = crate::netns::each_entered(
        all,
        |ns| ns.netns.as_str(),
        |ns| {
            let mut changed = Vec::new();
            let error = converge(ns, &mut changed).err();
            Ok((changed, error))
        },
    );
    let namespaces = done
        .into_iter()
        .zip(all)
        .map(|(done, ns)| {
            let (changed, error) = done.unwrap_or_else(|e| (Vec::new(), Some(e)));
            NamespaceOutcome {
                netns: ns.netns.clone(),
                changed,
                error,
            }
        })
        .collect();
    UnderlayReport {
        report_version: REPORT_VERSION,
        command: "underlay".into(),
        namespaces,
    }
}

/// Reads the namespace's links, addresses and routes, then sends what
/// differs as one ordered batch (link, address, route, neighbours).
fn converge(ns: &NamespaceUnderlay, changed: &mut Vec<String>) -> std::result::Result<(), String> {
    let read = |what: &str, e: crate::netlink::NlError| format!("reading the {what}: {e}");
    let mut socket = DumpSocket::open().map_err(|e| read("links", e))?;
    let links = decode::dump_links(&mut socket).map_err(|e| read("links", e))?;
    let dev_name = &ns.device;
    let dev = links
        .iter()
        .find(|l| l.name == *dev_name)
        .ok_or_else(|| format!("the namespace has no device {dev_name}"))?;
    let mut ops: Vec<(String, Op)> = Vec::new();
    if let Some(lo) = links.iter().find(|l| l.name == "lo" && !l.up) {
        ops.push(("ip link set lo up".into(), nlops::link_up(lo.index)));
    }
    ops.extend(link_op(dev, ns));
    let addresses = decode::dump_addresses(&mut socket).map_err(|e| read("addresses", e))?;
    if !addresses
        .iter()
        .any(|a| a.index == dev.index && a.net == ns.address)
    {
        ops.push((
            format!("ip addr add {} dev {dev_name}", ns.address),
            nlops::add_address(dev.index, ns.address),
        ));
    }
    let routes = decode::dump_main_routes(&mut socket).map_err(|e| read("routes", e))?;
    let (dst, via, onlink) = match ns.route {
        UnderlayRoute::Default { via } => ("0.0.0.0/0".parse().expect("literal"), Some(via), true),
        UnderlayRoute::Link { dst } => (dst, None, false),
    };
    let present = routes.iter().any(|r| {
        r.dst == dst
            && r.gateway == via
            && r.oif == Some(dev.index)
            && r.onlink == onlink
            && r.priority.unwrap_or(0) == 0
    });
    if !present {
        ops.push(match via {
            Some(via) => (
                format!("ip route replace default via {via} dev {dev_name} onlink"),
                nlops::replace_onlink_route(dst, via, dev.index),
            ),
            None => (
                format!("ip route replace {dst} dev {dev_name} scope link"),
                nlops::replace_link_route(dst, dev.index),
            ),
        });
    }
    if ns.flush_neighbours {
        let learned: Vec<Ipv4Addr> =
            decode::dump_neighbours(&mut socket, AF_INET, dev.index, decode::parse_neighbour)
                .map_err(|e| read("neighbours", e))?
                .into_iter()
                .filter(|n| n.index == dev.index && n.state & (NUD_PERMANENT | NUD_NOARP) == 0)
                .map(|n| n.ip)
                .collect();
        for ip in learned {
            ops.push((
                format!("ip neigh del {ip} dev {dev_name}"),
                nlops::delete_neighbour(dev.index, ip),
            ));
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    let (labels, ops): (Vec<String>, Vec<Op>) = ops.into_iter().unzip();
    let mut first_error = None;
    for (label, result) in labels.into_iter().zip(nl.run_all(ops)) {
        match result {
            Ok(()) => changed.push(label),
            Err(e) if first_error.is_none() => first_error = Some(format!("`{label}`: {e}")),
            Err(_) => {}
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `ip link set DEV [mtu M] [address MAC] up` when any of them differs.
fn link_op(dev: &Link, ns: &NamespaceUnderlay) -> Option<(String, Op)> {
    let mtu = (dev.mtu != ns.mtu).then_some(ns.mtu);
    // Setting a MAC, even the same one, flushes the device's neighbours.
    let mac = (dev.mac != Some(ns.mac)).then_some(ns.mac);
    if mtu.is_none() && mac.is_none() && dev.up {
        return None;
    }
    let mut label = format!("ip link set {}", dev.name);
    if let Some(m) = mtu {
        label.push_str(&format!(" mtu {m}"));
    }
    if let Some(m) = mac {
        label.push_str(&format!(" address {m}"));
    }
    label.push_str(" up");
    Some((label, nlops::set_link(dev.index, mtu, mac, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(netns: &str, device: &str, mtu: u32) -> String {
        format!(
            r#"{{"namespaces":[{{"netns":"{netns}","device":"{device}","mtu":{mtu},
            "mac":"02:4c:c0:a8:40:0a","address":"192.168.64.10/22",
            "route":{{"kind":"default","via":"198.18.0.1"}}}}]}}"#
        )
    }

    #[test]
    fn a_good_request_is_read() {
        let r = parse_request(&request("lab-n0", "eth1", 1500)).unwrap();
        assert_eq!(r.namespaces[0].netns, "lab-n0");
        assert!(!r.namespaces[0].flush_neighbours);
    }

    #[test]
    fn names_that_leave_run_netns_or_are_no_device_are_refused() {
        for (netns, device, mtu, words) in [
            ("../etc", "eth1", 1500, "not a plain name"),
            ("..", "eth1", 1500, "not a plain name"),
            ("", "eth1", 1500, "not a plain name"),
            ("lab-n0", "eth1 up", 1500, "not a device name"),
            ("lab-n0", "averyveryverylongname", 1500, "not a device name"),
            ("lab-n0", "eth1", 40, "outside 68-65535"),
        ] {
            let e = parse_request(&request(netns, device, mtu)).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_BAD_INPUT);
            assert!(e.to_string().contains(words), "{e}");
        }
        let e = parse_request(r#"{"namespaces":[],"extra":1}"#).unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");
    }
}
