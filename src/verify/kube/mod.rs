//! What kubeadm labs (ssh and vagrant providers with `kubernetes.enabled:
//! true`) add to verify: the pods are real Kubernetes pods verify creates
//! ([`manifest`]: one `busybox:1.28` per node in its own namespace;
//! [`create`]) through kubectl on the control plane ([`kubectl`]), over
//! the control plane's node session (verify opens one SSH connection per
//! node); the namespace is deleted, without waiting, when verify is done,
//! whatever happened. The probes themselves are every lab's
//! (`crate::verify::probe`), entering these pods by `kubectl exec`.
//!
//! The `kubernetes` check: nodes Ready, InternalIP = lab IP, podCIDR =
//! planned subnet (= subnet.env, which `dataplane` compares with the
//! plan), CoreDNS Running ([`nodes`] and [`pods`] read it,
//! `checks::kubernetes` judges).

pub mod create;
pub mod kubectl;
pub mod manifest;
pub mod nodes;
pub mod pods;

use super::evidence::{KubeEvidence, NodeReach};
use super::model::LabView;
use crate::ssh::Session;
pub use create::{create_pods, delete_namespace, failed_pods};
pub use kubectl::Kubectl;

/// kubectl over the control plane's session (node `cp` of the view),
/// borrowed from the node sessions (in view order) verify opened; else the
/// sentence that stands for every kubectl command it would have run, with
/// why the node could not be reached (from `reach`, when it says).
pub fn on_control_plane<'a>(
    sessions: &'a [Option<Session>],
    view: &'a LabView,
    cp: usize,
    reach: &[NodeReach],
) -> Result<Kubectl<'a>, String> {
    let node = view
        .nodes
        .get(cp)
        .map_or("the control plane", |n| n.name.as_str());
    if let Some(session) = sessions.get(cp).and_then(Option::as_ref) {
        return Ok(Kubectl { session, node });
    }
    let why = reach
        .iter()
        .find(|r| r.node == node)
        .and_then(|r| r.error.as_deref())
        .unwrap_or("not reachable over SSH");
    Err(format!(
        "{node}: cannot open an SSH session to run kubectl: {why}"
    ))
}

/// Reads the nodes and the CoreDNS pods from the API server.
pub fn evidence(k: &Kubectl, view: &LabView) -> KubeEvidence {
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
