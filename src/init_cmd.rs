//! `labctl init`: writes a commented lab file to start from.
//!
//! The file spells out every field with its default and says what it means,
//! so a learner reads the lab before building it. The text comes from
//! [`lab_text`] (pure, in `text.rs`) and is decoded with the lab crate before anything is
//! written: `init` never writes a file `labctl validate` would refuse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use labctl_lab::{is_lab_name, is_node_name, ProviderType, LAB_NAME_RULE};

mod text;

pub use text::lab_text;

use crate::exit::ExitError;
use crate::output::{GlobalOpts, OutputFormat};

/// Most workers `init` writes: node i gets the underlay's .10 + i, and .254
/// is the last host address of the /24.
pub const MAX_WORKERS: u16 = 240;

/// `labctl init`.
#[derive(Clone, Debug, clap::Args)]
pub struct InitArgs {
    /// What the nodes are: network namespaces here, Vagrant VMs, or existing
    /// hosts over SSH.
    #[arg(long, value_enum, default_value_t = InitProvider::Netns)]
    pub provider: InitProvider,
    /// Workers besides the control plane.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=MAX_WORKERS as i64))]
    pub workers: u16,
    /// The lab's name (lowercase letters, digits and '-', at most 20).
    #[arg(long, default_value = "flannel")]
    pub name: String,
    /// Where to write the lab file; `-` prints it.
    #[arg(short, long, value_name = "FILE", default_value = "lab.yaml")]
    pub output_file: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `--provider` values (the lab crate's type has no clap derive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitProvider {
    Netns,
    Vagrant,
    Ssh,
}

impl InitProvider {
    /// As written in the lab file and on the command line.
    fn name(self) -> &'static str {
        match self {
            InitProvider::Netns => "netns",
            InitProvider::Vagrant => "vagrant",
            InitProvider::Ssh => "ssh",
        }
    }
}

impl From<InitProvider> for ProviderType {
    fn from(p: InitProvider) -> ProviderType {
        match p {
            InitProvider::Netns => ProviderType::Netns,
            InitProvider::Vagrant => ProviderType::Vagrant,
            InitProvider::Ssh => ProviderType::Ssh,
        }
    }
}

pub fn init(args: &InitArgs, global: &GlobalOpts) -> Result<ExitCode> {
    if !is_lab_name(&args.name) {
        return Err(ExitError::usage(anyhow!(
            "--name {:?} is not a lab name: {LAB_NAME_RULE}",
            args.name
        )));
    }
    let nodes = node_names(args.workers);
    if let Some(bad) = nodes.iter().find(|n| !is_node_name(n)) {
        return Err(anyhow!(
            "internal: node name {bad} breaks the node name rule"
        ));
    }
    let provider = ProviderType::from(args.provider);
    let text = lab_text(provider, &args.name, &nodes);
    let to_stdout = args.output_file.as_os_str() == "-";
    let shown = args.output_file.display().to_string();
    // The file must be one `labctl validate` accepts.
    labctl_lab::parse(&shown, &text).map_err(|e| anyhow!("internal: init wrote a bad lab: {e}"))?;
    if to_stdout {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    write_new(&args.output_file, text.as_bytes(), args.force)?;
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"file": shown, "name": args.name, "provider": args.provider.name(), "nodes": nodes})
        ),
        OutputFormat::Text if !global.quiet => {
            let sudo = if provider == ProviderType::Netns {
                "sudo "
            } else {
                ""
            };
            println!(
                "Wrote {shown}: {provider} lab {}, 1 control plane + {} worker{}.\nNext: labctl validate {shown}, then {sudo}labctl up {shown}",
                args.name,
                args.workers,
                if args.workers == 1 { "" } else { "s" },
                provider = args.provider.name(),
            );
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `master`, `worker1` … `workerN`.
fn node_names(workers: u16) -> Vec<String> {
    std::iter::once("master".to_string())
        .chain((1..=workers).map(|i| format!("worker{i}")))
        .collect()
}

/// Writes `bytes` to `path`: a new file, or with `force` a replacement
/// (written aside and renamed, so a failed write leaves the old file).
fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    crate::paths::check_output_file(path, "lab.yaml")?;
    let shown = path.display();
    if force {
        return labctl_atomicfile::write(path, bytes, 0o644)
            .with_context(|| format!("cannot write {shown}"));
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ExitError::usage(anyhow!(
                "{shown} exists; labctl init does not overwrite it (use --force to replace it, or -o another file)"
            )))
        }
        Err(e) => return Err(anyhow!(e).context(format!("cannot create {shown}"))),
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {shown}"))
}
