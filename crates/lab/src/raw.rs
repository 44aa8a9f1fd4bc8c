//! The lab file exactly as written: every field optional, unknown keys
//! refused. Defaults and semantic checks happen later (validate.rs), so a
//! decoding error here is always about shape (unknown key, wrong type).
//!
//! Plain structs and unit enums only: tagged enums lose error locations.
//! Addresses and networks stay strings here so that a bad one becomes a
//! semantic diagnostic, collected with all the others, instead of stopping
//! decoding at the first.
//!
//! The same types give the lab file's JSON Schema ([`crate::json_schema`],
//! `labctl schema`): the doc comments below are what an editor shows.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::model::{LibvirtDriver, ProviderType, Role, VagrantProvider};

/// A labctl lab: the nodes, their network and how to build them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Lab")]
pub struct RawLab {
    /// Always `labctl/v1alpha1`.
    pub api_version: Option<String>,
    /// Always `Lab`.
    pub kind: Option<String>,
    /// The lab's name: a lowercase DNS label of at most 20 characters (it prefixes namespaces, links and VMs).
    pub name: Option<String>,
    pub provider: Option<RawProvider>,
    pub network: Option<RawNetwork>,
    pub kubernetes: Option<RawKubernetes>,
    /// The nodes, exactly one with `role: control-plane`.
    pub nodes: Option<Vec<RawNode>>,
    pub verify: Option<RawVerify>,
}

/// What the nodes are: netns (default), vagrant or ssh.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Provider")]
pub struct RawProvider {
    /// netns (default): network namespaces on this host, needs root; vagrant: VMs; ssh: existing hosts.
    #[serde(rename = "type")]
    pub kind: Option<ProviderType>,
    /// vagrant only: the Vagrant box (default bento/ubuntu-24.04).
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    /// vagrant only: virtualbox (default), libvirt, vmware_desktop or hyperv.
    pub vagrant_provider: Option<VagrantProvider>,
    /// vagrant + libvirt: kvm (default) or qemu (software emulation).
    pub libvirt_driver: Option<LibvirtDriver>,
    /// vagrant + libvirt: no NAT, no DHCP, no route off the host (default false).
    pub isolated: Option<bool>,
}

/// The lab network, the pod and service networks, flannel's backend.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Network")]
pub struct RawNetwork {
    /// The network the nodes share, e.g. 192.168.56.0/24 (the default).
    pub underlay: Option<String>,
    /// The underlay's MTU (default 1500); with vxlan pods get 50 bytes less, with host-gw the same.
    #[serde(rename = "underlayMTU")]
    pub underlay_mtu: Option<u64>,
    /// flannel's Network and kubeadm's podSubnet (default 10.244.0.0/16).
    pub pod_network: Option<String>,
    /// Prefix length of each node's pod subnet (default 24).
    pub subnet_len: Option<u64>,
    /// The service network (default 10.96.0.0/12).
    pub service_network: Option<String>,
    /// The cluster DNS domain (default cluster.local).
    pub dns_domain: Option<String>,
    /// flannel's backend (default vxlan, VNI 1, port 8472; or host-gw).
    pub backend: Option<RawBackend>,
    /// Masquerade pod traffic leaving the pod network (default true).
    pub ip_masq: Option<bool>,
}

/// flannel's backend.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Backend")]
pub struct RawBackend {
    /// vxlan (the default: a VXLAN tunnel between node IPs) or host-gw (routes via the peers' node IPs; every node on one L2 segment).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// vxlan only: VXLAN network identifier (default 1).
    pub vni: Option<u64>,
    /// vxlan only: VXLAN UDP port (default 8472).
    pub port: Option<u64>,
}

/// kubeadm on vagrant and ssh labs.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Kubernetes")]
pub struct RawKubernetes {
    /// Run Kubernetes (kubeadm) on vagrant and ssh labs (default true); netns labs never do.
    pub enabled: Option<bool>,
    /// Kubernetes minor version, quoted, e.g. "1.37" (the default).
    pub version: Option<String>,
}

/// One node.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Node")]
pub struct RawNode {
    /// A DNS label; it becomes the node's hostname.
    pub name: Option<String>,
    /// control-plane (exactly one) or worker (the default).
    pub role: Option<Role>,
    /// The node's underlay address (default: the underlay's .10 + the node's position).
    pub ip: Option<String>,
    /// vagrant: CPUs (default 2).
    pub cpus: Option<u64>,
    /// vagrant: memory in MiB (default 2048).
    pub memory: Option<u64>,
    /// ssh provider only, required there: how to reach the host.
    pub ssh: Option<RawSsh>,
}

/// How to reach an existing host (ssh provider only, required there).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Ssh")]
pub struct RawSsh {
    /// Address or name to connect to.
    pub host: Option<String>,
    /// SSH port (default 22).
    pub port: Option<u64>,
    /// Login user (sudo -n is used when not root).
    pub user: Option<String>,
    /// Private key file, e.g. ~/.ssh/id_ed25519.
    pub key: Option<String>,
    /// Optional pin: SHA256:... fingerprint or an `ssh-ed25519 ...` public key line.
    pub host_key: Option<String>,
}

/// What `labctl verify` uses.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Verify")]
pub struct RawVerify {
    /// The image verify's pods run (default busybox:1.28).
    pub image: Option<String>,
    /// vagrant and ssh labs, optional: an address outside the cluster the egress check pings.
    pub egress_target: Option<String>,
}
