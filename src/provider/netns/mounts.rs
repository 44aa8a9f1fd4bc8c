//! Thin wrappers over mount(2) and umount2(2), one per operation, for the
//! netns provider's node mount namespaces, pod mounts and removal.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};

/// `path` as a C string for a syscall.
pub fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains a NUL byte", path.display()))
}

/// mount(2) with no filesystem type or data: a bind (`src` given) or a
/// propagation change of `target`.
pub fn mount(src: Option<&CString>, target: &CString, flags: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: NUL-terminated strings that outlive the call; null pointers
    // where mount(2) allows them.
    let rc = unsafe {
        libc::mount(
            src.map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Detaches the mount at `path` and everything below it, never following
/// a symlink; nothing to do when it is no mount point (a plain file, a
/// link) or does not exist.
pub fn detach(path: &Path) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: umount2 on a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(e).with_context(|| format!("cannot unmount {}", path.display()));
        }
    }
    Ok(())
}
