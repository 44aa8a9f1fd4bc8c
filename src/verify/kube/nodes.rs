//! The lab's nodes as the API server sees them, from `kubectl get nodes
//! -o json` read by the kubeadm path's own parsers
//! ([`crate::kubeadm::cluster_nodes`]). Pure.

use crate::kubeadm;
use crate::verify::evidence::KubeNode;
use crate::verify::model::LabView;

/// The address the kubelet registers when the NAT NIC wins (VirtualBox's
/// first NIC, the default route).
pub const NAT_NIC_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);

/// One [`KubeNode`] per lab node (in lab order), and what could not be
/// read (each sentence names the node).
pub fn kube_nodes(view: &LabView, json: &str) -> (Vec<KubeNode>, Vec<String>) {
    let mut errors = Vec::new();
    let ready = kubeadm::nodes_ready(json).unwrap_or_else(|e| {
        errors.push(format!("{e:#}"));
        Default::default()
    });
    // Same document: when it did not parse above, it does not here either.
    let ips = kubeadm::internal_ips(json).unwrap_or_default();
    // pod_cidrs refuses the whole list when one node has none yet: read
    // them again without that node so the others still count.
    let cidrs = match kubeadm::pod_cidrs(json) {
        Ok(c) => c,
        Err(e) => {
            if !ready.is_empty() {
                errors.push(format!("{e:#}"));
            }
            lenient_pod_cidrs(json)
        }
    };
    let nodes = view
        .nodes
        .iter()
        .map(|n| {
            let r = ready.get(&n.name);
            KubeNode {
                node: n.name.clone(),
                registered: r.is_some(),
                ready: r.is_some_and(|r| r.ready),
                ready_detail: r.map(|r| r.detail.clone()).unwrap_or_default(),
                internal_ip: ips.get(&n.name).copied(),
                pod_cidr: cidrs.get(&n.name).copied(),
            }
        })
        .collect();
    (nodes, errors)
}

/// podCIDRs of the nodes that have a valid one.
fn lenient_pod_cidrs(json: &str) -> std::collections::BTreeMap<String, ipnet::Ipv4Net> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else {
        return Default::default();
    };
    doc["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let name = item["metadata"]["name"].as_str()?;
            let cidr = item["spec"]["podCIDR"].as_str()?.parse().ok()?;
            Some((name.to_string(), cidr))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::recorded::recorded;

    #[test]
    fn ready_lab_ips_and_round_robin_pod_cidrs() {
        let view = crate::verify::diagnose::tests::lab3();
        let (nodes, errors) = kube_nodes(&view, &recorded("kubectl-nodes-ready.json"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(nodes.len(), 3);
        for (n, v) in nodes.iter().zip(&view.nodes) {
            assert_eq!(n.node, v.name);
            assert!(n.registered && n.ready, "{n:?}");
            assert_eq!(n.internal_ip, Some(v.underlay_ip));
        }
        assert_eq!(nodes[2].pod_cidr, Some("10.244.1.0/24".parse().unwrap()));
    }

    #[test]
    fn not_ready_and_nat_address_are_recorded() {
        let view = crate::verify::diagnose::tests::lab3();
        let (nodes, _) = kube_nodes(&view, &recorded("kubectl-nodes-notready.json"));
        assert!(!nodes[2].ready && nodes[2].registered);
        assert!(!nodes[2].ready_detail.is_empty());
        let (nodes, _) = kube_nodes(&view, &recorded("kubectl-nodes-nat-ip.json"));
        assert_eq!(nodes[1].internal_ip, Some("10.0.2.15".parse().unwrap()));
    }

    #[test]
    fn a_node_without_pod_cidr_does_not_hide_the_others() {
        let view = crate::verify::diagnose::tests::lab3();
        let json = recorded("kubectl-nodes-ready.json").replacen(
            "\"podCIDR\": \"10.244.0.0/24\"",
            "\"podCIDR\": \"\"",
            1,
        );
        let (nodes, errors) = kube_nodes(&view, &json);
        assert_eq!(nodes[0].pod_cidr, None);
        assert!(nodes[1].pod_cidr.is_some() && nodes[2].pod_cidr.is_some());
        assert!(errors[0].contains("master has no podCIDR"), "{errors:?}");
    }
}
