//! Reading `kubectl get pods -o json`: each pod's node, phase, IP,
//! readiness and, when it is not running, why (the container's waiting
//! reason such as ImagePullBackOff, else the pod's own reason). Pure.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::kubeadm::list::{self, Condition};
use crate::verify::evidence::{KubePod, PodView};

type Item = list::Item<Spec, Status>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    state: ContainerState,
}

#[derive(Deserialize, Default)]
struct ContainerState {
    waiting: Option<Reason>,
    terminated: Option<Reason>,
}

#[derive(Deserialize, Clone)]
struct Reason {
    reason: Option<String>,
    message: Option<String>,
}

/// Every pod in `kubectl get pods -o json` output.
pub fn parse_pods(json: &str) -> Result<Vec<KubePod>, String> {
    let items: Vec<Item> = list::items(json.trim()).map_err(|e| {
        format!("`kubectl get pods -o json` printed something that is not a pod list ({e})")
    })?;
    Ok(items.into_iter().map(pod).collect())
}

fn pod(item: Item) -> KubePod {
    let s = item.status;
    let ready = !s.container_statuses.is_empty() && s.container_statuses.iter().all(|c| c.ready);
    // Most specific first: what the container waits for (ImagePullBackOff),
    // how it ended, the pod's reason (Evicted), why it is not scheduled.
    let container = s
        .container_statuses
        .iter()
        .find_map(|c| {
            c.state
                .waiting
                .clone()
                .or_else(|| c.state.terminated.clone())
        })
        .filter(|r| r.reason.is_some());
    let condition = s
        .conditions
        .iter()
        .find(|c| c.status == "False" && c.reason.is_some())
        .map(|c| Reason {
            reason: c.reason.clone().map(|r| format!("{}: {r}", c.kind)),
            message: c.message.clone(),
        });
    let own = s.reason.clone().map(|r| Reason {
        reason: Some(r),
        message: s.message.clone(),
    });
    let why = container.or(own).or(condition);
    KubePod {
        namespace: item.metadata.namespace,
        name: item.metadata.name,
        node: item.spec.node_name.filter(|n| !n.is_empty()),
        phase: s.phase.unwrap_or_else(|| "Unknown".into()),
        ip: s.pod_ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()),
        ready,
        reason: why.as_ref().and_then(|r| r.reason.clone()),
        message: why.and_then(|r| r.message),
    }
}

/// `Pending (ImagePullBackOff: Back-off pulling image "busybox:1.28")`.
pub fn state_text(p: &KubePod) -> String {
    match (&p.reason, &p.message) {
        (Some(r), Some(m)) => format!("{} ({r}: {m})", p.phase),
        (Some(r), None) => format!("{} ({r})", p.phase),
        (None, Some(m)) => format!("{} ({m})", p.phase),
        (None, None) => p.phase.clone(),
    }
}

/// Whether verify can use the pod: Running with an IPv4 address.
pub fn usable(p: &KubePod) -> bool {
    p.phase == "Running" && p.ip.is_some()
}

/// The pod verify put on `node` as the `pods` check judges it: usable, or
/// with the problem that names its phase and reason.
pub fn pod_view(node: &str, name: &str, found: Option<&KubePod>, waited: &str) -> PodView {
    let mut view = PodView {
        eth0_mtu: None,
        node: node.to_string(),
        name: name.to_string(),
        ip: found.and_then(|p| p.ip),
        namespace: None,
        problem: None,
    };
    view.problem = match found {
        None => Some("is not in `kubectl get pods` (not created)".to_string()),
        Some(p) if p.node.as_deref().is_some_and(|n| n != node) => Some(format!(
            "runs on {}, not on {node}",
            p.node.as_deref().unwrap_or("?")
        )),
        Some(p) if !usable(p) => Some(format!(
            "is not Running with an IP after {waited}: {}",
            state_text(p)
        )),
        Some(_) => None,
    };
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::recorded::recorded;

    #[test]
    fn running_pods_with_node_ip_and_readiness() {
        let pods = parse_pods(&recorded("kubectl-pods-verify.json")).unwrap();
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["busybox-master", "busybox-worker1", "busybox-worker2"]
        );
        let w2 = &pods[2];
        assert_eq!(w2.namespace, "labctl-verify");
        assert_eq!(w2.node.as_deref(), Some("worker2"));
        assert_eq!(w2.phase, "Running");
        assert_eq!(w2.ip, Some("10.244.1.2".parse().unwrap()));
        assert!(w2.ready && usable(w2));
        assert_eq!(w2.reason, None);
        let v = pod_view("worker2", "busybox-worker2", Some(w2), "120 s");
        assert_eq!(v.problem, None);
        assert_eq!(v.ip, w2.ip);
    }

    #[test]
    fn image_pull_back_off_is_named_with_phase_and_message() {
        let pods = parse_pods(&recorded("kubectl-pods-verify-pending.json")).unwrap();
        let w1 = pods.iter().find(|p| p.name == "busybox-worker1").unwrap();
        assert_eq!(w1.phase, "Pending");
        assert_eq!(w1.ip, None);
        assert_eq!(w1.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(!usable(w1));
        let v = pod_view("worker1", "busybox-worker1", Some(w1), "120 s");
        let problem = v.problem.unwrap();
        assert!(
            problem.starts_with("is not Running with an IP after 120 s: Pending (ImagePullBackOff: Back-off pulling image"),
            "{problem}"
        );
        let missing = pod_view("worker2", "busybox-worker2", None, "120 s");
        assert!(missing
            .problem
            .unwrap()
            .contains("not in `kubectl get pods`"));
    }

    #[test]
    fn coredns_pods_parse() {
        let pods = parse_pods(&recorded("kubectl-pods-coredns.json")).unwrap();
        assert_eq!(pods.len(), 2);
        assert!(pods
            .iter()
            .all(|p| p.namespace == "kube-system" && usable(p) && p.ready));
        assert_eq!(pods[0].node.as_deref(), Some("master"));
    }

    #[test]
    fn not_a_pod_list_is_an_error_naming_the_command() {
        let e = parse_pods("error: the server doesn't have a resource type").unwrap_err();
        assert!(e.contains("kubectl get pods -o json"), "{e}");
        assert_eq!(parse_pods(r#"{"items":[]}"#).unwrap(), Vec::new());
    }
}
