//! The one probe path, for every provider: every check runs on the nodes
//! over one SSH session per node, all nodes at once; the node's agent
//! checks, captures and pings. The pods are what differs: network
//! namespaces on the nodes (`<lab>-<node>-busybox`) in network-only labs
//! (netns, and ssh and vagrant labs without Kubernetes), real Kubernetes
//! pods verify creates in kubeadm labs ([`crate::verify::kube`]). How a
//! command runs inside one is [`pod_exec::PodExec`]; nothing else knows.
//! netns nodes are namespaces on this host with their own sshd, reached
//! like VMs; what they share with this host (its kernel's neighbour table,
//! its kernel log) is read once. Each script is constant ([`scripts`]);
//! lab values travel only as its quoted arguments.
//!
//! - this module: the flow and the node checks;
//! - [`fanout`]: jobs on the nodes, each node's in one command;
//! - [`pod_exec`]: commands inside pods; [`agent_ping`]: the agent's
//!   `ping` and its report;
//! - [`pod_probes`]: pod-mesh, mtu, dns; [`captured`]: vxlan and egress,
//!   whose pings the agents capture ([`egress`] reads that evidence);
//! - [`pairs`]: the pods probed and the pairs between them; [`output`]:
//!   reading the scripts' output into evidence (both pure).

mod agent_ping;
mod captured;
pub(super) mod egress;
pub(crate) mod fanout;
mod output;
mod pairs;
mod pod_exec;
mod pod_probes;
mod scripts;
pub mod throughput;

use std::collections::BTreeMap;
use std::time::Instant;

use labctl_nodeplan::Backend;

use super::evidence::{EgressProbe, Evidence, KubeEvidence, MeshCoverage, PodView};
use super::kube;
use super::model::{CheckId, CheckResult, LabView, Outcome, Report};
use super::neighbours;
use super::target::{self, JobAnswer, Target};
use super::{assemble, checks};
use crate::ssh::Session;
use fanout::Job;
use pod_exec::{PodExec, ProbePod};

pub(crate) use output::tagged_report;
pub use output::{parse_tagged, VxlanNodeOutput};

/// What the pod probes share: the lab, how pods are entered, the usable
/// pods, and the node sessions (in view order; `None`: unreachable).
pub(crate) struct Probes<'a> {
    pub target: &'a Target,
    pub exec: PodExec,
    pub ok: Vec<ProbePod>,
    pub sessions: Vec<Option<Session>>,
    /// `--mesh`: every pair (`Some(true)`), a sample, or by size (`None`).
    pub mesh_full: Option<bool>,
}

/// Deletes verify's namespace in a kubeadm lab (without waiting) when
/// dropped, if kubectl ran: at the end, and on the way out of a probe that
/// failed or panicked. It holds the probes meanwhile: kubectl runs over
/// the control plane's node session, which they use too.
struct Cleanup<'p, 'a> {
    probes: &'p mut Probes<'a>,
    /// The control plane (index in the view), when kubectl ran there.
    kubectl_ran: Option<usize>,
}

impl Drop for Cleanup<'_, '_> {
    fn drop(&mut self) {
        let Some(cp) = self.kubectl_ran else {
            return;
        };
        let p = &*self.probes;
        if let Ok(k) = kube::on_control_plane(&p.sessions, &p.target.view, cp, &[]) {
            let _ = k.run(&kube::delete_namespace(), None);
        }
    }
}

/// Runs the selected checks on the lab.
pub fn verify(
    target: &Target,
    selected: &[CheckId],
    mesh_full: Option<bool>,
    started: Instant,
) -> Report {
    let view = &target.view;
    let wants = |id: CheckId| selected.contains(&id);
    let kubernetes = target.state.kubernetes;
    // netns nodes share this host's kernel: entries its neighbour table
    // refused from here on count against the lab.
    let host_table = (view.provider == "netns").then(neighbours::table_fulls);
    let mut ev = Evidence::default();
    let mut results: Vec<CheckResult> = Vec::new();
    // egress needs a target: netns labs have their outside, VM labs opt in.
    let egress_on = wants(CheckId::Egress) && view.outside.is_some();
    let needs_pods =
        wants(CheckId::Pods) || egress_on || CheckId::FROM_PODS.iter().any(|c| wants(*c));
    // Network-only labs' pods are known before any probe: their addresses
    // come back in the node checks' command.
    let pods = (needs_pods && !kubernetes).then_some(target.pods.as_slice());
    let cp = view.nodes.iter().position(|n| n.control_plane).unwrap_or(0);
    let exec = if kubernetes {
        PodExec::Kubectl { control_plane: cp }
    } else {
        PodExec::Netns
    };
    // Those pods' addresses are in the lab's state: the mesh rides in the
    // node checks' command (a round of SSH commands fewer). It stands if
    // every one of them turns out usable; else the mesh runs again among
    // the usable ones.
    let early_mesh = (pods.is_some() && wants(CheckId::PodMesh)).then(|| {
        let planned = exec.usable(view, &target.pods);
        let coverage = MeshCoverage::for_pods(planned.len(), mesh_full);
        pod_probes::mesh_round(exec, planned, coverage)
    });
    let t_nodes = Instant::now();
    let along = early_mesh.as_ref().map_or(&[][..], |m| m.jobs.as_slice());
    let (sessions, along_outs) = node_checks(target, selected, pods, along, &mut ev, &mut results);
    let early_mesh = early_mesh.map(|round| EarlyMesh {
        round,
        outs: along_outs,
        started: t_nodes,
    });
    let mut p = Probes {
        target,
        exec,
        ok: Vec::new(),
        sessions,
        mesh_full,
    };
    if wants(CheckId::Kubernetes) {
        results.push(if kubernetes {
            let t = Instant::now();
            ev.kubernetes = Some(
                match kube::on_control_plane(&p.sessions, view, cp, &ev.reach) {
                    Ok(k) => kube::evidence(&k, view),
                    Err(e) => KubeEvidence {
                        errors: vec![e],
                        ..Default::default()
                    },
                },
            );
            checks::kubernetes(view, &ev).timed(t)
        } else {
            not_kubernetes(view)
        });
    }
    // kubectl (creating pods, reading the API) may leave verify's
    // namespace from here on: deleted when `cleanup` is dropped.
    let kubectl_ran = kubernetes && (needs_pods || wants(CheckId::Kubernetes));
    let cleanup = Cleanup {
        probes: &mut p,
        kubectl_ran: kubectl_ran.then_some(cp),
    };
    let probes = &mut *cleanup.probes;
    if needs_pods {
        let t = Instant::now();
        ev.pods = if kubernetes {
            match kube::on_control_plane(&probes.sessions, view, cp, &ev.reach) {
                Ok(k) => kube::create_pods(&k, view),
                Err(e) => kube::failed_pods(view, &e),
            }
        } else {
            // Read in the node checks' command.
            std::mem::take(&mut ev.pods)
        };
        if wants(CheckId::Pods) {
            results.push(checks::pods(view, &ev).timed(t));
        }
        probes.ok = exec.usable(view, &ev.pods);
        pod_checks(
            probes,
            selected,
            egress_on,
            early_mesh,
            &mut ev,
            &mut results,
        );
    }
    if wants(CheckId::Egress) && !egress_on {
        results.push(egress_skip(view));
    }
    if wants(CheckId::Throughput) {
        results.push(match exec {
            PodExec::Netns => {
                let pods = if ev.pods.is_empty() {
                    &target.pods
                } else {
                    &ev.pods
                };
                throughput::check(&mut probes.sessions, view, pods)
            }
            PodExec::Kubectl { .. } => CheckResult::skip(
                CheckId::Throughput,
                "measured on network-only labs only (netns, ssh and vagrant without Kubernetes)",
            ),
        });
    }
    // Machines of their own each have their own neighbour table limits.
    if view.provider != "netns" {
        ev.node_gc_thresh = read_gc_thresh(&mut probes.sessions, view);
    }
    // Printed in check order, whatever order the work ran in.
    results.sort_by_key(|r| r.id);
    drop(cleanup);
    target::disconnect_all(p.sessions);
    if let Some(before) = host_table {
        ev.neighbour_table = neighbours::observe(view.nodes.len(), before);
    }
    assemble(view, ev, results, started)
}

/// A mesh that rode in the node checks' command: its round, its jobs'
/// outputs and when that command round started.
struct EarlyMesh {
    round: pod_probes::MeshRound,
    outs: Vec<JobAnswer>,
    started: Instant,
}

/// Whether `a` and `b` are the same pods, in the same order.
fn same_pods(a: &[ProbePod], b: &[ProbePod]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| (a.at, &a.name, &a.handle, a.ip) == (b.at, &b.name, &b.handle, b.ip))
}

/// The checks from the pods (`p.ok`), each when selected; without a
/// usable pod each fails saying so.
fn pod_checks(
    p: &mut Probes,
    selected: &[CheckId],
    egress_on: bool,
    early_mesh: Option<EarlyMesh>,
    ev: &mut Evidence,
    results: &mut Vec<CheckResult>,
) {
    let view = &p.target.view;
    let wants = |id: CheckId| selected.contains(&id);
    if p.ok.is_empty() {
        let ids = CheckId::FROM_PODS
            .into_iter()
            .chain(egress_on.then_some(CheckId::Egress));
        for id in ids.filter(|id| wants(*id)) {
            results.push(CheckResult::new(
                id,
                Outcome::Fail,
                "no pod is running to probe from (see the pods check)",
            ));
        }
        return;
    }
    if wants(CheckId::PodMesh) {
        let (mesh, t) = match early_mesh {
            Some(early) if same_pods(&early.round.pods, &p.ok) => (
                pod_probes::mesh_matrix(p, early.round, early.outs),
                early.started,
            ),
            _ => {
                let t = Instant::now();
                let coverage = MeshCoverage::for_pods(p.ok.len(), p.mesh_full);
                (pod_probes::mesh(p, coverage), t)
            }
        };
        results.push(checks::pod_mesh(&mesh).timed(t));
        ev.mesh = Some(mesh);
    }
    if wants(CheckId::Vxlan) && view.backend == Backend::HostGw {
        let t = Instant::now();
        ev.underlay = captured::underlay(p);
        results.push(crate::verify::underlay::check(view, ev).timed(t));
    }
    let outside = view.outside.as_ref().filter(|_| egress_on).map(|o| o.ip);
    let vxlan = wants(CheckId::Vxlan) && view.backend != Backend::HostGw;
    let t = Instant::now();
    match (vxlan, outside) {
        // egress's capture rides in vxlan's two rounds when both run.
        (true, Some(target)) => {
            let (found, egress) = captured::vxlan_and_egress(p, target);
            (ev.vxlan, ev.bad_checksums) = found;
            results.push(checks::vxlan(view, ev).timed(t));
            results.push(egress_check(view, ev, egress).timed(t));
        }
        (true, None) => {
            (ev.vxlan, ev.bad_checksums) = captured::vxlan(p);
            results.push(checks::vxlan(view, ev).timed(t));
        }
        (false, Some(target)) => {
            let egress = captured::egress(p, target);
            results.push(egress_check(view, ev, egress).timed(t));
        }
        (false, None) => {}
    }
    let t = Instant::now();
    // Where labctl runs the DNS pod (network-only labs), dns also asks
    // through the service that leads back to itself (hairpin).
    let dns_pod = p
        .target
        .dns_pod
        .as_ref()
        .filter(|_| p.exec == PodExec::Netns);
    // Both in one round when both run: they share its time.
    let (mtu, dns) = match (wants(CheckId::Mtu), wants(CheckId::Dns)) {
        (true, true) => {
            let (mtu, dns) = pod_probes::mtu_and_dns(p, dns_pod);
            (Some(mtu), Some(dns))
        }
        (true, false) => (Some(pod_probes::mtu(p)), None),
        (false, true) => (None, Some(pod_probes::dns(p, dns_pod))),
        (false, false) => (None, None),
    };
    if let Some(found) = mtu {
        (ev.mtu, ev.link_mtus) = found;
        let mut r = checks::mtu(view, ev);
        if let Some(note) = p.exec.mtu_note() {
            r.summary.push_str("; ");
            r.summary.push_str(note);
        }
        results.push(r.timed(t));
    }
    if let Some(found) = dns {
        ev.dns = found;
        results.push(checks::dns(view, ev).timed(t));
    }
}

/// `egress` from what its capture gave: the probes, and the nodes whose
/// probe could not run.
fn egress_check(
    view: &LabView,
    ev: &mut Evidence,
    (probes, errors): (Vec<EgressProbe>, Vec<String>),
) -> CheckResult {
    ev.egress = probes;
    let mut r = checks::egress(view, ev);
    r.summary.push_str("; ");
    r.summary.push_str(egress::EGRESS_METHOD);
    r.details.extend(errors);
    r
}

/// `nodes` and `dataplane` (when selected): connects to every node, asks
/// its agent for its version and (for `dataplane`) to check the node
/// against its plan, and reads its iptables rules, in one command, with
/// the jobs of `along` side by side. Returns the sessions, one per node in
/// view order, for the probes that follow, and `along`'s outputs.
fn node_checks(
    target: &Target,
    selected: &[CheckId],
    pods: Option<&[PodView]>,
    along: &[Job],
    ev: &mut Evidence,
    results: &mut Vec<CheckResult>,
) -> (Vec<Option<Session>>, Vec<JobAnswer>) {
    let view = &target.view;
    let t = Instant::now();
    let (sessions, reach) = target.connect_all();
    ev.reach = reach;
    // One command per node: the agent's version, and its check when the
    // dataplane check is selected.
    let check = selected.contains(&CheckId::Dataplane);
    let round = target.agent_check(sessions, ev, check, pods, along);
    if selected.contains(&CheckId::Nodes) {
        results.push(checks::nodes(ev, crate::embedded::AGENT_VERSION).timed(t));
    }
    if check {
        results.push(checks::dataplane(view, ev, &round.errors).timed(t));
    }
    (round.sessions, round.along)
}

/// Reads gc_thresh1/2/3 on every node with a session (labs whose nodes
/// are machines of their own, each with its own table).
fn read_gc_thresh(
    sessions: &mut [Option<crate::ssh::Session>],
    view: &LabView,
) -> BTreeMap<String, [u32; 3]> {
    const SCRIPT: &str = "cat /proc/sys/net/ipv4/neigh/default/gc_thresh1 \
         /proc/sys/net/ipv4/neigh/default/gc_thresh2 /proc/sys/net/ipv4/neigh/default/gc_thresh3";
    fanout::on_nodes(sessions, |i, s| {
        let node = view.nodes.get(i)?.name.clone();
        let out = s.run_shell(SCRIPT).ok()?;
        Some((node, neighbours::parse_gc_thresh(&out.stdout_text())?))
    })
    .into_iter()
    .flatten()
    .flatten()
    .collect()
}

/// `kubernetes` skipped on a lab that runs none.
fn not_kubernetes(view: &LabView) -> CheckResult {
    CheckResult::skip(
        CheckId::Kubernetes,
        if view.provider == "netns" {
            "netns labs run no Kubernetes (kubeadm labs only)"
        } else {
            "network-only lab (kubernetes: {enabled: false}): no cluster to check"
        },
    )
}

/// `egress` skipped on a VM lab without a target, saying how to turn it on.
fn egress_skip(view: &LabView) -> CheckResult {
    CheckResult::skip(
        CheckId::Egress,
        format!(
            "no egress target is configured ({} labs have no outside of their own, and none should depend on the internet by default); to run it, set `verify.egressTarget: ADDRESS` in the lab file, an address outside the cluster that answers ping",
            view.provider
        ),
    )
}
