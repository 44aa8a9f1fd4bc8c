//! `labctl doctor [LAB]`: the host preflight as one line per finding
//! (`✓`, `!` or `✗`, the finding's id, what was found, and the fix), or
//! `--output json`. Exit 0 when nothing fails, 3 when something the lab
//! needs is missing. Without LAB, every provider's host-wide checks.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::doctor::{self, Finding, Severity, Sources};
use crate::output::{GlobalOpts, OutputFormat};

/// `labctl doctor [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct DoctorArgs {
    /// The lab file; without it, the checks for every provider.
    pub lab: Option<PathBuf>,
}

/// What `--output json` prints.
#[derive(Serialize)]
struct DoctorReport<'a> {
    lab: Option<&'a str>,
    ok: bool,
    findings: &'a [Finding],
}

pub fn doctor(args: &DoctorArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let loaded = match &args.lab {
        Some(path) => Some(crate::labfile::load(Some(path))?),
        None => None,
    };
    let lab = loaded.as_ref().map(|l| &l.lab);
    let folder = match lab {
        Some(lab) => crate::state::LabDir::new(&lab.name)?.path,
        None => PathBuf::new(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let euid = crate::process::effective_uid();
    let mut inputs = doctor::gather(&Sources::host(), &env, euid, lab, &folder);
    if let Some(lab) = lab.filter(|l| l.provider.kind == labctl_lab::ProviderType::Netns) {
        inputs.own_links = vec![crate::provider::netns::names::bridge(&lab.name)];
    }
    let findings = doctor::assess(&inputs, lab);
    let failed = findings.iter().any(|f| f.severity == Severity::Fail);
    match global.output {
        OutputFormat::Json => {
            let report = DoctorReport {
                lab: lab.map(|l| l.name.as_str()),
                ok: !failed,
                findings: &findings,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            for finding in &findings {
                println!("{}", finding.line(global.color));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(crate::exit::ENVIRONMENT)
    } else {
        ExitCode::SUCCESS
    })
}
