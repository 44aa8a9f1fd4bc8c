//! Files the agent owns: written atomically (temporary file in the same
//! directory, mode set, fsync, rename), compared byte for byte. Directories
//! the agent had to create are recorded in the state directory so that
//! `teardown` removes exactly those again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use labctl_nodeplan::NodePlan;

use crate::error::{describe_io, failed, Result};
use crate::links::Mode;
use crate::report::{Action, Collector, Difference, ObjectKind};

/// The file in the state directory listing directories the agent created.
const CREATED_DIRS: &str = "created-dirs";

/// Contents and permission bits of an existing file.
pub fn read(path: &Path) -> Option<(String, u32)> {
    let meta = fs::metadata(path).ok()?;
    let contents = fs::read_to_string(path).ok()?;
    Some((contents, meta.permissions().mode() & 0o7777))
}

/// `mkdir -p`, returning the directories that did not exist before
/// (outermost first).
pub fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    missing.reverse();
    for p in &missing {
        match fs::create_dir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(failed(
                    format!("cannot create directory {}", p.display()),
                    describe_io(&e),
                ))
            }
        }
    }
    Ok(missing)
}

/// Creates the state directory, recording it (and any parent it had to
/// create) for teardown.
pub fn ensure_state_dir(state_dir: &Path) -> Result<()> {
    let created = create_dirs(state_dir)?;
    remember_dirs(state_dir, &created)
}

/// Records directories the agent created, so teardown can remove them.
pub fn remember_dirs(state_dir: &Path, dirs: &[PathBuf]) -> Result<()> {
    if dirs.is_empty() {
        return Ok(());
    }
    let list = state_dir.join(CREATED_DIRS);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .map_err(|e| {
            failed(
                format!("cannot record created directories in {}", list.display()),
                describe_io(&e),
            )
        })?;
    for d in dirs {
        writeln!(f, "{}", d.display())
            .map_err(|e| failed(format!("cannot write {}", list.display()), describe_io(&e)))?;
    }
    Ok(())
}

/// Directories recorded by [`remember_dirs`], innermost last.
pub fn remembered_dirs(state_dir: &Path) -> Vec<PathBuf> {
    fs::read_to_string(state_dir.join(CREATED_DIRS))
        .map(|s| s.lines().map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Writes `contents` to `path` atomically with permission bits `mode`.
/// Returns directories it had to create.
pub fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<Vec<PathBuf>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let created = create_dirs(dir)?;
    labctl_atomicfile::write(path, contents.as_bytes(), mode)
        .map_err(|e| failed(format!("cannot write {}", path.display()), describe_io(&e)))?;
    Ok(created)
}

/// Converges every file of the plan.
pub fn converge(plan: &NodePlan, mode: Mode, out: &mut Collector) {
    let mut created_dirs = Vec::new();
    for file in &plan.files {
        let path = Path::new(&file.path);
        let obj = format!("file {}", file.path);
        let diff = |label: String| Difference::new(ObjectKind::File, label, &file.path);
        let mut changes = Vec::new();
        let action = match read(path) {
            None => {
                changes.push(diff(obj.clone()).expected(Some(file.contents.clone())));
                Action::Created
            }
            Some((contents, mode_bits)) => {
                if contents != file.contents {
                    changes.push(
                        diff(obj.clone())
                            .expected(Some(file.contents.clone()))
                            .actual(Some(contents)),
                    );
                }
                if mode_bits != file.mode {
                    changes.push(
                        diff(format!("{obj} mode"))
                            .attribute("mode")
                            .expected(Some(format!("{:04o}", file.mode)))
                            .actual(Some(format!("{mode_bits:04o}"))),
                    );
                }
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Updated
                }
            }
        };
        out.object(ObjectKind::File, &obj, action, changes);
        if mode == Mode::Apply && action != Action::Unchanged {
            match write_atomic(path, &file.contents, file.mode) {
                Ok(dirs) => created_dirs.extend(dirs),
                Err(e) => out.fail(&obj, e.to_string()),
            }
        }
    }
    if let Err(e) = remember_dirs(Path::new(&plan.state_dir), &created_dirs) {
        out.errors.push(e.to_string());
    }
}

/// Removes the plan's files; returns what was removed and what failed.
pub fn teardown(plan: &NodePlan, removed: &mut Vec<String>, errors: &mut Vec<String>) {
    for file in &plan.files {
        match fs::remove_file(&file.path) {
            Ok(()) => removed.push(format!("file {}", file.path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("cannot remove {}: {}", file.path, describe_io(&e))),
        }
    }
}

/// Removes the state directory and the directories the agent created
/// (those still empty), innermost first.
///
/// The state directory may be a mount point (a tmpfs or bind mount the
/// caller set up, e.g. because /run is noexec): it is then emptied, not
/// removed, and so is any mount point inside it left in place. Unmounting
/// is for whoever mounted it; what stays is listed in `kept`, not as an
/// error.
pub fn remove_state(
    plan: &NodePlan,
    removed: &mut Vec<String>,
    kept: &mut Vec<String>,
    errors: &mut Vec<String>,
) {
    let state = Path::new(&plan.state_dir);
    let dirs = remembered_dirs(state);
    if let Ok(state) = fs::canonicalize(state) {
        let mounts = mount_points();
        let mut inner_mounts = Vec::new();
        empty_dir(&state, &mounts, &mut inner_mounts, errors);
        for m in &inner_mounts {
            kept.push(format!(
                "directory {}: a mount point, left mounted for whoever mounted it",
                m.display()
            ));
        }
        if mounts.contains(&state) {
            kept.push(format!(
                "directory {} (emptied): a mount point, left mounted for whoever mounted it",
                plan.state_dir
            ));
        } else if inner_mounts.is_empty() {
            match fs::remove_dir(&state) {
                Ok(()) => removed.push(format!("directory {}", plan.state_dir)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors.push(format!(
                    "cannot remove {}: {}",
                    plan.state_dir,
                    describe_io(&e)
                )),
            }
        } else {
            kept.push(format!(
                "directory {} (emptied): it holds the mount points above",
                plan.state_dir
            ));
        }
    }
    let mut dirs = dirs;
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        if d.is_dir() && fs::remove_dir(&d).is_ok() {
            removed.push(format!("directory {}", d.display()));
        }
    }
}

/// Removes everything under `dir` except mount points (and the folders
/// leading to them), which go to `kept_mounts`. Symbolic links are removed,
/// never followed.
fn empty_dir(
    dir: &Path,
    mounts: &[PathBuf],
    kept_mounts: &mut Vec<PathBuf>,
    errors: &mut Vec<String>,
) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!(
                "cannot list {}: {}",
                dir.display(),
                describe_io(&e)
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if mounts.contains(&path) {
            kept_mounts.push(path);
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let result = if is_dir {
            let before = kept_mounts.len();
            empty_dir(&path, mounts, kept_mounts, errors);
            if kept_mounts.len() > before {
                continue;
            }
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!(
                "cannot remove {}: {}",
                path.display(),
                describe_io(&e)
            )),
        }
    }
}

/// Every mount point in this process's mount namespace, from
/// /proc/self/mountinfo (a bind mount of a folder of the same filesystem
/// has the same device number as its parent, so comparing `st_dev` would
/// miss it).
pub fn mount_points() -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse_mount_points(&text))
        .unwrap_or_default()
}

/// The fifth field of each mountinfo line, with the kernel's octal escapes
/// (`\040` for a space, ...) undone.
fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                u8::try_from(value).ok()
            });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_come_from_the_fifth_field_unescaped() {
        let text = "22 1 0:21 / / rw - ext4 /dev/vda1 rw\n\
                    40 22 0:30 / /run/labctl-agent rw shared:1 - tmpfs labctl-agent rw\n\
                    41 22 0:31 /x /run/a\\040b rw - tmpfs t rw\n";
        assert_eq!(
            parse_mount_points(text),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/run/labctl-agent"),
                PathBuf::from("/run/a b")
            ]
        );
    }
}
