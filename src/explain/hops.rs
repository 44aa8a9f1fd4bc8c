//! The hops the walk builds node by node: the bridge, the VXLAN device,
//! the neighbour and FDB entries, a service's DNAT rule and the arrival,
//! each with its live value compared with the plan. Pure.

use std::net::Ipv4Addr;

use labctl_nodeplan::{NodePlan, PeerPlan, VxlanPlan};

use super::model::{Hop, HopKind, Place, PlaceKind, Watch};
use super::rules;
use super::walk::{Walk, Walker};

impl Walker<'_> {
    /// The bridge hop on `node`: `how` it is crossed, live values compared.
    pub(super) fn bridge(&mut self, plan: &NodePlan, how: &str, watch: Watch) {
        let live = self.show(&plan.node).and_then(|s| s.bridge.as_ref());
        let expected = format!("bridge up {}", plan.bridge.address);
        let actual = live.map(|b| {
            let up = if b.up { "up" } else { "down" };
            format!("{} {up} {}", b.kind, b.addresses.join(" "))
        });
        let summary = format!(
            "{} {how} ({})",
            plan.bridge.name,
            actual.as_deref().unwrap_or("missing")
        );
        let hop = Hop::new(HopKind::Bridge, Some(&plan.node), summary)
            .compare(&expected, actual.as_deref())
            .watch(watch);
        self.hops.push(hop);
    }

    /// The VXLAN device on `plan`'s node: live `ip -d link` against the plan.
    pub(super) fn vxlan_device(
        &mut self,
        plan: &NodePlan,
        vx: &VxlanPlan,
        how: &str,
        watch: Watch,
    ) {
        let live = self.show(&plan.node).and_then(|s| s.vxlan.as_ref());
        let wants = [
            format!("vxlan id {}", vx.vni),
            format!("local {}", plan.underlay_ip),
            format!("dstport {}", vx.port),
        ];
        let summary = format!(
            "{} {how} ({})",
            vx.name,
            live.map_or("missing".into(), |l| l.link.clone())
        );
        let mut hop = Hop::new(HopKind::VxlanDevice, Some(&plan.node), summary);
        let agrees = live.is_some_and(|l| wants.iter().all(|w| l.link.contains(w.as_str())));
        if !agrees {
            hop.broken(&wants.join(" "), live.map(|l| l.link.as_str()));
        }
        self.hops.push(hop.watch(watch));
    }

    /// Neighbour then FDB entry for `peer` on `plan`'s node.
    pub(super) fn neighbour_and_fdb(
        &mut self,
        plan: &NodePlan,
        vx: &VxlanPlan,
        peer: &PeerPlan,
        w: Watch,
    ) {
        let gw = peer.subnet.network();
        let show = self.show(&plan.node);
        let neighbour = show.and_then(|s| {
            let key = format!("{gw} ");
            s.neighbours.iter().find(|n| n.starts_with(&key))
        });
        let live_mac = neighbour.and_then(|n| rules::field(n, "lladdr"));
        let planned_mac = peer.vtep_mac.to_string();
        let summary = format!(
            "neighbour {gw} dev {} → lladdr {} (inner destination MAC: {}'s VTEP)",
            vx.name,
            live_mac.unwrap_or("missing"),
            peer.node
        );
        let hop = Hop::new(HopKind::Neighbour, Some(&plan.node), summary)
            .compare(&planned_mac, live_mac)
            .watch(w);
        self.hops.push(hop);
        // The kernel looks the FDB up by the MAC the neighbour gave.
        let mac = live_mac.unwrap_or(&planned_mac);
        let fdb = show.and_then(|s| {
            let key = format!("{mac} ");
            s.fdb
                .iter()
                .find(|f| f.starts_with(&key) && rules::field(f, "dst").is_some())
        });
        let live_dst = fdb.and_then(|f| rules::field(f, "dst"));
        let summary = format!(
            "FDB {mac} dev {} → dst {} ({}'s underlay IP)",
            vx.name,
            live_dst.unwrap_or("missing"),
            peer.node
        );
        let hop = Hop::new(HopKind::Fdb, Some(&plan.node), summary)
            .compare(&peer.underlay_ip.to_string(), live_dst)
            .watch(Watch::Vxlan {
                node: plan.node.clone(),
                outer: (plan.underlay_ip, peer.underlay_ip),
                inner: (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            });
        self.hops.push(hop);
    }

    /// The service rule that rewrites `service` on the source node.
    pub(super) fn dnat(&mut self, plan: &NodePlan, name: &str, service: Ipv4Addr) -> Ipv4Addr {
        let planned = rules::dnat_rule(self.live.planned_services, service);
        let live_rules = self.live.services.get(&plan.node);
        let live = live_rules.and_then(|r| rules::dnat_rule(r, service));
        let Some((rule, endpoint)) = live.or(planned) else {
            self.notes.push(format!(
                "no DNAT rule for service {name} ({service}) is known on {}: the packet is followed to the service IP as is",
                plan.node
            ));
            return service;
        };
        let summary = format!(
            "service {name} {service}: nat PREROUTING/OUTPUT → `{rule}`: DNATed to {endpoint}"
        );
        let mut hop = Hop::new(HopKind::Dnat, Some(&plan.node), summary);
        if let Some((p, _)) = planned {
            hop = hop.compare(p, live.map(|l| l.0.as_str()));
        }
        self.hops.push(hop);
        self.notes.push(format!(
            "the service rules rewrite udp and tcp port 53 only (as kube-proxy's would): a trace pings the endpoint {endpoint} itself"
        ));
        endpoint
    }

    /// The last hop (the destination answers), and the numbered walk.
    pub(super) fn arrive(mut self, dst: &Place, to: Ipv4Addr) -> Walk {
        let what = match &dst.kind {
            PlaceKind::Pod { name, .. } => format!("pod {name} eth0 {to}"),
            PlaceKind::Service { name } => format!("service {name}'s endpoint {to}"),
            PlaceKind::Node => format!("node {} {to}", dst.word),
            PlaceKind::Address => format!("{to} ({})", self.address_is(to)),
        };
        let hop = Hop::new(
            HopKind::Arrive,
            dst.node.as_deref(),
            format!("{what} receives it"),
        )
        .watch(Watch::Answered);
        self.hops.push(hop);
        for (i, hop) in self.hops.iter_mut().enumerate() {
            hop.step = i + 1;
        }
        Walk {
            hops: self.hops,
            to,
            notes: self.notes,
        }
    }

    /// What an address that is no pod, node or service is to the lab.
    fn address_is(&self, ip: Ipv4Addr) -> String {
        let plans = self.live.plans;
        for p in plans {
            if p.bridge.address.addr() == ip {
                return format!("{}'s {} address", p.node, p.bridge.name);
            }
            if let Some(vx) = super::walk::vxlan_of(p).filter(|v| v.address.addr() == ip) {
                return format!("{}'s {} address", p.node, vx.name);
            }
        }
        if plans.iter().any(|p| p.network.contains(&ip)) {
            "in the pod network, no pod of the lab has it".into()
        } else {
            "outside the lab's pod network".into()
        }
    }
}
