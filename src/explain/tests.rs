//! The walk on the quick-start lab's plans, with live reports made the way
//! the agent prints them for a healthy node, then broken one object at a time.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use labctl_nodeplan::report::{
    Departure, Flow, RouteGetReport, RouteLookup, ShowBridge, ShowIptables, ShowReport, ShowVxlan,
    REPORT_VERSION,
};
use labctl_nodeplan::NodePlan;

use super::endpoints::Names;
use super::model::{Explanation, HopKind, HopStatus, Place};
use super::seen::{mark, Observed};
use super::walk::{walk, Live, Walk};
use crate::verify::evidence::PodView;

fn plans() -> Vec<NodePlan> {
    let lab = labctl_lab::parse(
        "lab.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: flannel\nnodes:\n  - name: master\n    role: control-plane\n  - name: worker1\n  - name: worker2\n",
    )
    .unwrap();
    labctl_lab::plan(&lab)
}

/// `show` as the agent reports a node that matches its plan.
fn healthy(plan: &NodePlan) -> ShowReport {
    let vx = plan.vxlan.as_ref().expect("a vxlan plan");
    let nat = plan.iptables.nat.as_ref().unwrap();
    let mut nat_lines = vec![nat.jump.clone(), format!("-N {}", nat.chain)];
    nat_lines.extend(nat.rules.iter().cloned());
    let mut routes = vec![format!("{} dev cni0", plan.subnet)];
    routes.extend(plan.peers.iter().map(|p| {
        format!(
            "{} via {} dev {} onlink",
            p.subnet,
            p.subnet.network(),
            vx.name
        )
    }));
    ShowReport {
        report_version: REPORT_VERSION,
        command: "show".into(),
        node: plan.node.clone(),
        underlay: Some("eth1".into()),
        vxlan: Some(ShowVxlan {
            link: format!(
                "vxlan id {} local {} dev eth1 srcport 0 0 dstport {} nolearning ttl auto ageing 300",
                vx.vni, plan.underlay_ip, vx.port
            ),
            addresses: vec![vx.address.to_string()],
        }),
        bridge: Some(ShowBridge {
            kind: "bridge".into(),
            mtu: plan.bridge.mtu,
            up: true,
            addresses: vec![plan.bridge.address.to_string()],
        }),
        neighbours: plan
            .peers
            .iter()
            .map(|p| format!("{} dev {} lladdr {} permanent", p.subnet.network(), vx.name, p.vtep_mac))
            .collect(),
        fdb: plan
            .peers
            .iter()
            .map(|p| format!("{} dev {} dst {} self permanent", p.vtep_mac, vx.name, p.underlay_ip))
            .collect(),
        routes,
        iptables: ShowIptables {
            nat: nat_lines,
            filter: Vec::new(),
            error: None,
        },
        sysctls: BTreeMap::new(),
        files: BTreeMap::new(),
    }
}

fn pod(node: &str, name: &str, ip: &str) -> PodView {
    PodView {
        eth0_mtu: None,
        node: node.into(),
        name: name.into(),
        ip: Some(ip.parse().unwrap()),
        namespace: Some(format!("flannel-{node}-{name}")),
        problem: None,
    }
}

struct Fixture {
    plans: Vec<NodePlan>,
    shows: BTreeMap<String, ShowReport>,
    services: BTreeMap<String, Vec<String>>,
    planned_services: Vec<String>,
    lookups: BTreeMap<String, RouteGetReport>,
    pods: Vec<PodView>,
}

const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn fixture() -> Fixture {
    let plans = plans();
    let shows = plans.iter().map(|p| (p.node.clone(), healthy(p))).collect();
    let planned_services = labctl_lab::services::service_rules(DNS, "10.244.0.3".parse().unwrap());
    let services = plans
        .iter()
        .map(|p| (p.node.clone(), planned_services.clone()))
        .collect();
    let pods = vec![
        pod("master", "busybox", "10.244.0.2"),
        pod("worker1", "busybox", "10.244.1.2"),
        pod("worker2", "busybox", "10.244.2.2"),
        pod("master", "coredns", "10.244.0.3"),
    ];
    Fixture {
        plans,
        shows,
        services,
        planned_services,
        lookups: BTreeMap::new(),
        pods,
    }
}

impl Fixture {
    fn names(&self) -> Names<'_> {
        Names {
            lab: "flannel",
            plans: &self.plans,
            pods: self.pods.iter().collect(),
            dns: Some((DNS, &self.pods[3])),
        }
    }

    fn places(&self, src: &str, dst: &str) -> (Place, Place) {
        let names = self.names();
        (
            names.source(src).unwrap(),
            names.resolve("DST", dst).unwrap(),
        )
    }

    fn walk(&self, src: &str, dst: &str) -> Walk {
        let live = Live {
            plans: &self.plans,
            shows: &self.shows,
            services: &self.services,
            planned_services: &self.planned_services,
            lookups: &self.lookups,
        };
        let (s, d) = self.places(src, dst);
        walk(&live, &s, &d).unwrap()
    }

    fn explain(&self, src: &str, dst: &str) -> Explanation {
        let w = self.walk(src, dst);
        let (src, dst) = self.places(src, dst);
        let mut e = Explanation {
            lab: "flannel".into(),
            src,
            dst,
            to: w.to,
            hops: w.hops,
            traced: false,
            first_broken: None,
            notes: w.notes,
        };
        e.first_broken = e.find_first_broken();
        e
    }
}

fn kinds(w: &Walk) -> Vec<HopKind> {
    w.hops.iter().map(|h| h.at).collect()
}

use HopKind::*;

#[test]
fn pod_to_pod_across_nodes_goes_through_vxlan_with_the_live_values() {
    let f = fixture();
    let w = f.walk("worker1/busybox", "worker2/busybox");
    assert_eq!(
        kinds(&w),
        [
            PodEth0,
            Bridge,
            Route,
            Postrouting,
            VxlanDevice,
            Neighbour,
            Fdb,
            Underlay,
            VxlanDevice,
            Route,
            Bridge,
            Arrive
        ]
    );
    assert!(
        w.hops.iter().all(|h| h.status == HopStatus::Ok),
        "{:#?}",
        w.hops
    );
    let text = |k: usize| w.hops[k].summary.clone();
    assert!(
        text(2).contains("10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"),
        "{}",
        text(2)
    );
    let worker2 = &f.plans[2];
    assert!(text(3).contains("RETURN, not masqueraded"), "{}", text(3));
    assert!(
        text(5).contains(&format!("lladdr {}", worker2.vxlan.as_ref().unwrap().mac)),
        "{}",
        text(5)
    );
    assert!(text(6).contains("dst 192.168.56.12"), "{}", text(6));
    assert!(
        text(7).contains(
            "outer 192.168.56.11 → 192.168.56.12 UDP 8472 VNI 1, inner 10.244.1.2 → 10.244.2.2"
        ),
        "{}",
        text(7)
    );
    assert_eq!(w.hops[8].node.as_deref(), Some("worker2"));
    assert!(text(9).contains("10.244.2.0/24 dev cni0"), "{}", text(9));
    let json = serde_json::to_value(&w.hops[6]).unwrap();
    assert_eq!(json["at"], "fdb");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["step"], 7);
}

#[test]
fn a_same_node_pair_crosses_the_bridge_only() {
    let f = fixture();
    let w = f.walk("master/busybox", "coredns");
    assert_eq!(kinds(&w), [PodEth0, Bridge, Arrive]);
    assert!(
        w.hops[1].summary.contains("same subnet"),
        "{}",
        w.hops[1].summary
    );
}

#[test]
fn the_dns_service_is_dnated_to_its_endpoint_on_the_source_node() {
    let f = fixture();
    let w = f.walk("worker2/busybox", "kube-dns");
    assert_eq!(w.to, "10.244.0.3".parse::<Ipv4Addr>().unwrap());
    assert_eq!(kinds(&w)[..4], [PodEth0, Dnat, Bridge, Route]);
    let dnat = &w.hops[1];
    assert_eq!(dnat.node.as_deref(), Some("worker2"));
    assert!(
        dnat.summary.contains("--to-destination 10.244.0.3:53"),
        "{}",
        dnat.summary
    );
    assert_eq!(dnat.status, HopStatus::Ok);
    assert_eq!(w.hops.last().unwrap().node.as_deref(), Some("master"));
    assert!(
        w.notes.iter().any(|n| n.contains("udp and tcp port 53")),
        "{:?}",
        w.notes
    );

    // Without the rule on the node, the hop says so.
    let mut f = fixture();
    f.services.insert("worker2".into(), Vec::new());
    let w = f.walk("worker2/busybox", "kube-dns");
    assert_eq!(w.hops[1].status, HopStatus::Broken);
    assert_eq!(w.hops[1].actual.as_deref(), Some("missing"));
}

#[test]
fn an_outside_address_is_masqueraded_by_flannels_rule() {
    let f = fixture();
    let w = f.walk("worker1/busybox", "198.18.0.1");
    assert_eq!(
        kinds(&w),
        [PodEth0, Bridge, Route, Postrouting, Leave, Arrive]
    );
    let masq = &w.hops[3].summary;
    assert!(masq.contains("rule 5"), "{masq}");
    assert!(masq.contains("MASQUERADE"), "{masq}");
    assert!(masq.contains("masqueraded to 192.168.56.11"), "{masq}");
    assert!(
        w.hops[4].summary.contains("by eth1 from 192.168.56.11"),
        "{}",
        w.hops[4].summary
    );

    // The POSTROUTING jump gone: broken, and the packet keeps the pod's address.
    let mut f = fixture();
    let show = f.shows.get_mut("worker1").unwrap();
    show.iptables
        .nat
        .retain(|l| !l.starts_with("-A POSTROUTING"));
    let w = f.walk("worker1/busybox", "198.18.0.1");
    assert_eq!(w.hops[3].status, HopStatus::Broken);
    assert!(
        w.hops[4].summary.contains("from 10.244.1.2"),
        "{}",
        w.hops[4].summary
    );
}

#[test]
fn a_missing_fdb_entry_is_the_broken_hop_with_plan_and_live_values() {
    let mut f = fixture();
    f.shows
        .get_mut("worker1")
        .unwrap()
        .fdb
        .retain(|l| !l.contains("192.168.56.12"));
    let e = f.explain("worker1/busybox", "worker2/busybox");
    let fdb = e.hops.iter().find(|h| h.at == Fdb).unwrap();
    assert_eq!(fdb.status, HopStatus::Broken);
    assert_eq!(fdb.expected.as_deref(), Some("192.168.56.12"));
    assert_eq!(fdb.actual.as_deref(), Some("missing"));
    assert_eq!(e.first_broken, Some(fdb.step));
    let text = super::render(&e, false);
    assert!(text.contains(" 7. worker1: FDB "), "{text}");
    assert!(
        text.contains("broken: plan 192.168.56.12, live missing"),
        "{text}"
    );

    // A wrong neighbour MAC is named the same way.
    let mut f = fixture();
    let n = &mut f.shows.get_mut("worker1").unwrap().neighbours;
    n.retain(|l| !l.starts_with("10.244.2.0 "));
    n.push("10.244.2.0 dev flannel.1 lladdr 0e:00:00:00:00:01 permanent".into());
    let e = f.explain("worker1/busybox", "worker2/busybox");
    let hop = &e.hops[e.first_broken.unwrap() - 1];
    assert_eq!(hop.at, Neighbour);
    assert_eq!(hop.actual.as_deref(), Some("0e:00:00:00:00:01"));
}

fn left(interface: &str, src: &str) -> Departure {
    Departure {
        interface: interface.into(),
        src: src.parse().unwrap(),
        packets: 1,
    }
}

fn flow(outer: (&str, &str)) -> Flow {
    Flow {
        outer_src: outer.0.parse().unwrap(),
        outer_dst: outer.1.parse().unwrap(),
        inner_src: "10.244.1.2".parse().unwrap(),
        inner_dst: "10.244.2.2".parse().unwrap(),
        inner_protocol: 1,
        packets: 1,
    }
}

#[test]
fn a_trace_marks_every_hop_and_points_at_the_first_unseen() {
    let f = fixture();
    let mut e = f.explain("worker1/busybox", "worker2/busybox");
    e.traced = true;
    let wire = ("192.168.56.11", "192.168.56.12");
    let mut obs = Observed {
        pod_left: Some(Ok(vec![left("eth0", "10.244.1.2")])),
        answered: Some(Ok(true)),
        ..Observed::default()
    };
    obs.node_left
        .insert("worker1".into(), Ok(vec![left("flannel.1", "10.244.1.2")]));
    obs.node_left.insert(
        "worker2".into(),
        Ok(vec![
            left("cni0", "10.244.1.2"),
            left("veth1234", "10.244.1.2"),
        ]),
    );
    obs.vxlan.insert("worker1".into(), Ok(vec![flow(wire)]));
    obs.vxlan.insert("worker2".into(), Ok(vec![flow(wire)]));
    let mut all = e.clone();
    mark(&mut all.hops, &obs);
    assert!(
        all.hops.iter().all(|h| h.seen == Some(true)),
        "{:#?}",
        all.hops
    );
    assert_eq!(all.find_first_broken(), None);

    // The FDB entry gone: the packet leaves by flannel.1 and no further.
    obs.vxlan.insert("worker1".into(), Ok(Vec::new()));
    obs.vxlan.insert("worker2".into(), Ok(Vec::new()));
    obs.node_left.insert("worker2".into(), Ok(Vec::new()));
    obs.answered = Some(Ok(false));
    mark(&mut e.hops, &obs);
    let first = e.find_first_broken().unwrap();
    assert_eq!(e.hops[first - 1].at, Fdb);
    assert_eq!(
        e.hops[first - 2].seen,
        Some(true),
        "the neighbour hop was seen"
    );
    let text = super::render(&e, false);
    assert!(text.contains("✗ worker1: FDB"), "{text}");
    assert!(
        text.contains("not seen: no VXLAN packet 10.244.1.2 → 10.244.2.2"),
        "{text}"
    );
}

#[test]
fn words_are_checked_against_the_lab_first() {
    let f = fixture();
    let names = f.names();
    let err = names.resolve("DST", "worker9").unwrap_err();
    assert!(err.contains("`worker9`"), "{err}");
    assert!(err.contains("nodes: master, worker1, worker2"), "{err}");
    assert!(err.contains("worker1/busybox"), "{err}");
    let err = names.resolve("DST", "10.244.1.300").unwrap_err();
    assert!(err.contains("not an IPv4 address"), "{err}");
    let err = names.source("198.18.0.1").unwrap_err();
    assert!(err.contains("not a pod or a node"), "{err}");
    assert!(names.source("kube-dns").is_err());
    // Addresses of pods and nodes are those pods and nodes.
    let p = names.resolve("DST", "10.244.2.2").unwrap();
    assert_eq!(p.node.as_deref(), Some("worker2"));
    let n = names.resolve("DST", "192.168.56.10").unwrap();
    assert_eq!(n.kind, super::model::PlaceKind::Node);
    let ns = names.resolve("DST", "flannel-worker1-busybox").unwrap();
    assert_eq!(ns.ip, "10.244.1.2".parse::<Ipv4Addr>().unwrap());
    // `busybox` alone is on every node: not a name.
    assert!(names.resolve("DST", "busybox").is_err());
}

#[test]
fn flannels_postrouting_rules_meet_packets_as_the_kernel_would() {
    use super::rules::{first_rule, target};
    let plan = &plans()[0];
    let chain = plan.iptables.nat.as_ref().unwrap();
    let rules = &chain.rules;
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let pod = ip("10.244.0.2");
    let first = |src, dst| first_rule(rules, &chain.chain, src, dst).map(|(n, r)| (n, target(r)));
    assert_eq!(first(pod, ip("10.244.1.2")), Some((2, "RETURN")));
    assert_eq!(first(pod, ip("198.18.0.1")), Some((5, "MASQUERADE")));
    assert_eq!(
        first(ip("192.168.56.10"), ip("10.244.0.5")),
        Some((4, "RETURN"))
    );
    assert_eq!(
        first(ip("192.168.56.10"), ip("10.244.1.5")),
        Some((6, "MASQUERADE"))
    );
    // Multicast leaves unmasqueraded; the kube-proxy mark rule needs a mark.
    assert_eq!(first(pod, ip("224.0.0.5")), None);
}

#[test]
fn an_address_of_the_source_node_is_delivered_there() {
    let f = fixture();
    let w = f.walk("worker1/busybox", "worker1");
    assert_eq!(kinds(&w), [PodEth0, Bridge, Route, Arrive]);
    assert!(w.hops[2].summary.contains("local"), "{}", w.hops[2].summary);
    let w = f.walk("worker1/busybox", "10.244.1.1");
    assert_eq!(kinds(&w), [PodEth0, Bridge, Route, Arrive]);
    let arrive = &w.hops[3].summary;
    assert!(arrive.contains("worker1's cni0 address"), "{arrive}");
    let w = f.walk("worker1/busybox", "10.244.2.9");
    let arrive = &w.hops.last().unwrap().summary;
    assert!(arrive.contains("no pod of the lab has it"), "{arrive}");
    // Another node's address leaves by the underlay, masqueraded.
    let w = f.walk("worker1/busybox", "worker2");
    assert_eq!(
        kinds(&w),
        [PodEth0, Bridge, Route, Postrouting, Leave, Arrive]
    );
    assert!(
        w.hops[5].summary.contains("node worker2 192.168.56.12"),
        "{}",
        w.hops[5].summary
    );
}

#[test]
fn the_kernels_own_lookup_names_the_route_that_matched() {
    let mut f = fixture();
    let lookup = |dst: &str, route: &str| RouteLookup {
        dst: dst.parse().unwrap(),
        route: Some(route.into()),
        error: None,
    };
    let report = RouteGetReport {
        report_version: REPORT_VERSION,
        command: "route get".into(),
        node: "worker1".into(),
        lookups: vec![
            lookup("198.18.0.1", "0.0.0.0/0 via 192.168.56.1 dev eth1"),
            lookup(
                "10.244.2.2",
                "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
            ),
        ],
    };
    f.lookups.insert("worker1".into(), report.clone());
    let w = f.walk("worker1/busybox", "198.18.0.1");
    let route = &w.hops[2];
    assert!(
        route
            .summary
            .contains("default via 192.168.56.1 dev eth1 (the node's own route"),
        "{}",
        route.summary
    );
    assert_eq!(route.status, HopStatus::Ok);
    let w = f.walk("worker1/busybox", "worker2/busybox");
    assert!(
        w.hops.iter().all(|h| h.status == HopStatus::Ok),
        "{:#?}",
        w.hops
    );

    // A stray route sending an outside address into flannel.1 is broken.
    let mut stray = report;
    stray.lookups[0].route = Some("198.18.0.0/15 dev flannel.1".into());
    f.lookups.insert("worker1".into(), stray);
    let w = f.walk("worker1/busybox", "198.18.0.1");
    assert_eq!(w.hops[2].status, HopStatus::Broken);
    assert_eq!(
        w.hops[2].actual.as_deref(),
        Some("198.18.0.0/15 dev flannel.1")
    );
}

/// The quick-start lab on flannel's host-gw backend, every node as planned.
fn host_gw_fixture() -> Fixture {
    let lab = labctl_lab::parse(
        "lab.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: flannel\nnetwork:\n  backend: {type: host-gw}\nnodes:\n  - name: master\n    role: control-plane\n  - name: worker1\n  - name: worker2\n",
    )
    .unwrap();
    let mut f = fixture();
    f.plans = labctl_lab::plan(&lab);
    f.shows = f
        .plans
        .iter()
        .map(|plan| {
            let mut show = healthy(&fixture().plans[0]);
            show.node = plan.node.clone();
            show.vxlan = None;
            show.neighbours.clear();
            show.fdb.clear();
            show.routes = std::iter::once(format!("{} dev cni0", plan.subnet))
                .chain(
                    plan.peers
                        .iter()
                        .map(|p| format!("{} via {} dev eth1", p.subnet, p.underlay_ip)),
                )
                .collect();
            show.bridge.as_mut().unwrap().addresses = vec![plan.bridge.address.to_string()];
            show.iptables.nat = {
                let nat = plan.iptables.nat.as_ref().unwrap();
                let mut lines = vec![nat.jump.clone(), format!("-N {}", nat.chain)];
                lines.extend(nat.rules.iter().cloned());
                lines
            };
            (plan.node.clone(), show)
        })
        .collect();
    f
}

#[test]
fn host_gw_leaves_unencapsulated_for_the_peers_node_ip() {
    let f = host_gw_fixture();
    assert!(f.plans.iter().all(|p| p.vxlan.is_none()));
    let w = f.walk("worker1/busybox", "worker2/busybox");
    assert_eq!(
        kinds(&w),
        [
            PodEth0,
            Bridge,
            Route,
            Postrouting,
            Leave,
            Route,
            Bridge,
            Arrive
        ]
    );
    let text: Vec<&str> = w.hops.iter().map(|h| h.summary.as_str()).collect();
    let worker2_ip = f.plans[2].underlay_ip;
    assert!(
        text[2].contains(&format!("via {worker2_ip} dev eth1")),
        "{text:?}"
    );
    assert!(text[4].contains("unencapsulated"), "{text:?}");
    assert!(
        w.hops.iter().all(|h| h.status == HopStatus::Ok),
        "{:#?}",
        w.hops
    );
    // The peer route gone: the route lookup is the broken hop.
    let mut f = f;
    let worker2_subnet = f.plans[2].subnet.to_string();
    f.shows
        .get_mut("worker1")
        .unwrap()
        .routes
        .retain(|r| !r.starts_with(&worker2_subnet));
    let w = f.walk("worker1/busybox", "worker2/busybox");
    assert_eq!(w.hops[2].status, HopStatus::Broken, "{:#?}", w.hops[2]);
}
