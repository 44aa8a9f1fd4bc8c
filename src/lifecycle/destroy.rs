//! `labctl destroy [LAB | --name NAME]`: remove everything a lab created,
//! from its state folder alone (the lab file may be gone, the lab half
//! built). Keeps going past errors and reports them all; a lab that does not
//! exist is "nothing to do" (exit 0), so running it twice is fine.

use std::process::ExitCode;

use anyhow::anyhow;

use super::{interrupt, resolve, DestroyArgs};
use crate::exit::ExitError;
use crate::output::GlobalOpts;
use crate::provider::{self, progress::Progress};
use crate::state::LabDir;

pub fn destroy(args: &DestroyArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    interrupt::install();
    let name = resolve::lab_name(args.lab.as_deref(), args.name.as_deref())?;
    let dir = LabDir::new(&name)?;
    if !dir.exists() {
        if !global.quiet {
            println!("Lab {name} does not exist on this host: nothing to do.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = dir.lock("destroy")?;
    let state = dir.load()?;
    let provider = provider::for_kind(&state.provider)?;
    let progress = Progress::new(global.quiet);
    let errors = provider.destroy(&dir, &state, &progress);
    drop(progress);
    if errors.is_empty() {
        if !global.quiet {
            println!("Lab {name} destroyed.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
    Err(ExitError::failed(anyhow!(
        "lab {name} was not fully removed ({} problems; its state folder {} stays, run destroy again once fixed):\n  {}",
        errors.len(),
        dir.path.display(),
        all.join("\n  ")
    )))
}
