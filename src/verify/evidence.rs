//! The structured evidence probes collect, one record type per kind of
//! observation. The diagnosis engine reads only these, so it can be tested
//! with hand-written evidence and no lab.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use labctl_nodeplan::report::Departure;
use serde::Serialize;

use super::parse::{BadChecksum, Drift, FirewallFacts};

/// `nodes`: one node's reachability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeReach {
    pub node: String,
    pub reachable: bool,
    pub agent_version: Option<String>,
    pub error: Option<String>,
}

/// `pods`: one pod as verify found it (netns labs: a namespace
/// `<lab>-<node>-busybox`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodView {
    pub node: String,
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Empty when the pod is fine; else why it is not usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Its eth0's MTU, when the node check read the pod's links (netns
    /// pods); `mtu` then need not ask the pod again.
    #[serde(skip)]
    pub eth0_mtu: Option<u32>,
}

impl PodView {
    /// Records what looking up the pod's IPv4 address found: the address
    /// (a problem when it differs from the one the lab recorded), none, or
    /// why the lookup failed.
    pub fn record_address(&mut self, found: Result<Option<Ipv4Addr>, String>) {
        match found {
            Ok(Some(ip)) => {
                if let Some(recorded) = self.ip.filter(|recorded| *recorded != ip) {
                    self.problem = Some(format!("has {ip}, but the lab recorded {recorded}"));
                }
                self.ip = Some(ip);
            }
            Ok(None) => self.problem = Some("has no IPv4 address".into()),
            Err(e) => self.problem = Some(e),
        }
    }
}

/// One ping from one pod to another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PingCell {
    pub from: String,
    pub to: String,
    pub to_ip: Ipv4Addr,
    pub sent: u32,
    pub received: u32,
    pub rtt_avg_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PingCell {
    pub fn ok(&self) -> bool {
        self.received > 0 && self.error.is_none()
    }
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            100.0
        } else {
            100.0 * f64::from(self.sent.saturating_sub(self.received)) / f64::from(self.sent)
        }
    }
}

/// `pod-mesh`: every pod to every other pod, keyed by the pods' node names.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PingMatrix {
    /// Row/column order (node names of the pods).
    pub nodes: Vec<String>,
    pub cells: Vec<PingCell>,
    /// Which pairs were pinged.
    pub coverage: MeshCoverage,
}

/// Which pod pairs the mesh pinged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MeshCoverage {
    /// Every pod pinged every other pod.
    #[default]
    Full,
    /// Each pod pinged the pods `offsets` places after it (in pod order,
    /// wrapping round): every pod sends and receives over its node's
    /// tunnel, `of` is the number of pairs in the full mesh.
    Sampled { offsets: Vec<usize>, of: usize },
}

impl MeshCoverage {
    /// The largest lab whose mesh is pinged in full unless asked otherwise:
    /// 200 pods are 39,800 pairs.
    pub const FULL_UP_TO: usize = 200;

    /// The coverage for `pods` pods: `full` asks for every pair, `None`
    /// chooses by size.
    pub fn for_pods(pods: usize, full: Option<bool>) -> MeshCoverage {
        if full.unwrap_or(pods <= Self::FULL_UP_TO) || pods < 3 {
            return MeshCoverage::Full;
        }
        let offsets = std::iter::successors(Some(1usize), |d| d.checked_mul(2))
            .take_while(|d| *d < pods)
            .collect();
        MeshCoverage::Sampled {
            offsets,
            of: pods * (pods - 1),
        }
    }

    /// The indexes pod `from` of `pods` pings.
    pub fn targets(&self, from: usize, pods: usize) -> Vec<usize> {
        match self {
            MeshCoverage::Full => (0..pods).filter(|&to| to != from).collect(),
            MeshCoverage::Sampled { offsets, .. } => {
                offsets.iter().map(|d| (from + d) % pods).collect()
            }
        }
    }

    /// What was pinged, for the summary: empty for the full mesh.
    pub fn describe(&self) -> String {
        match self {
            MeshCoverage::Full => String::new(),
            MeshCoverage::Sampled { offsets, of } => {
                let shown: Vec<String> = offsets.iter().take(3).map(|d| d.to_string()).collect();
                let last = offsets.last().copied().unwrap_or(1);
                format!(
                    "sampled from {of} pairs: each pod pings the pods {}{} places after it, so every node sends and receives through its tunnel; every pair's route, neighbour and FDB entry is the dataplane check's; --mesh full pings every pair",
                    shown.join(", "),
                    if offsets.len() > 3 { format!(", … {last}") } else { String::new() }
                )
            }
        }
    }
}

impl PingMatrix {
    pub fn cell(&self, from: &str, to: &str) -> Option<&PingCell> {
        self.cells.iter().find(|c| c.from == from && c.to == to)
    }
    pub fn failures(&self) -> impl Iterator<Item = &PingCell> {
        self.cells.iter().filter(|c| !c.ok())
    }
}

/// `vxlan`: what the underlay captures saw while a pod on `from` pinged a
/// pod on `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VxlanPair {
    pub from: String,
    pub to: String,
    pub ping_ok: bool,
    /// VXLAN packets (right port, right VNI, inner pod→pod) leaving the
    /// sender's underlay interface toward the receiver.
    pub sender_out: u64,
    /// The same packets arriving on the receiver's underlay interface.
    pub receiver_in: u64,
    /// Inner packets the receiver's VXLAN device delivered (decapsulated);
    /// `None` when not measured (the agent captures on the underlay only).
    pub receiver_decapsulated: Option<u64>,
    /// Outer source addresses seen at the sender (its VTEP `local`).
    pub outer_sources: Vec<Ipv4Addr>,
    /// VNIs seen on the port (the lab's, if all is well).
    pub vnis: Vec<u32>,
    /// How the capture was made (the agent's AF_PACKET capture, over SSH).
    pub method: String,
}

/// `vxlan` on a host-gw lab (`super::underlay`): a pod on `from` pinging
/// the pod on `to`, and how its packets left the sender.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnderlayPair {
    pub from: String,
    pub to: String,
    pub src: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub ping_ok: bool,
    /// What `ip route get DST` printed on the sender (one line).
    pub route: String,
    /// The gateway and device of that route.
    pub via: Option<Ipv4Addr>,
    pub dev: Option<String>,
    /// The peer's node IP: the gateway host-gw's route must name.
    pub expected_via: Option<Ipv4Addr>,
    /// Echo requests to DST seen leaving the sender.
    pub departures: Vec<Departure>,
    /// Why the probe gave no evidence (capture or SSH failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl UnderlayPair {
    /// Echo requests that left by the route's device with the pod's own
    /// address: pod IP to pod IP, unencapsulated, on the underlay.
    pub fn unencapsulated(&self) -> u64 {
        self.departures
            .iter()
            .filter(|d| Some(&d.interface) == self.dev.as_ref() && Some(d.src) == self.src)
            .map(|d| d.packets)
            .sum()
    }

    /// Every piece of evidence as host-gw wants it.
    pub fn good(&self) -> bool {
        self.error.is_none()
            && self.ping_ok
            && self.via.is_some()
            && self.via == self.expected_via
            && self.unencapsulated() > 0
    }
}

/// `mtu`: a DF ping of the pod MTU − 28 and of one byte more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MtuProbe {
    pub from: String,
    pub to: String,
    pub payload: u32,
    pub fits_passed: bool,
    pub over_failed: bool,
    /// What the over-size attempt said (e.g. "message too long, mtu 1450").
    pub detail: String,
}

/// One interface MTU as seen on a node or pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkMtu {
    pub node: String,
    /// `flannel.1`, `cni0`, or `pod eth0`.
    pub device: String,
    pub mtu: u32,
}

/// `dns`: one nslookup from the pod on `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsProbe {
    pub node: String,
    /// The pod that asked (its node's busybox pod, or the DNS pod itself).
    pub pod: String,
    pub query: String,
    pub server: Option<Ipv4Addr>,
    pub addresses: Vec<Ipv4Addr>,
    pub nxdomain: bool,
    pub timed_out: bool,
    /// busybox version of the nslookup used, when known.
    pub busybox: Option<(u32, u32, u32)>,
    /// The `nameserver` lines of the pod's own /etc/resolv.conf (what
    /// kubelet writes: the cluster DNS service IP), when read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<Ipv4Addr>,
    pub ok: bool,
}

/// `egress`: a pod sent to the outside; what the far end saw (netns
/// labs), or what left the pod's node after POSTROUTING (VM labs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EgressProbe {
    pub node: String,
    pub pod_ip: Ipv4Addr,
    pub node_ip: Ipv4Addr,
    pub target: Ipv4Addr,
    /// Source addresses the far end saw for this pod's probe; when
    /// `seen_leaving_node`, the sources its echo requests left the node
    /// with (captured on the node after POSTROUTING).
    pub observed_sources: Vec<Ipv4Addr>,
    pub reply_received: bool,
    /// True when the sources were captured leaving the pod's node (VM
    /// labs: verify cannot watch the far end), not at the far end.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seen_leaving_node: bool,
}

impl EgressProbe {
    /// Where the sources were seen, for sentences: "the far end 198.18.0.1
    /// saw" or "leaving worker1:".
    pub fn observer(&self) -> String {
        if self.seen_leaving_node {
            format!(
                "{}'s echo requests left {} with source",
                self.pod_ip, self.node
            )
        } else {
            format!("the far end {} saw source", self.target)
        }
    }

    pub fn masqueraded(&self) -> bool {
        self.observed_sources.contains(&self.node_ip)
            && !self.observed_sources.contains(&self.pod_ip)
    }
}

/// The kernel's IPv4 neighbour (ARP) table. Its limits
/// (`net.ipv4.neigh.default.gc_thresh1/2/3`) are global: every network
/// namespace on a host, so every netns node, pod and the host itself, shares
/// one table of at most `gc_thresh3` dynamic entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NeighbourTable {
    /// gc_thresh1, gc_thresh2, gc_thresh3 as read on the host.
    pub gc_thresh: [u32; 3],
    /// Dynamic entries the lab needs at once (see [`neighbour_entries_needed`]).
    pub needed: u32,
    /// Entries refused because the table was full while verify probed
    /// (growth of `table_fulls` in /proc/net/stat/arp_cache).
    pub refused_during_probes: u64,
    /// Recent kernel log lines "neighbour table overflow".
    pub log_lines: Vec<String>,
}

// What a lab needs of the neighbour table is part of the lab, not of
// verify: the pure functions live in the lab crate.
pub use labctl_lab::neighbour_limits::{neighbour_entries_needed, suggested_gc_thresh};

/// Everything probes found, per kind. Empty vectors mean "not probed".
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    pub reach: Vec<NodeReach>,
    /// Nodes whose agent `check` ran (drift is complete for them).
    pub checked_nodes: Vec<String>,
    pub drift: Vec<Drift>,
    pub firewall: BTreeMap<String, FirewallFacts>,
    /// The `local` address of each node's VXLAN device as observed.
    pub vtep_local: BTreeMap<String, Ipv4Addr>,
    pub link_mtus: Vec<LinkMtu>,
    pub pods: Vec<PodView>,
    pub mesh: Option<PingMatrix>,
    pub vxlan: Vec<VxlanPair>,
    /// host-gw labs: what `vxlan` looks at instead (no tunnel).
    pub underlay: Vec<UnderlayPair>,
    /// (node whose kernel log it is, the line).
    pub bad_checksums: Vec<(String, BadChecksum)>,
    pub mtu: Vec<MtuProbe>,
    pub dns: Vec<DnsProbe>,
    pub egress: Vec<EgressProbe>,
    /// The host's neighbour table (netns labs: shared by all nodes).
    pub neighbour_table: Option<NeighbourTable>,
    /// Labs on machines of their own: each node's gc_thresh1/2/3.
    pub node_gc_thresh: BTreeMap<String, [u32; 3]>,
    /// kubeadm labs: the cluster as the API server sees it.
    pub kubernetes: Option<KubeEvidence>,
}

/// `kubernetes`: one lab node as `kubectl get nodes -o json` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KubeNode {
    pub node: String,
    /// Whether the node is registered with the API server at all.
    pub registered: bool,
    pub ready: bool,
    /// The Ready condition's `reason: message` when not Ready.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ready_detail: String,
    pub internal_ip: Option<Ipv4Addr>,
    pub pod_cidr: Option<ipnet::Ipv4Net>,
}

/// A pod as `kubectl get pods -o json` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KubePod {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    pub ip: Option<Ipv4Addr>,
    /// Every container ready.
    pub ready: bool,
    /// Why it is not running: the container's waiting reason
    /// (ImagePullBackOff), how it terminated, or the pod's reason.
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// What verify read from the Kubernetes API (kubeadm labs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KubeEvidence {
    /// One record per lab node, in lab order.
    pub nodes: Vec<KubeNode>,
    /// `kubectl -n kube-system get pods -l k8s-app=kube-dns`.
    pub coredns: Vec<KubePod>,
    /// kubectl commands that failed: node, command and stderr.
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::MeshCoverage;

    #[test]
    fn small_labs_ping_every_pair_unless_told() {
        assert_eq!(MeshCoverage::for_pods(200, None), MeshCoverage::Full);
        assert_eq!(MeshCoverage::for_pods(3, Some(false)).targets(0, 3), [1, 2]);
        let full = MeshCoverage::for_pods(5, None);
        assert_eq!(full.targets(2, 5), [0, 1, 3, 4]);
        assert_eq!(full.describe(), "");
    }

    #[test]
    fn a_sample_has_every_pod_send_and_receive_at_doubling_offsets() {
        let pods = 1000;
        let sample = MeshCoverage::for_pods(pods, None);
        let MeshCoverage::Sampled { offsets, of } = &sample else {
            panic!("1000 pods are sampled: {sample:?}");
        };
        assert_eq!(offsets, &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(*of, 999_000);
        let mut received = vec![0; pods];
        for from in 0..pods {
            let to = sample.targets(from, pods);
            assert_eq!(to.len(), 10);
            assert!(!to.contains(&from), "pod {from} pings itself");
            for t in to {
                received[t] += 1;
            }
        }
        assert!(received.iter().all(|&n| n == 10), "{received:?}");
        assert!(
            sample.describe().contains("1, 2, 4, … 512 places after it"),
            "{}",
            sample.describe()
        );
        // Asked for in full, even a big lab pings every pair.
        assert_eq!(MeshCoverage::for_pods(pods, Some(true)), MeshCoverage::Full);
    }
}
