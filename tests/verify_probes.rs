//! verify's netns probes and diagnoses against a real (hand-built) flannel
//! VXLAN data plane in network namespaces: all checks pass on a healthy
//! lab, and each injected fault turns the right check red with the right
//! cause named. Needs root (namespaces, raw sockets, AF_PACKET).

mod support;
mod verify_support;

use std::time::Instant;

use labctl::verify::evidence::Evidence;
use labctl::verify::model::Outcome;
use labctl::verify::{checks, diagnose, netns};
use support::faults::{forward_jump, postrouting_jump, vxlan_drop};
use verify_support::{is_root, HandLab};

fn skip() -> bool {
    !is_root()
        && !support::skip(
            "verify_probes",
            "verify probes need root (network namespaces, raw ICMP and AF_PACKET sockets)",
        )
}

/// Probes everything verify probes in a netns lab (DNS aside: no server
/// here) and returns the evidence.
fn probe(lab: &HandLab) -> Evidence {
    let mut ev = Evidence::default();
    let mut pods = lab.pods.clone();
    netns::inspect_pods(&mut pods);
    ev.pods = pods;
    ev.firewall = netns::firewall(&lab.view);
    ev.mesh = Some(netns::mesh(&ev.pods));
    ev.vxlan = netns::vxlan(&lab.view, &ev.pods);
    let (mtu, links) = netns::mtu(&lab.view, &ev.pods);
    ev.mtu = mtu;
    ev.link_mtus = links;
    ev.egress = netns::egress(&lab.view, &ev.pods).unwrap();
    ev
}

fn causes(lab: &HandLab, ev: &Evidence) -> Vec<(String, Option<String>)> {
    diagnose::diagnose(&lab.view, ev)
        .into_iter()
        .map(|d| (d.cause, d.node))
        .collect()
}

#[test]
fn healthy_lab_passes_and_each_fault_is_named() {
    if skip() {
        return;
    }
    let lab = HandLab::build("a", 3);
    let ev = probe(&lab);
    let v = &lab.view;
    let results = [
        checks::pods(v, &ev),
        checks::pod_mesh(ev.mesh.as_ref().unwrap()),
        checks::vxlan(v, &ev),
        checks::mtu(v, &ev),
        checks::egress(v, &ev),
    ];
    for r in &results {
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "{}: {} {:#?}",
            r.id,
            r.summary,
            r.details
        );
    }
    assert!(causes(&lab, &ev).is_empty());
    let pair = &ev.vxlan[0];
    assert_eq!(pair.vnis, vec![1]);
    assert_eq!(pair.outer_sources, vec![verify_support::underlay_ip(0)]);
    assert!(
        pair.sender_out >= 3 && pair.receiver_in >= 3 && pair.receiver_decapsulated >= Some(3),
        "{pair:?}"
    );

    // UDP 8472 dropped on node2: packets reach its eth1, never flannel.1.
    lab.on_node(2, &vxlan_drop("-A"));
    let ev = probe(&lab);
    assert_eq!(checks::vxlan(v, &ev).outcome, Outcome::Fail);
    assert_eq!(
        checks::pod_mesh(ev.mesh.as_ref().unwrap()).outcome,
        Outcome::Fail
    );
    let found = causes(&lab, &ev);
    assert!(
        found.contains(&("vxlan-port-blocked".into(), Some("node2".into()))),
        "{found:?}"
    );
    lab.on_node(2, &vxlan_drop("-D"));

    // flannel.1 MTU changed on node1.
    lab.on_node(1, &["ip", "link", "set", "flannel.1", "mtu", "1400"]);
    let ev = probe(&lab);
    assert_eq!(checks::mtu(v, &ev).outcome, Outcome::Fail);
    let found = causes(&lab, &ev);
    assert!(
        found.contains(&("mtu-mismatch".into(), Some("node1".into()))),
        "{found:?}"
    );
    assert!(
        ev.mtu.iter().any(|p| p.from == "node1" && !p.fits_passed),
        "{:?}",
        ev.mtu
    );
    lab.on_node(1, &["ip", "link", "set", "flannel.1", "mtu", "1450"]);

    // POSTROUTING jump gone on node0: the outside sees the pod IP.
    lab.on_node(0, &postrouting_jump("-D"));
    let ev = probe(&lab);
    assert_eq!(checks::egress(v, &ev).outcome, Outcome::Fail);
    let found = causes(&lab, &ev);
    assert!(
        found.contains(&("postrouting-jump-missing".into(), Some("node0".into()))),
        "{found:?}"
    );
    lab.on_node(0, &postrouting_jump("-A"));

    // FORWARD policy DROP and no FLANNEL-FWD jump on node1.
    lab.on_node(1, &forward_jump("-D"));
    lab.on_node(1, &["iptables", "-w", "-P", "FORWARD", "DROP"]);
    let ev = probe(&lab);
    assert_eq!(
        checks::pod_mesh(ev.mesh.as_ref().unwrap()).outcome,
        Outcome::Fail
    );
    let found = causes(&lab, &ev);
    assert!(
        found.contains(&("forward-drop".into(), Some("node1".into()))),
        "{found:?}"
    );
    lab.on_node(1, &["iptables", "-w", "-P", "FORWARD", "ACCEPT"]);
    lab.on_node(1, &forward_jump("-A"));

    // A missing route: the mesh and the vxlan capture show it (naming the
    // route needs the agent's check, covered by verify_faults).
    lab.on_node(0, &["ip", "route", "del", "10.244.2.0/24"]);
    let ev = probe(&lab);
    let mesh = ev.mesh.as_ref().unwrap();
    assert!(!mesh.cell("node0", "node2").unwrap().ok());
    assert!(mesh.cell("node0", "node1").unwrap().ok());
    lab.on_node(
        0,
        &[
            "ip",
            "route",
            "add",
            "10.244.2.0/24",
            "via",
            "10.244.2.0",
            "dev",
            "flannel.1",
            "onlink",
        ],
    );

    let ev = probe(&lab);
    assert!(causes(&lab, &ev).is_empty(), "{:?}", causes(&lab, &ev));
}

/// The mesh at 3, 10 and 50 nodes (2,450 pairs): run with
/// `cargo test -p labctl --test verify_probes -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_probes() {
    if skip() {
        return;
    }
    // The kernel's ARP table is shared by all namespaces: 50 nodes × 49
    // underlay neighbours overflow the default gc_thresh3 (1024). Raise it
    // for the run (a table size, no route or rule) and put it back.
    let _arp = verify_support::ArpTableSize::raise(8192);
    for n in [3, 10, 50] {
        let lab = HandLab::build(&format!("b{n}"), n);
        let t = Instant::now();
        let mut pods = lab.pods.clone();
        netns::inspect_pods(&mut pods);
        let t_pods = t.elapsed();
        let t = Instant::now();
        let mesh = netns::mesh(&pods);
        let t_mesh = t.elapsed();
        let t = Instant::now();
        let vx = netns::vxlan(&lab.view, &pods);
        let t_vx = t.elapsed();
        let t = Instant::now();
        let (mtu, _) = netns::mtu(&lab.view, &pods);
        let t_mtu = t.elapsed();
        let t = Instant::now();
        let eg = netns::egress(&lab.view, &pods).unwrap();
        let t_eg = t.elapsed();
        let ok = mesh.cells.iter().filter(|c| c.ok()).count();
        println!(
            "{n} nodes: pods {:.3}s, mesh {}/{} pairs {:.3}s, vxlan {} pairs {:.3}s, mtu {} probes {:.3}s, egress {} {:.3}s",
            t_pods.as_secs_f64(),
            ok,
            mesh.cells.len(),
            t_mesh.as_secs_f64(),
            vx.len(),
            t_vx.as_secs_f64(),
            mtu.len(),
            t_mtu.as_secs_f64(),
            eg.len(),
            t_eg.as_secs_f64()
        );
        assert_eq!(ok, n * (n - 1));
    }
}
