//! Reading `kubectl get nodes -o json`: each node's podCIDR, readiness and
//! InternalIP.
//!
//! The node IPAM controller hands out podCIDRs round-robin in the order it
//! sees nodes, so node i does not get the i-th subnet: labctl reads them
//! back from here and builds its plans from them
//! (`labctl_lab::plan_with_subnets`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

use super::list::{self, Condition};

type Item = list::Item<Spec, Status>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    addresses: Vec<Address>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Address {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

fn parse(json: &str) -> Result<Vec<Item>> {
    list::items(json)
        .context("`kubectl get nodes -o json` printed something that is not a node list")
}

/// Every node's `spec.podCIDR`. A node without one (the controller has not
/// reached it yet, or allocation is off) is an error naming it.
pub fn pod_cidrs(json: &str) -> Result<BTreeMap<String, Ipv4Net>> {
    let mut out = BTreeMap::new();
    for item in parse(json)? {
        let name = item.metadata.name;
        let text = item
            .spec
            .pod_cidr
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "node {name} has no podCIDR yet (spec.podCIDR is empty): the controller \
                 manager allocates one per node when the cluster has a podSubnet"
                )
            })?;
        let cidr: Ipv4Net = text
            .parse()
            .map_err(|e| anyhow!("node {name}'s podCIDR {text:?} is not an IPv4 network: {e}"))?;
        out.insert(name, cidr);
    }
    Ok(out)
}

/// Whether a node is Ready, and if not what its Ready condition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// `reason: message` of the Ready condition when not ready (or that the
    /// node has no Ready condition yet).
    pub detail: String,
}

/// Every node's readiness (the `Ready` condition's status is `True`).
pub fn nodes_ready(json: &str) -> Result<BTreeMap<String, Readiness>> {
    let mut out = BTreeMap::new();
    for item in parse(json)? {
        let ready = item.status.conditions.iter().find(|c| c.kind == "Ready");
        let readiness = match ready {
            Some(c) if c.status == "True" => Readiness {
                ready: true,
                detail: String::new(),
            },
            Some(c) => Readiness {
                ready: false,
                detail: format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("NotReady"),
                    c.message.as_deref().unwrap_or("no message")
                ),
            },
            None => Readiness {
                ready: false,
                detail: "no Ready condition reported yet".into(),
            },
        };
        out.insert(item.metadata.name, readiness);
    }
    Ok(out)
}

/// The nodes of `expected` that are not Ready yet, each with why (missing
/// from the cluster, or its Ready condition). Empty when all are Ready.
pub fn pending_nodes(json: &str, expected: &[&str]) -> Result<Vec<String>> {
    let ready = nodes_ready(json)?;
    Ok(expected
        .iter()
        .filter_map(|name| match ready.get(*name) {
            None => Some(format!("{name} (not registered with the API server)")),
            Some(r) if !r.ready => Some(format!("{name} ({})", r.detail)),
            Some(_) => None,
        })
        .collect())
}

/// Every node's first IPv4 `InternalIP` (the address the kubelet
/// registered: the lab IP when node-ip took effect, 10.0.2.15 when the
/// VirtualBox NAT NIC won). Nodes without one are left out.
pub fn internal_ips(json: &str) -> Result<BTreeMap<String, Ipv4Addr>> {
    let mut out = BTreeMap::new();
    for item in parse(json)? {
        let ip = item
            .status
            .addresses
            .iter()
            .filter(|a| a.kind == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok());
        if let Some(ip) = ip {
            out.insert(item.metadata.name, ip);
        }
    }
    Ok(out)
}
