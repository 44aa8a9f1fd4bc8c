//! What `labctl explain` prints: the two ends of the walk ([`Place`]), its
//! hops ([`Hop`]) and the whole answer ([`Explanation`]), with stable
//! camelCase field names for `--output json`.

use std::net::Ipv4Addr;

use serde::Serialize;

/// What an end of the walk is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PlaceKind {
    /// A pod, in its network namespace on `node`.
    Pod { name: String, namespace: String },
    /// A node itself (its own network namespace).
    Node,
    /// A service IP (DNATed to an endpoint on the way).
    Service { name: String },
    /// Any other address: outside the lab's pod network.
    Address,
}

/// One end of the walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    /// As given on the command line.
    pub word: String,
    #[serde(flatten)]
    pub kind: PlaceKind,
    pub ip: Ipv4Addr,
    /// The node it is on (pods, nodes; a service's endpoint's node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Where a hop is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopKind {
    PodEth0,
    Bridge,
    Dnat,
    Route,
    VxlanDevice,
    Neighbour,
    Fdb,
    Postrouting,
    Underlay,
    Leave,
    Arrive,
}

/// Whether the live value agrees with the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HopStatus {
    Ok,
    Broken,
}

/// What a trace looks for to call a hop seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// The echo request leaving the source pod's eth0.
    PodLeft,
    /// The echo request leaving `node` by `device` (`cni0` also matches the
    /// pods' veth ports on it), with source `src` when given.
    NodeLeft {
        node: String,
        device: String,
        src: Option<Ipv4Addr>,
    },
    /// The VXLAN packet on `node`'s underlay: outer and inner addresses.
    Vxlan {
        node: String,
        outer: (Ipv4Addr, Ipv4Addr),
        inner: (Ipv4Addr, Ipv4Addr),
    },
    /// The echo reply came back.
    Answered,
}

/// One hop of the walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// From 1, in the packet's order.
    pub step: usize,
    pub at: HopKind,
    /// The node it happens on (none: on the wire or outside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What happens there, with the live values.
    pub summary: String,
    pub status: HopStatus,
    /// Broken hops: what the plan wants and what the node has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// With `--trace`: whether the packet was seen there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<bool>,
    /// With `--trace`: what was captured that says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(skip)]
    pub watch: Option<Watch>,
}

impl Hop {
    pub fn new(at: HopKind, node: Option<&str>, summary: impl Into<String>) -> Hop {
        Hop {
            step: 0,
            at,
            node: node.map(str::to_string),
            summary: summary.into(),
            status: HopStatus::Ok,
            expected: None,
            actual: None,
            seen: None,
            evidence: None,
            watch: None,
        }
    }

    /// Broken when `actual` is not `expected` (`None`: missing).
    pub fn compare(mut self, expected: &str, actual: Option<&str>) -> Hop {
        if actual != Some(expected) {
            self.broken(expected, actual);
        }
        self
    }

    pub fn broken(&mut self, expected: &str, actual: Option<&str>) {
        self.status = HopStatus::Broken;
        self.expected = Some(expected.to_string());
        self.actual = Some(actual.unwrap_or("missing").to_string());
    }

    pub fn watch(mut self, w: Watch) -> Hop {
        self.watch = Some(w);
        self
    }
}

/// The answer of `labctl explain`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub lab: String,
    pub src: Place,
    pub dst: Place,
    /// Where the packet is actually sent (a service's endpoint).
    pub to: Ipv4Addr,
    pub hops: Vec<Hop>,
    pub traced: bool,
    /// The first broken or unseen hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<usize>,
    /// Notes on the walk (what a trace cannot show, probe errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Explanation {
    /// The first hop that is broken or, traced, not seen.
    pub fn find_first_broken(&self) -> Option<usize> {
        self.hops
            .iter()
            .find(|h| h.status == HopStatus::Broken || h.seen == Some(false))
            .map(|h| h.step)
    }
}
