//! flannel's host-gw backend: per peer exactly one route
//! `SUBNET via PEER-NODE-IP dev UNDERLAY` (main table, no metric, no onlink
//! flag), as upstream's `route_network.go` programs it. No device, no
//! neighbour or FDB entries of its own.
//!
//! Also what either backend must remove when a node changes backend (or
//! VNI): VXLAN devices named `flannel.<N>` the plan does not hold (their
//! routes, neighbours and FDB entries go with them), and routes into the
//! pod network on the underlay interface that no peer accounts for.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use labctl_nodeplan::{Backend, NodePlan, PeerPlan};

use crate::links::{run_ops, Mode};
use crate::netlink::{Netlink, Op};
use crate::nlops;
use crate::observe::{route_text, Kernel, Link, Route, MAIN_TABLE};
use crate::report::{Action, Collector, Difference, ObjectKind};

/// True for the names flannel gives its VXLAN devices (`flannel.1`).
fn is_flannel_vxlan_name(name: &str) -> bool {
    name.strip_prefix("flannel.")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes VXLAN devices called `flannel.<N>` other than the plan's own
/// (none with host-gw). Returns true when there was one.
pub fn remove_other_vxlan(
    nl: &Netlink,
    k: &Kernel,
    plan: &NodePlan,
    mode: Mode,
    out: &mut Collector,
) -> bool {
    let own = plan.vxlan.as_ref().map(|v| v.name.as_str());
    let mut found = false;
    for link in k.links.iter().filter(|l| {
        l.kind == "vxlan" && is_flannel_vxlan_name(&l.name) && Some(l.name.as_str()) != own
    }) {
        found = true;
        let obj = format!("vxlan {}", link.name);
        let d = Difference::new(ObjectKind::Link, &obj, &link.name)
            .actual(Some(crate::links::live_vxlan_text(k, link)));
        out.object(ObjectKind::Link, &obj, Action::Removed, vec![d]);
        if mode == Mode::Apply {
            run_ops(nl, vec![nlops::delete_link(link.index)], &obj, out);
        }
    }
    found
}

/// The wanted route of `peer` in `ip route` form.
fn wanted_text(peer: &PeerPlan, lower: &str) -> String {
    format!("{} via {} dev {lower}", peer.subnet, peer.underlay_ip)
}

/// True when `found` is the one route `SUBNET via PEER-IP dev UNDERLAY`.
fn route_matches(found: &[&Route], peer: &PeerPlan, lower: u32) -> bool {
    matches!(found, [r] if r.gateway == Some(peer.underlay_ip)
        && r.oif == Some(lower)
        && r.priority.is_none()
        && !r.onlink
        && r.table == MAIN_TABLE)
}

/// Converges the routes on the underlay interface: with host-gw every
/// peer's route; with either backend, removes [`stale_underlay_routes`].
pub fn converge_routes(
    nl: &Netlink,
    k: &Kernel,
    plan: &NodePlan,
    lower: &Link,
    mode: Mode,
    out: &mut Collector,
) {
    let mut ops: Vec<(Op, String)> = Vec::new();
    let mut unchanged = 0;
    let peers = match plan.backend {
        Backend::HostGw => plan.peers.as_slice(),
        Backend::Vxlan => &[],
    };
    // Main-table routes by destination: one lookup per peer, not a scan
    // (a 1,000-peer node has as many routes).
    let mut by_dst: BTreeMap<Ipv4Net, Vec<&Route>> = BTreeMap::new();
    if !peers.is_empty() {
        for r in k.routes.iter().filter(|r| r.table == MAIN_TABLE) {
            by_dst.entry(r.dst).or_default().push(r);
        }
    }
    for peer in peers {
        // Every main-table route to the subnet collides with ours: one
        // without a metric is overwritten by `replace`, others are deleted.
        let found: &[&Route] = by_dst.get(&peer.subnet).map_or(&[], Vec::as_slice);
        if route_matches(found, peer, lower.index) {
            match out.verbose {
                true => out.unchanged(ObjectKind::Route, format!("route {}", peer.subnet)),
                false => unchanged += 1,
            }
            continue;
        }
        let obj = format!("route {}", peer.subnet);
        let have: Vec<String> = found
            .iter()
            .map(|r| route_text(r, &k.link_name(r.oif.unwrap_or(0))))
            .collect();
        let action = if have.is_empty() {
            Action::Created
        } else {
            Action::Updated
        };
        let d = Difference::new(ObjectKind::Route, &obj, peer.subnet.to_string())
            .peer(&peer.node)
            .expected(Some(wanted_text(peer, &lower.name)))
            .actual((!have.is_empty()).then(|| have.join("; ")));
        out.object(ObjectKind::Route, &obj, action, vec![d]);
        for r in found.iter().filter(|r| r.priority.unwrap_or(0) != 0) {
            ops.push((delete_route(r), obj.clone()));
        }
        ops.push((
            nlops::replace_route(peer.subnet, peer.underlay_ip, lower.index),
            obj,
        ));
    }
    out.unchanged_count(ObjectKind::Route, unchanged);
    for r in stale_underlay_routes(k, plan, lower) {
        let obj = format!("route {}", r.dst);
        let d = Difference::new(ObjectKind::Route, &obj, r.dst.to_string())
            .actual(Some(route_text(r, &lower.name)));
        out.object(ObjectKind::Route, &obj, Action::Removed, vec![d]);
        ops.push((delete_route(r), obj));
    }
    if mode == Mode::Apply {
        run_batch(nl, ops, out);
    }
}

fn delete_route(r: &Route) -> Op {
    nlops::delete_route(r.dst, r.gateway, r.oif, r.table, r.priority)
}

/// Runs `ops` in one pipelined batch; each failure marks its object.
fn run_batch(nl: &Netlink, ops: Vec<(Op, String)>, out: &mut Collector) {
    if ops.is_empty() {
        return;
    }
    let (ops, objects): (Vec<Op>, Vec<String>) = ops.into_iter().unzip();
    for (result, obj) in nl.run_all(ops).into_iter().zip(objects) {
        if let Err(e) = result {
            out.fail(&obj, format!("{obj}: {e}"));
        }
    }
}

/// Routes on the underlay interface into the pod network that are not a
/// peer's subnet: a host-gw route of a node that left, or of a backend the
/// node no longer uses (with vxlan a peer's old host-gw route is replaced
/// by its onlink route instead).
pub fn stale_underlay_routes<'k>(k: &'k Kernel, plan: &NodePlan, lower: &Link) -> Vec<&'k Route> {
    let peer_subnets: BTreeSet<Ipv4Net> = plan.peers.iter().map(|p| p.subnet).collect();
    k.routes
        .iter()
        .filter(|r| {
            r.table == MAIN_TABLE
                && r.oif == Some(lower.index)
                && plan.network.contains(&r.dst)
                && !peer_subnets.contains(&r.dst)
        })
        .collect()
}

/// Deletes every route into the pod network on the underlay interface
/// (teardown: what host-gw made). Returns what was removed, and errors.
pub fn teardown_routes(
    nl: &Netlink,
    k: &Kernel,
    plan: &NodePlan,
    lower: &Link,
) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    let ours = k.routes.iter().filter(|r| {
        r.table == MAIN_TABLE && r.oif == Some(lower.index) && plan.network.contains(&r.dst)
    });
    for r in ours {
        match nl.run(delete_route(r)) {
            Ok(()) => removed.push(format!("route {}", route_text(r, &lower.name))),
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(format!("cannot delete route {}: {e}", r.dst)),
        }
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flannel_dot_number_names_are_flannel_vxlan_devices() {
        for name in ["flannel.1", "flannel.42"] {
            assert!(is_flannel_vxlan_name(name), "{name}");
        }
        for name in [
            "flannel.",
            "flannel.x",
            "flannel1",
            "vxlan0",
            "flannel.1a",
            "cni0",
        ] {
            assert!(!is_flannel_vxlan_name(name), "{name}");
        }
    }
}
