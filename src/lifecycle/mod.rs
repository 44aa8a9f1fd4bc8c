//! The lab lifecycle commands: up, destroy, status, list, ssh, exec.
//!
//! (Stub: the arguments are final in spirit; implementations land with the
//! providers.)

use std::process::ExitCode;

use crate::output::GlobalOpts;

/// `labctl up [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct UpArgs {
    /// The lab file (default: ./lab.yaml).
    pub lab: Option<std::path::PathBuf>,
}

/// `labctl destroy [LAB | --name NAME]`.
#[derive(Clone, Debug, clap::Args)]
pub struct DestroyArgs {
    /// The lab file (default: ./lab.yaml, else the only lab on this host).
    pub lab: Option<std::path::PathBuf>,
    /// Destroy the lab of this name (works when the lab file is gone).
    #[arg(long, conflicts_with = "lab")]
    pub name: Option<String>,
}

/// `labctl status [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    pub lab: Option<std::path::PathBuf>,
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

fn not_yet(what: &str) -> anyhow::Result<ExitCode> {
    Err(crate::exit::ExitError::environment(anyhow::anyhow!(
        "`labctl {what}` is not implemented yet"
    )))
}

pub fn up(_args: &UpArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("up")
}
pub fn destroy(_args: &DestroyArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("destroy")
}
pub fn status(_args: &StatusArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("status")
}
pub fn list(_args: &ListArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("list")
}
pub fn ssh(_args: &SshArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("ssh")
}
pub fn exec(_args: &ExecArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    not_yet("exec")
}
