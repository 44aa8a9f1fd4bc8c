//! Which lab a command means (every command that acts on a lab: the
//! lifecycle commands, drills). A lab is named by its file (`destroy`,
//! `status` take `[LAB]`), by its name (`destroy --name`), or either
//! (`ssh`/`exec --lab FILE|NAME`). With nothing given: `./lab.yaml` if it
//! exists, else the only lab on this host; with several, say which exist
//! and ask to choose (exit 2).

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::exit::ExitError;
use crate::labfile;
use crate::state::{self, LabDir, LabState};

/// A lab that exists on this host.
pub struct ExistingLab {
    pub dir: LabDir,
    pub state: LabState,
}

/// The lab name from a file, a name, a `FILE|NAME` word, or the defaults.
pub fn lab_name(file: Option<&Path>, name: Option<&str>) -> Result<String> {
    if let Some(name) = name {
        crate::names::check_lab_name(name)?;
        return Ok(name.to_string());
    }
    if let Some(file) = file {
        return Ok(labfile::load(Some(file))?.lab.name);
    }
    if Path::new(labfile::DEFAULT_LAB).is_file() {
        return Ok(labfile::load(None)?.lab.name);
    }
    let labs = state::lab_names();
    match labs.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ExitError::usage(anyhow!(
            "no lab named and no lab exists on this host (and there is no ./lab.yaml); \
             bring one up with `labctl up LAB.yaml`"
        ))),
        many => Err(ExitError::usage(anyhow!(
            "no lab named and this host has several: {}; choose one (a lab file, or --name/--lab NAME)",
            many.join(", ")
        ))),
    }
}

/// `--lab FILE|NAME`: an existing file is a lab file, anything else must
/// be a lab name (exit 2 otherwise, before any path is built from it).
pub fn lab_word(word: Option<&str>) -> Result<String> {
    match word {
        Some(w) if Path::new(w).is_file() => lab_name(Some(Path::new(w)), None),
        Some(w) if !labctl_lab::is_lab_name(w) => Err(ExitError::usage(anyhow!(
            "--lab {} is neither a lab file nor a lab name: name an existing lab file, or a lab ({})",
            crate::names::quoted(w),
            labctl_lab::LAB_NAME_RULE
        ))),
        Some(w) => lab_name(None, Some(w)),
        None => lab_name(None, None),
    }
}

/// Opens the state of an existing lab; exit 2 when there is none, exit 3
/// when it is another user's (then the message says how to run `command`).
pub fn existing(name: &str, command: &str) -> Result<ExistingLab> {
    let dir = LabDir::new(name)?;
    if !dir.exists() {
        crate::lab_owner::refuse_if_elsewhere(name, command, ExitError::environment)?;
        let others = state::lab_names();
        let hint = if others.is_empty() {
            "no lab exists on this host".to_string()
        } else {
            format!("labs on this host: {}", others.join(", "))
        };
        return Err(ExitError::usage(anyhow!(
            "lab {name} does not exist on this host ({hint})"
        )));
    }
    let state = dir.load()?;
    Ok(ExistingLab { dir, state })
}
