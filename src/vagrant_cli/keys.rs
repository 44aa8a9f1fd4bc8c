//! Private keys named by `vagrant ssh-config`, copied into the lab folder
//! with mode 0600 before use.
//!
//! Under WSL2 the project (and Vagrant's per-machine keys) sit on /mnt/c,
//! where every file shows mode 0777, and OpenSSH refuses a private key that
//! others can read. labctl's own client would not mind, but `labctl ssh`
//! runs the system `ssh`, so every key is staged once, for both.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Folder inside the lab folder that holds the staged keys.
pub const STAGED_KEYS_DIR: &str = "vagrant-keys";

/// The lab's own private key, in [`STAGED_KEYS_DIR`]. The rendered
/// Vagrantfile looks for it under this name (`../vagrant-keys/lab_ed25519`
/// from its folder): when it exists Vagrant does not swap keys itself.
pub const LAB_KEY_FILE: &str = "lab_ed25519";

/// Where the lab's own private key lives (its public key is `.pub` next to it).
pub fn lab_key_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join(STAGED_KEYS_DIR).join(LAB_KEY_FILE)
}

/// Creates the key folder (0700) and the lab's ed25519 key pair unless
/// both halves exist; returns the private key's path.
pub fn ensure_lab_key(lab_dir: &Path, lab_name: &str) -> Result<PathBuf> {
    let path = lab_key_path(lab_dir);
    let dir = lab_dir.join(STAGED_KEYS_DIR);
    create_private_dir(&dir)?;
    crate::ssh::keygen::ensure_key(&path, &format!("labctl lab {lab_name}"))?;
    Ok(path)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        })
        .with_context(|| format!("cannot create the key folder {}", dir.display()))
}

/// Copies the private key `src` to `<lab_dir>/vagrant-keys/<id>-<file name>`
/// with mode 0600 and returns that path. `<id>` comes from `src`'s full path,
/// so the per-machine keys (all named `private_key`) do not collide and
/// staging the same key again rewrites the same file. The copy is atomic and
/// skipped when it already holds the same bytes with mode 0600.
pub fn stage_identity(src: &Path, lab_dir: &Path) -> Result<PathBuf> {
    let data = std::fs::read(src).with_context(|| {
        format!(
            "cannot read the SSH private key {} that `vagrant ssh-config` named",
            src.display()
        )
    })?;
    let id = Sha256::digest(src.as_os_str().as_encoded_bytes());
    let id: String = id[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".to_string());
    let dest = lab_dir.join(STAGED_KEYS_DIR).join(format!("{id}-{name}"));
    if is_current(&dest, &data) {
        return Ok(dest);
    }
    create_private_dir(&lab_dir.join(STAGED_KEYS_DIR))?;
    crate::render::write_atomic(&dest, &data, 0o600).with_context(|| {
        format!(
            "cannot copy the SSH private key {} to {}",
            src.display(),
            dest.display()
        )
    })?;
    Ok(dest)
}

/// Stages every key of a machine, in Vagrant's order.
pub fn stage_identities(srcs: &[PathBuf], lab_dir: &Path) -> Result<Vec<PathBuf>> {
    srcs.iter().map(|s| stage_identity(s, lab_dir)).collect()
}

fn is_current(dest: &Path, data: &[u8]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match (std::fs::metadata(dest), std::fs::read(dest)) {
        (Ok(meta), Ok(existing)) => meta.permissions().mode() & 0o777 == 0o600 && existing == data,
        _ => false,
    }
}
