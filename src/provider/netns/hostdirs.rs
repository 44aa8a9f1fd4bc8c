//! Host folders netns labs need but the host may lack: mount targets for the
//! per-node binds (/run/flannel, /etc/cni/net.d, /run/labctl-agent), sshd's
//! privilege-separation folder (/run/sshd) and /etc/netns.
//!
//! They are shared by every netns lab on the host (a node's bind needs its
//! target to exist; removing a target under another lab's mounts would
//! detach them), so which ones labctl created is recorded host-wide in
//! `<labctl state>/host-dirs.json`, and the last lab's destroy removes them
//! (when empty). A host-wide flock serialises this between labs.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Folders a netns node needs on the host.
pub const NEEDED: &[&str] = &[
    "/run/sshd",
    "/run/flannel",
    "/etc/cni/net.d",
    "/run/labctl-agent",
    "/etc/netns",
];

fn labctl_dir() -> Result<PathBuf> {
    let root = crate::state::labs_root()?;
    Ok(root.parent().map(Path::to_path_buf).unwrap_or(root))
}

/// Holds the host-wide lock while alive.
struct HostLock {
    _file: fs::File,
}

fn host_lock() -> Result<HostLock> {
    let dir = labctl_dir()?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("host.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on our own fd; blocking is fine (held for milliseconds).
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot lock {}", path.display()));
    }
    Ok(HostLock { _file: file })
}

fn record_file() -> Result<PathBuf> {
    Ok(labctl_dir()?.join("host-dirs.json"))
}

fn read_record() -> Result<Vec<PathBuf>> {
    let path = record_file()?;
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the folders in [`NEEDED`] that are missing (with missing
/// parents), recording each one created.
pub fn ensure() -> Result<()> {
    let _lock = host_lock()?;
    let mut created = read_record()?;
    let before = created.len();
    for dir in NEEDED {
        let mut missing = Vec::new();
        let mut cur = Some(Path::new(dir));
        while let Some(p) = cur {
            if p.exists() {
                break;
            }
            missing.push(p.to_path_buf());
            cur = p.parent();
        }
        for p in missing.into_iter().rev() {
            fs::create_dir(&p)
                .with_context(|| format!("cannot create the host folder {}", p.display()))?;
            created.push(p);
        }
    }
    if created.len() != before {
        let text = serde_json::to_string_pretty(&created)?;
        crate::state::write_mode(&record_file()?, text.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// When no lab remains, removes the recorded folders that are empty (deepest
/// first), then the record. Folders that are not empty stay (someone put
/// something there).
pub fn release_if_last() -> Result<()> {
    let _lock = host_lock()?;
    if !crate::state::lab_names().is_empty() {
        return Ok(());
    }
    let mut created = read_record()?;
    created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in &created {
        let _ = fs::remove_dir(dir);
    }
    let _ = fs::remove_file(record_file()?);
    Ok(())
}
