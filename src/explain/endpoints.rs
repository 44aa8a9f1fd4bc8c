//! SRC and DST as typed on the command line, checked against the lab
//! before anything is touched: a node (`worker1`), a pod (`worker1/busybox`,
//! its namespace `flannel-worker1-busybox`, or a name only one node has,
//! `coredns`), the DNS service (`kube-dns`), or an IPv4 address (a pod's
//! or a node's address is that pod or node). Pure.

use std::net::Ipv4Addr;

use labctl_nodeplan::NodePlan;

use super::model::{Place, PlaceKind};
use crate::verify::evidence::PodView;

/// The DNS service's names.
const DNS_SERVICE: [&str; 3] = ["kube-dns", "kube-dns.kube-system", "dns"];

/// What the words are checked against.
pub struct Names<'a> {
    pub lab: &'a str,
    pub plans: &'a [NodePlan],
    /// Pods with an address (busybox on every node, the DNS pod).
    pub pods: Vec<&'a PodView>,
    /// The DNS service IP and the pod behind it (none: no DNS pod here).
    pub dns: Option<(Ipv4Addr, &'a PodView)>,
}

impl Names<'_> {
    fn pod_place(&self, word: &str, pod: &PodView) -> Option<Place> {
        Some(Place {
            word: word.to_string(),
            kind: PlaceKind::Pod {
                name: pod.name.clone(),
                namespace: pod
                    .namespace
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}-{}", self.lab, pod.node, pod.name)),
            },
            ip: pod.ip?,
            node: Some(pod.node.clone()),
        })
    }

    fn node_place(&self, word: &str, plan: &NodePlan) -> Place {
        Place {
            word: word.to_string(),
            kind: PlaceKind::Node,
            ip: plan.underlay_ip,
            node: Some(plan.node.clone()),
        }
    }

    fn service_place(&self, word: &str) -> Option<Place> {
        let (ip, pod) = self.dns?;
        Some(Place {
            word: word.to_string(),
            kind: PlaceKind::Service {
                name: "kube-dns".into(),
            },
            ip,
            node: Some(pod.node.clone()),
        })
    }

    fn by_address(&self, word: &str, ip: Ipv4Addr) -> Place {
        if let Some(pod) = self.pods.iter().find(|p| p.ip == Some(ip)) {
            if let Some(place) = self.pod_place(word, pod) {
                return place;
            }
        }
        if let Some(plan) = self.plans.iter().find(|p| p.underlay_ip == ip) {
            return self.node_place(word, plan);
        }
        if self.dns.is_some_and(|(d, _)| d == ip) {
            if let Some(place) = self.service_place(word) {
                return place;
            }
        }
        Place {
            word: word.to_string(),
            kind: PlaceKind::Address,
            ip,
            node: None,
        }
    }

    /// Every name a word may be, for the error that lists them.
    fn known(&self) -> String {
        let nodes: Vec<&str> = self.plans.iter().map(|p| p.node.as_str()).collect();
        let pods: Vec<String> = self
            .pods
            .iter()
            .map(|p| format!("{}/{}", p.node, p.name))
            .collect();
        let mut out = format!("nodes: {}; pods: {}", nodes.join(", "), pods.join(", "));
        if self.dns.is_some() {
            out.push_str("; services: kube-dns");
        }
        out
    }

    /// The place `word` names; `role` (SRC, DST) for the error.
    pub fn resolve(&self, role: &str, word: &str) -> Result<Place, String> {
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let ip: Ipv4Addr = word.parse().map_err(|_| {
                format!(
                    "{role} {} is not an IPv4 address",
                    crate::names::quoted(word)
                )
            })?;
            return Ok(self.by_address(word, ip));
        }
        if let Some(plan) = self.plans.iter().find(|p| p.node == word) {
            return Ok(self.node_place(word, plan));
        }
        let pod = self.pods.iter().find(|p| {
            format!("{}/{}", p.node, p.name) == word
                || p.namespace.as_deref() == Some(word)
                || format!("{}-{}-{}", self.lab, p.node, p.name) == word
        });
        let only = || {
            let named: Vec<&&PodView> = self.pods.iter().filter(|p| p.name == word).collect();
            (named.len() == 1).then(|| *named[0])
        };
        if let Some(place) = pod
            .copied()
            .or_else(only)
            .and_then(|p| self.pod_place(word, p))
        {
            return Ok(place);
        }
        if DNS_SERVICE.contains(&word) {
            if let Some(place) = self.service_place(word) {
                return Ok(place);
            }
        }
        Err(format!(
            "lab {} has no node, pod or service {} ({}); or give an IPv4 address",
            self.lab,
            crate::names::quoted(word),
            self.known()
        ))
    }

    /// SRC: a pod or a node (a packet starts inside the lab).
    pub fn source(&self, word: &str) -> Result<Place, String> {
        let place = self.resolve("SRC", word)?;
        match place.kind {
            PlaceKind::Pod { .. } | PlaceKind::Node => Ok(place),
            _ => Err(format!(
                "SRC {} is not a pod or a node of lab {}: a packet is followed from inside the lab ({})",
                crate::names::quoted(word),
                self.lab,
                self.known()
            )),
        }
    }
}
