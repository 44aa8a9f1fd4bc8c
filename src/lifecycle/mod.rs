//! The lab lifecycle commands: up, destroy, status, list, ssh, exec.
//! Each lives in its own file; this one holds their arguments.

pub mod destroy;
pub mod node_shell;
pub mod one_segment;
pub mod status;
pub mod up;

pub use destroy::destroy;
pub use node_shell::{exec, ssh};
pub use status::{list, status};
pub use up::up;

/// `labctl up [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct UpArgs {
    /// The lab file (default: ./lab.yaml).
    pub lab: Option<std::path::PathBuf>,
    /// Install missing host tools (apt-get or dnf) before bringing the lab up.
    #[arg(long)]
    pub install_deps: bool,
    /// Run `labctl verify` once the lab is up; the exit status is verify's.
    #[arg(long)]
    pub verify: bool,
}

/// `labctl destroy [LAB | --name NAME]`.
#[derive(Clone, Debug, clap::Args)]
pub struct DestroyArgs {
    /// The lab file (default: ./lab.yaml, else the only lab on this host).
    pub lab: Option<std::path::PathBuf>,
    /// Destroy the lab of this name (works when the lab file is gone).
    #[arg(long, conflicts_with = "lab", value_parser = crate::names::lab_name_arg)]
    pub name: Option<String>,
    /// ssh labs whose hosts are gone for good: remove only labctl's record
    /// of the lab on this host, without reaching the nodes.
    #[arg(long)]
    pub forget: bool,
}

/// `labctl status [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// The lab file (default: ./lab.yaml, else the only lab on this host).
    pub lab: Option<std::path::PathBuf>,
    /// The lab of this name (works when the lab file is gone).
    #[arg(long, conflicts_with = "lab", value_parser = crate::names::lab_name_arg)]
    pub name: Option<String>,
}

/// `labctl list`.
#[derive(Clone, Debug, clap::Args)]
pub struct ListArgs {}

/// `labctl ssh NODE`.
#[derive(Clone, Debug, clap::Args)]
pub struct SshArgs {
    /// The node to open a shell on.
    pub node: String,
    /// The lab, as a file or a name.
    #[arg(long)]
    pub lab: Option<String>,
}

/// `labctl exec NODE|--all -- CMD...`.
#[derive(Clone, Debug, clap::Args)]
pub struct ExecArgs {
    /// The node to run on (or --all).
    #[arg(required_unless_present = "all")]
    pub node: Option<String>,
    /// Run on every node, output prefixed by node name.
    #[arg(long)]
    pub all: bool,
    /// The lab, as a file or a name.
    #[arg(long)]
    pub lab: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}
