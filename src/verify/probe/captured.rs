//! The checks whose pings the agents capture: `vxlan` (a ring of
//! cross-node pod pings, seen on the underlay as VXLAN; on a host-gw lab
//! seen leaving unencapsulated, [`underlay`]) and `egress`
//! (every pod pings the outside target; what leaves each node is seen
//! after POSTROUTING). Both in two rounds: every node's agent starts
//! capturing ([`ARM_SCRIPT`], returning once its socket is open); then the
//! pods ping ([`super::pod_exec::PodExec::ping`]) while each node waits
//! for its capture to end and prints it ([`COLLECT_SCRIPT`]).

use std::net::Ipv4Addr;

use super::agent_ping::CAPTURED;
use super::egress::{egress_probe, parse_egress_output, EGRESS_CAPTURE_SECONDS};
use super::fanout::{on_nodes, run_jobs, script, Job};
use super::output::{answered, parse_vxlan_output, vxlan_evidence};
use super::pairs::{ring, ring_pairs};
use super::pod_exec::{PingReader, Pinged, ProbePod};
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
/// printed, or why it did not start.
type Armed = Option<Result<(String, String), String>>;

/// Starts the agents' captures on the nodes `options` gives options for:
/// an address whose route to print (or ""), then the capture's options;
/// each with its plan.
fn arm(p: &mut Probes, options: impl Fn(usize) -> Option<Vec<String>> + Sync) -> Vec<Armed> {
    let view = &p.target.view;
    let plans = &p.target.plans;
    on_nodes(&mut p.sessions, |i, s| {
        let opts = options(i)?;
        let node = &view.nodes.get(i)?.name;
        // The capture reads the node's VXLAN port and VNI and its underlay
        // address, never its peers: at 1,000 nodes they are 170 KB a node.
        let mut plan = plans.iter().find(|p| &p.node == node)?.clone();
        plan.peers.clear();
        let mut args = vec![AGENT_PATH];
        args.extend(opts.iter().map(String::as_str));
        Some(
            script(s, ARM_SCRIPT, &args, Some(plan.to_json().as_bytes())).and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("@dir "))
                    .map(|dir| (dir.to_string(), t.clone()))
                    .ok_or_else(|| format!("{node}: the capture did not start: {t}"))
            }),
        )
    })
    .into_iter()
    .map(Option::flatten)
    .collect()
}

/// The options of [`arm`] for a capture of the echo requests to `target`
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

/// Pings (one per `(pod, target)`, [`CAPTURED`]) and collects the armed
/// captures in one round: on each node the collection waits for its
/// capture to end, which a healthy lab's pings end early. The reports in
/// ping order, and each node's arming and collected output (or why none).
fn ping_and_collect(
    p: &mut Probes,
    pings: &[(ProbePod, Ipv4Addr)],
    armed: &[Armed],
    seconds: u32,
    log: impl Fn(usize) -> bool,
) -> (Vec<Pinged>, Vec<Option<Result<String, String>>>) {
    let built: Vec<(Job, PingReader)> = pings
        .iter()
        .map(|(pod, to)| p.exec.ping(pod, &CAPTURED, &[to.to_string()]))
        .collect();
    let mut jobs: Vec<Job> = built.iter().map(|(j, _)| j.clone()).collect();
    let collecting: Vec<usize> = armed
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let (dir, _) = a.as_ref()?.as_ref().ok()?;
            jobs.push(collect_job(i, dir, seconds, log(i)));
            Some(i)
        })
        .collect();
    let mut outs = run_jobs(&mut p.sessions, &p.target.view, &jobs).into_iter();
    let reports = pings
        .iter()
        .zip(built)
        .zip(outs.by_ref())
        .map(|(((pod, _), (_, reader)), out)| p.exec.read_ping(pod, reader, out))
        .collect();
    // Nodes not armed keep why; armed ones get their output below.
    let mut collected: Vec<Option<Result<String, String>>> = armed
        .iter()
        .map(|a| a.as_ref().map(|r| r.clone().map(|_| String::new())))
        .collect();
    for (i, out) in collecting.into_iter().zip(outs) {
        let node = &p.target.view.nodes[i].name;
        let armed_text = match &armed[i] {
            Some(Ok((_, text))) => text.as_str(),
            _ => "",
        };
        collected[i] = Some(
            out.and_then(|o| o.success(node, "collect the capture"))
                .map(|t| format!("{armed_text}{t}")),
        );
    }
    (reports, collected)
}

/// `vxlan`: every node's agent captures on its underlay while a ring of
/// cross-node pings runs (pod i → pod i+1); the kernel logs are read for
/// bad checksums.
pub(super) fn vxlan(p: &mut Probes) -> (Vec<VxlanPair>, Vec<(String, BadChecksum)>) {
    let ok = p.ok.clone();
    let pairs = ring(ok.len());
    let secs = window(p, p.exec.capture_seconds());
    let options = ["", "--seconds", &secs.to_string(), "--count", VXLAN_PACKETS]
        .map(String::from)
        .to_vec();
    let armed = arm(p, |_| Some(options.clone()));
    let jobs: Vec<(ProbePod, Ipv4Addr)> = pairs
        .iter()
        .map(|(a, b)| (ok[*a].clone(), ok[*b].ip))
        .collect();
    // netns nodes share this host's kernel: one node reads its log.
    let netns = p.target.view.provider == "netns";
    let (reports, texts) = ping_and_collect(p, &jobs, &armed, secs, |i| !netns || i == 0);
    let view = &p.target.view;
    let outputs: Vec<_> = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let node = &view.nodes.get(i)?.name;
            let mut out = text?.map(|t| parse_vxlan_output(node, &t));
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
    vxlan_evidence(view, &ring_pairs(&pairs, &ok), &outputs, &method)
}

/// `egress`: every node's agent captures the echo requests to `target`
/// leaving the node while the node's pod pings `target`. One probe per
/// usable pod, and a line per node whose probe could not run.
pub(super) fn egress(p: &mut Probes, target: Ipv4Addr) -> (Vec<EgressProbe>, Vec<String>) {
    let ok = p.ok.clone();
    let secs = window(p, EGRESS_CAPTURE_SECONDS.max(p.exec.capture_seconds()));
    let armed = arm(p, |i| {
        ok.iter()
            .any(|pod| pod.at == i)
            .then(|| icmp_to(target, secs))
    });
    let jobs: Vec<(ProbePod, Ipv4Addr)> = ok.iter().map(|pod| (pod.clone(), target)).collect();
    let (reports, texts) = ping_and_collect(p, &jobs, &armed, secs, |_| false);
    let view = &p.target.view;
    let mut probes = Vec::new();
    let mut errors = Vec::new();
    for (pod, report) in ok.iter().zip(&reports) {
        let Some(node) = view.nodes.get(pod.at) else {
            continue;
        };
        let mut out = match texts.get(pod.at).cloned().flatten() {
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
    let armed = arm(p, |i| next(i).map(|to| icmp_to(to, secs)));
    let jobs: Vec<(ProbePod, Ipv4Addr)> = pairs
        .iter()
        .map(|(a, b)| (ok[*a].clone(), ok[*b].ip))
        .collect();
    let (reports, texts) = ping_and_collect(p, &jobs, &armed, secs, |_| false);
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
