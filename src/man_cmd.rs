//! `labctl man [--out DIR]`: man pages made by clap_mangen from the
//! command-line definitions: `labctl.1` on stdout, or with `--out` that and
//! one `labctl-<command>.1` per command in DIR.
//!
//! The caller hands in the `clap::Command` (the command line sits in a
//! higher layer than the commands).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};

use crate::exit::ExitError;
use crate::output::GlobalOpts;

/// `labctl man`.
#[derive(Clone, Debug, clap::Args)]
pub struct ManArgs {
    /// Write labctl.1 and a page per command into this folder (created if
    /// missing) instead of printing labctl.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn man(args: &ManArgs, command: clap::Command, global: &GlobalOpts) -> Result<ExitCode> {
    // `labctl help` is clap's, not a command with a page of its own.
    let command = command.disable_help_subcommand(true);
    let Some(dir) = &args.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        use std::io::Write;
        std::io::stdout().write_all(&page)?;
        return Ok(ExitCode::SUCCESS);
    };
    let written = write_pages(command, dir)?;
    if !global.quiet {
        println!("Wrote {} man pages to {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the pages; returns their file names.
fn write_pages(command: clap::Command, dir: &Path) -> Result<Vec<String>> {
    if dir.exists() && !dir.is_dir() {
        return Err(ExitError::usage(anyhow!(
            "--out {}: not a folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Building names each command `labctl-<command>` (its page) with the
    // synopsis `labctl <command>`.
    let mut command = command;
    command.build();
    let mut pages = Vec::new();
    collect(&command, &mut pages);
    let mut written = Vec::new();
    for page_command in pages {
        let man = clap_mangen::Man::new(page_command);
        let file = man.get_filename();
        let mut page = Vec::new();
        man.render(&mut page)?;
        labctl_atomicfile::write(&dir.join(&file), &page, 0o644)
            .with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
        written.push(file);
    }
    Ok(written)
}

/// `command` and every visible command below it.
fn collect(command: &clap::Command, out: &mut Vec<clap::Command>) {
    out.push(command.clone());
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, out);
    }
}
