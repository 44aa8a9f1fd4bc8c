//! Which build this executable is: the SHA-256 of its file. Hashing
//! 1.7 MiB costs more than the rest of a converged node's work, so a
//! stamp next to the executable (`<path>.stamp`: the hash, then the
//! file's size, mtime and inode, as labctl writes it when it stages the
//! agent) answers while the file is the one stamped. `converge --want`
//! and `--version` both ask here.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

/// The stamp's first line for a file of `hash` with `meta`.
fn stamp_line(hash: &str, meta: &std::fs::Metadata) -> String {
    format!("{hash} {} {} {}", meta.size(), meta.mtime(), meta.ino())
}

/// Where this executable's stamp is.
fn stamp_path() -> Option<String> {
    std::env::current_exe()
        .ok()
        .map(|p| format!("{}.stamp", p.display()))
}

/// The hash the stamp gives, when it was written for this very file.
fn stamped() -> Option<String> {
    let meta = std::fs::metadata("/proc/self/exe").ok()?;
    let text = std::fs::read_to_string(stamp_path()?).ok()?;
    let line = text.lines().next()?;
    let (hash, _) = line.split_once(' ')?;
    (line == stamp_line(hash, &meta)).then(|| hash.to_string())
}

/// This executable's SHA-256, from its stamp or hashed.
pub fn sha256() -> Option<String> {
    stamped().or_else(hash_self)
}

/// Whether this executable is the one whose SHA-256 is `want`; a match
/// found by hashing is stamped for next time.
pub fn is_build(want: &str) -> bool {
    if stamped().as_deref() == Some(want) {
        return true;
    }
    if hash_self().as_deref() != Some(want) {
        return false;
    }
    let meta = std::fs::metadata("/proc/self/exe");
    if let (Some(stamp), Ok(meta)) = (stamp_path(), meta) {
        // A stamp that cannot be written only costs the hash next time.
        let _ = std::fs::write(stamp, format!("{}\n", stamp_line(want, &meta)));
    }
    true
}

/// The SHA-256 of /proc/self/exe, in hex.
fn hash_self() -> Option<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open("/proc/self/exe").ok()?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
