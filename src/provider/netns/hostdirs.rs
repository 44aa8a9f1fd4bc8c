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

pub(super) fn labctl_dir() -> Result<PathBuf> {
    let root = crate::state::labs_root()?;
    Ok(root.parent().map(Path::to_path_buf).unwrap_or(root))
}

/// Holds the host-wide lock while alive.
pub(super) struct HostLock {
    _file: fs::File,
}

fn host_lock() -> Result<HostLock> {
    lock_at(&labctl_dir()?.join("host.lock"))
}

/// Takes the flock on `path` (creating it and its folder), blocking.
pub(super) fn lock_at(path: &Path) -> Result<HostLock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
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
    read_record_at(&record_file()?)
}

fn read_record_at(path: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the folders in [`NEEDED`] that are missing (with missing
/// parents), each recorded before it is created.
pub fn ensure() -> Result<()> {
    let _lock = host_lock()?;
    let needed: Vec<&Path> = NEEDED.iter().map(Path::new).collect();
    create_recorded(&needed, &record_file()?)
}

/// Writes the folders of `needed` that are missing (parents first) into
/// the record at `record`, then creates them: a labctl killed in between
/// leaves a record of a folder that may not exist (harmless), never a
/// folder nobody removes.
fn create_recorded(needed: &[&Path], record: &Path) -> Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    for dir in needed {
        let mut chain = Vec::new();
        let mut cur = Some(*dir);
        while let Some(p) = cur.filter(|p| !p.exists() && !missing.iter().any(|m| m == p)) {
            chain.push(p.to_path_buf());
            cur = p.parent();
        }
        missing.extend(chain.into_iter().rev());
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut recorded = read_record_at(record)?;
    for p in &missing {
        if !recorded.contains(p) {
            recorded.push(p.clone());
        }
    }
    let text = serde_json::to_string_pretty(&recorded)?;
    crate::state::write_mode(record, text.as_bytes(), 0o644)?;
    for p in &missing {
        fs::create_dir(p)
            .with_context(|| format!("cannot create the host folder {}", p.display()))?;
    }
    Ok(())
}

/// When no lab remains, removes the recorded folders that are empty (deepest
/// first), then the record. Folders that are not empty stay (someone put
/// something there).
pub fn release_if_last() -> Result<()> {
    if !record_file()?.exists() {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_recorded_before_they_are_created() {
        let root = tempfile::tempdir().unwrap();
        let record = root.path().join("host-dirs.json");
        let (a, ab, c) = (
            root.path().join("a"),
            root.path().join("a/b"),
            root.path().join("c"),
        );
        create_recorded(&[&ab, &c, &a], &record).unwrap();
        assert!(ab.is_dir() && c.is_dir());
        assert_eq!(
            read_record_at(&record).unwrap(),
            [a.clone(), ab.clone(), c.clone()]
        );

        // A folder that cannot be created (its parent is a file) is in the
        // record all the same: what was created before a failure, or a
        // kill, is never lost.
        fs::write(root.path().join("file"), "").unwrap();
        let d = root.path().join("d");
        let under_file = root.path().join("file/x");
        assert!(create_recorded(&[&d, &under_file], &record).is_err());
        assert!(d.is_dir());
        assert_eq!(read_record_at(&record).unwrap(), [a, ab, c, d, under_file]);
    }
}
