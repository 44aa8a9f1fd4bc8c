//! The checks whose pings the agents capture: `vxlan` (a ring of
//! cross-node pod pings, seen on the underlay as VXLAN; on a host-gw lab
//! seen leaving unencapsulated, [`underlay`]) and `egress`
//! (every pod pings the outside target; what leaves each node is seen
//! after POSTROUTING). Two rounds for all of them together
//! ([`run_captures`]), one agent process per node in each: every node's
//! agent starts all its captures (`captures start`, returning once their
//! sockets are open); then the pods ping (one run per pod for all its
//! targets, [`super::pod_exec::PodExec::ping`]) while each node's agent
//! waits for its captures to end and prints them (`captures collect`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use labctl_nodeplan::probe::PingReport;
use labctl_nodeplan::report::{
    decode, CaptureSpec, CapturesCollected, CapturesRequest, CapturesStarted,
};

use super::agent_ping::CAPTURED;
use super::egress::{egress_node_output, egress_probe, EGRESS_CAPTURE_SECONDS};
use super::fanout::{run_jobs, Job, JobOutput};
use super::output::{answered, vxlan_evidence, vxlan_node_output, NodeCapture};
use super::pairs::{ring, ring_pairs};
use super::pod_exec::{Pinged, ProbePod};
use super::Probes;
use crate::verify::evidence::UnderlayPair;
use crate::verify::evidence::{EgressProbe, VxlanPair};
use crate::verify::parse::BadChecksum;
use crate::verify::target::AGENT_PATH;
use crate::verify::underlay::route_via_dev;

/// VXLAN packets a node of a healthy ring sees: as sender, 3 requests out
/// and 3 replies in; as receiver, 3 requests in and 3 replies out.
const VXLAN_PACKETS: u64 = 12;

/// One capture among those [`run_captures`] runs together: what each node
/// captures (by node index; `None`: not armed) and the address whose
/// route it reports, the pings it must see, how long it may run, and
/// which nodes' collection also reads the kernel log.
struct Capture {
    specs: Vec<Option<(CaptureSpec, Option<Ipv4Addr>)>>,
    pings: Vec<(ProbePod, Ipv4Addr)>,
    seconds: u32,
    log: Vec<bool>,
}

/// What a capture gave: its ping reports in order, and each node's
/// capture (`None`: not armed or not reachable; `Err`: why it gave
/// nothing).
struct Captured {
    reports: Vec<Pinged>,
    nodes: Vec<Option<Result<NodeCapture, String>>>,
}

/// A capture of the echo requests to `target` leaving the node, with
/// `target`'s route looked up.
fn icmp_to(target: Ipv4Addr, seconds: u32) -> (CaptureSpec, Option<Ipv4Addr>) {
    let spec = CaptureSpec::IcmpTo {
        to: target,
        seconds: f64::from(seconds),
        count: Some(3),
    };
    (spec, Some(target))
}

/// How long the captures may run: `base` seconds, and one more per 25
/// nodes. The first node's capture starts when it is armed, the pings only
/// once every node is: on a large lab the arming round alone takes
/// seconds, and a window shorter than that sees nothing. A healthy lab's
/// captures end early all the same (their packet counts are reached).
fn window(p: &Probes, base: u32) -> u32 {
    base + (p.target.view.nodes.len() / 25) as u32
}

/// Why a `captures` command of node `node` gave no report: an agent
/// older than this labctl is named with the fix.
fn captures_failed(node: &str, what: &str, out: JobOutput) -> String {
    let older = out
        .status
        .and_then(|status| crate::verify::parse::older_agent("captures", status, &out.stderr));
    if let Some(why) = older {
        return format!("{node}: {why}");
    }
    out.success(node, what)
        .err()
        .unwrap_or_else(|| format!("{node}: `{what}` printed no report"))
}

/// Reads a `captures` command's report from its job output.
fn captures_report<T: labctl_nodeplan::report::AgentReport>(
    node: &str,
    out: Result<JobOutput, String>,
) -> Result<T, String> {
    let out = out?;
    let what = format!("labctl-agent {}", T::COMMAND);
    if out.status != Some(0) {
        return Err(captures_failed(node, &what, out));
    }
    decode::<T>(node, &out.stdout).map_err(|e| e.to_string())
}

/// `report` cut down to its result for `target` (a pod's one ping run
/// serves every capture its targets belong to).
fn for_target(report: &Pinged, target: Ipv4Addr) -> Pinged {
    report.clone().map(|r| PingReport {
        targets: r
            .targets
            .into_iter()
            .filter(|t| t.target == target)
            .collect(),
        ..r
    })
}

/// Each reachable node's `captures start` job for the captures armed on
/// it, and per node which captures those are (in request order).
fn start_jobs(p: &Probes, captures: &[Capture]) -> (Vec<Job>, Vec<Vec<usize>>) {
    let nodes = p.target.view.nodes.len();
    let mut jobs = Vec::new();
    let mut armed_here: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (i, here) in armed_here.iter_mut().enumerate() {
        let reachable = p.sessions.get(i).is_some_and(Option::is_some);
        let Some(plan) = p.target.plan(i).filter(|_| reachable) else {
            continue;
        };
        let mut request = CapturesRequest {
            // A capture reads the underlay, VXLAN port and VNI; at 1,000
            // nodes the peers are 170 KB a node.
            plan: labctl_nodeplan::NodePlan {
                peers: Vec::new(),
                ..plan.clone()
            },
            route_to: None,
            captures: Vec::new(),
        };
        for (c, cap) in captures.iter().enumerate() {
            if let Some(Some((spec, route_to))) = cap.specs.get(i) {
                request.captures.push(spec.clone());
                request.route_to = request.route_to.or(*route_to);
                here.push(c);
            }
        }
        if here.is_empty() {
            continue;
        }
        let json = serde_json::to_string(&request).unwrap_or_default();
        jobs.push(Job {
            at: i,
            argv: [AGENT_PATH, "captures", "start", &json]
                .map(String::from)
                .to_vec(),
        });
    }
    (jobs, armed_here)
}

/// A pod and every target it pings in the round.
type PodPings = (ProbePod, Vec<Ipv4Addr>);

/// Every pod that pings in any of `captures`, with all its targets (one
/// ping run per pod for the round), and where each pod is in that list by
/// its handle (unique in a lab).
fn pod_targets(captures: &[Capture]) -> (Vec<PodPings>, BTreeMap<String, usize>) {
    let mut merged: Vec<PodPings> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for cap in captures {
        for (pod, to) in &cap.pings {
            match index.get(&pod.handle) {
                Some(&k) if !merged[k].1.contains(to) => merged[k].1.push(*to),
                Some(_) => {}
                None => {
                    index.insert(pod.handle.clone(), merged.len());
                    merged.push((pod.clone(), vec![*to]));
                }
            }
        }
    }
    (merged, index)
}

/// Runs `captures` in two rounds for all of them: every node starts its
/// captures (one agent process per node), then every pod pings (one run
/// per pod for all its targets) while each node collects its captures
/// (again one agent process per node): a collection waits for its
/// captures to end, which a healthy lab's pings end early.
fn run_captures(p: &mut Probes, captures: &[Capture]) -> Vec<Captured> {
    let nodes = p.target.view.nodes.len();
    let (start_jobs, armed_here) = start_jobs(p, captures);
    let outs = run_jobs(&mut p.sessions, &p.target.view, &start_jobs);
    let mut started: Vec<Option<Result<CapturesStarted, String>>> = vec![None; nodes];
    for (job, out) in start_jobs.iter().zip(outs) {
        let node = &p.target.view.nodes[job.at].name;
        started[job.at] = Some(captures_report(node, out));
    }

    let (pod_targets, pod_index) = pod_targets(captures);
    let mut jobs = Vec::new();
    let mut readers = Vec::new();
    for (pod, targets) in &pod_targets {
        let targets: Vec<String> = targets.iter().map(Ipv4Addr::to_string).collect();
        let (job, reader) = p.exec.ping(pod, &CAPTURED, &targets);
        jobs.push(job);
        readers.push(reader);
    }
    let mut collecting = Vec::new();
    for (i, s) in started.iter().enumerate() {
        if let Some(Ok(s)) = s {
            let seconds = armed_here[i]
                .iter()
                .map(|c| captures[*c].seconds)
                .max()
                .unwrap_or(0);
            let log = armed_here[i]
                .iter()
                .any(|c| captures[*c].log.get(i).copied().unwrap_or(false));
            let mut argv = [AGENT_PATH, "captures", "collect", &s.dir, "--seconds"]
                .map(String::from)
                .to_vec();
            argv.push(seconds.to_string());
            if log {
                argv.push("--kernel-log".into());
            }
            jobs.push(Job { at: i, argv });
            collecting.push(i);
        }
    }
    let mut outs = run_jobs(&mut p.sessions, &p.target.view, &jobs).into_iter();
    let pinged: Vec<Pinged> = pod_targets
        .iter()
        .zip(readers)
        .zip(outs.by_ref())
        .map(|(((pod, _), reader), out)| p.exec.read_ping(pod, reader, out))
        .collect();
    let mut collected: Vec<Option<Result<CapturesCollected, String>>> = vec![None; nodes];
    for (i, out) in collecting.into_iter().zip(outs) {
        let node = &p.target.view.nodes[i].name;
        collected[i] = Some(captures_report(node, out));
    }

    captures
        .iter()
        .enumerate()
        .map(|(c, cap)| {
            let reports = cap
                .pings
                .iter()
                .map(|(pod, to)| {
                    let k = pod_index.get(&pod.handle).copied();
                    k.map_or_else(
                        || Err(format!("{}: the pod did not ping", pod.node)),
                        |k| for_target(&pinged[k], *to),
                    )
                })
                .collect();
            let nodes = (0..nodes)
                .map(|i| {
                    let k = armed_here[i].iter().position(|x| *x == c)?;
                    let started = started[i].as_ref()?;
                    Some(node_capture(started, collected[i].as_ref(), k, cap.log[i]))
                })
                .collect();
            Captured { reports, nodes }
        })
        .collect()
}

/// Capture `k` of a node, from what its `start` and `collect` gave.
fn node_capture(
    started: &Result<CapturesStarted, String>,
    collected: Option<&Result<CapturesCollected, String>>,
    k: usize,
    log: bool,
) -> Result<NodeCapture, String> {
    let started = started.as_ref().map_err(Clone::clone)?;
    let collected = collected
        .ok_or_else(|| format!("{}: the captures were not collected", started.node))?
        .as_ref()
        .map_err(Clone::clone)?;
    let outcome = collected.captures.get(k).cloned().ok_or_else(|| {
        format!(
            "{}: `labctl-agent captures collect` reported {} captures, not {}",
            started.node,
            collected.captures.len(),
            k + 1
        )
    })?;
    Ok(NodeCapture {
        route: started.route.clone(),
        outcome,
        kernel_log: collected.kernel_log.clone().filter(|_| log),
    })
}

/// VXLAN evidence, and the bad checksums the kernel logged.
type VxlanFound = (Vec<VxlanPair>, Vec<(String, BadChecksum)>);
/// Egress probes, and a line per node whose probe could not run.
type EgressFound = (Vec<EgressProbe>, Vec<String>);

/// `vxlan`'s capture: every node's agent captures on its underlay while a
/// ring of cross-node pings runs (pod i → pod i+1); the kernel logs are
/// read for bad checksums.
fn vxlan_capture(p: &Probes) -> Capture {
    let ok = &p.ok;
    let nodes = p.target.view.nodes.len();
    let seconds = window(p, p.exec.capture_seconds());
    let spec = CaptureSpec::Vxlan {
        seconds: f64::from(seconds),
        count: Some(VXLAN_PACKETS),
    };
    // netns nodes share this host's kernel: one node reads its log.
    let netns = p.target.view.provider == "netns";
    Capture {
        specs: vec![Some((spec, None)); nodes],
        pings: ring(ok.len())
            .iter()
            .map(|(a, b)| (ok[*a].clone(), ok[*b].ip))
            .collect(),
        seconds,
        log: (0..nodes).map(|i| !netns || i == 0).collect(),
    }
}

/// What [`vxlan_capture`] saw, as evidence.
fn vxlan_read(p: &Probes, got: Captured) -> VxlanFound {
    let ok = &p.ok;
    let pairs = ring(ok.len());
    let view = &p.target.view;
    let Captured { reports, nodes } = got;
    let outputs: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node_got)| {
            let node = &view.nodes.get(i)?.name;
            let mut out = node_got?.map(|g| vxlan_node_output(node, &g));
            if let Ok(o) = &mut out {
                // The ping that node's pod sent round the ring.
                let sent = pairs.iter().position(|(a, _)| ok[*a].at == i);
                o.ping = sent.map(|k| answered(&reports[k]));
            }
            Some(out)
        })
        .collect();
    let method = format!(
        "labctl-agent capture on the underlay interface (AF_PACKET) over SSH, {}",
        p.exec.ping_method()
    );
    vxlan_evidence(view, &ring_pairs(&pairs, ok), &outputs, &method)
}

/// `egress`'s capture: every node's agent captures the echo requests to
/// `target` leaving the node while the node's pod pings `target`.
fn egress_capture(p: &Probes, target: Ipv4Addr) -> Capture {
    let ok = &p.ok;
    let nodes = p.target.view.nodes.len();
    let seconds = window(p, EGRESS_CAPTURE_SECONDS.max(p.exec.capture_seconds()));
    Capture {
        specs: (0..nodes)
            .map(|i| {
                ok.iter()
                    .any(|pod| pod.at == i)
                    .then(|| icmp_to(target, seconds))
            })
            .collect(),
        pings: ok.iter().map(|pod| (pod.clone(), target)).collect(),
        seconds,
        log: vec![false; nodes],
    }
}

/// What [`egress_capture`] saw: one probe per usable pod, and a line per
/// node whose probe could not run.
fn egress_read(p: &Probes, target: Ipv4Addr, got: Captured) -> EgressFound {
    let view = &p.target.view;
    let mut probes = Vec::new();
    let mut errors = Vec::new();
    for (pod, report) in p.ok.iter().zip(&got.reports) {
        let Some(node) = view.nodes.get(pod.at) else {
            continue;
        };
        let mut out = match got.nodes.get(pod.at).cloned().flatten() {
            Some(Ok(g)) => egress_node_output(&node.name, &g),
            Some(Err(e)) => {
                errors.push(format!("✗ {}: {e}", node.name));
                continue;
            }
            None => {
                errors.push(format!("✗ {}: not reachable over SSH", node.name));
                continue;
            }
        };
        if let Err(e) = &out.departures {
            errors.push(format!("✗ {}: {e}", node.name));
        }
        if let Err(e) = report {
            errors.push(format!("✗ {}: ping: {e}", node.name));
        }
        out.ping = Some(answered(report));
        probes.push(egress_probe(
            &node.name,
            pod.ip,
            node.underlay_ip,
            target,
            &out,
        ));
    }
    (probes, errors)
}

/// The one result of a single capture.
fn only(mut got: Vec<Captured>) -> Captured {
    got.pop().unwrap_or(Captured {
        reports: Vec::new(),
        nodes: Vec::new(),
    })
}

/// `vxlan` alone.
pub(super) fn vxlan(p: &mut Probes) -> VxlanFound {
    let capture = vxlan_capture(p);
    let got = only(run_captures(p, &[capture]));
    vxlan_read(p, got)
}

/// `egress` alone.
pub(super) fn egress(p: &mut Probes, target: Ipv4Addr) -> EgressFound {
    let capture = egress_capture(p, target);
    let got = only(run_captures(p, &[capture]));
    egress_read(p, target, got)
}

/// `vxlan` and `egress` in the same two rounds. Neither capture counts
/// the other's packets: vxlan counts UDP to the VXLAN port, egress echo
/// requests to the outside target.
pub(super) fn vxlan_and_egress(p: &mut Probes, target: Ipv4Addr) -> (VxlanFound, EgressFound) {
    let captures = [vxlan_capture(p), egress_capture(p, target)];
    let mut got = run_captures(p, &captures).into_iter();
    let (Some(vx), Some(eg)) = (got.next(), got.next()) else {
        unreachable!("run_captures answers once per capture")
    };
    (vxlan_read(p, vx), egress_read(p, target, eg))
}

/// `vxlan` on a host-gw lab: round the ring, each pod pings the next
/// node's pod while its node's agent captures the echo requests to that
/// pod leaving the node, after `ip route get` names the route the kernel
/// picks. One [`UnderlayPair`] per ring pair.
pub(super) fn underlay(p: &mut Probes) -> Vec<UnderlayPair> {
    let ok = p.ok.clone();
    let pairs = ring(ok.len());
    let secs = window(p, EGRESS_CAPTURE_SECONDS.max(p.exec.capture_seconds()));
    let next = |i: usize| -> Option<Ipv4Addr> {
        let a = ok.iter().position(|pod| pod.at == i)?;
        pairs.iter().find(|(x, _)| *x == a).map(|(_, b)| ok[*b].ip)
    };
    let nodes = p.target.view.nodes.len();
    let capture = Capture {
        specs: (0..nodes)
            .map(|i| next(i).map(|to| icmp_to(to, secs)))
            .collect(),
        pings: pairs
            .iter()
            .map(|(a, b)| (ok[*a].clone(), ok[*b].ip))
            .collect(),
        seconds: secs,
        log: vec![false; nodes],
    };
    let Captured {
        reports,
        nodes: got,
    } = only(run_captures(p, &[capture]));
    let view = &p.target.view;
    pairs
        .iter()
        .zip(&reports)
        .map(|((a, b), report)| {
            let (from, to) = (&ok[*a], &ok[*b]);
            let mut pair = UnderlayPair {
                from: from.node.clone(),
                to: to.node.clone(),
                src: Some(from.ip),
                dst: Some(to.ip),
                expected_via: view.node(&to.node).map(|n| n.underlay_ip),
                ..Default::default()
            };
            match got.get(from.at).cloned().flatten() {
                Some(Ok(g)) => {
                    let out = egress_node_output(&from.node, &g);
                    // One line, single spaces (`ip route get` pads its cache line).
                    pair.route = g
                        .route
                        .as_deref()
                        .unwrap_or_default()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    (pair.via, pair.dev) = route_via_dev(&pair.route);
                    match out.departures {
                        Ok(d) => pair.departures = d,
                        Err(e) => pair.error = Some(e),
                    }
                }
                Some(Err(e)) => pair.error = Some(e),
                None => pair.error = Some(format!("{} is not reachable over SSH", from.node)),
            }
            match answered(report) {
                Ok(ok) => pair.ping_ok = ok,
                Err(e) => {
                    pair.error.get_or_insert(e);
                }
            }
            pair
        })
        .collect()
}
