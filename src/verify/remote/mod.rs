//! Probes for every network-only lab (`kubernetes: {enabled: false}`:
//! netns labs, and ssh and vagrant labs without Kubernetes): the pods are
//! network namespaces on the nodes (`<lab>-<node>-busybox`), so every
//! probe is a command run over the node's one SSH session, all nodes at
//! once: the node's agent pings from inside the pod (`--netns`) and
//! captures on the node. netns nodes are namespaces on this host with
//! their own sshd, reached like VMs; what they share with this host (its
//! kernel's neighbour table, its kernel log) is read once. Each script is
//! constant ([`scripts`]); lab values (namespaces, addresses, sizes)
//! travel only as its quoted arguments, never inside the script.
//!
//! - this module: the flow, the node checks (shared with kubeadm labs) and
//!   running work on every node's session at once;
//! - [`probes`]: the pod probes over the sessions; [`agent_ping`]: the
//!   agent's `ping` and its report;
//! - [`output`]: reading the scripts' output into evidence (pure; shared
//!   with kubeadm labs);
//! - [`egress`]: the opt-in egress check's script and evidence (shared
//!   with kubeadm labs).

mod agent_ping;
pub(super) mod egress;
mod output;
pub(super) mod probes;
pub(super) mod scripts;

use std::time::Instant;

use super::evidence::Evidence;
use super::model::{CheckId, CheckResult, LabView, PodView, Report};
use super::neighbours;
use super::target::{self, Target};
use super::{assemble, checks, pool};
use crate::ssh::Session;
use probes::MtuSource;

pub(super) use output::{
    dns_probe, ping_cell, ping_result, ring, ring_pairs, vxlan_evidence, Usable,
};
pub use output::{parse_ip_addr_json, parse_tagged, parse_vxlan_output, VxlanNodeOutput};

/// Runs the selected checks on a network-only VM lab.
pub fn verify(target: &Target, selected: &[CheckId], started: Instant) -> Report {
    let view = &target.view;
    let wants = |id: CheckId| selected.contains(&id);
    // netns nodes share this host's kernel and its neighbour table: entries
    // it refused from here on count against the lab.
    let host_table = (view.provider == "netns").then(neighbours::table_fulls);
    let mut ev = Evidence::default();
    let mut results: Vec<CheckResult> = Vec::new();
    let mut sessions = node_checks(target, selected, &mut ev, &mut results);
    let pod_of = |i: usize| -> Option<PodView> {
        let node = &view.nodes.get(i)?.name;
        target.pods.iter().find(|p| &p.node == node).cloned()
    };
    let t = Instant::now();
    ev.pods = on_nodes(&mut sessions, |i, s| {
        pod_of(i).map(|p| probes::inspect_pod(s, p))
    })
    .into_iter()
    .enumerate()
    .filter_map(|(i, p)| {
        p.flatten().or_else(|| {
            pod_of(i).map(|mut p| {
                p.problem = Some(format!("{} is not reachable over SSH", p.node));
                p
            })
        })
    })
    .collect();
    if wants(CheckId::Pods) {
        results.push(checks::pods(view, &ev).timed(t));
    }
    let pods = ev.pods.clone();
    if wants(CheckId::PodMesh) {
        let t = Instant::now();
        let mesh = probes::mesh(&mut sessions, view, &pods);
        results.push(checks::pod_mesh(&mesh).timed(t));
        ev.mesh = Some(mesh);
    }
    if wants(CheckId::Vxlan) {
        let t = Instant::now();
        let (pairs, bad) = probes::vxlan(&mut sessions, view, &target.plans, &pods);
        ev.vxlan = pairs;
        ev.bad_checksums = bad;
        results.push(checks::vxlan(view, &ev).timed(t));
    }
    if wants(CheckId::Mtu) {
        let t = Instant::now();
        let ok = probes::usable(&pods);
        let (probes, links) = probes::mtu(&mut sessions, view, &pods, &ok, MtuSource::Pod);
        ev.mtu = probes;
        ev.link_mtus = links;
        results.push(checks::mtu(view, &ev).timed(t));
    }
    if wants(CheckId::Dns) {
        let t = Instant::now();
        // Every node's pod, and on the control plane also the DNS pod
        // asking through the service that leads back to itself (hairpin).
        ev.dns = on_nodes(&mut sessions, |i, s| {
            let node = &view.nodes.get(i)?.name;
            let own = pods.iter().find(|p| &p.node == node);
            let dns_pod = target.dns_pod.as_ref().filter(|p| &p.node == node);
            Some(
                own.into_iter()
                    .chain(dns_pod)
                    .filter_map(|p| probes::dns(s, p, view))
                    .collect::<Vec<_>>(),
            )
        })
        .into_iter()
        .flatten()
        .flatten()
        .flatten()
        .collect();
        results.push(checks::dns(view, &ev).timed(t));
    }
    if wants(CheckId::Egress) {
        let t = Instant::now();
        let r = match view.outside.as_ref() {
            Some(outside) => {
                let (probes, errors) =
                    probes::egress(&mut sessions, view, &target.plans, &pods, outside.ip);
                ev.egress = probes;
                egress_check(view, &ev, errors)
            }
            None => egress_skip(view),
        };
        results.push(r.timed(t));
    }
    if wants(CheckId::Throughput) {
        results.push(super::throughput::check(&mut sessions, view, &pods));
    }
    if wants(CheckId::Kubernetes) {
        results.push(CheckResult::skip(
            CheckId::Kubernetes,
            if view.provider == "netns" {
                "netns labs run no Kubernetes (kubeadm labs only)"
            } else {
                "network-only lab (kubernetes: {enabled: false}): no cluster to check"
            },
        ));
    }
    if view.provider != "netns" {
        ev.node_gc_thresh = neighbours::read_on_nodes(&mut sessions, view);
    }
    target::disconnect_all(sessions);
    if let Some(before) = host_table {
        ev.neighbour_table = neighbours::observe(view.nodes.len(), before);
    }
    assemble(view, ev, results, started)
}

/// `nodes` and `dataplane` (when selected): connects to every node, asks
/// its agent for its version and to check the node against its plan, and
/// reads its iptables rules. Returns the sessions, one per node in view
/// order, for the probes that follow.
pub(super) fn node_checks(
    target: &Target,
    selected: &[CheckId],
    ev: &mut Evidence,
    results: &mut Vec<CheckResult>,
) -> Vec<Option<Session>> {
    let view = &target.view;
    let t = Instant::now();
    let (mut sessions, reach) = target.connect_all();
    ev.reach = reach;
    if selected.contains(&CheckId::Nodes) {
        results.push(checks::nodes(ev, crate::embedded::AGENT_VERSION).timed(t));
    }
    if selected.contains(&CheckId::Dataplane) {
        let t = Instant::now();
        let (kept, errors) = target.agent_check(sessions, ev);
        sessions = kept;
        results.push(checks::dataplane(view, ev, &errors).timed(t));
    }
    sessions
}

/// Runs `work` on every node with a session, all nodes at once (the probes
/// are mostly waiting on the nodes), and puts the sessions back; `None`
/// for a node without a session.
pub(super) fn on_nodes<R: Send>(
    sessions: &mut [Option<Session>],
    work: impl Fn(usize, &Session) -> R + Sync,
) -> Vec<Option<R>> {
    let items: Vec<(usize, Option<Session>)> =
        sessions.iter_mut().map(Option::take).enumerate().collect();
    let n = items.len();
    let results = pool::map(
        items,
        n.max(1),
        |(i, s)| {
            let r = s.as_ref().map(|s| work(i, s));
            (s, r)
        },
        |_| (None, None),
    );
    results
        .into_iter()
        .zip(sessions.iter_mut())
        .map(|((s, r), slot)| {
            *slot = s;
            r
        })
        .collect()
}

/// Runs a constant script with `args` (quoted by the session) and returns
/// stdout, or a sentence naming the node and the failure.
pub(super) fn script(
    s: &Session,
    script: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let mut argv = vec!["sh", "-c", script, "sh"];
    argv.extend_from_slice(args);
    match s.run(&argv, stdin) {
        Ok(out) if out.success() => Ok(out.stdout_text()),
        Ok(out) => Err(format!(
            "{}: probe script exited {}: {}",
            s.endpoint().node,
            out.status,
            out.stderr_text().trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The `egress` check of a VM lab from its probes, saying how the evidence
/// was taken, with any node whose capture failed.
pub(super) fn egress_check(view: &LabView, ev: &Evidence, errors: Vec<String>) -> CheckResult {
    let mut r = checks::egress(view, ev);
    r.summary.push_str("; ");
    r.summary.push_str(egress::EGRESS_METHOD);
    r.details.extend(errors);
    r
}

/// `egress` skipped on a VM lab without a target, saying how to turn it on.
pub(super) fn egress_skip(view: &LabView) -> CheckResult {
    CheckResult::skip(
        CheckId::Egress,
        format!(
            "no egress target is configured ({} labs have no outside of their own, and none should depend on the internet by default); to run it, set `verify.egressTarget: ADDRESS` in the lab file, an address outside the cluster that answers ping",
            view.provider
        ),
    )
}
