//! Providers: what makes a lab's machines exist before labctl reaches them
//! over SSH. Kind-style, `create` is a sequence of named steps, each printed
//! as a ✓/✗ line by [`crate::ui::progress::Progress`].
//!
//! Every provider ends the same way: the lab's nodes answer SSH at the
//! endpoints recorded in the lab's state, and the lifecycle code
//! ([`crate::lifecycle`]) uploads the agent and applies the plans through
//! the node layer ([`crate::nodes`]). Providers stand on that layer and on
//! `ssh`, `state` and `ui`; they never import lifecycle or verify.
//! - [`netns`]: namespaces on this host (the default).
//! - [`ssh_hosts`]: existing machines; also the node sequence the vagrant
//!   provider shares (checks, remote DNS server, node removal).
//! - [`vagrant`]: VMs from a rendered Vagrantfile, then as [`ssh_hosts`].
//! - [`dns_records`]: the cluster DNS server's configuration, for all of
//!   them.

pub mod dns_records;
pub mod netns;
pub mod ssh_hosts;
pub mod vagrant;

use anyhow::Result;
use labctl_lab::{Lab, ProviderType};

use crate::state::{LabDir, LabState};
use crate::ui::progress::Progress;

/// A cluster DNS record set: names to addresses, served from `server_ip`
/// (a pod on the control-plane node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecords {
    pub server_netns: String,
    pub server_ip: std::net::Ipv4Addr,
    pub domain: String,
    pub records: Vec<(String, std::net::Ipv4Addr)>,
}

/// What a provider does on this host.
pub trait Provider: Sync {
    /// `netns`, `vagrant`, `ssh`.
    fn kind(&self) -> &'static str;

    /// Checks this host before anything is created: privileges, tools
    /// (exit 3 naming what is missing), conflicts with host routes and other
    /// labs (exit 2). With `install_deps`, installs missing tools first.
    fn preflight(&self, lab: &Lab, dir: &LabDir, install_deps: bool) -> Result<()>;

    /// Makes the lab's machines exist and answer SSH, converging an existing
    /// lab (adding nodes new in `lab`, removing nodes no longer in it).
    /// Records everything it creates in `state`, saving it before each
    /// next step. Returns how many machines that stood it had to repair
    /// (counted as changes of `up`).
    fn create(
        &self,
        lab: &Lab,
        dir: &LabDir,
        state: &mut LabState,
        progress: &Progress,
    ) -> Result<u64>;

    /// Makes the pods the nodes registered reachable by name from this host
    /// where the provider keeps them apart (netns: a `/run/netns` link per
    /// pod). Returns how many it made or corrected.
    fn link_pods(&self, _dir: &LabDir, _state: &LabState) -> Result<u64> {
        Ok(0)
    }

    /// Starts (or restarts, when the records changed) the cluster DNS
    /// server. Returns true when something changed. By default the server
    /// runs on the control-plane node, reached over SSH; the netns provider
    /// runs it from this host.
    fn serve_dns(&self, dir: &LabDir, state: &mut LabState, dns: &DnsRecords) -> Result<bool> {
        ssh_hosts::dns_server::serve(dir, state, dns)
    }

    /// Removes everything the lab created, keeping going past errors; returns
    /// them all. Works from the state alone (no lab file needed).
    fn destroy(&self, dir: &LabDir, state: &LabState, progress: &Progress) -> Vec<anyhow::Error>;
}

/// The provider for a lab file's `provider.type`.
pub fn for_lab(lab: &Lab) -> Result<&'static dyn Provider> {
    for_kind(match lab.provider.kind {
        ProviderType::Netns => "netns",
        ProviderType::Vagrant => "vagrant",
        ProviderType::Ssh => "ssh",
    })
}

/// The provider recorded in a lab's state.
pub fn for_kind(kind: &str) -> Result<&'static dyn Provider> {
    match kind {
        "netns" => Ok(&netns::NetnsProvider),
        "ssh" => Ok(&ssh_hosts::SshProvider),
        "vagrant" => Ok(&vagrant::VagrantProvider),
        other => Err(crate::exit::ExitError::usage(anyhow::anyhow!(
            "the lab state names the provider {other:?}, which this labctl does not know (netns, vagrant, ssh)"
        ))),
    }
}
