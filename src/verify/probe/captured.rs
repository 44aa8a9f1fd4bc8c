//! The checks whose pings the agents capture: `vxlan` (a ring of
//! cross-node pod pings, seen on the underlay as VXLAN; on a host-gw lab
//! seen leaving unencapsulated, [`underlay`]) and `egress`
//! (every pod pings the outside target; what leaves each node is seen
//! after POSTROUTING). Two rounds for all of them together
//! ([`run_captures`]): every node's agents start capturing ([`ARM_SCRIPT`],
//! returning once their sockets are open); then the pods ping
//! ([`super::pod_exec::PodExec::ping`]) while each node waits for its
//! captures to end and prints them ([`COLLECT_SCRIPT`]).

use std::net::Ipv4Addr;

use super::agent_ping::CAPTURED;
use super::egress::{egress_probe, parse_egress_output, EGRESS_CAPTURE_SECONDS};
use super::fanout::{run_jobs, Job};
use super::output::{answered, parse_vxlan_output, vxlan_evidence};
use super::pairs::{ring, ring_pairs};
use super::pod_exec::{Pinged, ProbePod};
use super::scripts::{ARM_SCRIPT, COLLECT_SCRIPT};
use super::Probes;
use crate::verify::evidence::UnderlayPair;
use crate::verify::evidence::{EgressProbe, VxlanPair};
use crate::verify::parse::BadChecksum;
use crate::verify::target::AGENT_PATH;
use crate::verify::underlay::route_via_dev;

/// VXLAN packets a node of a healthy ring sees: as sender, 3 requests out
/// and 3 replies in; as receiver, 3 requests in and 3 replies out.
const VXLAN_PACKETS: &str = "12";

/// What arming a node gave: the capture's folder and what the script
/// printed, or why it did not start (`None`: not armed, or no session).
type Armed = Option<Result<(String, String), String>>;

/// Node `at`'s plan as a capture reads it: less its peers (the capture
/// reads the VXLAN port and VNI and the underlay address; at 1,000 nodes
/// the peers are 170 KB a node).
fn capture_plan(p: &Probes, at: usize) -> Option<String> {
    let mut plan = p.target.plan(at)?.clone();
    plan.peers.clear();
    Some(plan.to_json())
}

/// The job that starts a capture on node `at` with `opts` (an address
/// whose route to print, or "", then the capture's options) and the plan
/// [`capture_plan`] gave.
fn arm_job(at: usize, plan: &str, opts: &[String]) -> Option<Job> {
    let mut argv = ["sh", "-c", ARM_SCRIPT, "sh", AGENT_PATH]
        .map(String::from)
        .to_vec();
    let (route, rest) = opts.split_first()?;
    argv.push(route.clone());
    argv.push(plan.to_string());
    argv.extend(rest.iter().cloned());
    Some(Job { at, argv })
}

/// One capture among those [`run_captures`] runs together: the options to
/// arm each node with (by node index; `None`: not armed), the pings it
/// must see, how long it may run, and which nodes' collection also reads
/// the kernel log.
struct Capture {
    options: Vec<Option<Vec<String>>>,
    pings: Vec<(ProbePod, Ipv4Addr)>,
    seconds: u32,
    log: Vec<bool>,
}

/// What a capture gave: its ping reports in order, and each node's arming
/// and collected output (or why none).
struct Captured {
    reports: Vec<Pinged>,
    texts: Vec<Option<Result<String, String>>>,
}

/// The options of [`arm_job`] for a capture of the echo requests to `target`
/// leaving the node (`--icmp-to`), with `target`'s route printed.
fn icmp_to(target: Ipv4Addr, seconds: u32) -> Vec<String> {
    let to = target.to_string();
    [
        &to,
        "--icmp-to",
        &to,
        "--seconds",
        &seconds.to_string(),
        "--count",
        "3",
    ]
    .map(String::from)
    .to_vec()
}

/// How long the captures may run: `base` seconds, and one more per 25
/// nodes. The first node's capture starts when it is armed, the pings only
/// once every node is: on a large lab the arming round alone takes
/// seconds, and a window shorter than that sees nothing. A healthy lab's
/// captures end early all the same (their packet counts are reached).
fn window(p: &Probes, base: u32) -> u32 {
    base + (p.target.view.nodes.len() / 25) as u32
}

/// The job that collects the capture [`arm`] started on node `at`,
/// waiting at most `seconds` (`log`: the kernel log too).
fn collect_job(at: usize, dir: &str, seconds: u32, log: bool) -> Job {
    let log = if log { "log" } else { "" };
    Job {
        at,
        argv: [
            "sh",
            "-c",
            COLLECT_SCRIPT,
            "sh",
            dir,
            &seconds.to_string(),
            log,
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// Runs `captures` in two rounds for all of them: every node arms its
/// captures (one command per node), then every pod pings while each node
/// collects its captures (again one command per node): a collection waits
/// for its capture to end, which a healthy lab's pings end early.
fn run_captures(p: &mut Probes, captures: &[Capture]) -> Vec<Captured> {
    let nodes = p.target.view.nodes.len();
    // Each armed node's plan, made once for all its captures.
    let plans: Vec<Option<String>> = (0..nodes)
        .map(|i| {
            let armed = captures
                .iter()
                .any(|c| c.options.get(i).is_some_and(Option::is_some));
            let reachable = p.sessions.get(i).is_some_and(Option::is_some);
            (armed && reachable).then(|| capture_plan(p, i)).flatten()
        })
        .collect();
    let mut arm_jobs = Vec::new();
    let mut armed_at = Vec::new();
    for (c, cap) in captures.iter().enumerate() {
        for (i, opts) in cap.options.iter().enumerate() {
            if let Some(job) = opts
                .as_ref()
                .zip(plans.get(i).and_then(Option::as_deref))
                .and_then(|(o, plan)| arm_job(i, plan, o))
            {
                arm_jobs.push(job);
                armed_at.push((c, i));
            }
        }
    }
    let mut armed: Vec<Vec<Armed>> = vec![vec![None; nodes]; captures.len()];
    let outs = run_jobs(&mut p.sessions, &p.target.view, &arm_jobs);
    for ((c, i), out) in armed_at.into_iter().zip(outs) {
        let node = &p.target.view.nodes[i].name;
        armed[c][i] = Some(
            out.and_then(|o| o.success(node, "start the capture"))
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("@dir "))
                        .map(|dir| (dir.to_string(), t.clone()))
                        .ok_or_else(|| format!("{node}: the capture did not start: {t}"))
                }),
        );
    }

    let mut jobs = Vec::new();
    let mut readers = Vec::new();
    let mut collecting = Vec::new();
    for (c, cap) in captures.iter().enumerate() {
        for (pod, to) in &cap.pings {
            let (job, reader) = p.exec.ping(pod, &CAPTURED, &[to.to_string()]);
            jobs.push(job);
            readers.push((c, pod.clone(), reader));
        }
    }
    for (c, cap) in captures.iter().enumerate() {
        for (i, a) in armed[c].iter().enumerate() {
            if let Some(Ok((dir, _))) = a {
                let log = cap.log.get(i).copied().unwrap_or(false);
                jobs.push(collect_job(i, dir, cap.seconds, log));
                collecting.push((c, i));
            }
        }
    }
    let mut outs = run_jobs(&mut p.sessions, &p.target.view, &jobs).into_iter();
    let mut results: Vec<Captured> = armed
        .iter()
        .map(|per_node| Captured {
            reports: Vec::new(),
            // Nodes not armed keep why; armed ones get their output below.
            texts: per_node
                .iter()
                .map(|a| a.as_ref().map(|r| r.clone().map(|_| String::new())))
                .collect(),
        })
        .collect();
    for ((c, pod, reader), out) in readers.into_iter().zip(outs.by_ref()) {
        let report = p.exec.read_ping(&pod, reader, out);
        results[c].reports.push(report);
    }
    for ((c, i), out) in collecting.into_iter().zip(outs) {
        let node = &p.target.view.nodes[i].name;
        let armed_text = match &armed[c][i] {
            Some(Ok((_, text))) => text.as_str(),
            _ => "",
        };
        results[c].texts[i] = Some(
            out.and_then(|o| o.success(node, "collect the capture"))
                .map(|t| format!("{armed_text}{t}")),
        );
    }
    results
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
    let options = [
        "",
        "--seconds",
        &seconds.to_string(),
        "--count",
        VXLAN_PACKETS,
    ]
    .map(String::from)
    .to_vec();
    // netns nodes share this host's kernel: one node reads its log.
    let netns = p.target.view.provider == "netns";
    Capture {
        options: vec![Some(options); nodes],
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
    let outputs: Vec<_> = got
        .texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let node = &view.nodes.get(i)?.name;
            let mut out = text?.map(|t| parse_vxlan_output(node, &t));
            if let Ok(o) = &mut out {
                // The ping that node's pod sent round the ring.
                let sent = pairs.iter().position(|(a, _)| ok[*a].at == i);
                o.ping = sent.map(|k| answered(&got.reports[k]));
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
        options: (0..nodes)
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
        let mut out = match got.texts.get(pod.at).cloned().flatten() {
            Some(Ok(text)) => parse_egress_output(&node.name, &text),
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
        texts: Vec::new(),
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
        options: (0..nodes)
            .map(|i| next(i).map(|to| icmp_to(to, secs)))
            .collect(),
        pings: pairs
            .iter()
            .map(|(a, b)| (ok[*a].clone(), ok[*b].ip))
            .collect(),
        seconds: secs,
        log: vec![false; nodes],
    };
    let Captured { reports, texts } = only(run_captures(p, &[capture]));
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
            match texts.get(from.at).cloned().flatten() {
                Some(Ok(text)) => {
                    let out = parse_egress_output(&from.node, &text);
                    // One line, single spaces (`ip route get` pads its cache line).
                    pair.route = text
                        .lines()
                        .find_map(|l| l.strip_prefix("@route "))
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
