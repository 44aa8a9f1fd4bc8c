//! The model from real plans (the lab crate's) and check differences as
//! the agent writes them.

use labctl_nodeplan::report::{Difference, ObjectKind};

use super::*;

const LAB: &str = "apiVersion: labctl/v1alpha1\nkind: Lab\nname: pic\nnodes:\n\
    - {name: master, role: control-plane}\n- {name: worker1}\n- {name: worker2}\n";

/// Inputs for an `n`-node netns lab (`n` ≥ 3 uses generated worker names).
pub(crate) fn inputs(n: usize, live: bool) -> Vec<NodeInput> {
    let mut text = LAB.to_string();
    for i in 3..n {
        text.push_str(&format!("- {{name: worker{i}}}\n"));
    }
    let lab = labctl_lab::parse("lab.yaml", &text).unwrap();
    labctl_lab::plan(&lab)
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, plan)| NodeInput {
            pods: vec![Pod {
                name: "busybox".into(),
                ip: Some(std::net::Ipv4Addr::from(
                    u32::from(plan.bridge.address.addr()) + 1,
                )),
            }],
            plan,
            control_plane: i == 0,
            live: live.then(|| NodeLive::Checked(Vec::new())),
        })
        .collect()
}

pub(crate) fn graph(n: usize, live: bool) -> Graph {
    build(
        "pic",
        Some("192.168.56.0/24".parse().unwrap()),
        &inputs(n, live),
    )
}

#[test]
fn a_plan_gives_every_node_its_vtep_bridge_and_pods_and_one_tunnel_per_pair() {
    let g = graph(3, false);
    assert_eq!(g.source, Source::Plan);
    assert!(g.title().contains("from the plan"), "{}", g.title());
    assert_eq!(g.nodes.len(), 3);
    let w1 = &g.nodes[1];
    assert_eq!(w1.ip.to_string(), "192.168.56.11");
    let vtep = w1.vtep.as_ref().unwrap();
    assert_eq!(vtep.mac, "0e:fa:0a:f4:01:00");
    assert_eq!(vtep.address.to_string(), "10.244.1.0/32");
    assert_eq!(w1.bridge.subnet.to_string(), "10.244.1.0/24");
    let pairs: Vec<(&str, &str)> = g
        .tunnels
        .iter()
        .map(|t| (t.a.as_str(), t.b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("master", "worker1"),
            ("master", "worker2"),
            ("worker1", "worker2")
        ]
    );
    assert_eq!(g.dns.as_ref().unwrap().service_ip.to_string(), "10.96.0.10");
    assert!(!g.broken());
    assert_eq!(graph(20, false).tunnels.len(), 190);
}

#[test]
fn an_fdb_difference_breaks_only_the_tunnel_to_its_peer() {
    let mut inputs = inputs(3, true);
    let fdb = Difference::new(
        ObjectKind::Fdb,
        "fdb 0e:fa:0a:f4:00:00 dev flannel.1",
        "0e:fa:0a:f4:00:00",
    )
    .peer("master")
    .expected(Some("0e:fa:0a:f4:00:00 dst 192.168.56.10".into()));
    inputs[1].live = Some(NodeLive::Checked(vec![fdb]));
    let g = build("pic", None, &inputs);
    assert_eq!(g.source, Source::Live);
    let broken: Vec<_> = g
        .tunnels
        .iter()
        .filter(|t| !t.problems.is_empty())
        .collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(
        (broken[0].a.as_str(), broken[0].b.as_str()),
        ("master", "worker1")
    );
    assert!(
        broken[0].problems[0]
            .starts_with("worker1: fdb 0e:fa:0a:f4:00:00 dev flannel.1: expected 0e:fa"),
        "{:?}",
        broken[0].problems
    );
    assert!(broken[0].problems[0].ends_with("actual (absent)"));
    assert!(!g.nodes[1].broken(), "the node itself is whole");
}

#[test]
fn a_vxlan_device_down_breaks_the_vtep_and_every_tunnel_of_its_node() {
    let mut inputs = inputs(3, true);
    let down = Difference::new(ObjectKind::Link, "vxlan flannel.1 state", "flannel.1")
        .attribute("state")
        .expected(Some("up".into()))
        .actual(Some("down".into()));
    inputs[2].live = Some(NodeLive::Checked(vec![down]));
    let g = build("pic", None, &inputs);
    let vtep = g.nodes[2].vtep.as_ref().unwrap();
    assert_eq!(
        vtep.problems,
        ["worker2: vxlan flannel.1 state: expected up, actual down"]
    );
    assert!(g.nodes[2].broken());
    let broken: Vec<_> = g
        .tunnels
        .iter()
        .filter(|t| !t.problems.is_empty())
        .map(|t| (t.a.as_str(), t.b.as_str()))
        .collect();
    assert_eq!(broken, [("master", "worker2"), ("worker1", "worker2")]);
}

#[test]
fn bridge_address_and_other_differences_land_on_the_bridge_and_the_node() {
    let mut inputs = inputs(3, true);
    let address = Difference::new(
        ObjectKind::Address,
        "address 10.244.0.1/24 dev cni0",
        "10.244.0.1/24",
    )
    .expected(Some("10.244.0.1/24".into()));
    let chain = Difference::new(ObjectKind::Rule, "jump", "FLANNEL-POSTRTG").table("nat");
    inputs[0].live = Some(NodeLive::Checked(vec![address, chain]));
    inputs[1].live = Some(NodeLive::Unreachable("connection refused".into()));
    let g = build("pic", None, &inputs);
    assert_eq!(g.nodes[0].bridge.problems.len(), 1);
    assert_eq!(g.nodes[0].problems.len(), 1);
    assert!(g.nodes[0].vtep.as_ref().unwrap().problems.is_empty());
    assert_eq!(
        g.nodes[1].unreachable.as_deref(),
        Some("connection refused")
    );
    let unchecked = g
        .tunnels
        .iter()
        .filter(|t| t.problems.iter().any(|p| p.contains("unreachable")))
        .count();
    assert_eq!(unchecked, 2, "both tunnels of the unreachable node");
}

/// A host-gw lab: no VTEPs; each pair of nodes is joined by its routes,
/// drawn bridge to bridge, and a missing route breaks that pair.
#[test]
fn host_gw_pairs_are_routes_between_bridges() {
    let text = LAB.replace(
        "name: pic\n",
        "name: pic\nnetwork: {backend: {type: host-gw}}\n",
    );
    let lab = labctl_lab::parse("lab.yaml", &text).unwrap();
    let inputs: Vec<NodeInput> = labctl_lab::plan(&lab)
        .into_iter()
        .enumerate()
        .map(|(i, plan)| NodeInput {
            pods: Vec::new(),
            live: Some(NodeLive::Checked(if i == 1 {
                let mut d =
                    Difference::new(ObjectKind::Route, "route 10.244.2.0/24", "10.244.2.0/24");
                d.peer = Some("worker2".into());
                vec![d]
            } else {
                Vec::new()
            })),
            plan,
            control_plane: i == 0,
        })
        .collect();
    let g = build("pic", None, &inputs);
    assert!(g.host_gw && g.nodes.iter().all(|n| n.vtep.is_none()));
    assert_eq!(g.tunnels.len(), 3);
    let broken: Vec<(&str, &str)> = g
        .tunnels
        .iter()
        .filter(|t| !t.problems.is_empty())
        .map(|t| (t.a.as_str(), t.b.as_str()))
        .collect();
    assert_eq!(broken, [("worker1", "worker2")]);
    let mermaid = super::super::mermaid::render(&g);
    assert!(
        mermaid.contains("bridge_master <-. \"host-gw route\" .-> bridge_worker1"),
        "{mermaid}"
    );
    let svg = super::super::svg::render(&g);
    assert!(
        svg.contains("host-gw routes (one cell per pair of nodes"),
        "{svg}"
    );
}
