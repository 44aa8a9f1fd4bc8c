//! `underlay`: the host side of a netns lab sets up each node's underlay
//! device (`eth1`: MTU, MAC, address, a route out) in every node's network
//! namespace with one agent process, instead of one `ip -n NODE -batch`
//! each. labctl sends an [`UnderlayRequest`] on stdin; the agent makes each
//! namespace match and prints an [`UnderlayReport`]: what it changed per
//! namespace, and why a namespace could not be set up (the others still
//! are).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::AgentReport;
use crate::MacAddr;

/// What `labctl-agent underlay` is asked (JSON on stdin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UnderlayRequest {
    pub namespaces: Vec<NamespaceUnderlay>,
}

/// One namespace's underlay: `lo` up, and `device` up with this MTU, MAC
/// and address, and `route`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceUnderlay {
    /// The registered name (`/run/netns/NAME`).
    pub netns: String,
    /// The device, e.g. `eth1`.
    pub device: String,
    pub mtu: u32,
    /// Set only when the device has another one: setting a MAC, even the
    /// same, flushes the device's neighbours.
    pub mac: MacAddr,
    /// Added when missing; other addresses of the device are left alone.
    pub address: Ipv4Net,
    pub route: UnderlayRoute,
    /// Also forget the device's learned neighbours (the lab renumbered a
    /// node: a reused address would point at the old MAC for seconds).
    #[serde(default)]
    pub flush_neighbours: bool,
}

/// The route out of the namespace through `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "kind")]
pub enum UnderlayRoute {
    /// `default via VIA dev DEVICE onlink` (a node).
    Default { via: Ipv4Addr },
    /// `DST dev DEVICE scope link` (the outside world, back to the
    /// underlay).
    Link { dst: Ipv4Net },
}

/// `underlay`: one outcome per namespace of the request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UnderlayReport {
    pub report_version: u32,
    pub command: String,
    pub namespaces: Vec<NamespaceOutcome>,
}

impl AgentReport for UnderlayReport {
    const COMMAND: &'static str = "underlay";
}

/// What the agent did in one namespace, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceOutcome {
    pub netns: String,
    /// Each change made, as the `ip` command that would make it.
    pub changed: Vec<String>,
    /// Why it stopped, with what it was doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
