//! `captures start` and `captures collect`: every capture a node runs for
//! one `labctl verify` round, armed by one agent process and collected by
//! another. labctl sends a [`CapturesRequest`]; `start` returns once every
//! capture's socket is open ([`CapturesStarted`], with the folder the
//! captures report into), `collect` waits for them to end and prints what
//! each saw ([`CapturesCollected`]), in the request's order.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{AgentReport, CaptureReport, IcmpCaptureReport};
use crate::NodePlan;

/// What `labctl-agent captures start REQUEST` is asked (one JSON word).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapturesRequest {
    /// The node's plan; a capture reads its underlay, VXLAN port and VNI,
    /// so labctl sends it without its peers.
    pub plan: NodePlan,
    /// An address whose route (`ip -4 route get`) to report: the source
    /// MASQUERADE picks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_to: Option<Ipv4Addr>,
    pub captures: Vec<CaptureSpec>,
}

/// One capture: what it counts, how long at most, and after how many
/// matching packets it ends early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "kind")]
pub enum CaptureSpec {
    /// VXLAN packets of the plan's VNI on the underlay (`capture`).
    #[serde(rename_all = "camelCase")]
    Vxlan { seconds: f64, count: Option<u64> },
    /// Echo requests to `to` leaving the node (`capture --icmp-to`).
    #[serde(rename_all = "camelCase")]
    IcmpTo {
        to: Ipv4Addr,
        seconds: f64,
        count: Option<u64>,
    },
}

impl CaptureSpec {
    /// How long the capture runs at most.
    pub fn seconds(&self) -> f64 {
        match self {
            CaptureSpec::Vxlan { seconds, .. } | CaptureSpec::IcmpTo { seconds, .. } => *seconds,
        }
    }
}

/// `captures start`: the captures are listening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapturesStarted {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    /// The folder `captures collect` reads (`/dev/shm/labctl-verify.*` or
    /// `/tmp/labctl-verify.*`).
    pub dir: String,
    /// `ip -4 route get`'s line for the request's `routeTo`, or its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

impl AgentReport for CapturesStarted {
    const COMMAND: &'static str = "captures start";
}

/// What one capture gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "kind")]
pub enum CaptureOutcome {
    Vxlan {
        report: CaptureReport,
    },
    IcmpTo {
        report: IcmpCaptureReport,
    },
    /// It could not run, or did not end in time: why.
    Failed {
        error: String,
    },
}

/// The kernel log's tail and the uptime it was read at (its timestamps
/// count from boot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KernelLog {
    pub uptime: f64,
    pub lines: Vec<String>,
}

/// `captures collect`: one outcome per capture of the request, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapturesCollected {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub captures: Vec<CaptureOutcome>,
    /// With `--kernel-log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_log: Option<KernelLog>,
}

impl AgentReport for CapturesCollected {
    const COMMAND: &'static str = "captures collect";
}
