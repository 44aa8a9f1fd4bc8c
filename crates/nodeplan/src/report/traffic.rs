//! The reports of the pod and capture commands: `pod add`, `pod del`,
//! `capture` and `capture --icmp-to`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::AgentReport;

/// `pod add`: the pod, with its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodAddReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub name: String,
    /// The pod's network namespace, `<lab>-<node>-<name>`.
    pub namespace: String,
    /// The pod's address (eth0, inside the node's subnet).
    pub ip: Ipv4Addr,
    /// eth0's MAC address.
    pub mac: String,
}

impl AgentReport for PodAddReport {
    const COMMAND: &'static str = "pod add";
}

/// `pod del`: what was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDelReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub name: String,
    pub namespace: String,
    pub removed: Vec<String>,
}

impl AgentReport for PodDelReport {
    const COMMAND: &'static str = "pod del";
}

/// One inner flow seen inside VXLAN packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Flow {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub inner_src: Ipv4Addr,
    pub inner_dst: Ipv4Addr,
    pub inner_protocol: u8,
    pub packets: u64,
}

/// `capture`: VXLAN packets of the plan's VNI on the underlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaptureReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub interface: String,
    pub port: u16,
    pub vni: u32,
    pub seconds: f64,
    /// VXLAN packets with the plan's VNI.
    pub packets: u64,
    /// VXLAN packets on the port with another VNI.
    pub other_vni: u64,
    pub flows: Vec<Flow>,
}

impl CaptureReport {
    /// Packets of inner flows `src` → `dst`, and their distinct outer
    /// sources.
    pub fn flow_packets(&self, src: Ipv4Addr, dst: Ipv4Addr) -> (u64, Vec<Ipv4Addr>) {
        let mut packets = 0;
        let mut outer = Vec::new();
        for f in self
            .flows
            .iter()
            .filter(|f| f.inner_src == src && f.inner_dst == dst)
        {
            packets += f.packets;
            if !outer.contains(&f.outer_src) {
                outer.push(f.outer_src);
            }
        }
        (packets, outer)
    }
}

impl AgentReport for CaptureReport {
    const COMMAND: &'static str = "capture";
}

/// Echo requests to the target that left by one interface with one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Departure {
    pub interface: String,
    pub src: Ipv4Addr,
    pub packets: u64,
}

/// `capture --icmp-to ADDR`: echo requests to ADDR leaving the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IcmpCaptureReport {
    pub report_version: u32,
    pub command: String,
    pub node: String,
    pub icmp_to: Ipv4Addr,
    pub seconds: f64,
    /// All echo requests to the target that left the node.
    pub packets: u64,
    pub departures: Vec<Departure>,
}

impl AgentReport for IcmpCaptureReport {
    const COMMAND: &'static str = "capture --icmp-to";
}

/// `transfer listen` / `transfer send`: one TCP transfer of the agent's
/// own, measured at this end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransferReport {
    pub report_version: u32,
    pub command: String,
    /// The node's name, or the namespace the agent ran in (no plan needed).
    pub node: String,
    /// `listen` or `send`.
    pub role: String,
    /// The other end, `IP:PORT`.
    pub peer: String,
    pub bytes: u64,
    /// From the first to the last byte at this end.
    pub seconds: f64,
    pub bits_per_second: f64,
}

impl AgentReport for TransferReport {
    const COMMAND: &'static str = "transfer";
}
