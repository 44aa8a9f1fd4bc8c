//! `links NS...`: the links of each named network namespace (a node's
//! pods), read with netlink from inside each: what verify needs of a pod
//! (its address, its eth0 MTU) without `ip -n NS`, which gives every call a
//! mount namespace of its own: a copy of every mount on the host, and on a
//! 1,000-node netns lab each node sees 2,000 `/run/netns` entries.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::AgentReport;

/// `links`: one entry per namespace asked about, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinksReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub namespaces: Vec<NamespaceLinks>,
}

impl AgentReport for LinksReport {
    const COMMAND: &'static str = "links";
}

/// One namespace's links, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceLinks {
    /// The registered name (`/run/netns/NAME`).
    pub netns: String,
    pub links: Vec<LinkFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkFacts {
    pub name: String,
    pub mtu: u32,
    pub up: bool,
    /// Its IPv4 addresses, in the kernel's order.
    pub addresses: Vec<Ipv4Net>,
}

impl NamespaceLinks {
    /// The first IPv4 address not on `lo` (a pod's own), or why none can
    /// be told.
    pub fn pod_address(&self) -> Result<Option<std::net::Ipv4Addr>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Ok(self
            .links
            .iter()
            .filter(|l| l.name != "lo")
            .flat_map(|l| &l.addresses)
            .map(|a| a.addr())
            .next())
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LinkFacts> {
        self.links.iter().find(|l| l.name == name)
    }
}
