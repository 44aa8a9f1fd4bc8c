//! Each named cause, found from hand-written evidence.

use std::net::Ipv4Addr;

use super::*;
use crate::verify::evidence::*;
use crate::verify::model::{LabView, NodeView};
use crate::verify::parse::{parse_bad_checksums, parse_iptables, Drift};
use labctl_nodeplan::report::{Difference, ObjectKind};

pub(crate) fn lab3() -> LabView {
    let node = |i: u8, name: &str| NodeView {
        name: name.to_string(),
        underlay_ip: Ipv4Addr::new(192, 168, 56, 10 + i),
        subnet: format!("10.244.{i}.0/24").parse().unwrap(),
        vtep_mac: format!("0e:fa:0a:f4:0{i}:00"),
        control_plane: i == 0,
        namespace: Some(format!("flannel-{name}")),
    };
    LabView {
        name: "flannel".into(),
        provider: "netns".into(),
        backend: labctl_nodeplan::Backend::Vxlan,
        vxlan_device: "flannel.1".into(),
        vni: 1,
        port: 8472,
        underlay_mtu: 1500,
        pod_mtu: 1450,
        network: "10.244.0.0/16".parse().unwrap(),
        dns_service_ip: Ipv4Addr::new(10, 96, 0, 10),
        api_service_ip: Ipv4Addr::new(10, 96, 0, 1),
        dns_domain: "cluster.local".into(),
        nodes: vec![node(0, "master"), node(1, "worker1"), node(2, "worker2")],
        outside: None,
    }
}

/// A difference on `node` as the agent reports it: `d` with what the plan
/// wants and what the node has.
fn drift(node: &str, d: Difference, expected: Option<&str>, actual: Option<&str>) -> Drift {
    Drift {
        node: node.into(),
        difference: d
            .expected(expected.map(Into::into))
            .actual(actual.map(Into::into)),
    }
}

/// The agent's difference for a route to `dst` (serving `peer`, unless stale).
fn route(dst: &str, peer: Option<&str>) -> Difference {
    let d = Difference::new(ObjectKind::Route, format!("route {dst}"), dst);
    match peer {
        Some(p) => d.peer(p),
        None => d,
    }
}

fn causes(d: &[Diagnosis]) -> Vec<&str> {
    d.iter().map(|d| d.cause.as_str()).collect()
}

#[test]
fn clean_evidence_has_no_diagnosis() {
    assert!(diagnose(&lab3(), &Evidence::default()).is_empty());
}

#[test]
fn all_vteps_on_the_nat_address() {
    let mut ev = Evidence::default();
    for n in ["master", "worker1", "worker2"] {
        ev.vtep_local.insert(n.into(), Ipv4Addr::new(10, 0, 2, 15));
    }
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["nat-nic"]);
    assert!(d[0].message.contains("10.0.2.15"));
    assert!(d[0].node.is_none());
}

#[test]
fn one_node_local_is_not_its_lab_ip() {
    let mut ev = Evidence::default();
    ev.drift.push(drift(
        "worker1",
        Difference::new(ObjectKind::Link, "vxlan flannel.1 local", "flannel.1").attribute("local"),
        Some("192.168.56.11"),
        Some("192.168.56.99"),
    ));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["nat-nic"]);
    assert_eq!(d[0].node.as_deref(), Some("worker1"));
    assert!(d[0].repaired_by_up);
}

#[test]
fn missing_and_stale_peer_entries_name_node_and_peer() {
    let mut ev = Evidence::default();
    ev.drift.push(drift(
        "worker1",
        route("10.244.2.0/24", Some("worker2")),
        Some("10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"),
        None,
    ));
    ev.drift.push(drift(
        "master",
        Difference::new(
            ObjectKind::Neighbour,
            "neighbour 10.244.1.0 dev flannel.1",
            "10.244.1.0",
        )
        .peer("worker1"),
        Some("10.244.1.0 dev flannel.1 lladdr 0e:fa:0a:f4:01:00 permanent"),
        None,
    ));
    ev.drift.push(drift(
        "worker2",
        Difference::new(
            ObjectKind::Fdb,
            "fdb 0e:00:00:00:00:99 dev flannel.1",
            "0e:00:00:00:00:99",
        ),
        None,
        Some("0e:00:00:00:00:99 dev flannel.1 dst 192.168.56.99 self permanent"),
    ));
    ev.drift.push(drift(
        "worker2",
        Difference::new(
            ObjectKind::Fdb,
            "fdb 0e:fa:0a:f4:00:00 dev flannel.1",
            "0e:fa:0a:f4:00:00",
        )
        .peer("master"),
        Some("0e:fa:0a:f4:00:00 dev flannel.1 dst 192.168.56.10 self permanent"),
        Some("0e:fa:0a:f4:00:00 dev flannel.1 dst 192.168.56.77 self permanent"),
    ));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(
        causes(&d),
        [
            "missing-route",
            "missing-neighbour",
            "stale-fdb",
            "wrong-fdb"
        ]
    );
    assert_eq!(
        (d[0].node.as_deref(), d[0].peer.as_deref()),
        (Some("worker1"), Some("worker2"))
    );
    assert!(d[0]
        .fix
        .contains("ip route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"));
    assert_eq!(d[1].peer.as_deref(), Some("worker1"));
    assert!(d[1].fix.contains("lladdr 0e:fa:0a:f4:01:00"));
    assert_eq!(d[2].peer, None);
    assert!(d[2]
        .fix
        .contains("bridge fdb del 0e:00:00:00:00:99 dev flannel.1 self"));
    assert_eq!(d[3].peer.as_deref(), Some("master"));
    assert!(d[3].fix.contains("dst 192.168.56.10"));
}

#[test]
fn forward_policy_drop_without_flannel_fwd() {
    let mut ev = Evidence::default();
    ev.firewall
        .insert("worker2".into(), parse_iptables("-P FORWARD DROP\n", 8472));
    ev.firewall.insert(
        "worker1".into(),
        parse_iptables("-P FORWARD ACCEPT\n", 8472),
    );
    ev.firewall.insert(
        "master".into(),
        parse_iptables("-P FORWARD DROP\n-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n", 8472),
    );
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["forward-drop"]);
    assert_eq!(d[0].node.as_deref(), Some("worker2"));
}

#[test]
fn postrouting_jump_from_drift_or_from_egress() {
    let mut ev = Evidence::default();
    ev.drift.push(drift(
        "master",
        Difference::new(
            ObjectKind::Rule,
            "iptables -t nat POSTROUTING jump to FLANNEL-POSTRTG",
            "FLANNEL-POSTRTG",
        )
        .table("nat"),
        Some("-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG"),
        None,
    ));
    ev.egress.push(EgressProbe {
        node: "worker1".into(),
        pod_ip: Ipv4Addr::new(10, 244, 1, 2),
        node_ip: Ipv4Addr::new(192, 168, 56, 11),
        target: Ipv4Addr::new(198, 18, 0, 1),
        observed_sources: vec![Ipv4Addr::new(10, 244, 1, 2)],
        reply_received: false,
        seen_leaving_node: false,
    });
    let d = diagnose(&lab3(), &ev);
    assert_eq!(
        causes(&d),
        ["postrouting-jump-missing", "postrouting-jump-missing"]
    );
    assert_eq!(d[0].node.as_deref(), Some("master"));
    assert_eq!(d[1].node.as_deref(), Some("worker1"));
    assert!(d[1].evidence[0].contains("saw source 10.244.1.2"));
}

#[test]
fn iptables_differences_are_told_apart_by_kind_and_table() {
    let chain = |table: &str, name: &str| {
        Difference::new(
            ObjectKind::Chain,
            format!("iptables -t {table} {name}"),
            name,
        )
        .table(table)
    };
    let mut ev = Evidence::default();
    // FLANNEL-POSTRTG's rules differ: drift, not a missing jump.
    ev.drift.push(drift(
        "worker1",
        chain("nat", "FLANNEL-POSTRTG"),
        None,
        Some("-A FLANNEL-POSTRTG -j RETURN"),
    ));
    assert_eq!(causes(&diagnose(&lab3(), &ev)), ["drift"]);
    // FLANNEL-FWD differs on a node whose FORWARD drops: forward-drop,
    // with the difference as evidence.
    let mut ev = Evidence::default();
    ev.firewall.insert(
        "worker2".into(),
        parse_iptables("-P FORWARD DROP\n-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n", 8472),
    );
    ev.drift.push(drift(
        "worker2",
        chain("filter", "FLANNEL-FWD"),
        Some("-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT"),
        None,
    ));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["forward-drop"]);
    assert!(
        d[0].evidence
            .iter()
            .any(|e| e.starts_with("worker2: iptables -t filter FLANNEL-FWD: expected")),
        "{:?}",
        d[0].evidence
    );
}

#[test]
fn mtu_mismatch_from_links_and_probe() {
    let mut ev = Evidence::default();
    ev.link_mtus.push(LinkMtu {
        node: "worker2".into(),
        device: "flannel.1".into(),
        mtu: 1400,
    });
    ev.link_mtus.push(LinkMtu {
        node: "worker1".into(),
        device: "flannel.1".into(),
        mtu: 1450,
    });
    ev.mtu.push(MtuProbe {
        from: "worker2".into(),
        to: "master".into(),
        payload: 1422,
        fits_passed: false,
        over_failed: true,
        detail: "frag needed, mtu 1400".into(),
    });
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["mtu-mismatch"]);
    assert_eq!(d[0].node.as_deref(), Some("worker2"));
    assert_eq!(d[0].evidence.len(), 2);
}

#[test]
fn a_missing_route_is_not_also_an_mtu_mismatch() {
    let lost_df = |from: &str, to: &str| MtuProbe {
        from: from.into(),
        to: to.into(),
        payload: 1422,
        fits_passed: false,
        over_failed: true,
        detail: "1422 bytes: no answer".into(),
    };
    let cell = |from: &str, to: &str, ip: &str, received| PingCell {
        from: from.into(),
        to: to.into(),
        to_ip: ip.parse().unwrap(),
        sent: 2,
        received,
        rtt_avg_ms: None,
        error: None,
    };
    let route = drift(
        "worker1",
        route("10.244.2.0/24", Some("worker2")),
        Some("10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"),
        None,
    );
    // Explained by the dataplane difference alone (no mesh run).
    let mut ev = Evidence::default();
    ev.drift.push(route.clone());
    ev.mtu.push(lost_df("worker1", "worker2"));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["missing-route"]);
    assert!(d[0].checks.contains(&CheckId::Mtu));

    // Explained by the failed pod mesh pair (no dataplane check run).
    let mut ev = Evidence {
        mesh: Some(PingMatrix {
            nodes: vec!["worker1".into(), "worker2".into()],
            cells: vec![
                cell("worker1", "worker2", "10.244.2.2", 0),
                cell("worker2", "worker1", "10.244.1.2", 2),
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    ev.mtu.push(lost_df("worker1", "worker2"));
    assert!(causes(&diagnose(&lab3(), &ev)).is_empty());

    // A pair that answers normal pings but loses the DF probe is an MTU
    // problem, whatever else is broken elsewhere.
    ev.drift.push(route);
    ev.mtu.push(lost_df("master", "worker1"));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["missing-route", "mtu-mismatch"]);
    assert_eq!(d[1].evidence.len(), 1, "{:?}", d[1].evidence);
    assert!(d[1].evidence[0].starts_with("master → worker1"));
}

#[test]
fn vxlan_blocked_between_or_at_receiver() {
    let mut ev = Evidence::default();
    ev.vxlan.push(VxlanPair {
        from: "master".into(),
        to: "worker1".into(),
        sender_out: 3,
        receiver_in: 0,
        ..Default::default()
    });
    ev.vxlan.push(VxlanPair {
        from: "worker1".into(),
        to: "worker2".into(),
        sender_out: 3,
        receiver_in: 3,
        receiver_decapsulated: Some(0),
        ..Default::default()
    });
    ev.firewall.insert(
        "worker2".into(),
        parse_iptables("-A INPUT -p udp -m udp --dport 8472 -j DROP\n", 8472),
    );
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["vxlan-port-blocked", "vxlan-port-blocked"]);
    assert_eq!(
        (d[0].node.as_deref(), d[0].peer.as_deref()),
        (Some("worker1"), Some("master"))
    );
    assert!(d[0].message.contains("never arrive"));
    assert!(d[1]
        .fix
        .contains("iptables -D INPUT -p udp -m udp --dport 8472 -j DROP"));
}

#[test]
fn blocking_rule_with_failed_mesh_without_capture() {
    let mut ev = Evidence::default();
    ev.firewall.insert(
        "worker2".into(),
        parse_iptables("-A INPUT -p udp -m udp --dport 8472 -j DROP\n", 8472),
    );
    ev.mesh = Some(PingMatrix {
        nodes: vec!["master".into(), "worker2".into()],
        cells: vec![PingCell {
            from: "master".into(),
            to: "worker2".into(),
            to_ip: Ipv4Addr::new(10, 244, 2, 2),
            sent: 2,
            received: 0,
            rtt_avg_ms: None,
            error: None,
        }],
        ..Default::default()
    });
    assert_eq!(causes(&diagnose(&lab3(), &ev)), ["vxlan-port-blocked"]);
}

#[test]
fn checksum_offload_bug_from_kernel_log() {
    let mut ev = Evidence::default();
    for b in parse_bad_checksums(
        "UDP: bad checksum. From 192.168.56.11:40000 to 192.168.56.10:8472 ulen 106\n",
        8472,
    ) {
        ev.bad_checksums.push(("master".into(), b));
    }
    // The packets were dropped at the receiver: the checksum bug explains it,
    // not a firewall.
    ev.vxlan.push(VxlanPair {
        from: "worker1".into(),
        to: "master".into(),
        sender_out: 2,
        receiver_in: 2,
        receiver_decapsulated: Some(0),
        ..Default::default()
    });
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["vxlan-checksum-offload"]);
    assert!(d[0]
        .fix
        .contains("ethtool -K flannel.1 tx-checksum-ip-generic off"));
}

#[test]
fn newer_busybox_nxdomain_for_short_names() {
    let mut ev = Evidence::default();
    let probe = |v| DnsProbe {
        node: "worker1".into(),
        pod: "busybox".into(),
        query: "kubernetes.default".into(),
        server: Some(Ipv4Addr::new(10, 96, 0, 10)),
        addresses: vec![],
        nxdomain: true,
        timed_out: false,
        busybox: Some(v),
        nameservers: vec![Ipv4Addr::new(10, 96, 0, 10)],
        ok: false,
    };
    ev.dns.push(probe((1, 28, 4)));
    assert!(diagnose(&lab3(), &ev).is_empty());
    ev.dns.push(probe((1, 36, 1)));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["busybox-nslookup"]);
    assert!(d[0].message.contains("1.36.1"));
}

#[test]
fn a_pod_resolv_conf_without_the_dns_service_names_its_node() {
    let mut ev = Evidence::default();
    let probe = |node: &str, nameservers: Vec<Ipv4Addr>, ok: bool| DnsProbe {
        node: node.into(),
        pod: "busybox".into(),
        query: "kubernetes.default".into(),
        server: None,
        addresses: vec![],
        nxdomain: false,
        timed_out: !ok,
        busybox: Some((1, 28, 4)),
        nameservers,
        ok,
    };
    let service = Ipv4Addr::new(10, 96, 0, 10);
    let wrong = Ipv4Addr::new(10, 96, 0, 99);
    ev.dns.push(probe("master", vec![service], true));
    // Failing with the right server is not this cause; nor is a pod whose
    // resolv.conf was not read.
    ev.dns.push(probe("worker1", vec![service], false));
    ev.dns.push(probe("worker2", vec![], false));
    assert!(!causes(&diagnose(&lab3(), &ev)).contains(&"pod-resolv-conf"));
    ev.dns[2].nameservers = vec![wrong];
    let d = diagnose(&lab3(), &ev);
    let found: Vec<_> = d.iter().filter(|d| d.cause == "pod-resolv-conf").collect();
    assert_eq!(found.len(), 1, "{d:#?}");
    assert_eq!(found[0].node.as_deref(), Some("worker2"));
    assert!(
        found[0].message.contains("10.96.0.99"),
        "{}",
        found[0].message
    );
    assert!(found[0].fix.contains("labctl up"), "{}", found[0].fix);
    assert!(found[0].repaired_by_up);
}

#[test]
fn unreachable_node_and_other_drift() {
    let mut ev = Evidence::default();
    ev.reach.push(NodeReach {
        node: "worker2".into(),
        reachable: false,
        agent_version: None,
        error: Some("connection refused".into()),
    });
    ev.drift.push(drift(
        "master",
        Difference::new(
            ObjectKind::File,
            "file /run/flannel/subnet.env",
            "/run/flannel/subnet.env",
        ),
        Some("FLANNEL_MTU=1450"),
        Some("FLANNEL_MTU=1400"),
    ));
    assert_eq!(
        causes(&diagnose(&lab3(), &ev)),
        ["drift", "node-unreachable"]
    );
}

#[test]
fn full_neighbour_table_is_named_instead_of_an_mtu_guess() {
    let lab = lab3();
    let mut ev = Evidence::default();
    ev.mtu.push(MtuProbe {
        from: "worker1".into(),
        to: "worker2".into(),
        payload: 1422,
        fits_passed: false,
        over_failed: true,
        detail: String::new(),
    });
    ev.neighbour_table = Some(NeighbourTable {
        gc_thresh: [128, 512, 1024],
        needed: crate::verify::evidence::neighbour_entries_needed(50),
        refused_during_probes: 12,
        log_lines: vec!["[ 3434.184515] neighbour: arp_cache: neighbor table overflow!".into()],
    });
    let d = diagnose(&lab, &ev);
    assert_eq!(causes(&d), vec!["neighbour-table-overflow"]);
    assert!(d[0].fix.contains("gc_thresh3=8192"), "{}", d[0].fix);
    assert!(d[0].checks.contains(&CheckId::PodMesh));
    assert!(d[0]
        .evidence
        .iter()
        .any(|e| e.contains("12 entries refused")));

    // Limits too small for the lab but nothing failed: no diagnosis.
    ev.mtu.clear();
    if let Some(t) = ev.neighbour_table.as_mut() {
        t.refused_during_probes = 0;
    }
    assert!(diagnose(&lab, &ev).is_empty());
    // A small table and failed pings, no log lines: still named.
    if let Some(t) = ev.neighbour_table.as_mut() {
        t.log_lines.clear();
    }
    ev.egress.push(EgressProbe {
        node: "master".into(),
        pod_ip: Ipv4Addr::new(10, 244, 0, 2),
        node_ip: Ipv4Addr::new(192, 168, 56, 10),
        target: Ipv4Addr::new(198, 18, 0, 1),
        observed_sources: vec![],
        reply_received: false,
        seen_leaving_node: false,
    });
    assert!(causes(&diagnose(&lab, &ev)).contains(&"neighbour-table-overflow"));
    // A lab that fits the default table is not blamed on it.
    if let Some(t) = ev.neighbour_table.as_mut() {
        t.needed = crate::verify::evidence::neighbour_entries_needed(3);
    }
    assert!(!causes(&diagnose(&lab, &ev)).contains(&"neighbour-table-overflow"));
}

#[test]
fn suggested_limits_hold_the_need() {
    use crate::verify::evidence::{neighbour_entries_needed, suggested_gc_thresh};
    assert_eq!(neighbour_entries_needed(50), 2750);
    assert_eq!(suggested_gc_thresh(2750), [1024, 4096, 8192]);
    assert_eq!(suggested_gc_thresh(24), [128, 512, 1024]);
    let [_, g2, g3] = suggested_gc_thresh(neighbour_entries_needed(200));
    assert!(g2 >= neighbour_entries_needed(200) && g3 == 2 * g2);
}

#[test]
fn kubelet_on_the_nat_address_is_the_nat_nic() {
    let mut ev = Evidence::default();
    let node = |name: &str, ip: [u8; 4]| KubeNode {
        node: name.into(),
        registered: true,
        ready: true,
        ready_detail: String::new(),
        internal_ip: Some(Ipv4Addr::from(ip)),
        pod_cidr: None,
    };
    ev.kubernetes = Some(KubeEvidence {
        nodes: vec![
            node("master", [192, 168, 56, 10]),
            node("worker1", [10, 0, 2, 15]),
        ],
        ..Default::default()
    });
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["nat-nic"]);
    assert_eq!(d[0].node.as_deref(), Some("worker1"));
    assert_eq!(d[0].checks, [CheckId::Kubernetes]);
    assert!(d[0]
        .message
        .contains("InternalIP 10.0.2.15, not its lab IP 192.168.56.11: the NAT NIC"));
    assert!(d[0].fix.contains("--node-ip=192.168.56.11"));
}

#[test]
fn a_pod_stuck_pulling_its_image_names_the_node() {
    let mut ev = Evidence::default();
    let pod = |node: &str, problem: Option<&str>| PodView {
        eth0_mtu: None,
        node: node.into(),
        name: format!("busybox-{node}"),
        ip: None,
        namespace: None,
        problem: problem.map(str::to_string),
    };
    ev.pods.push(pod("master", None));
    ev.pods.push(pod(
        "worker1",
        Some("is not Running with an IP after 180 s: Pending (CrashLoopBackOff: back-off)"),
    ));
    assert!(diagnose(&lab3(), &ev).is_empty());
    ev.pods.push(pod(
        "worker2",
        Some("is not Running with an IP after 180 s: Pending (ImagePullBackOff: Back-off pulling image \"busybox:1.28\")"),
    ));
    let d = diagnose(&lab3(), &ev);
    assert_eq!(causes(&d), ["image-pull"]);
    assert_eq!(d[0].node.as_deref(), Some("worker2"));
    assert!(d[0].evidence[0].contains("ImagePullBackOff"), "{:?}", d[0]);
    assert_eq!(d[0].checks, [CheckId::Pods]);
}

#[test]
fn a_neighbour_the_kernel_is_still_resolving_is_a_missing_one() {
    let entry = |actual: &str| {
        drift(
            "worker1",
            Difference::new(
                ObjectKind::Neighbour,
                "neighbour 10.244.2.0 dev flannel.1",
                "10.244.2.0",
            )
            .peer("worker2"),
            Some("10.244.2.0 dev flannel.1 lladdr 0e:fa:0a:f4:02:00 permanent"),
            Some(actual),
        )
    };
    // Traffic towards the peer made the kernel try to resolve it.
    let mut ev = Evidence::default();
    ev.drift
        .push(entry("10.244.2.0 dev flannel.1 lladdr none incomplete"));
    assert_eq!(causes(&diagnose(&lab3(), &ev)), ["missing-neighbour"]);
    // An entry with another address is wrong, as before.
    let mut ev = Evidence::default();
    ev.drift.push(entry(
        "10.244.2.0 dev flannel.1 lladdr 0e:00:00:00:00:01 permanent",
    ));
    assert_eq!(causes(&diagnose(&lab3(), &ev)), ["wrong-neighbour"]);
}
