//! The walk: one packet from SRC to DST, hop by hop, from the nodes' plans
//! and the live state their agents reported (`show`, `route get`), each
//! hop compared with what the plan wants. Pure: the command gathers the
//! reports, this module follows the path the kernel takes (the route
//! entry it matched, the first FLANNEL-POSTRTG rule that matches) and
//! what the packet meets on it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use labctl_nodeplan::report::{RouteGetReport, ShowReport};
use labctl_nodeplan::{NodePlan, PeerPlan, VxlanPlan};

use super::model::{Hop, HopKind, Place, PlaceKind, Watch};
use super::rules;

/// What the walk reads: every node's plan, and the live reports of the
/// nodes it passes.
pub struct Live<'a> {
    pub plans: &'a [NodePlan],
    /// Node → its agent's `show` report.
    pub shows: &'a BTreeMap<String, ShowReport>,
    /// Node → its live service rules (`iptables -t nat -S LABCTL-SERVICES`).
    pub services: &'a BTreeMap<String, Vec<String>>,
    /// The service rules the lab wants (empty: the lab runs none).
    pub planned_services: &'a [String],
    /// Node → its agent's `route get` of the walk's addresses (none: an
    /// agent without it; flannel's live routes then stand in).
    pub lookups: &'a BTreeMap<String, RouteGetReport>,
}

/// The walk's hops (numbered), where the packet is really sent (a
/// service's endpoint) and notes.
pub struct Walk {
    pub hops: Vec<Hop>,
    pub to: Ipv4Addr,
    pub notes: Vec<String>,
}

/// The VXLAN device the plan builds, if its backend has one: the VXLAN
/// hops exist only then.
pub fn vxlan_of(plan: &NodePlan) -> Option<&VxlanPlan> {
    plan.vxlan.as_ref()
}

/// The route the plan puts on `plan`'s node for `dst`: its own subnet
/// on the bridge, or a peer's subnet by the VXLAN device (host-gw: via the
/// peer's node IP on the `underlay` device).
fn planned_route<'p>(
    plan: &'p NodePlan,
    dst: Ipv4Addr,
    underlay: &str,
) -> Option<(String, Option<&'p PeerPlan>)> {
    if plan.subnet.contains(&dst) {
        return Some((format!("{} dev {}", plan.subnet, plan.bridge.name), None));
    }
    let peer = plan.peers.iter().find(|p| p.subnet.contains(&dst))?;
    let text = match vxlan_of(plan) {
        Some(vx) => format!(
            "{} via {} dev {} onlink",
            peer.subnet,
            peer.subnet.network(),
            vx.name
        ),
        None => format!("{} via {} dev {underlay}", peer.subnet, peer.underlay_ip),
    };
    Some((text, Some(peer)))
}

/// The node's own addresses in the plan: underlay, bridge, VXLAN device.
fn local_addresses(plan: &NodePlan) -> Vec<Ipv4Addr> {
    let mut out = vec![plan.underlay_ip, plan.bridge.address.addr()];
    out.extend(vxlan_of(plan).map(|v| v.address.addr()));
    out
}

/// A live route without what the plan does not set (a metric).
fn route_core(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "metric" {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    let line = out.join(" ");
    match line.strip_prefix("0.0.0.0/0 ") {
        Some(rest) => format!("default {rest}"),
        None => line,
    }
}

/// The walk so far.
pub(super) struct Walker<'a> {
    pub(super) live: &'a Live<'a>,
    pub(super) hops: Vec<Hop>,
    pub(super) notes: Vec<String>,
}

impl<'a> Walker<'a> {
    pub(super) fn plan(&self, node: &str) -> Option<&'a NodePlan> {
        self.live.plans.iter().find(|p| p.node == node)
    }

    pub(super) fn show(&self, node: &str) -> Option<&'a ShowReport> {
        self.live.shows.get(node)
    }

    /// The route lookup for `to` on `node`; the planned route.
    fn route(&mut self, plan: &'a NodePlan, to: Ipv4Addr, watch: Watch) -> Option<&'a PeerPlan> {
        // The kernel's own answer (`route get`), else the longest prefix
        // among flannel's live routes.
        let looked_up = self.live.lookups.get(&plan.node).and_then(|r| r.route(to));
        let live = looked_up
            .or_else(|| {
                let show = self.show(&plan.node)?;
                rules::route_lookup(&show.routes, to).map(String::as_str)
            })
            .map(route_core);
        let planned = planned_route(plan, to, &self.underlay(plan));
        let node = Some(plan.node.as_str());
        let hop = match &planned {
            Some((text, _)) => {
                let matched = live.as_deref().unwrap_or("no route matches");
                Hop::new(
                    HopKind::Route,
                    node,
                    format!("route lookup for {to}: {matched}"),
                )
                .compare(text, live.as_deref())
            }
            None => {
                let flannels = [
                    Some(plan.bridge.name.as_str()),
                    vxlan_of(plan).map(|v| v.name.as_str()),
                ];
                let matched = match &live {
                    Some(l) => format!("{l} (the node's own route, not flannel's)"),
                    None => "no route of flannel's matches; the node's own routes take it".into(),
                };
                let mut hop = Hop::new(
                    HopKind::Route,
                    node,
                    format!("route lookup for {to}: {matched}"),
                );
                if let Some(l) = live
                    .as_deref()
                    .filter(|l| flannels.contains(&rules::field(l, "dev")))
                {
                    hop.broken(
                        "a route of the node's own (flannel routes only pod subnets)",
                        Some(l),
                    );
                }
                hop
            }
        };
        self.hops.push(hop.watch(watch));
        planned.and_then(|(_, peer)| peer)
    }

    /// The first FLANNEL-POSTRTG rule `from` → `to` meets on `plan`'s node,
    /// live against planned; the source the packet leaves with.
    /// Seen when the packet leaves by `device` with the source the rule gives.
    fn postrouting(
        &mut self,
        plan: &NodePlan,
        from: Ipv4Addr,
        to: Ipv4Addr,
        device: &str,
    ) -> Ipv4Addr {
        let Some(chain) = &plan.iptables.nat else {
            self.notes.push(format!(
                "{}: ipMasq is off, there is no FLANNEL-POSTRTG",
                plan.node
            ));
            return from;
        };
        let planned = rules::first_rule(&chain.rules, &chain.chain, from, to);
        let live_lines = self.show(&plan.node).map(|s| s.iptables.nat.clone());
        let live_lines = live_lines.unwrap_or_default();
        let jump = live_lines.iter().any(|l| l == &chain.jump);
        let live = rules::first_rule(&live_lines, &chain.chain, from, to);
        let masquerade =
            |r: Option<(usize, &String)>| r.is_some_and(|(_, r)| rules::target(r) == "MASQUERADE");
        let leaves_with = if jump && masquerade(live) {
            plan.underlay_ip
        } else {
            from
        };
        let said = match live {
            Some((n, r)) if masquerade(live) => {
                format!(
                    "{} rule {n} `{r}`: masqueraded to {leaves_with}",
                    chain.chain
                )
            }
            Some((n, r)) => format!(
                "{} rule {n} `{r}`: {}, not masqueraded",
                chain.chain,
                rules::target(r)
            ),
            None => format!("{}: no rule matches, not masqueraded", chain.chain),
        };
        let summary = format!("{} {from} → {to}: {said}", chain.parent);
        let mut hop = Hop::new(HopKind::Postrouting, Some(&plan.node), summary);
        if !jump {
            hop.broken(&chain.jump, Some(&format!("no jump to {}", chain.chain)));
        } else if planned.map(|p| p.1) != live.map(|l| l.1) {
            let text =
                |r: Option<(usize, &String)>| r.map_or("no rule".to_string(), |r| r.1.clone());
            hop.broken(&text(planned), Some(&text(live)));
        }
        let src = if masquerade(planned) {
            plan.underlay_ip
        } else {
            from
        };
        hop = hop.watch(Watch::NodeLeft {
            node: plan.node.clone(),
            device: device.to_string(),
            src: Some(src),
        });
        self.hops.push(hop);
        leaves_with
    }

    /// The far node's hops: its route lookup for `to`, then its bridge to
    /// the destination pod, both watched for the packet from `from`.
    fn far_node(&mut self, far: &'a NodePlan, from: Ipv4Addr, to: Ipv4Addr) {
        let far_left = Watch::NodeLeft {
            node: far.node.clone(),
            device: far.bridge.name.clone(),
            src: Some(from),
        };
        self.route(far, to, far_left.clone());
        self.bridge(far, "forwards it to the destination pod's veth", far_left);
    }

    pub(super) fn underlay(&self, plan: &NodePlan) -> String {
        self.show(&plan.node)
            .and_then(|s| s.underlay.clone())
            .unwrap_or_else(|| "the underlay".into())
    }
}

/// Fills the inner addresses of every VXLAN watch.
fn set_inner(hops: &mut [Hop], from: Ipv4Addr, to: Ipv4Addr) {
    for hop in hops {
        if let Some(Watch::Vxlan { inner, .. }) = &mut hop.watch {
            *inner = (from, to);
        }
    }
}

/// The walk from `src` (a pod or a node) to `dst`.
pub fn walk(live: &Live, src: &Place, dst: &Place) -> Result<Walk, String> {
    let node = src.node.as_deref().ok_or("the walk starts on a node")?;
    let mut w = Walker {
        live,
        hops: Vec::new(),
        notes: Vec::new(),
    };
    let plan = w.plan(node).ok_or(format!("node {node} has no plan"))?;
    let mut from = src.ip;
    let mut to = dst.ip;
    let pod_src = matches!(src.kind, PlaceKind::Pod { .. });
    if let PlaceKind::Pod { name, namespace } = &src.kind {
        let summary = format!(
            "pod {name} eth0 {from} (namespace {namespace}): to {to} via its default gateway {}",
            plan.bridge.address.addr()
        );
        w.hops
            .push(Hop::new(HopKind::PodEth0, Some(node), summary).watch(Watch::PodLeft));
    }
    if let PlaceKind::Service { name } = &dst.kind {
        to = w.dnat(plan, name, dst.ip);
    }
    if local_addresses(plan).contains(&to) {
        // An address of the node itself: delivered there, it never leaves.
        if pod_src {
            let watch = Watch::Answered;
            w.bridge(plan, "takes it in from the pod's veth", watch);
        }
        let summary = format!("route lookup for {to}: local, an address of {node} itself");
        w.hops.push(Hop::new(HopKind::Route, Some(node), summary));
        return Ok(w.arrive(dst, to));
    }
    let same_subnet = pod_src && plan.subnet.contains(&to) && to == dst.ip;
    if same_subnet {
        let left = Watch::NodeLeft {
            node: node.into(),
            device: plan.bridge.name.clone(),
            src: Some(from),
        };
        w.bridge(plan, "bridges it from the source pod's veth to the destination pod's veth (same subnet: no route, no VXLAN, no NAT)", left);
        return Ok(w.arrive(dst, to));
    }
    // Where the route sends it decides the watch of the hops before it.
    let underlay = w.underlay(plan);
    let device = match planned_route(plan, to, &underlay) {
        Some((_, None)) => plan.bridge.name.clone(),
        Some((_, Some(_))) => vxlan_of(plan).map_or(underlay.clone(), |v| v.name.clone()),
        None => underlay.clone(),
    };
    let left = Watch::NodeLeft {
        node: node.into(),
        device,
        src: None,
    };
    if pod_src {
        w.bridge(
            plan,
            "takes it in from the pod's veth and hands it to the node's routing",
            left.clone(),
        );
    }
    if !pod_src && from == plan.underlay_ip {
        // A node sends with the address of the device the route picks.
        from = match planned_route(plan, to, &underlay) {
            Some((_, None)) => plan.bridge.address.addr(),
            Some((_, Some(_))) => vxlan_of(plan).map_or(from, |v| v.address.addr()),
            None => from,
        };
    }
    match w.route(plan, to, left.clone()) {
        None if plan.subnet.contains(&to) => {
            w.bridge(plan, "forwards it to the destination pod's veth", left);
        }
        None => {
            let underlay = w.underlay(plan);
            from = w.postrouting(plan, from, to, &underlay);
            let hop = Hop::new(
                HopKind::Leave,
                Some(node),
                format!("leaves {node} by {underlay} from {from} toward {to}"),
            )
            .watch(Watch::NodeLeft {
                node: node.into(),
                device: underlay,
                src: None,
            });
            w.hops.push(hop);
        }
        Some(peer) if vxlan_of(plan).is_none() => {
            // host-gw: the packet leaves as it is, pod IP to pod IP, for
            // the peer's node as the next hop.
            from = w.postrouting(plan, from, to, &underlay);
            let summary = format!(
                "leaves {node} by {underlay} unencapsulated, {from} → {to}, next hop {} ({}'s underlay IP; host-gw: no VXLAN)",
                peer.underlay_ip, peer.node
            );
            w.hops.push(
                Hop::new(HopKind::Leave, Some(node), summary).watch(Watch::NodeLeft {
                    node: node.into(),
                    device: underlay,
                    src: Some(from),
                }),
            );
            let far = w
                .plan(&peer.node)
                .ok_or(format!("node {} has no plan", peer.node))?;
            w.far_node(far, from, to);
        }
        Some(peer) => {
            let vx = vxlan_of(plan).ok_or("a peer route without a VXLAN device")?;
            // POSTROUTING comes before the neighbour lookup and the device.
            from = w.postrouting(plan, from, to, &vx.name);
            w.vxlan_device(plan, vx, "encapsulates it", left.clone());
            w.neighbour_and_fdb(plan, vx, peer, left);
            let outer = (plan.underlay_ip, peer.underlay_ip);
            let underlay = w.underlay(plan);
            let summary = format!(
                "on the underlay ({underlay}): outer {} → {} UDP {} VNI {}, inner {from} → {to}",
                outer.0, outer.1, vx.port, vx.vni
            );
            let on_wire = |node: &str| Watch::Vxlan {
                node: node.into(),
                outer,
                inner: (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            };
            w.hops
                .push(Hop::new(HopKind::Underlay, Some(node), summary).watch(on_wire(node)));
            let far = w
                .plan(&peer.node)
                .ok_or(format!("node {} has no plan", peer.node))?;
            if let Some(far_vx) = vxlan_of(far) {
                w.vxlan_device(far, far_vx, "decapsulates it", on_wire(&far.node));
            }
            w.far_node(far, from, to);
        }
    }
    set_inner(&mut w.hops, from, to);
    Ok(w.arrive(dst, to))
}
