//! The lab file's schema (`apiVersion: labctl/v1alpha1`, `kind: Lab`) after
//! decoding and defaulting. Field names follow the YAML (camelCase there).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, LabError, Severity};
use crate::positions::{self, Pos};
use crate::{strict, validate};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lab {
    pub name: String,
    pub provider: Provider,
    pub network: Network,
    pub kubernetes: Kubernetes,
    pub nodes: Vec<Node>,
    pub verify: Verify,
    /// Non-fatal findings (e.g. VirtualBox host-only range).
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    Netns,
    Vagrant,
    Ssh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VagrantProvider {
    Virtualbox,
    Libvirt,
    VmwareDesktop,
    Hyperv,
}

/// libvirt's domain type: `kvm` (hardware virtualization) or `qemu`
/// (software emulation, where /dev/kvm is missing or unusable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LibvirtDriver {
    Kvm,
    Qemu,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    #[serde(rename = "type")]
    pub kind: ProviderType,
    pub box_name: String,
    pub vagrant_provider: VagrantProvider,
    /// vagrant + libvirt only.
    pub libvirt_driver: LibvirtDriver,
    /// vagrant + libvirt only: management and lab networks without NAT or
    /// forwarding, so guests have no route off the host.
    pub isolated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub underlay: Ipv4Net,
    #[serde(rename = "underlayMTU")]
    pub underlay_mtu: u32,
    pub pod_network: Ipv4Net,
    pub subnet_len: u8,
    pub service_network: Ipv4Net,
    pub dns_domain: String,
    pub backend: Backend,
    pub ip_masq: bool,
}

/// flannel's backend: how pod traffic crosses from node to node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Backend {
    /// `flannel.<VNI>`, a VXLAN device: pod packets travel inside UDP
    /// between node IPs, so the nodes only need to reach each other.
    Vxlan { vni: u32, port: u16 },
    /// One route per peer subnet via the peer's node IP on the underlay
    /// device: pod packets travel unencapsulated, so every node must be on
    /// one L2 segment.
    HostGw,
}

impl Backend {
    /// The name the lab file uses (`network.backend.type`).
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Vxlan { .. } => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }

    /// Bytes the backend adds to every pod packet on the underlay.
    pub fn overhead(&self) -> u32 {
        match self {
            Backend::Vxlan { .. } => crate::validate::network::VXLAN_OVERHEAD,
            Backend::HostGw => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubernetes {
    /// Whether kubeadm builds a cluster on the nodes (vagrant and ssh labs,
    /// by default). Without it a lab is network-only: flannel's data plane,
    /// the agent's own pods and the cluster DNS pod, as in netns labs.
    pub enabled: bool,
    /// `1.N`.
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub cpus: u32,
    /// MiB.
    pub memory: u32,
    /// Required for the ssh provider, absent otherwise.
    pub ssh: Option<SshTarget>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Path to the private key, as written in the lab file.
    pub key: String,
    /// The host key the node must present, checked on every `up` (also on
    /// first contact); none: `~/.ssh/known_hosts`, else pinned on first use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<crate::HostKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    pub image: String,
    /// VM labs: the address outside the cluster that the `egress` check
    /// pings from every pod (opt-in: no lab depends on the internet by
    /// default). netns labs use their own outside namespace instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_target: Option<Ipv4Addr>,
}

impl Lab {
    /// The control-plane node. Validation guarantees exactly one; for a
    /// hand-built lab without one, the first node stands in.
    ///
    /// # Panics
    /// Only for a hand-built lab with no nodes at all (never after [`crate::parse`]).
    pub fn control_plane(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.role == Role::ControlPlane)
            .or_else(|| self.nodes.first())
            .expect("a validated lab has a control-plane node")
    }

    /// The worker nodes, in file order.
    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    /// The cluster DNS service IP: service network + 10.
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        offset(self.network.service_network, 10)
    }

    /// The Kubernetes API service IP: service network + 1.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        offset(self.network.service_network, 1)
    }
}

/// `net`'s network address plus `n` (saturating; validation keeps it inside).
fn offset(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

/// Decodes strictly, then defaults and validates (see [`crate::parse`]).
pub(crate) fn decode(source_name: &str, text: &str) -> Result<Lab, LabError> {
    let single = |path: String, pos: Option<Pos>, message: String, hint: Option<String>| LabError {
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            file: source_name.to_string(),
            path,
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
            hint,
        }],
    };
    let (index, duplicates) = positions::index(text).map_err(|p| {
        let hint = "check quoting, brackets and indentation here and on the lines above";
        single(
            p.path,
            Some(p.pos),
            p.message,
            p.hint.or(Some(hint.to_string())),
        )
    })?;
    if !duplicates.is_empty() {
        return Err(LabError {
            diagnostics: duplicates
                .into_iter()
                .map(|p| Diagnostic {
                    severity: Severity::Error,
                    file: source_name.to_string(),
                    path: p.path,
                    line: Some(p.pos.line),
                    column: Some(p.pos.column),
                    message: p.message,
                    hint: p.hint,
                })
                .collect(),
        });
    }
    if index.is_empty() {
        return Err(single(
            String::new(),
            None,
            "the file is empty".to_string(),
            Some("a lab needs at least apiVersion, kind, name and nodes".to_string()),
        ));
    }
    let raw =
        strict::decode_raw(text, &index).map_err(|p| single(p.path, p.pos, p.message, p.hint))?;
    validate::validate(raw, source_name, &index)
}
