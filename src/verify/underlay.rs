//! The `vxlan` check's counterpart on a host-gw lab: "pod IPs travel
//! unencapsulated on the underlay". There is no tunnel to watch, so the
//! evidence is what a learner would look at: the route the sender's
//! kernel picks for the far pod (`ip route get`: via the peer's node IP,
//! on the underlay interface) and the echo requests seen leaving the
//! sender on that interface with the pod's own address as source
//! (`labctl-agent capture --icmp-to`, AF_PACKET, after POSTROUTING), while
//! the pod pings the far pod and gets answers (one
//! [`UnderlayPair`](super::evidence::UnderlayPair) per pair). Pure: no I/O.

use std::net::Ipv4Addr;

use serde_json::json;

use super::evidence::Evidence;
use super::model::{CheckId, CheckResult, LabView, Outcome};

/// What `vxlan` proves on a host-gw lab (in place of [`CheckId::proves`]).
pub const PROVES: &str = "cross-node pod traffic leaves the sender on the underlay interface, unencapsulated, pod IP to pod IP, routed via the peer's node IP (host-gw: no VXLAN)";

/// How the evidence is taken.
pub const METHOD: &str =
    "ip route get on the sender, labctl-agent capture --icmp-to (AF_PACKET, outgoing), over SSH";

/// What `dataplane` proves on a host-gw lab.
pub const DATAPLANE_PROVES: &str = "each node's cni0, one route per peer via its node IP (no flannel.1, no neighbour or FDB entries), iptables chains and files match the plan";

/// `dataplane`'s summary on a host-gw lab whose nodes all match.
pub fn dataplane_summary(lab: &LabView) -> String {
    format!(
        "{} nodes match their plan: no flannel.1, cni0 mtu {}, {} peers each (route via the peer's node IP), FLANNEL-POSTRTG/FLANNEL-FWD, subnet.env, CNI conflist",
        lab.nodes.len(),
        lab.pod_mtu,
        lab.nodes.len().saturating_sub(1)
    )
}

/// `dataplane`'s per-node lines on a host-gw lab: the routes each node
/// holds to its peers' subnets.
pub fn dataplane_details(lab: &LabView) -> Vec<String> {
    lab.nodes
        .iter()
        .map(|n| {
            let routes: Vec<String> = lab
                .nodes
                .iter()
                .filter(|p| p.name != n.name)
                .map(|p| format!("{} via {}", p.subnet, p.underlay_ip))
                .collect();
            format!("{}: subnet {}; {}", n.name, n.subnet, routes.join(", "))
        })
        .collect()
}

/// The word after `key` in an `ip route get` line, e.g. `via`, `dev` or
/// `src` in `10.248.1.2 via 192.168.60.11 dev eth1 src 192.168.60.10 uid 0`.
pub fn route_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == key)?;
    words.next()
}

/// The `via` gateway and `dev` of an `ip route get` line.
pub fn route_via_dev(line: &str) -> (Option<Ipv4Addr>, Option<String>) {
    (
        route_field(line, "via").and_then(|v| v.parse().ok()),
        route_field(line, "dev").map(str::to_string),
    )
}

/// `vxlan` on a host-gw lab.
pub fn check(lab: &LabView, ev: &Evidence) -> CheckResult {
    let mut details = Vec::new();
    let mut ok = !ev.underlay.is_empty();
    for p in &ev.underlay {
        let good = p.good();
        ok &= good;
        let show = |ip: Option<Ipv4Addr>| ip.map_or("?".to_string(), |ip| ip.to_string());
        let mut line = format!(
            "{}{} → {}: {} → {} {}, route `{}`, {} echo requests left by {} with the pod's address (expected via {})",
            if good { "" } else { "✗ " },
            p.from,
            p.to,
            show(p.src),
            show(p.dst),
            if p.ping_ok { "answered" } else { "NOT answered" },
            p.route.trim(),
            p.unencapsulated(),
            p.dev.as_deref().unwrap_or("?"),
            show(p.expected_via),
        );
        if let Some(e) = &p.error {
            line.push_str(&format!(": {e}"));
        }
        details.push(line);
    }
    let good = ev.underlay.iter().filter(|p| p.good()).count();
    let mut r = CheckResult::new(
        CheckId::Vxlan,
        if ok { Outcome::Pass } else { Outcome::Fail },
        format!(
            "{good}/{} node pairs carry pod traffic unencapsulated on the underlay (host-gw: routes via the peers' node IPs, no VXLAN, pod MTU {}); {METHOD}",
            ev.underlay.len(),
            lab.pod_mtu
        ),
    );
    r.proves = PROVES;
    r.details = details;
    r.evidence = json!({"backend": "host-gw", "pairs": ev.underlay});
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::evidence::UnderlayPair;
    use labctl_nodeplan::report::Departure;

    fn pair() -> UnderlayPair {
        let (via, dev) =
            route_via_dev("10.248.1.2 via 192.168.60.11 dev eth1 src 192.168.60.10 uid 0 cache ");
        UnderlayPair {
            from: "master".into(),
            to: "worker1".into(),
            src: Some(Ipv4Addr::new(10, 248, 0, 2)),
            dst: Some(Ipv4Addr::new(10, 248, 1, 2)),
            ping_ok: true,
            route: "10.248.1.2 via 192.168.60.11 dev eth1 src 192.168.60.10 uid 0".into(),
            via,
            dev,
            expected_via: Some(Ipv4Addr::new(192, 168, 60, 11)),
            departures: vec![Departure {
                interface: "eth1".into(),
                src: Ipv4Addr::new(10, 248, 0, 2),
                packets: 3,
            }],
            error: None,
        }
    }

    fn lab() -> LabView {
        let mut lab = crate::verify::diagnose::tests::lab3();
        lab.backend = labctl_nodeplan::Backend::HostGw;
        lab.pod_mtu = 1500;
        lab
    }

    #[test]
    fn a_pod_packet_leaving_the_underlay_via_the_peer_passes() {
        let p = pair();
        assert_eq!(p.via, Some(Ipv4Addr::new(192, 168, 60, 11)));
        assert_eq!(p.dev.as_deref(), Some("eth1"));
        let ev = Evidence {
            underlay: vec![p],
            ..Default::default()
        };
        let r = check(&lab(), &ev);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert_eq!(r.proves, PROVES);
        assert!(r.summary.starts_with("1/1 node pairs"), "{}", r.summary);
        assert!(
            r.details[0].contains("3 echo requests left by eth1"),
            "{:?}",
            r.details
        );
    }

    #[test]
    fn a_vxlan_route_a_masqueraded_source_or_no_answer_fails() {
        // Still routed through flannel.1 (the vxlan backend's onlink route).
        let mut tunnel = pair();
        tunnel.route = "10.248.1.2 via 10.248.1.0 dev flannel.1 src 10.248.0.0 uid 0".into();
        (tunnel.via, tunnel.dev) = route_via_dev(&tunnel.route);
        tunnel.departures[0].interface = "flannel.1".into();
        // Left with the node's address: not pod IP to pod IP.
        let mut masqueraded = pair();
        masqueraded.departures[0].src = Ipv4Addr::new(192, 168, 60, 10);
        let mut lost = pair();
        lost.ping_ok = false;
        let mut no_route = pair();
        no_route.route = "RTNETLINK answers: Network is unreachable".into();
        (no_route.via, no_route.dev) = route_via_dev(&no_route.route);
        for p in [tunnel, masqueraded, lost, no_route] {
            assert!(!p.good(), "{p:?}");
            let ev = Evidence {
                underlay: vec![pair(), p],
                ..Default::default()
            };
            let r = check(&lab(), &ev);
            assert_eq!(r.outcome, Outcome::Fail);
            assert!(r.summary.starts_with("1/2 node pairs"), "{}", r.summary);
            assert!(r.details[1].starts_with("✗ "), "{:?}", r.details);
        }
        // No evidence at all is no proof.
        assert_eq!(check(&lab(), &Evidence::default()).outcome, Outcome::Fail);
    }

    #[test]
    fn a_host_gw_dataplane_names_the_routes_and_no_tunnel() {
        let lab = lab();
        let ev = Evidence {
            checked_nodes: lab.nodes.iter().map(|n| n.name.clone()).collect(),
            ..Default::default()
        };
        let r = crate::verify::checks::dataplane(&lab, &ev, &[]);
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.proves, DATAPLANE_PROVES);
        assert!(
            r.summary.contains("no flannel.1, cni0 mtu 1500"),
            "{}",
            r.summary
        );
        assert_eq!(
            r.details[1],
            "worker1: subnet 10.244.1.0/24; 10.244.0.0/24 via 192.168.56.10, 10.244.2.0/24 via 192.168.56.12"
        );
    }
}
