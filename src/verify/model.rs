//! The check model: the nine default checks and the opt-in throughput,
//! their results, the diagnoses that explain failures, and the report that
//! holds them. Pure data, no I/O: probes fill it, `diagnose` explains it,
//! `render` and `junit` print it.

use std::net::Ipv4Addr;
use std::time::Instant;

use ipnet::Ipv4Net;
use labctl_nodeplan::Backend;
use serde::Serialize;

use super::evidence::{PingMatrix, PodView};

/// The checks, in the order they run and print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    Nodes,
    Dataplane,
    Pods,
    PodMesh,
    Vxlan,
    Mtu,
    Dns,
    Egress,
    Kubernetes,
    /// Opt-in (`--check throughput`): not in [`CheckId::DEFAULT`].
    Throughput,
}

impl CheckId {
    /// Every check, in run order: the default ones, then throughput.
    pub const ALL: [CheckId; 10] = {
        let mut all = [CheckId::Throughput; 10];
        let mut i = 0;
        while i < CheckId::DEFAULT.len() {
            all[i] = CheckId::DEFAULT[i];
            i += 1;
        }
        all
    };

    /// What `verify` runs without `--check`: all but the throughput
    /// measurement (seconds of full-speed traffic, asked for by name).
    pub const DEFAULT: [CheckId; 9] = [
        CheckId::Nodes,
        CheckId::Dataplane,
        CheckId::Pods,
        CheckId::PodMesh,
        CheckId::Vxlan,
        CheckId::Mtu,
        CheckId::Dns,
        CheckId::Egress,
        CheckId::Kubernetes,
    ];

    /// The checks that probe from inside the pods, after `pods` found them
    /// (netns labs probe egress from the pods too).
    pub const FROM_PODS: [CheckId; 4] =
        [CheckId::PodMesh, CheckId::Vxlan, CheckId::Mtu, CheckId::Dns];

    /// The id as the command line and the outputs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::Nodes => "nodes",
            CheckId::Dataplane => "dataplane",
            CheckId::Pods => "pods",
            CheckId::PodMesh => "pod-mesh",
            CheckId::Vxlan => "vxlan",
            CheckId::Mtu => "mtu",
            CheckId::Dns => "dns",
            CheckId::Egress => "egress",
            CheckId::Kubernetes => "kubernetes",
            CheckId::Throughput => "throughput",
        }
    }

    /// The one-line "what this proves" printed under each check.
    pub fn proves(self) -> &'static str {
        match self {
            CheckId::Nodes => "every node answers over SSH and runs the expected labctl-agent",
            CheckId::Dataplane => {
                "each node's flannel.1, cni0, per-peer route/neighbour/FDB, iptables chains and files match the plan"
            }
            CheckId::Pods => "one busybox pod per node is running with an IP from its node's pod subnet",
            CheckId::PodMesh => "every pod reaches every other pod, on the same node and across nodes",
            CheckId::Vxlan => {
                "cross-node pod traffic leaves as UDP to the VXLAN port with the lab's VNI, pod IP to pod IP inside, and is decapsulated at the far end"
            }
            CheckId::Mtu => "a don't-fragment packet of exactly the pod MTU crosses nodes and one byte more does not",
            CheckId::Dns => "every pod resolves kubernetes.default to the API service IP through the cluster DNS service IP",
            CheckId::Egress => "a pod reaches the outside with its node's IP as source, not its own (MASQUERADE)",
            CheckId::Kubernetes => "nodes are Ready with their lab IP as InternalIP, podCIDR = cni0 = subnet.env, CoreDNS runs",
            CheckId::Throughput => {
                "a short TCP transfer pod to pod across two nodes and node to node on the underlay, with the ratio of the two (the price of VXLAN)"
            }
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What came of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One check's result: what it proves, how it went, and the evidence a
/// learner would otherwise collect by hand.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub proves: &'static str,
    pub outcome: Outcome,
    /// One line: what was seen (or why it was skipped).
    pub summary: String,
    /// Human evidence lines, printed under the check.
    pub details: Vec<String>,
    /// Machine evidence (the probe records behind the summary).
    pub evidence: serde_json::Value,
    /// Ids of the diagnoses that explain this check's failure.
    pub diagnoses: Vec<String>,
    pub duration_ms: u64,
}

impl CheckResult {
    pub fn new(id: CheckId, outcome: Outcome, summary: impl Into<String>) -> CheckResult {
        CheckResult {
            id,
            proves: id.proves(),
            outcome,
            summary: summary.into(),
            details: Vec::new(),
            evidence: serde_json::Value::Null,
            diagnoses: Vec::new(),
            duration_ms: 0,
        }
    }

    pub fn skip(id: CheckId, reason: impl Into<String>) -> CheckResult {
        CheckResult::new(id, Outcome::Skip, reason)
    }

    /// The result with the time since `started` as its duration.
    pub fn timed(mut self, started: Instant) -> CheckResult {
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }
}

/// One node as verify sees it (from the node plans).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub name: String,
    pub underlay_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub vtep_mac: String,
    pub control_plane: bool,
    /// netns labs: the node's network namespace (`<lab>-<node>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What verify needs to know about a lab: names, addresses, expectations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabView {
    pub name: String,
    pub provider: String,
    /// flannel's backend: vxlan, or host-gw (no device, no VNI or port:
    /// `vxlanDevice` empty, `vni` and `port` 0).
    pub backend: Backend,
    pub vxlan_device: String,
    pub vni: u32,
    pub port: u16,
    pub underlay_mtu: u32,
    /// flannel.1 / cni0 / pod MTU (vxlan: underlay − 50; host-gw: underlay).
    pub pod_mtu: u32,
    pub network: Ipv4Net,
    pub dns_service_ip: Ipv4Addr,
    pub api_service_ip: Ipv4Addr,
    pub dns_domain: String,
    pub nodes: Vec<NodeView>,
    /// netns labs: the lab's stand-in for the internet (`<lab>-ext`).
    pub outside: Option<Outside>,
}

/// The far end for the egress check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outside {
    pub ip: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl LabView {
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// A whole verify run: what `--output json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub lab: String,
    pub provider: String,
    pub checks: Vec<CheckResult>,
    pub pods: Vec<PodView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<PingMatrix>,
    pub diagnoses: Vec<Diagnosis>,
    /// What will go wrong soon though no check failed yet (verify still
    /// passes): e.g. a neighbour table about to evict the lab's entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    pub total_ms: u64,
    pub passed: bool,
}

/// One named cause (`diagnose` finds them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable id, e.g. `missing-route`, `nat-nic`, `vxlan-port-blocked`.
    pub cause: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What is wrong, one sentence.
    pub message: String,
    /// The evidence lines that point at it.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
    /// Whether `labctl up` puts it right.
    pub repaired_by_up: bool,
    /// The checks this explains.
    pub checks: Vec<CheckId>,
}

/// A warning: which nodes, what is coming, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable id (e.g. `neighbour-table-limits`).
    pub id: &'static str,
    pub nodes: Vec<String>,
    pub message: String,
    pub fix: String,
}

impl Report {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }
    /// 0 when no check failed, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.count(Outcome::Fail) == 0 {
            0
        } else {
            1
        }
    }
}
