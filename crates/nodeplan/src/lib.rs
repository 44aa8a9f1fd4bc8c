//! The per-node plan: everything the node agent needs to converge one node to
//! flannel's data plane (the VXLAN or the host-gw backend), and nothing it
//! would have to compute itself.
//!
//! labctl (the CLI) computes one `NodePlan` per node from the lab file and
//! ships it to the node as JSON; the agent (a static binary running as root
//! on the node) reads it and makes the kernel match it. This crate is the only
//! thing the two share, so it stays small: plain data, serde, no I/O.
//!
//! The plan is fully resolved: names, addresses, MACs, the exact iptables
//! rules and the exact file contents are spelled out, so the agent never
//! re-derives policy and `check` can compare byte for byte.
//!
//! The agent's answers are here too ([`report`]): one type per command,
//! serialized by the agent and decoded by labctl; [`converge`] frames
//! several of them in one output.

pub mod converge;
pub mod probe;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub mod report;

/// Version of the plan schema. The agent refuses plans of another version
/// (exit 2) instead of guessing at fields it does not know.
pub const PLAN_SCHEMA: u32 = 1;

/// A MAC address in the usual colon-separated lowercase form, e.g.
/// `0e:fa:0a:f4:01:00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for a unicast (I/G bit clear), locally administered (U/L bit set)
    /// address: what a VTEP MAC the lab makes up must be.
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0 && self.0[0] & 0x02 != 0
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC address {s:?} has fewer than 6 octets"))?;
            if part.len() != 2 {
                return Err(format!(
                    "MAC address {s:?}: octet {part:?} is not two hex digits"
                ));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("MAC address {s:?}: octet {part:?} is not hex"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address {s:?} has more than 6 octets"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One node's complete target state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodePlan {
    /// Always [`PLAN_SCHEMA`].
    pub schema: u32,
    /// The lab's name (labels what the agent creates, e.g. pod namespaces).
    pub lab: String,
    /// This node's name.
    pub node: String,
    /// This node's address on the lab (underlay) network. The agent finds
    /// the underlay interface by this address, never by name.
    pub underlay_ip: Ipv4Addr,
    /// MTU of the underlay network.
    pub underlay_mtu: u32,
    /// The whole pod network (flannel's `Network`, kubeadm's podSubnet).
    pub network: Ipv4Net,
    /// This node's pod subnet (e.g. 10.244.0.0/24).
    pub subnet: Ipv4Net,
    /// flannel's backend. Plans written before host-gw existed have no
    /// such field and decode as vxlan.
    #[serde(default)]
    pub backend: Backend,
    /// The flannel.<VNI> VXLAN device: present exactly when the backend is
    /// vxlan (host-gw has no device of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<VxlanPlan>,
    /// The cni0 bridge the pods attach to.
    pub bridge: BridgePlan,
    /// One entry per other node in the lab, in node order.
    pub peers: Vec<PeerPlan>,
    /// flannel's ipMasq: whether FLANNEL-POSTRTG masquerades egress.
    pub ip_masq: bool,
    /// The cluster DNS service IP (service network + 10).
    pub dns_service_ip: Ipv4Addr,
    /// The Kubernetes API service IP (service network + 1).
    pub api_service_ip: Ipv4Addr,
    /// The cluster DNS domain (e.g. cluster.local).
    pub dns_domain: String,
    /// The iptables chains and jump rules, exactly as `iptables -S` prints them.
    pub iptables: IptablesPlan,
    /// Files the agent owns on this node (subnet.env, the CNI conflist).
    pub files: Vec<FilePlan>,
    /// Where the agent keeps its own state on the node (pod records, leases).
    pub state_dir: String,
    /// Whether the agent must make sure bridge netfilter (`br_netfilter`)
    /// is loaded and `net.bridge.bridge-nf-call-iptables` is 1, so traffic
    /// bridged on cni0 goes through iptables: without it a pod's DNS reply
    /// from a DNS pod on the same node is not un-DNATed. True where the
    /// node is a machine of its own (vagrant, ssh); false for netns labs,
    /// whose nodes share this host's kernel, where loading the module would
    /// change every bridge on the host. Plans written before this field
    /// existed decode as false.
    #[serde(default)]
    pub bridge_netfilter: bool,
}

/// How pod packets cross from node to node, as upstream flannel's
/// net-conf `Backend.Type` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `flannel.<VNI>`; per peer a neighbour, an FDB entry and an onlink
    /// route on it; pod MTU = underlay MTU − 50.
    #[default]
    Vxlan,
    /// Per peer one route `SUBNET via PEER-NODE-IP dev UNDERLAY`; no
    /// device; pod MTU = underlay MTU.
    HostGw,
}

impl Backend {
    /// The name flannel and the lab file use.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The VXLAN device (`flannel.<VNI>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VxlanPlan {
    /// Device name, `flannel.<VNI>`.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP destination port (8472 by default, the Linux default).
    pub port: u16,
    /// Device MTU: underlay MTU − 50.
    pub mtu: u32,
    /// This node's VTEP MAC, set at creation.
    pub mac: MacAddr,
    /// Address on the device: the subnet's network address as a /32.
    pub address: Ipv4Net,
}

/// The pod bridge (`cni0`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BridgePlan {
    /// Device name, `cni0`.
    pub name: String,
    /// Gateway address: the subnet's first host with the subnet's prefix.
    pub address: Ipv4Net,
    /// Bridge MTU (same as the VXLAN device).
    pub mtu: u32,
}

/// Another node, as this node must know it: with vxlan one neighbour, one
/// FDB entry and one onlink route each; with host-gw one route via its
/// underlay IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerPlan {
    /// The peer's node name (for reports only).
    pub node: String,
    /// The peer's underlay IP (FDB destination).
    pub underlay_ip: Ipv4Addr,
    /// The peer's pod subnet (route destination; its .0 is the gateway).
    pub subnet: Ipv4Net,
    /// The peer's VTEP MAC (neighbour lladdr and FDB key; unused by
    /// host-gw).
    pub vtep_mac: MacAddr,
}

/// iptables state, in `iptables -S` form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IptablesPlan {
    /// nat table: the chain flannel owns there (FLANNEL-POSTRTG). `None`
    /// when ipMasq is off: flannel then creates no nat chain at all.
    pub nat: Option<ChainPlan>,
    /// filter table: the chain flannel owns there (FLANNEL-FWD).
    pub filter: ChainPlan,
    /// nat table: the chains that make the lab's service IPs work, as
    /// kube-proxy's would (labs where labctl runs the pods). `None`: not
    /// the agent's (kubeadm labs, where kube-proxy owns them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesPlan>,
}

/// Service chains in the nat table: chains the agent owns outright, and
/// the jumps into them from built-in chains (one chain may have several).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicesPlan {
    /// Each chain with its rules in order (`-A CHAIN ...`).
    pub chains: Vec<OwnedChain>,
    /// Each jump as `iptables -S` prints it, e.g.
    /// `-A PREROUTING -j LABCTL-SERVICES`.
    pub jumps: Vec<String>,
}

/// A chain the agent owns and its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OwnedChain {
    pub chain: String,
    pub rules: Vec<String>,
}

/// One chain the agent owns, and the rule that jumps to it from a built-in
/// chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChainPlan {
    /// The owned chain, e.g. `FLANNEL-POSTRTG`.
    pub chain: String,
    /// The built-in chain holding the jump, e.g. `POSTROUTING`.
    pub parent: String,
    /// The jump rule, e.g.
    /// `-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG`.
    pub jump: String,
    /// The chain's rules in order, each as `iptables -S` prints it
    /// (`-A FLANNEL-POSTRTG ...`).
    pub rules: Vec<String>,
}

/// A file the agent writes atomically and owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilePlan {
    /// Absolute path on the node.
    pub path: String,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    /// Exact contents.
    pub contents: String,
}

impl NodePlan {
    /// Parses a plan from JSON, refusing unknown fields and other schema
    /// versions.
    pub fn from_json(text: &str) -> Result<NodePlan, String> {
        let plan: NodePlan =
            serde_json::from_str(text).map_err(|e| format!("invalid plan: {e}"))?;
        if plan.schema != PLAN_SCHEMA {
            return Err(format!(
                "plan schema {} is not supported (this agent reads schema {PLAN_SCHEMA})",
                plan.schema
            ));
        }
        Ok(plan)
    }

    /// The plan as pretty JSON with a trailing newline (stable: same plan,
    /// same bytes).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plan serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan as written before `bridgeNetfilter` existed.
    const OLD_PLAN: &str = r#"{"schema":1,"lab":"l","node":"n0","underlayIp":"192.168.56.10",
        "underlayMtu":1500,"network":"10.244.0.0/16","subnet":"10.244.0.0/24",
        "vxlan":{"name":"flannel.1","vni":1,"port":8472,"mtu":1450,
          "mac":"0e:fa:0a:f4:00:00","address":"10.244.0.0/32"},
        "bridge":{"name":"cni0","address":"10.244.0.1/24","mtu":1450},
        "peers":[],"ipMasq":true,"dnsServiceIp":"10.96.0.10","apiServiceIp":"10.96.0.1",
        "dnsDomain":"cluster.local",
        "iptables":{"nat":null,"filter":{"chain":"FLANNEL-FWD","parent":"FORWARD",
          "jump":"-A FORWARD -j FLANNEL-FWD","rules":[]}},
        "files":[],"stateDir":"/run/labctl-agent"}"#;

    #[test]
    fn a_plan_without_bridge_netfilter_decodes_as_false_and_round_trips() {
        let old = NodePlan::from_json(OLD_PLAN).unwrap();
        assert!(!old.bridge_netfilter);
        let mut new = old.clone();
        new.bridge_netfilter = true;
        let json = new.to_json();
        assert!(json.contains("\"bridgeNetfilter\": true"), "{json}");
        assert_eq!(NodePlan::from_json(&json).unwrap(), new);
    }

    #[test]
    fn a_plan_without_backend_decodes_as_vxlan_and_host_gw_drops_the_device() {
        let old = NodePlan::from_json(OLD_PLAN).unwrap();
        assert_eq!(old.backend, Backend::Vxlan);
        assert_eq!(
            old.vxlan.as_ref().map(|v| v.name.as_str()),
            Some("flannel.1")
        );
        let mut host_gw = old.clone();
        host_gw.backend = Backend::HostGw;
        host_gw.vxlan = None;
        let json = host_gw.to_json();
        assert!(json.contains("\"backend\": \"host-gw\""), "{json}");
        assert!(!json.contains("vxlan"), "{json}");
        assert_eq!(NodePlan::from_json(&json).unwrap(), host_gw);
        let unknown = json.replace("\"host-gw\"", "\"udp\"");
        let err = NodePlan::from_json(&unknown).unwrap_err();
        assert!(err.contains("unknown variant `udp`"), "{err}");
    }

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let m: MacAddr = "0e:fa:0a:f4:01:00".parse().unwrap();
        assert_eq!(m.to_string(), "0e:fa:0a:f4:01:00");
        assert!(m.is_local_unicast());
        assert!("0e:fa:0a:f4:01".parse::<MacAddr>().is_err());
        assert!("0e:fa:0a:f4:01:00:11".parse::<MacAddr>().is_err());
        assert!("0e:fa:0a:f4:01:zz".parse::<MacAddr>().is_err());
        assert!(!"01:00:5e:00:00:01"
            .parse::<MacAddr>()
            .unwrap()
            .is_local_unicast());
    }
}
