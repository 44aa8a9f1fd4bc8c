//! Creating verify's pods in a kubeadm lab and removing them: apply the
//! [`super::manifest`] on the control plane, wait (bounded) until every
//! pod runs with an IP, and delete the namespace, without waiting
//! ([`delete_namespace`]: verify does so when it is done, whatever
//! happened in between).

use std::time::{Duration, Instant};

use super::kubectl::Kubectl;
use super::{manifest, pods};
use crate::verify::evidence::{KubePod, PodView};
use crate::verify::model::LabView;

/// How long `kubectl apply` may keep failing (a namespace still being
/// deleted by the last verify, its default service account not there yet).
const APPLY_DEADLINE: Duration = Duration::from_secs(90);
/// How long the pods may take to run (image pull included).
const POD_DEADLINE: Duration = Duration::from_secs(180);
const POLL_PAUSE: Duration = Duration::from_secs(2);

/// `kubectl delete namespace labctl-verify`, not waiting for the pods to go.
pub fn delete_namespace() -> [&'static str; 5] {
    [
        "delete",
        "namespace",
        manifest::NAMESPACE,
        "--wait=false",
        "--ignore-not-found",
    ]
}

/// Every node's pod with the same problem.
pub fn failed_pods(view: &LabView, why: &str) -> Vec<PodView> {
    view.nodes
        .iter()
        .map(|n| PodView {
            eth0_mtu: None,
            node: n.name.clone(),
            name: manifest::pod_name(&n.name),
            ip: None,
            namespace: None,
            problem: Some(format!("was not created: {why}")),
        })
        .collect()
}

/// Applies the pods, then waits until each runs with an IP, has failed
/// for good, or the deadline passed; one [`PodView`] per node.
pub fn create_pods(k: &Kubectl, view: &LabView) -> Vec<PodView> {
    let names: Vec<&str> = view.nodes.iter().map(|n| n.name.as_str()).collect();
    let manifest = manifest::pods_manifest(&names);
    // Fresh pods every time: a namespace a killed verify left behind may
    // hold pods whose sleep ended (Succeeded), which apply cannot restart.
    // Apply then waits (retrying) until that namespace is gone.
    let _ = k.run(&delete_namespace(), None);
    let started = Instant::now();
    loop {
        match k.run(&["apply", "-f", "-"], Some(manifest.as_bytes())) {
            Ok(_) => break,
            Err(e) if started.elapsed() > APPLY_DEADLINE => {
                return failed_pods(
                    view,
                    &format!("still failing after {} s: {e}", APPLY_DEADLINE.as_secs()),
                )
            }
            Err(_) => std::thread::sleep(POLL_PAUSE),
        }
    }
    let started = Instant::now();
    let get = ["-n", manifest::NAMESPACE, "get", "pods", "-o", "json"];
    let mut seen: Vec<KubePod> = Vec::new();
    let mut last_error: Option<String>;
    loop {
        match k.run(&get, None).and_then(|j| pods::parse_pods(&j)) {
            Ok(p) => {
                seen = p;
                last_error = None;
            }
            Err(e) => last_error = Some(e),
        }
        let settled = names.iter().all(|n| {
            let name = manifest::pod_name(n);
            seen.iter()
                .find(|p| p.name == name)
                .is_some_and(|p| pods::usable(p) || p.phase == "Failed" || p.phase == "Succeeded")
        });
        if settled || started.elapsed() > POD_DEADLINE {
            break;
        }
        std::thread::sleep(POLL_PAUSE);
    }
    let waited = format!("{} s", started.elapsed().as_secs());
    names
        .iter()
        .map(|n| {
            let name = manifest::pod_name(n);
            let mut v = pods::pod_view(n, &name, seen.iter().find(|p| p.name == name), &waited);
            if let (Some(problem), Some(e)) = (&mut v.problem, &last_error) {
                problem.push_str(&format!(" (last `kubectl get pods`: {e})"));
            }
            v
        })
        .collect()
}
