//! `egress` (netns labs: the outside namespace; VM labs opt in with
//! `verify.egressTarget` in the lab file). verify cannot watch the far end, so the evidence is taken where
//! MASQUERADE acts: each node's agent captures the ICMP echo requests to
//! the target that LEAVE the node (`capture --icmp-to`, AF_PACKET,
//! outgoing packets, i.e. after POSTROUTING) while the node's pod pings
//! the target. The node's address as source proves the masquerade; the
//! pod's address means the POSTROUTING jump to FLANNEL-POSTRTG is missing.

use std::net::Ipv4Addr;

use labctl_nodeplan::report::{CaptureOutcome, Departure, IcmpCaptureReport};

use super::output::NodeCapture;
use crate::verify::evidence::EgressProbe;
use crate::verify::underlay::route_field;

/// How long each node's agent captures at least (a healthy node's capture
/// ends after its pod's three echo requests).
pub(crate) const EGRESS_CAPTURE_SECONDS: u32 = 5;

/// What one node's egress capture and its pod's ping gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressNodeOutput {
    /// The source `ip route get TARGET` names (MASQUERADE's choice).
    pub route_src: Option<Ipv4Addr>,
    /// The pod's ping: answered, or why not.
    pub ping: Option<Result<bool, String>>,
    /// What left the node, or why the capture gave nothing.
    pub departures: Result<Vec<Departure>, String>,
}

/// Node `node`'s echo-request capture, as `egress` reads it.
pub(crate) fn egress_node_output(node: &str, got: &NodeCapture) -> EgressNodeOutput {
    EgressNodeOutput {
        route_src: got
            .route
            .as_deref()
            .and_then(|r| route_field(r, "src")?.parse().ok()),
        ping: None,
        departures: got
            .report::<IcmpCaptureReport>(node, |o| match o {
                CaptureOutcome::IcmpTo { report } => Some(report),
                _ => None,
            })
            .map(|r| r.departures),
    }
}

/// The egress evidence of one pod: the distinct sources its echo requests
/// to `target` left the node with (the pod's own address or the node's;
/// anything else leaving for the target is not this pod's), and whether
/// its ping got replies. The node's address is the one its routing picks
/// for the target (MASQUERADE's source), else its underlay address.
pub fn egress_probe(
    node: &str,
    pod_ip: Ipv4Addr,
    underlay_ip: Ipv4Addr,
    target: Ipv4Addr,
    out: &EgressNodeOutput,
) -> EgressProbe {
    let node_ip = out.route_src.unwrap_or(underlay_ip);
    let mut observed: Vec<Ipv4Addr> = Vec::new();
    for d in out.departures.iter().flatten() {
        if (d.src == pod_ip || d.src == node_ip) && !observed.contains(&d.src) {
            observed.push(d.src);
        }
    }
    let reply_received = out.ping == Some(Ok(true));
    EgressProbe {
        node: node.to_string(),
        pod_ip,
        node_ip,
        target,
        observed_sources: observed,
        reply_received,
        seen_leaving_node: true,
    }
}

/// The summary's note on how the egress evidence was taken.
pub const EGRESS_METHOD: &str = "sources captured leaving each pod's node after POSTROUTING (labctl-agent capture --icmp-to, AF_PACKET), not at the far end";

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe of `node`, number `n` of the 192.168.71.0/24 lab (pod
    /// 10.71.n.2, node 192.168.71.10+n), pinging 192.168.71.200.
    fn probe_of(node: &str, n: u8, out: &EgressNodeOutput) -> EgressProbe {
        egress_probe(
            node,
            Ipv4Addr::new(10, 71, n, 2),
            Ipv4Addr::new(192, 168, 71, 10 + n),
            Ipv4Addr::new(192, 168, 71, 200),
            out,
        )
    }

    fn masqueraded(src: &str) -> NodeCapture {
        NodeCapture {
            route: Some("192.168.71.200 dev eth1 src 192.168.71.11 uid 0".into()),
            outcome: CaptureOutcome::IcmpTo {
                report: IcmpCaptureReport {
                    report_version: 1,
                    command: "capture --icmp-to".into(),
                    node: "worker1".into(),
                    icmp_to: Ipv4Addr::new(192, 168, 71, 200),
                    seconds: 5.0,
                    packets: 3,
                    departures: vec![Departure {
                        interface: "eth1".into(),
                        src: src.parse().unwrap(),
                        packets: 3,
                    }],
                },
            },
            kernel_log: None,
        }
    }

    #[test]
    fn reads_route_ping_and_departures() {
        let mut out = egress_node_output("worker1", &masqueraded("192.168.71.11"));
        assert_eq!(out.route_src, Some(Ipv4Addr::new(192, 168, 71, 11)));
        assert_eq!(out.ping, None);
        out.ping = Some(Ok(true));
        assert_eq!(
            out.departures,
            Ok(vec![Departure {
                interface: "eth1".into(),
                src: Ipv4Addr::new(192, 168, 71, 11),
                packets: 3
            }])
        );
        let p = probe_of("worker1", 1, &out);
        assert!(p.masqueraded() && p.reply_received && p.seen_leaving_node);
    }

    #[test]
    fn the_pod_source_leaving_is_not_masqueraded() {
        let mut out = egress_node_output("worker1", &masqueraded("10.71.1.2"));
        out.ping = Some(Ok(false));
        let p = probe_of("worker1", 1, &out);
        assert_eq!(p.observed_sources, [Ipv4Addr::new(10, 71, 1, 2)]);
        assert!(!p.masqueraded() && !p.reply_received);
    }

    #[test]
    fn a_failed_capture_says_why_and_observes_nothing() {
        let failed = NodeCapture {
            route: Some("RTNETLINK answers: Network is unreachable".into()),
            outcome: CaptureOutcome::Failed {
                error: "cannot open the packet socket: Operation not permitted".into(),
            },
            kernel_log: None,
        };
        let out = egress_node_output("master", &failed);
        assert_eq!(out.route_src, None);
        assert_eq!(
            out.departures,
            Err(
                "`labctl-agent capture --icmp-to` on node master: cannot open the packet socket: \
                 Operation not permitted"
                    .into()
            )
        );
        // A VXLAN capture's outcome where an ICMP one belongs is refused.
        let mut wrong = masqueraded("192.168.71.11");
        wrong.outcome = CaptureOutcome::Vxlan {
            report: labctl_nodeplan::report::CaptureReport {
                report_version: 1,
                command: "capture".into(),
                node: "worker1".into(),
                interface: "eth1".into(),
                port: 8472,
                vni: 1,
                seconds: 1.0,
                packets: 0,
                other_vni: 0,
                flows: vec![],
            },
        };
        assert_eq!(
            egress_node_output("worker1", &wrong).departures,
            Err(
                "`labctl-agent captures collect` on node worker1 reported another capture \
                 where `capture --icmp-to` belongs"
                    .into()
            )
        );
        let p = probe_of("master", 0, &out);
        assert_eq!(p.node_ip, Ipv4Addr::new(192, 168, 71, 10));
        assert!(p.observed_sources.is_empty() && !p.reply_received);
    }
}
