//! Finding, reading and validating the lab file a command names.
//!
//! Every command that takes `[LAB]` goes through [`load`]: a missing or
//! invalid file ends labctl with exit 2 before anything else happens.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use labctl_lab::{Lab, LabError, Severity};

use crate::exit::ExitError;

/// The lab file used when a command is given none.
pub const DEFAULT_LAB: &str = "lab.yaml";

/// A validated lab and the path it came from.
#[derive(Clone, Debug)]
pub struct LoadedLab {
    pub path: PathBuf,
    pub lab: Lab,
}

/// Reads and validates `path` (default `./lab.yaml`).
///
/// Errors: a missing or unreadable file is exit 2 with a sentence naming it;
/// an invalid lab is the [`LabError`] (every diagnostic) under a one-line
/// summary, also exit 2.
pub fn load(path: Option<&Path>) -> anyhow::Result<LoadedLab> {
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LAB));
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = if path == Path::new(DEFAULT_LAB) {
                " (no LAB argument was given, so labctl looked for ./lab.yaml; \
                 pass one, e.g. `labctl validate labs/netns.yaml`)"
            } else {
                ""
            };
            return Err(ExitError::usage(anyhow!(
                "lab file {shown} does not exist{hint}"
            )));
        }
        Err(e) => {
            return Err(ExitError::usage(
                anyhow::Error::new(e).context(format!("cannot read lab file {shown}")),
            ))
        }
    };
    match labctl_lab::parse(&shown, &text) {
        Ok(lab) => Ok(LoadedLab { path, lab }),
        Err(error) => Err(invalid(&shown, error)),
    }
}

/// The lab error under a summary line: `lab file X is invalid (2 errors)`.
fn invalid(shown: &str, error: LabError) -> anyhow::Error {
    let errors = error
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let noun = if errors == 1 { "error" } else { "errors" };
    anyhow::Error::new(error).context(format!("lab file {shown} is invalid ({errors} {noun})"))
}
