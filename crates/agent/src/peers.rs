//! Converges the per-peer objects on the VXLAN device: for each peer a
//! permanent neighbour entry, a permanent FDB entry and an onlink route, in
//! that order; then removes entries for peers no longer in the plan and FDB
//! entries of a peer's old MAC. All requests go to the kernel in one
//! pipelined batch.
//!
//! Kernel records are compared with the plan field by field; the `ip`-style
//! texts that reports show are only built for objects that differ, so a
//! node that already matches costs no formatting (3,000 objects for 1,000
//! peers).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_nodeplan::{MacAddr, NodePlan, PeerPlan};

use crate::links::Mode;
use crate::netlink::{Netlink, Op};
use crate::nlops;
use crate::observe::{
    fdb_text, neighbour_text, route_text, Fdb, Kernel, Neighbour, Route, MAIN_TABLE, NUD_NOARP,
    NUD_PERMANENT,
};
use crate::report::{Action, Collector, Difference, ObjectKind};

/// Entries sorted by an integer key, for binary-search lookups (integer
/// keys compare far faster than addresses or byte arrays).
struct Sorted<'k, T> {
    items: Vec<(u64, &'k T)>,
}

impl<'k, T> Sorted<'k, T> {
    fn new(items: impl Iterator<Item = &'k T>, key: impl Fn(&T) -> u64) -> Sorted<'k, T> {
        let mut items: Vec<(u64, &T)> = items.map(|t| (key(t), t)).collect();
        items.sort_unstable_by_key(|e| e.0);
        Sorted { items }
    }

    /// Every entry with `key`.
    fn get(&self, key: u64) -> &[(u64, &'k T)] {
        let start = self.items.partition_point(|e| e.0 < key);
        let end = start + self.items[start..].partition_point(|e| e.0 == key);
        &self.items[start..end]
    }
}

fn ip_key(ip: Ipv4Addr) -> u64 {
    u64::from(u32::from(ip))
}

fn mac_key(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0, |k, b| (k << 8) | u64::from(*b))
}

/// Address and prefix length (not the network: a plan subnet with host
/// bits set matches no kernel route, as with `Ipv4Net` equality).
fn net_key(net: Ipv4Net) -> u64 {
    (u64::from(u32::from(net.addr())) << 8) | u64::from(net.prefix_len())
}

/// The entries `k` has on the VXLAN device, indexed for lookups by peer.
struct Live<'k> {
    neighbours: Sorted<'k, Neighbour>,
    /// A MAC may have several FDB entries (one per remote).
    fdb: Sorted<'k, Fdb>,
    /// Routes the plan's routes would collide with: ours on the device,
    /// and any main-table route with the same key (`replace` overwrites
    /// it).
    routes: Sorted<'k, Route>,
}

impl<'k> Live<'k> {
    fn new(k: &'k Kernel, index: Option<u32>) -> Live<'k> {
        let on_dev = |i: u32| Some(i) == index;
        let routes = k.routes.iter().filter(|r| {
            r.table == MAIN_TABLE && (r.oif.is_some_and(on_dev) || r.priority.unwrap_or(0) == 0)
        });
        Live {
            neighbours: Sorted::new(k.neighbours.iter().filter(|n| on_dev(n.index)), |n| {
                ip_key(n.ip)
            }),
            fdb: Sorted::new(k.fdb.iter().filter(|f| on_dev(f.index)), |f| mac_key(f.mac)),
            routes: Sorted::new(routes, |r| net_key(r.dst)),
        }
    }
}

/// True when `n` is exactly `GW lladdr MAC permanent` (what
/// `neighbour_text` equality with the wanted text means).
fn neighbour_matches(n: &Neighbour, mac: MacAddr) -> bool {
    n.mac == Some(mac) && n.state == NUD_PERMANENT
}

/// True when `entries` is the one entry `MAC dst IP self permanent`.
/// `bridge fdb replace ... permanent` (what verify's fix says to run) adds
/// NOARP to the permanent state; the kernel treats both alike.
fn fdb_matches(entries: &[(u64, &Fdb)], dst: Ipv4Addr) -> bool {
    matches!(entries, [(_, f)] if f.dst == Some(dst) && f.own && f.state & !NUD_NOARP == NUD_PERMANENT)
}

/// True when `found` is the one route `SUBNET via GW dev DEV onlink` (main
/// table, no metric).
fn route_matches(found: &[(u64, &Route)], gw: Ipv4Addr, index: u32) -> bool {
    matches!(found, [(_, r)] if r.gateway == Some(gw)
        && r.oif == Some(index)
        && r.priority.is_none()
        && r.onlink
        && r.table == MAIN_TABLE)
}

/// How many objects of each kind matched the plan (counted here and
/// handed to the collector once, unless it lists them by name).
#[derive(Default)]
struct Unchanged {
    neighbours: usize,
    fdb: usize,
    routes: usize,
}

/// Converges neighbours, FDB entries and routes of every peer.
pub fn converge_peers(nl: &Netlink, k: &Kernel, plan: &NodePlan, mode: Mode, out: &mut Collector) {
    // Validation guarantees the device with the vxlan backend.
    let Some(dev) = plan.vxlan.as_ref().map(|v| v.name.as_str()) else {
        return;
    };
    let index = k.link(dev).map(|l| l.index);
    let live = Live::new(k, index);
    let idx = index.unwrap_or(0);
    let mut ops: Vec<(Op, String)> = Vec::new();
    let mut unchanged = Unchanged::default();
    for peer in &plan.peers {
        converge_peer(k, &live, dev, idx, peer, &mut ops, &mut unchanged, out);
    }
    out.unchanged_count(ObjectKind::Neighbour, unchanged.neighbours);
    out.unchanged_count(ObjectKind::Fdb, unchanged.fdb);
    out.unchanged_count(ObjectKind::Route, unchanged.routes);
    stale(k, plan, index, &mut ops, out);
    if mode == Mode::Apply && !ops.is_empty() {
        if index.is_none() {
            out.errors
                .push(format!("device {dev} does not exist: cannot program peers"));
            return;
        }
        let (ops, objects): (Vec<Op>, Vec<String>) = ops.into_iter().unzip();
        for (result, obj) in nl.run_all(ops).into_iter().zip(objects) {
            if let Err(e) = result {
                out.fail(&obj, format!("{obj}: {e}"));
            }
        }
    }
}

/// One peer's neighbour, FDB entry and route, in that order.
#[allow(clippy::too_many_arguments)]
fn converge_peer(
    k: &Kernel,
    live: &Live,
    dev: &str,
    idx: u32,
    peer: &PeerPlan,
    ops: &mut Vec<(Op, String)>,
    unchanged: &mut Unchanged,
    out: &mut Collector,
) {
    let gw = peer.subnet.network();
    let mac = peer.vtep_mac;
    let created_or_updated = |exists: bool| {
        if exists {
            Action::Updated
        } else {
            Action::Created
        }
    };

    let neighbour = live.neighbours.get(ip_key(gw)).first().map(|e| e.1);
    if neighbour.is_some_and(|n| neighbour_matches(n, mac)) {
        match out.verbose {
            true => out.unchanged(ObjectKind::Neighbour, format!("neighbour {gw} dev {dev}")),
            false => unchanged.neighbours += 1,
        }
    } else {
        let obj = format!("neighbour {gw} dev {dev}");
        let want = format!("{gw} dev {dev} lladdr {mac} permanent");
        let have = neighbour.map(|n| neighbour_text(n, dev));
        let action = created_or_updated(have.is_some());
        let d = Difference::new(ObjectKind::Neighbour, &obj, gw.to_string())
            .peer(&peer.node)
            .expected(Some(want))
            .actual(have);
        out.object(ObjectKind::Neighbour, &obj, action, vec![d]);
        ops.push((nlops::replace_neighbour(idx, gw, mac), obj));
    }

    let entries = live.fdb.get(mac_key(mac));
    if fdb_matches(entries, peer.underlay_ip) {
        match out.verbose {
            true => out.unchanged(ObjectKind::Fdb, format!("fdb {mac} dev {dev}")),
            false => unchanged.fdb += 1,
        }
    } else {
        let obj = format!("fdb {mac} dev {dev}");
        let want = format!("{mac} dev {dev} dst {} self permanent", peer.underlay_ip);
        let have: Vec<String> = entries.iter().map(|(_, f)| fdb_text(f, dev)).collect();
        let action = created_or_updated(!have.is_empty());
        let actual = (!have.is_empty()).then(|| have.join("; "));
        let d = Difference::new(ObjectKind::Fdb, &obj, mac.to_string())
            .peer(&peer.node)
            .expected(Some(want))
            .actual(actual);
        out.object(ObjectKind::Fdb, &obj, action, vec![d]);
        for (_, f) in entries
            .iter()
            .filter(|(_, f)| f.dst != Some(peer.underlay_ip))
        {
            ops.push((nlops::delete_fdb(idx, f.mac, f.dst), obj.clone()));
        }
        ops.push((nlops::replace_fdb(idx, mac, peer.underlay_ip), obj));
    }

    let found = live.routes.get(net_key(peer.subnet));
    if route_matches(found, gw, idx) {
        match out.verbose {
            true => out.unchanged(ObjectKind::Route, format!("route {}", peer.subnet)),
            false => unchanged.routes += 1,
        }
    } else {
        let obj = format!("route {}", peer.subnet);
        let want = format!("{} via {gw} dev {dev} onlink", peer.subnet);
        let have: Vec<String> = found
            .iter()
            .map(|(_, r)| route_text(r, &k.link_name(r.oif.unwrap_or(0))))
            .collect();
        let action = created_or_updated(!have.is_empty());
        let actual = (!have.is_empty()).then(|| have.join("; "));
        let d = Difference::new(ObjectKind::Route, &obj, peer.subnet.to_string())
            .peer(&peer.node)
            .expected(Some(want))
            .actual(actual);
        out.object(ObjectKind::Route, &obj, action, vec![d]);
        for (_, r) in found.iter().filter(|(_, r)| r.priority.unwrap_or(0) != 0) {
            ops.push((delete_route(r), obj.clone()));
        }
        ops.push((nlops::replace_onlink_route(peer.subnet, gw, idx), obj));
    }
}

fn delete_route(r: &Route) -> Op {
    nlops::delete_route(r.dst, r.gateway, r.oif, r.table, r.priority)
}

fn sorted(keys: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = keys.collect();
    v.sort_unstable();
    v
}

/// Entries on the device that no peer of the plan accounts for.
fn stale(
    k: &Kernel,
    plan: &NodePlan,
    index: Option<u32>,
    ops: &mut Vec<(Op, String)>,
    out: &mut Collector,
) {
    let (Some(idx), Some(vx)) = (index, plan.vxlan.as_ref()) else {
        return;
    };
    let dev = vx.name.as_str();
    // Sorted lists and binary search: cheaper than hashing for a few
    // thousand entries.
    let gws = sorted(plan.peers.iter().map(|p| ip_key(p.subnet.network())));
    let macs = sorted(plan.peers.iter().map(|p| mac_key(p.vtep_mac)));
    let subnets = sorted(plan.peers.iter().map(|p| net_key(p.subnet)));
    for n in k
        .neighbours
        .iter()
        .filter(|n| n.index == idx && gws.binary_search(&ip_key(n.ip)).is_err())
    {
        let obj = format!("neighbour {} dev {dev}", n.ip);
        let d = Difference::new(ObjectKind::Neighbour, &obj, n.ip.to_string())
            .actual(Some(neighbour_text(n, dev)));
        out.object(ObjectKind::Neighbour, &obj, Action::Removed, vec![d]);
        ops.push((nlops::delete_neighbour(idx, n.ip), obj));
    }
    for f in k
        .fdb
        .iter()
        .filter(|f| f.index == idx && macs.binary_search(&mac_key(f.mac)).is_err())
    {
        let obj = format!("fdb {} dev {dev}", f.mac);
        let d = Difference::new(ObjectKind::Fdb, &obj, f.mac.to_string())
            .actual(Some(fdb_text(f, dev)));
        out.object(ObjectKind::Fdb, &obj, Action::Removed, vec![d]);
        ops.push((nlops::delete_fdb(idx, f.mac, f.dst), obj));
    }
    let on_dev = k
        .routes
        .iter()
        .filter(|r| r.table == MAIN_TABLE && r.oif == Some(idx));
    for r in on_dev.filter(|r| subnets.binary_search(&net_key(r.dst)).is_err()) {
        let obj = format!("route {}", r.dst);
        let d = Difference::new(ObjectKind::Route, &obj, r.dst.to_string())
            .actual(Some(route_text(r, dev)));
        out.object(ObjectKind::Route, &obj, Action::Removed, vec![d]);
        ops.push((delete_route(r), obj));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_fdb_entry_matches_with_or_without_noarp() {
        let fdb = |state: u16, own: bool| Fdb {
            index: 4,
            mac: MacAddr([0x0e, 0xfa, 0, 0, 0, 1]),
            dst: Some(Ipv4Addr::new(192, 168, 56, 11)),
            state,
            own,
        };
        let dst = Ipv4Addr::new(192, 168, 56, 11);
        let netlink = fdb(NUD_PERMANENT, true);
        let by_bridge_command = fdb(NUD_PERMANENT | NUD_NOARP, true);
        assert!(fdb_matches(&[(0, &netlink)], dst));
        assert!(fdb_matches(&[(0, &by_bridge_command)], dst));
        // Not permanent, not the device's own, the wrong dst, or two entries.
        assert!(!fdb_matches(&[(0, &fdb(NUD_NOARP | 0x02, true))], dst));
        assert!(!fdb_matches(&[(0, &fdb(NUD_PERMANENT, false))], dst));
        assert!(!fdb_matches(
            &[(0, &netlink)],
            Ipv4Addr::new(192, 168, 56, 12)
        ));
        assert!(!fdb_matches(&[(0, &netlink), (1, &netlink)], dst));
    }
}
