//! SSH key pairs labctl makes for its labs (client keys, netns nodes' host
//! keys, a vagrant lab's own key), with the system `ssh-keygen`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::hostcmd;

/// Generates an ed25519 key pair at `path` (and `path.pub`) unless present.
/// Returns true when it generated one.
pub fn ensure_key(path: &Path, comment: &str) -> Result<bool> {
    if path.is_file() && path.with_extension("pub").is_file() {
        return Ok(false);
    }
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let p = path.to_string_lossy();
    hostcmd::run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
    )
    .with_context(|| format!("generating the SSH key {p}"))?;
    Ok(true)
}
