//! The command line: clap definitions and the dispatch to each command.
//!
//! `main` parses [`Cli`], calls [`run`] and maps any error to an exit
//! status (`crate::exit`). Commands print their own results; errors are
//! printed once, by `main`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::completions_cmd::CompletionsArgs;
use crate::doctor_cmd::DoctorArgs;
use crate::drill::DrillArgs;
use crate::explain::ExplainArgs;
use crate::graph::GraphArgs;
use crate::init_cmd::InitArgs;
use crate::lifecycle::{DestroyArgs, ExecArgs, ListArgs, SshArgs, StatusArgs, UpArgs};
use crate::man_cmd::ManArgs;
use crate::output::{GlobalOpts, OutputFormat};
use crate::render_cmd::RenderArgs;
use crate::validate_cmd::ValidateArgs;
use crate::verify::VerifyArgs;

const EXAMPLES: &str = "\
Examples:
  labctl init --workers 2                  write a commented ./lab.yaml to start from
  labctl validate labs/netns.yaml          check a lab file and show its plan
  labctl validate --output json lab.yaml   the full plan as JSON
  labctl render labs/vagrant.yaml --out /tmp/lab
                                           write the Vagrantfile, kubeadm configs, node plans
  sudo labctl up labs/netns.yaml           build the lab (netns needs root)
  sudo labctl verify labs/netns.yaml       prove pod networking works
  sudo labctl destroy labs/netns.yaml      remove everything the lab created
  sudo labctl doctor labs/netns.yaml       what this host lacks for the lab, with fixes
  sudo labctl explain --trace worker1/busybox worker2/busybox
                                           follow one packet hop by hop, each hop seen or not

LAB defaults to ./lab.yaml. Exit status: 0 success, 1 a check or step failed,
2 invalid lab file or usage, 3 the environment is missing something.";

/// labctl: build, verify and tear down Kubernetes pod-network (flannel VXLAN) labs.
#[derive(Debug, Parser)]
#[command(name = "labctl", version, about, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// More detail (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print only errors and requested data.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Output format for commands that print data.
    #[arg(long, value_enum, global = true, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented lab file to start from (default ./lab.yaml).
    #[command(
        after_help = "Examples:\n  labctl init\n  labctl init --provider vagrant --workers 3 -o vagrant.yaml"
    )]
    Init(InitArgs),
    /// Check a lab file and show the plan: nodes, subnets, VTEP MACs, service IPs.
    #[command(
        after_help = "Examples:\n  labctl validate labs/netns.yaml\n  labctl validate --output json labs/vagrant.yaml"
    )]
    Validate(ValidateArgs),
    /// Write the Vagrantfile, kubeadm configs and per-node plan files.
    #[command(
        after_help = "Examples:\n  labctl render labs/vagrant.yaml --out ./rendered\n  labctl render    # ./lab.yaml into the lab's state folder"
    )]
    Render(RenderArgs),
    /// Bring the lab up: nodes, SSH, the agent, flannel's data plane.
    #[command(
        after_help = "Examples:\n  sudo labctl up labs/netns.yaml\n  labctl up labs/vagrant.yaml"
    )]
    Up(UpArgs),
    /// Remove everything the lab created.
    #[command(
        after_help = "Examples:\n  sudo labctl destroy labs/netns.yaml\n  sudo labctl destroy --name flannel"
    )]
    Destroy(DestroyArgs),
    /// Show the lab's nodes and their state.
    #[command(after_help = "Examples:\n  labctl status labs/netns.yaml")]
    Status(StatusArgs),
    /// List the labs on this host.
    #[command(after_help = "Examples:\n  labctl list\n  labctl list --output json")]
    List(ListArgs),
    /// Open a shell on a node.
    #[command(after_help = "Examples:\n  labctl ssh worker1 --lab labs/netns.yaml")]
    Ssh(SshArgs),
    /// Run a command on a node (or every node).
    #[command(
        after_help = "Examples:\n  labctl exec master -- ip -d link show flannel.1\n  labctl exec --all -- ip route"
    )]
    Exec(ExecArgs),
    /// Prove the pod network works (cross-node ping, DNS, VXLAN).
    #[command(
        after_help = "Examples:\n  sudo labctl verify labs/netns.yaml\n  sudo labctl verify --check pod-mesh --junit report.xml"
    )]
    Verify(VerifyArgs),
    /// Print the lab file's JSON Schema (for editors).
    #[command(after_help = "Examples:\n  labctl schema > lab.schema.json")]
    Schema,
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(labctl completions bash)\n  labctl completions fish > ~/.config/fish/completions/labctl.fish"
    )]
    Completions(CompletionsArgs),
    /// Print labctl's man page, or write every page into a folder.
    #[command(
        after_help = "Examples:\n  labctl man | man -l -\n  labctl man --out /usr/local/share/man/man1"
    )]
    Man(ManArgs),
    /// Check this host for a lab (or any lab): one line per finding, with the fix.
    #[command(
        after_help = "Examples:\n  labctl doctor\n  sudo labctl doctor labs/netns.yaml\n  labctl doctor --output json labs/vagrant.yaml\n\nExit status: 0 nothing fails, 3 something the lab needs is missing."
    )]
    Doctor(DoctorArgs),
    /// Break-and-fix exercises: inject a fault, find it, fix it.
    #[command(
        after_help = "Examples:\n  labctl drill list\n  sudo labctl drill start fdb-entry --lab labs/netns.yaml\n  sudo labctl drill hint\n  sudo labctl drill check\n  sudo labctl drill reset"
    )]
    Drill(DrillArgs),
    /// Follow one packet hop by hop, with each hop's live values (--trace: send one).
    #[command(
        after_help = "Examples:\n  sudo labctl explain worker1/busybox worker2/busybox\n  sudo labctl explain worker1/busybox kube-dns labs/netns.yaml\n  sudo labctl explain --trace worker1/busybox 198.18.0.1\n  sudo labctl --output json explain master worker2/busybox\n\nExit status: 0 every hop agrees with the plan (and was seen), 1 a hop is broken (or not seen)."
    )]
    Explain(ExplainArgs),
    /// Draw the lab: underlay, nodes, flannel.1, cni0, pods, DNS, VXLAN tunnels.
    #[command(
        after_help = "Examples:\n  sudo labctl graph labs/netns.yaml -o lab.svg\n  labctl graph labs/vagrant.yaml --format mermaid\n  labctl graph -o lab.dot\n\nLive state when the lab is up on this host (what differs from the plan is drawn broken, with the difference), the plan otherwise; the title says which."
    )]
    Graph(GraphArgs),
    /// Show labctl's version and the embedded agent's version and SHA-256.
    Version,
    /// Hold the lab's SSH sessions for later commands (started by labctl).
    #[command(hide = true)]
    KeepSessions(KeepSessionsArgs),
}

/// `labctl keep-sessions --name LAB`: the lab's session keeper.
#[derive(Debug, clap::Args)]
pub struct KeepSessionsArgs {
    /// The lab whose state folder holds the keeper's socket.
    #[arg(long, value_parser = crate::names::lab_name_arg)]
    pub name: String,
    /// End after this many seconds without a request.
    #[arg(long, default_value_t = crate::ssh::keeper::IDLE.as_secs())]
    pub idle_secs: u64,
}

impl Cli {
    /// The options every command shares.
    pub fn global(&self) -> GlobalOpts {
        GlobalOpts::new(self.verbose, self.quiet, self.output)
    }
}

/// Runs the parsed command.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global();
    match &cli.command {
        Command::Init(args) => crate::init_cmd::init(args, &global),
        Command::Validate(args) => crate::validate_cmd::validate(args, &global),
        Command::Render(args) => crate::render_cmd::render(args, &global),
        Command::Up(args) => crate::lifecycle::up(args, &global),
        Command::Destroy(args) => crate::lifecycle::destroy(args, &global),
        Command::Status(args) => crate::lifecycle::status(args, &global),
        Command::List(args) => crate::lifecycle::list(args, &global),
        Command::Ssh(args) => crate::lifecycle::ssh(args, &global),
        Command::Exec(args) => crate::lifecycle::exec(args, &global),
        Command::Verify(args) => crate::verify::run(args, &global),
        Command::Schema => crate::schema_cmd::schema(),
        Command::Completions(args) => crate::completions_cmd::completions(args, Cli::command()),
        Command::Man(args) => crate::man_cmd::man(args, Cli::command(), &global),
        Command::Doctor(args) => crate::doctor_cmd::doctor(args, &global),
        Command::Drill(args) => crate::drill::run(args, &global),
        Command::Explain(args) => crate::explain::run(args, &global),
        Command::Graph(args) => crate::graph::run(args, &global),
        Command::Version => version(&global),
        Command::KeepSessions(args) => {
            let dir = crate::state::LabDir::new(&args.name)?;
            let socket = crate::nodes::keeper::socket(&dir);
            crate::ssh::keeper::serve(&socket, std::time::Duration::from_secs(args.idle_secs))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn version(global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    use crate::embedded::{agent_bytes, agent_sha256, AGENT_VERSION};
    match global.output {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "labctl": env!("CARGO_PKG_VERSION"),
                "agent": {
                    "version": AGENT_VERSION,
                    "sha256": agent_sha256(),
                    "size": agent_bytes().len(),
                },
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            println!("labctl {}", env!("CARGO_PKG_VERSION"));
            println!(
                "agent {AGENT_VERSION} (x86_64 static, {} bytes, sha256 {})",
                agent_bytes().len(),
                agent_sha256()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
