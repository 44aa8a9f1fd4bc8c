//! Marking a traced walk: what the agents captured while the one packet
//! crossed ([`Observed`]) against what each hop watches for
//! ([`Watch`]): seen or not seen, with the captured values. Pure.

use labctl_nodeplan::report::{Departure, Flow};
use std::collections::BTreeMap;

use super::model::{Hop, Watch};

/// What the captures and the ping gave (a probe that failed: why).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Echo requests leaving the source pod (its namespace's capture).
    pub pod_left: Option<Result<Vec<Departure>, String>>,
    /// Node → echo requests leaving it.
    pub node_left: BTreeMap<String, Result<Vec<Departure>, String>>,
    /// Node → VXLAN flows on its underlay.
    pub vxlan: BTreeMap<String, Result<Vec<Flow>, String>>,
    /// Whether the echo reply came back.
    pub answered: Option<Result<bool, String>>,
}

/// An interface a watch for `device` accepts: the device itself, and for
/// a bridge the pods' veth ports on it.
fn device_matches(device: &str, interface: &str) -> bool {
    interface == device || (device == "cni0" && interface.starts_with("veth"))
}

fn departures_text(d: &[Departure]) -> String {
    if d.is_empty() {
        return "nothing".into();
    }
    d.iter()
        .map(|d| format!("{} from {} ({})", d.interface, d.src, d.packets))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seen or not, and what was captured, for one watch.
fn judge(watch: &Watch, obs: &Observed) -> Option<(bool, String)> {
    let missing = |what: &str| Some((false, format!("no {what} capture")));
    match watch {
        Watch::PodLeft => match &obs.pod_left {
            Some(Ok(d)) => Some((
                d.iter().any(|d| d.interface == "eth0"),
                format!("left the pod by {}", departures_text(d)),
            )),
            Some(Err(e)) => Some((false, e.clone())),
            None => missing("pod"),
        },
        Watch::NodeLeft { node, device, src } => match obs.node_left.get(node) {
            Some(Ok(d)) => {
                let seen = d.iter().any(|d| {
                    device_matches(device, &d.interface) && src.is_none_or(|s| s == d.src)
                });
                let wanted = match src {
                    Some(s) => format!("{device} from {s}"),
                    None => device.clone(),
                };
                Some((
                    seen,
                    format!("wanted {wanted}; left {node} by {}", departures_text(d)),
                ))
            }
            Some(Err(e)) => Some((false, e.clone())),
            None => missing(node),
        },
        Watch::Vxlan { node, outer, inner } => match obs.vxlan.get(node) {
            Some(Ok(flows)) => {
                let inner_match = |f: &&Flow| {
                    f.inner_dst == inner.1 && (inner.0.is_unspecified() || f.inner_src == inner.0)
                };
                let ours: Vec<&Flow> = flows.iter().filter(inner_match).collect();
                let seen = ours.iter().any(|f| (f.outer_src, f.outer_dst) == *outer);
                let text = if ours.is_empty() {
                    format!(
                        "no VXLAN packet {} → {} on {node}'s underlay",
                        inner.0, inner.1
                    )
                } else {
                    ours.iter()
                        .map(|f| {
                            format!(
                                "VXLAN {} → {} inner {} → {} ({})",
                                f.outer_src, f.outer_dst, f.inner_src, f.inner_dst, f.packets
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Some((seen, text))
            }
            Some(Err(e)) => Some((false, e.clone())),
            None => missing(node),
        },
        Watch::Answered => match &obs.answered {
            Some(Ok(true)) => Some((true, "the echo reply came back".into())),
            Some(Ok(false)) => Some((false, "no echo reply".into())),
            Some(Err(e)) => Some((false, e.clone())),
            None => None,
        },
    }
}

/// Marks every hop with a watch seen or not seen.
pub fn mark(hops: &mut [Hop], obs: &Observed) {
    for hop in hops {
        if let Some((seen, evidence)) = hop.watch.as_ref().and_then(|w| judge(w, obs)) {
            hop.seen = Some(seen);
            hop.evidence = Some(evidence);
        }
    }
}

/// The nodes whose captures a walk's watches read, and whether each needs
/// a VXLAN capture too.
pub fn capture_nodes(hops: &[Hop]) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for w in hops.iter().filter_map(|h| h.watch.as_ref()) {
        match w {
            Watch::NodeLeft { node, .. } => {
                out.entry(node.clone()).or_insert(false);
            }
            Watch::Vxlan { node, .. } => {
                out.insert(node.clone(), true);
            }
            _ => {}
        }
    }
    out
}
