//! The lab file exactly as written: every field optional, unknown keys
//! refused. Defaults and semantic checks happen later (validate.rs), so a
//! decoding error here is always about shape (unknown key, wrong type).
//!
//! Plain structs and unit enums only: tagged enums lose error locations.
//! Addresses and networks stay strings here so that a bad one becomes a
//! semantic diagnostic, collected with all the others, instead of stopping
//! decoding at the first.

use serde::Deserialize;

use crate::model::{LibvirtDriver, ProviderType, Role, VagrantProvider};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLab {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub provider: Option<RawProvider>,
    pub network: Option<RawNetwork>,
    pub kubernetes: Option<RawKubernetes>,
    pub nodes: Option<Vec<RawNode>>,
    pub verify: Option<RawVerify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProvider {
    #[serde(rename = "type")]
    pub kind: Option<ProviderType>,
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    pub vagrant_provider: Option<VagrantProvider>,
    pub libvirt_driver: Option<LibvirtDriver>,
    pub isolated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNetwork {
    pub underlay: Option<String>,
    #[serde(rename = "underlayMTU")]
    pub underlay_mtu: Option<u64>,
    pub pod_network: Option<String>,
    pub subnet_len: Option<u64>,
    pub service_network: Option<String>,
    pub dns_domain: Option<String>,
    pub backend: Option<RawBackend>,
    pub ip_masq: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackend {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub vni: Option<u64>,
    pub port: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKubernetes {
    pub enabled: Option<bool>,
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNode {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub ip: Option<String>,
    pub cpus: Option<u64>,
    pub memory: Option<u64>,
    pub ssh: Option<RawSsh>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSsh {
    pub host: Option<String>,
    pub port: Option<u64>,
    pub user: Option<String>,
    pub key: Option<String>,
    pub host_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVerify {
    pub image: Option<String>,
    pub egress_target: Option<String>,
}
