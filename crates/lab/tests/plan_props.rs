//! Property tests of the plan over random valid labs: 1 to 59 nodes, pod
//! networks from /8 to /20, any subnetLen that leaves enough subnets.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_lab::{parse, plan, Lab};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct LabSpec {
    nodes: usize,
    control_plane: usize,
    pod_network: Ipv4Net,
    subnet_len: u8,
    ip_masq: bool,
    vni: u32,
}

fn lab_spec() -> impl Strategy<Value = LabSpec> {
    (
        1usize..60,
        8u8..=20,
        any::<u32>(),
        any::<bool>(),
        1u32..=16_777_215,
    )
        .prop_flat_map(|(nodes, prefix, bits, ip_masq, vni)| {
            // Enough subnets for every node: 2^(len - prefix) >= nodes.
            let needed = (usize::BITS - (nodes - 1).leading_zeros()) as u8;
            let min_len = (prefix + needed).max(prefix + 1);
            // Somewhere inside 10.0.0.0/8, clear of the underlay and services.
            let addr = Ipv4Addr::from(0x0a00_0000 | (bits & 0x00ff_ffff));
            let pod_network = Ipv4Net::new(addr, prefix).unwrap().trunc();
            (0..nodes, min_len..=30u8).prop_map(move |(control_plane, subnet_len)| LabSpec {
                nodes,
                control_plane,
                pod_network,
                subnet_len,
                ip_masq,
                vni,
            })
        })
}

fn lab_text(spec: &LabSpec) -> String {
    let mut text = format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: prop\nnetwork:\n  podNetwork: {}\n  subnetLen: {}\n  serviceNetwork: 172.16.0.0/16\n  ipMasq: {}\n  backend: {{vni: {}}}\nnodes:\n",
        spec.pod_network, spec.subnet_len, spec.ip_masq, spec.vni
    );
    for i in 0..spec.nodes {
        let role = if i == spec.control_plane {
            "control-plane"
        } else {
            "worker"
        };
        text.push_str(&format!("  - {{name: node-{i}, role: {role}}}\n"));
    }
    text
}

/// The VXLAN device of a plan (every lab here uses the vxlan backend).
fn vx(p: &labctl_nodeplan::NodePlan) -> &labctl_nodeplan::VxlanPlan {
    p.vxlan.as_ref().expect("a vxlan plan has its device")
}

fn parsed(spec: &LabSpec) -> Lab {
    parse("prop.yaml", &lab_text(spec)).unwrap_or_else(|e| panic!("{e}\n{}", lab_text(spec)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn nodes_never_share_a_subnet_ip_or_mac(spec in lab_spec()) {
        let plans = plan(&parsed(&spec));
        prop_assert_eq!(plans.len(), spec.nodes);
        let subnets: HashSet<_> = plans.iter().map(|p| p.subnet).collect();
        let ips: HashSet<_> = plans.iter().map(|p| p.underlay_ip).collect();
        let macs: HashSet<_> = plans.iter().map(|p| vx(p).mac).collect();
        prop_assert_eq!(subnets.len(), spec.nodes);
        prop_assert_eq!(ips.len(), spec.nodes);
        prop_assert_eq!(macs.len(), spec.nodes);
        for (i, a) in plans.iter().enumerate() {
            for b in &plans[i + 1..] {
                prop_assert!(!a.subnet.contains(&b.subnet.network()) && !b.subnet.contains(&a.subnet.network()));
            }
        }
    }

    #[test]
    fn every_subnet_is_inside_the_pod_network(spec in lab_spec()) {
        for p in plan(&parsed(&spec)) {
            prop_assert!(spec.pod_network.contains(&p.subnet), "{} not in {}", p.subnet, spec.pod_network);
            prop_assert_eq!(p.subnet.prefix_len(), spec.subnet_len);
            prop_assert!(p.subnet.contains(&p.bridge.address.addr()));
            prop_assert_eq!(vx(&p).address.addr(), p.subnet.network());
        }
    }

    #[test]
    fn every_mac_is_local_unicast(spec in lab_spec()) {
        for p in plan(&parsed(&spec)) {
            prop_assert!(vx(&p).mac.is_local_unicast(), "{}", vx(&p).mac);
            for peer in &p.peers {
                prop_assert!(peer.vtep_mac.is_local_unicast());
            }
        }
    }

    #[test]
    fn peers_are_exactly_the_other_nodes_in_order(spec in lab_spec()) {
        let plans = plan(&parsed(&spec));
        for (i, p) in plans.iter().enumerate() {
            let expected: Vec<_> = plans
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| (o.node.clone(), o.underlay_ip, o.subnet, vx(o).mac))
                .collect();
            let got: Vec<_> = p
                .peers
                .iter()
                .map(|peer| (peer.node.clone(), peer.underlay_ip, peer.subnet, peer.vtep_mac))
                .collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(p.iptables.nat.is_some(), spec.ip_masq);
            prop_assert_eq!(&vx(p).name, &format!("flannel.{}", spec.vni));
        }
    }

    #[test]
    fn the_plan_is_deterministic(spec in lab_spec()) {
        // Parsed twice from the same text: equal plans, and equal bytes
        // (JSON of every plan is costly in debug builds, so one node's).
        let first = plan(&parsed(&spec));
        let second = plan(&parsed(&spec));
        prop_assert_eq!(first[0].to_json(), second[0].to_json());
        prop_assert_eq!(first, second);
    }
}
