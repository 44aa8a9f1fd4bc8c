//! `labctl render [LAB] [--out DIR]`: writes every rendered artifact.
//!
//! Default folder: the lab's state folder + `render`
//! ([`crate::paths::lab_dir`]). Everything is rendered in memory first, so an
//! invalid lab or a template error writes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::labfile;
use crate::output::{paint, GlobalOpts, OutputFormat, Style};
use crate::render::{self, JoinSecrets};

/// `labctl render [LAB] [--out DIR]`.
#[derive(Clone, Debug, clap::Args)]
pub struct RenderArgs {
    /// The lab file (default: ./lab.yaml).
    pub lab: Option<PathBuf>,
    /// Write here instead of the lab's state folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn render(args: &RenderArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let loaded = labfile::load(args.lab.as_deref())?;
    let lab = &loaded.lab;
    let plans = labctl_lab::plan(lab);
    // The CLI never holds cluster secrets: kubeadm files get placeholders,
    // which `labctl up` fills in on the nodes.
    let artifacts = render::render_all(lab, &plans, &JoinSecrets::default())?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => crate::paths::lab_dir(&lab.name)?.join("render"),
    };
    render::write_all(&out, &artifacts)
        .with_context(|| format!("rendering lab {} into {} failed", lab.name, out.display()))?;

    let files: Vec<String> = artifacts
        .iter()
        .map(|a| a.path.display().to_string())
        .collect();
    match global.output {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "lab": lab.name,
                "backend": lab.network.backend.name(),
                "out": out.display().to_string(),
                "files": files,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            if !global.quiet {
                let color = crate::output::stderr_color();
                for warning in &lab.warnings {
                    eprintln!("{}", paint(&warning.to_string(), Style::Yellow, color));
                }
                println!(
                    "rendered lab {} (flannel backend {}) into {} ({} files)",
                    lab.name,
                    lab.network.backend.name(),
                    out.display(),
                    files.len()
                );
                if global.verbose > 0 {
                    for file in &files {
                        println!("  {file}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
