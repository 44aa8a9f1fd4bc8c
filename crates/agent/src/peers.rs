//! Converges the per-peer objects on the VXLAN device: for each peer a
//! permanent neighbour entry, a permanent FDB entry and an onlink route, in
//! that order; then removes entries for peers no longer in the plan and FDB
//! entries of a peer's old MAC. All requests go to the kernel in one
//! pipelined batch.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_nodeplan::{MacAddr, NodePlan};

use crate::links::Mode;
use crate::netlink::{Netlink, Op};
use crate::nlops;
use crate::observe::{
    fdb_text, neighbour_text, route_text, Fdb, Kernel, Neighbour, Route, MAIN_TABLE,
};
use crate::report::{Action, Collector, Difference};

/// Converges neighbours, FDB entries and routes of every peer.
pub fn converge_peers(nl: &Netlink, k: &Kernel, plan: &NodePlan, mode: Mode, out: &mut Collector) {
    let dev = plan.vxlan.name.as_str();
    let index = k.link(dev).map(|l| l.index);
    let on_dev = |i: u32| Some(i) == index;

    let neighbours: HashMap<Ipv4Addr, &Neighbour> = k
        .neighbours
        .iter()
        .filter(|n| on_dev(n.index))
        .map(|n| (n.ip, n))
        .collect();
    let mut fdb: HashMap<MacAddr, Vec<&Fdb>> = HashMap::new();
    for f in k.fdb.iter().filter(|f| on_dev(f.index)) {
        fdb.entry(f.mac).or_default().push(f);
    }
    // Routes that the plan's route would collide with: ours on the device,
    // and any main-table route with the same key (replace overwrites it).
    let mut routes: HashMap<Ipv4Net, Vec<&Route>> = HashMap::new();
    for r in k.routes.iter().filter(|r| r.table == MAIN_TABLE) {
        if r.oif.is_some_and(on_dev) || r.priority.unwrap_or(0) == 0 {
            routes.entry(r.dst).or_default().push(r);
        }
    }

    let mut ops: Vec<(Op, String)> = Vec::new();
    let idx = index.unwrap_or(0);
    for peer in &plan.peers {
        let gw = peer.subnet.network();
        let mac = peer.vtep_mac;

        let obj = format!("neighbour {gw} dev {dev}");
        let want = format!("{gw} dev {dev} lladdr {mac} permanent");
        let have = neighbours.get(&gw).map(|n| neighbour_text(n, dev));
        if have.as_deref() == Some(want.as_str()) {
            out.unchanged(obj);
        } else {
            let action = if have.is_some() {
                Action::Updated
            } else {
                Action::Created
            };
            out.object(&obj, action, vec![Difference::new(&obj, Some(want), have)]);
            ops.push((nlops::replace_neighbour(idx, gw, mac), obj));
        }

        let obj = format!("fdb {mac} dev {dev}");
        let want = format!("{mac} dev {dev} dst {} self permanent", peer.underlay_ip);
        let entries = fdb.get(&mac).cloned().unwrap_or_default();
        let have: Vec<String> = entries.iter().map(|f| fdb_text(f, dev)).collect();
        if have.len() == 1 && have[0] == want {
            out.unchanged(obj);
        } else {
            let action = if have.is_empty() {
                Action::Created
            } else {
                Action::Updated
            };
            let actual = (!have.is_empty()).then(|| have.join("; "));
            out.object(
                &obj,
                action,
                vec![Difference::new(&obj, Some(want), actual)],
            );
            for f in entries.iter().filter(|f| f.dst != Some(peer.underlay_ip)) {
                ops.push((nlops::delete_fdb(idx, f.mac, f.dst), obj.clone()));
            }
            ops.push((nlops::replace_fdb(idx, mac, peer.underlay_ip), obj));
        }

        let obj = format!("route {}", peer.subnet);
        let want = format!("{} via {gw} dev {dev} onlink", peer.subnet);
        let found = routes.get(&peer.subnet).cloned().unwrap_or_default();
        let have: Vec<String> = found
            .iter()
            .map(|r| route_text(r, &k.link_name(r.oif.unwrap_or(0))))
            .collect();
        if have.len() == 1 && have[0] == want {
            out.unchanged(obj);
        } else {
            let action = if have.is_empty() {
                Action::Created
            } else {
                Action::Updated
            };
            let actual = (!have.is_empty()).then(|| have.join("; "));
            out.object(
                &obj,
                action,
                vec![Difference::new(&obj, Some(want), actual)],
            );
            for r in found.iter().filter(|r| r.priority.unwrap_or(0) != 0) {
                ops.push((delete_route(r), obj.clone()));
            }
            ops.push((nlops::replace_onlink_route(peer.subnet, gw, idx), obj));
        }
    }

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

fn delete_route(r: &Route) -> Op {
    nlops::delete_route(r.dst, r.gateway, r.oif, r.table, r.priority)
}

/// Entries on the device that no peer of the plan accounts for.
fn stale(
    k: &Kernel,
    plan: &NodePlan,
    index: Option<u32>,
    ops: &mut Vec<(Op, String)>,
    out: &mut Collector,
) {
    let Some(idx) = index else { return };
    let dev = plan.vxlan.name.as_str();
    let gws: HashSet<Ipv4Addr> = plan.peers.iter().map(|p| p.subnet.network()).collect();
    let macs: HashSet<MacAddr> = plan.peers.iter().map(|p| p.vtep_mac).collect();
    let subnets: HashSet<Ipv4Net> = plan.peers.iter().map(|p| p.subnet).collect();
    for n in k
        .neighbours
        .iter()
        .filter(|n| n.index == idx && !gws.contains(&n.ip))
    {
        let obj = format!("neighbour {} dev {dev}", n.ip);
        out.object(
            &obj,
            Action::Removed,
            vec![Difference::new(&obj, None, Some(neighbour_text(n, dev)))],
        );
        ops.push((nlops::delete_neighbour(idx, n.ip), obj));
    }
    for f in k
        .fdb
        .iter()
        .filter(|f| f.index == idx && !macs.contains(&f.mac))
    {
        let obj = format!("fdb {} dev {dev}", f.mac);
        out.object(
            &obj,
            Action::Removed,
            vec![Difference::new(&obj, None, Some(fdb_text(f, dev)))],
        );
        ops.push((nlops::delete_fdb(idx, f.mac, f.dst), obj));
    }
    let on_dev = k
        .routes
        .iter()
        .filter(|r| r.table == MAIN_TABLE && r.oif == Some(idx));
    for r in on_dev.filter(|r| !subnets.contains(&r.dst)) {
        let obj = format!("route {}", r.dst);
        out.object(
            &obj,
            Action::Removed,
            vec![Difference::new(&obj, None, Some(route_text(r, dev)))],
        );
        ops.push((delete_route(r), obj));
    }
}
