//! The report of `route get`: which entry of the node's routing table
//! each address matches (`ip route get fibmatch`), in `ip route` form.
//! A command of its own, so readers of the other reports are unchanged.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::AgentReport;

/// One address and the route it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteLookup {
    pub dst: Ipv4Addr,
    /// The matched table entry, `ip route`-style (e.g.
    /// `10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink`); none when
    /// nothing matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Why nothing matched (the kernel's answer, e.g. network unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `route get ADDR...`: the route each address matches, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteGetReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub lookups: Vec<RouteLookup>,
}

impl AgentReport for RouteGetReport {
    const COMMAND: &'static str = "route get";
}

impl RouteGetReport {
    /// The route `dst` matched, if it was looked up and matched one.
    pub fn route(&self, dst: Ipv4Addr) -> Option<&str> {
        let lookup = self.lookups.iter().find(|l| l.dst == dst)?;
        lookup.route.as_deref()
    }
}
