//! The pods verify creates in a kubeadm lab: one `busybox:1.28` pod per
//! node in verify's own namespace, pinned to its node with `nodeName` (no
//! scheduler involved), tolerating the control-plane taint, sleeping.
//!
//! The manifest is a JSON `v1 List` for `kubectl apply -f -`: JSON needs no
//! YAML quoting care, and node names only ever appear as JSON strings.

use serde_json::json;

/// verify's namespace: created with the pods, deleted (without waiting)
/// when verify is done.
pub const NAMESPACE: &str = "labctl-verify";

/// busybox 1.28: later busybox images answer NXDOMAIN to
/// `nslookup kubernetes.default` (short names through the search list).
pub const IMAGE: &str = "busybox:1.28";

/// How long the pods sleep: a verify that dies leaves pods that end by
/// themselves (restartPolicy Never) and the namespace for the next verify.
pub const SLEEP_SECONDS: &str = "3600";

/// The label on everything verify creates.
pub const LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "labctl-verify");

/// The pod verify puts on `node`.
pub fn pod_name(node: &str) -> String {
    format!("busybox-{node}")
}

/// The namespace and one pod per node of `nodes`, as one JSON list.
pub fn pods_manifest(nodes: &[&str]) -> String {
    let labels = json!({ LABEL.0: LABEL.1 });
    let mut items = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels},
    })];
    for node in nodes {
        items.push(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name(node),
                "namespace": NAMESPACE,
                "labels": labels,
            },
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                // Nothing to shut down: sleep ignores SIGTERM as PID 1.
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                ],
                "containers": [{
                    "name": "busybox",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", SLEEP_SECONDS],
                }],
            },
        }));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pinned_tolerating_busybox_pod_per_node_in_the_namespace() {
        let text = pods_manifest(&["master", "worker1"]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], "List");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["kind"], "Namespace");
        assert_eq!(items[0]["metadata"]["name"], NAMESPACE);
        for (pod, node) in items[1..].iter().zip(["master", "worker1"]) {
            assert_eq!(pod["kind"], "Pod");
            assert_eq!(pod["metadata"]["name"], format!("busybox-{node}"));
            assert_eq!(pod["metadata"]["namespace"], NAMESPACE);
            assert_eq!(pod["spec"]["nodeName"], node);
            let c = &pod["spec"]["containers"][0];
            assert_eq!(c["image"], "busybox:1.28");
            assert_eq!(c["command"], json!(["sleep", "3600"]));
            let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
            assert!(tolerations
                .iter()
                .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"
                    && t["effect"] == "NoSchedule"));
        }
    }

    #[test]
    fn node_names_stay_inside_json_strings() {
        let text = pods_manifest(&["we\"ird\n"]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["items"][1]["spec"]["nodeName"], "we\"ird\n");
    }
}
