//! The probe behind `vxlan` on a host-gw lab ([`crate::verify::underlay`]):
//! on every node at once, the node's pod pings the next node's pod round
//! the ring while the node's agent captures the echo requests to it that
//! leave the node (`capture --icmp-to`), after `ip route get` names the
//! route the kernel picks. The same constant script as `egress`, with the
//! far pod as its target.

use labctl_nodeplan::NodePlan;

use super::egress::{parse_egress_output, EGRESS_CAPTURE_SECONDS};
use super::output::{ring, ring_pairs};
use super::probes::usable;
use super::scripts::EGRESS_PING_SCRIPT;
use super::{on_nodes, script};
use crate::ssh::Session;
use crate::verify::model::{LabView, PodView};
use crate::verify::target::AGENT_PATH;
use crate::verify::underlay::{route_via_dev, UnderlayPair};

/// One [`UnderlayPair`] per ring pair of usable pods.
pub(super) fn probe(
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
) -> Vec<UnderlayPair> {
    let ok = usable(pods);
    let pairs = ring(ok.len());
    let outputs = on_nodes(sessions, |i, s| {
        let node = &view.nodes.get(i)?.name;
        let plan = plans.iter().find(|p| &p.node == node)?;
        let a = ok.iter().position(|(j, _, _)| &pods[*j].node == node)?;
        let (_, b) = pairs.iter().find(|(x, _)| *x == a)?;
        let target = ok[*b].2.to_string();
        let args = [
            AGENT_PATH,
            ok[a].1.as_str(),
            EGRESS_CAPTURE_SECONDS,
            target.as_str(),
        ];
        Some(script(
            s,
            EGRESS_PING_SCRIPT,
            &args,
            Some(plan.to_json().as_bytes()),
        ))
    });
    let mut found = Vec::new();
    for (from, to, src, dst) in ring_pairs(&pairs, pods, &ok) {
        let mut pair = UnderlayPair {
            expected_via: view.node(&to).map(|n| n.underlay_ip),
            src: Some(src),
            dst: Some(dst),
            ..Default::default()
        };
        let i = view.nodes.iter().position(|n| n.name == from);
        match i.and_then(|i| outputs.get(i)).cloned().flatten().flatten() {
            Some(Ok(text)) => {
                let out = parse_egress_output(&from, &text);
                // One line, single spaces (`ip route get` pads its cache line).
                pair.route = text
                    .lines()
                    .find_map(|l| l.strip_prefix("@route "))
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                (pair.via, pair.dev) = route_via_dev(&pair.route);
                pair.ping_ok = out.agent_ping.as_ref().is_some_and(|a| *a == Ok(true));
                match out.departures {
                    Ok(d) => pair.departures = d,
                    Err(e) => pair.error = Some(e),
                }
                if let Some(Err(e)) = out.agent_ping {
                    pair.error.get_or_insert(e);
                }
            }
            Some(Err(e)) => pair.error = Some(e),
            None => pair.error = Some(format!("{from} is not reachable over SSH")),
        }
        pair.from = from;
        pair.to = to;
        found.push(pair);
    }
    found
}
