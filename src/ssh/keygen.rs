//! SSH key pairs labctl makes for its labs (client keys, netns nodes' host
//! keys, a vagrant lab's own key), with the system `ssh-keygen`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::hostcmd;

/// A key type labctl generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    /// ECDSA on NIST P-256.
    EcdsaP256,
}

impl KeyKind {
    /// `ssh-keygen`'s arguments for this type.
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::EcdsaP256 => &["-t", "ecdsa", "-b", "256"],
        }
    }
}

/// Generates an ed25519 key pair at `path` (and `path.pub`) unless present.
/// Returns true when it generated one.
pub fn ensure_key(path: &Path, comment: &str) -> Result<bool> {
    ensure_key_of(KeyKind::Ed25519, path, comment)
}

/// Generates a key pair of `kind` at `path` (and `path.pub`) unless
/// present. Returns true when it generated one.
pub fn ensure_key_of(kind: KeyKind, path: &Path, comment: &str) -> Result<bool> {
    if path.is_file() && path.with_extension("pub").is_file() {
        return Ok(false);
    }
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let p = path.to_string_lossy();
    let mut args = vec!["-q"];
    args.extend(kind.keygen_args());
    args.extend(["-N", "", "-C", comment, "-f", &p]);
    hostcmd::run("ssh-keygen", &args).with_context(|| format!("generating the SSH key {p}"))?;
    Ok(true)
}
