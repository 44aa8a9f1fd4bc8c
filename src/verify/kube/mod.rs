//! Probes for kubeadm labs (ssh and vagrant providers with
//! `kubernetes.enabled: true`). The node checks (`nodes`, `dataplane`) and
//! the underlay captures are the network-only ones ([`super::remote`]):
//! the agent over one SSH session per node. The pods are real Kubernetes
//! pods verify creates ([`manifest`]: one `busybox:1.28` per node in its
//! own namespace; [`create`]) and probes through `kubectl exec`
//! ([`probes`]), all from one more SSH session to the control plane
//! ([`kubectl`]); the namespace is deleted, without waiting, when verify
//! is done, whatever happened.
//!
//! - `mtu`: busybox 1.28's ping cannot set don't-fragment, so the DF pings
//!   go from each node itself (the agent's `ping`) across flannel.1 to the
//!   next node's pod, and the pods' eth0 MTU is read through `kubectl exec`.
//! - `egress` (only with `verify.egressTarget`): the pods ping the target
//!   by `kubectl exec` while each node's agent captures the echo requests
//!   leaving the node ([`super::remote::egress`]).
//! - `kubernetes`: nodes Ready, InternalIP = lab IP, podCIDR = planned
//!   subnet (= subnet.env, which `dataplane` compares with the plan),
//!   CoreDNS Running ([`nodes`] and [`pods`] read it, `checks::kubernetes`
//!   judges).

pub mod create;
pub mod kubectl;
pub mod manifest;
pub mod nodes;
pub mod pods;
pub mod probes;

use std::time::Instant;

use super::evidence::{Evidence, KubeEvidence};
use super::model::{CheckId, CheckResult, LabView, Outcome, Report};
use super::remote;
use super::target::{self, Target};
use super::{assemble, checks};
use crate::ssh::Session;
use create::{create_pods, failed_pods, Cleanup};
use kubectl::Kubectl;
use probes::{dns, egress, mesh, mtu, usable, vxlan};

/// Runs the selected checks on a kubeadm lab.
pub fn verify(target: &Target, selected: &[CheckId], started: Instant) -> Report {
    let view = &target.view;
    let wants = |id: CheckId| selected.contains(&id);
    let mut ev = Evidence::default();
    let mut results: Vec<CheckResult> = Vec::new();
    let mut sessions = remote::node_checks(target, selected, &mut ev, &mut results);

    // egress is opt-in on VM labs: it needs pods only with a target.
    let egress_on = wants(CheckId::Egress) && view.outside.is_some();
    let needs_pods =
        wants(CheckId::Pods) || egress_on || CheckId::FROM_PODS.iter().any(|c| wants(*c));
    let cp = view
        .nodes
        .iter()
        .find(|n| n.control_plane)
        .map_or("the control plane", |n| n.name.as_str());
    // Opened only for the checks below that use it; its error stands for
    // every kubectl command they would have run.
    let session: Result<Session, String> = if needs_pods || wants(CheckId::Kubernetes) {
        target
            .connect_node(cp)
            .map_err(|e| format!("{cp}: cannot open an SSH session to run kubectl: {e:#}"))
    } else {
        Err("no check needs kubectl".into())
    };
    let k: Result<Kubectl, &String> = session.as_ref().map(|s| Kubectl {
        session: s,
        node: cp,
    });

    if wants(CheckId::Kubernetes) {
        let t = Instant::now();
        ev.kubernetes = Some(match &k {
            Ok(k) => kube_evidence(k, view),
            Err(e) => KubeEvidence {
                errors: vec![(*e).clone()],
                ..Default::default()
            },
        });
        // Printed last, in check order; timed here where the work is.
        results.push(checks::kubernetes(view, &ev).timed(t));
    }

    if needs_pods {
        let _cleanup = k.as_ref().ok().map(Cleanup);
        let t = Instant::now();
        ev.pods = match &k {
            Ok(k) => create_pods(k, view),
            Err(e) => failed_pods(view, e),
        };
        if wants(CheckId::Pods) {
            results.push(checks::pods(view, &ev).timed(t));
        }
        let ok = usable(&ev.pods);
        let none = |id| {
            CheckResult::new(
                id,
                Outcome::Fail,
                "no pod is running to probe from (see the pods check)",
            )
        };
        if let Some(k) = k.as_ref().ok().filter(|_| !ok.is_empty()) {
            if wants(CheckId::PodMesh) {
                let t = Instant::now();
                let matrix = mesh(k, &ev.pods, &ok);
                results.push(checks::pod_mesh(&matrix).timed(t));
                ev.mesh = Some(matrix);
            }
            if wants(CheckId::Vxlan) {
                let t = Instant::now();
                let (pairs, bad) = vxlan(k, &mut sessions, view, &target.plans, &ev.pods, &ok);
                ev.vxlan = pairs;
                ev.bad_checksums = bad;
                results.push(checks::vxlan(view, &ev).timed(t));
            }
            if wants(CheckId::Mtu) {
                let t = Instant::now();
                let (probes, links) = mtu(k, &mut sessions, view, &ev.pods, &ok);
                ev.mtu = probes;
                ev.link_mtus = links;
                let mut r = checks::mtu(view, &ev);
                r.summary.push_str(
                    "; DF pings sent from the nodes across flannel.1 to pods by their agents (busybox 1.28 in the pods cannot set don't-fragment), pods' eth0 MTU read by kubectl exec",
                );
                results.push(r.timed(t));
            }
            if wants(CheckId::Dns) {
                let t = Instant::now();
                ev.dns = dns(k, view, &ev.pods, &ok);
                results.push(checks::dns(view, &ev).timed(t));
            }
            if let Some(outside) = view.outside.as_ref().filter(|_| egress_on) {
                let t = Instant::now();
                let (found, errors) = egress(
                    k,
                    &mut sessions,
                    view,
                    &target.plans,
                    &ev.pods,
                    &ok,
                    outside.ip,
                );
                ev.egress = found;
                results.push(remote::egress_check(view, &ev, errors).timed(t));
            }
        } else {
            for id in CheckId::FROM_PODS {
                if wants(id) {
                    results.push(none(id));
                }
            }
            if egress_on {
                results.push(none(CheckId::Egress));
            }
        }
    }
    if wants(CheckId::Egress) && !egress_on {
        results.push(remote::egress_skip(view));
    }
    // The kubernetes check ran first (its evidence helps read the pod
    // checks) but prints in check order.
    if wants(CheckId::Throughput) {
        results.push(CheckResult::skip(
            CheckId::Throughput,
            "measured on network-only labs only (netns, ssh and vagrant without Kubernetes)",
        ));
    }
    results.sort_by_key(|r| r.id);
    drop(session);
    target::disconnect_all(sessions);
    assemble(view, ev, results, started)
}

/// Reads the nodes and the CoreDNS pods from the API server.
fn kube_evidence(k: &Kubectl, view: &LabView) -> KubeEvidence {
    let mut out = KubeEvidence::default();
    match k.run(&["get", "nodes", "-o", "json"], None) {
        Ok(json) => {
            let (nodes, errors) = nodes::kube_nodes(view, &json);
            out.nodes = nodes;
            out.errors.extend(errors);
        }
        Err(e) => out.errors.push(e),
    }
    let coredns = [
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "json",
    ];
    match k.run(&coredns, None).and_then(|j| pods::parse_pods(&j)) {
        Ok(p) => out.coredns = p,
        Err(e) => out.errors.push(e),
    }
    out
}
