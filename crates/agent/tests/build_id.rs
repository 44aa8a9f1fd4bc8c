//! `--version` names the build by its SHA-256: from the stamp next to the
//! executable while the file is the one stamped (size, mtime, inode),
//! else by hashing the file. A copy of the agent in a folder of its own
//! shows both. Needs no root.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_labctl-agent");

/// The hash `--version` prints for the executable at `exe`.
fn version_hash(exe: &std::path::Path) -> String {
    let out = Command::new(exe).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.trim()
        .rsplit_once("sha256:")
        .map(|(_, h)| h.to_string())
        .unwrap_or_else(|| panic!("no hash in {text:?}"))
}

/// Removes the test's folder, also when an assertion failed.
struct Folder(std::path::PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn version_reads_a_stamp_only_while_it_matches_the_file() {
    let folder =
        Folder(std::env::temp_dir().join(format!("labctl-build-id-{}", std::process::id())));
    let dir = &folder.0;
    std::fs::create_dir_all(dir).unwrap();
    let exe = dir.join("labctl-agent");
    std::fs::copy(AGENT, &exe).unwrap();
    let real = version_hash(&exe);
    assert_eq!(real.len(), 64, "{real}");

    // A stamp for this very file: its hash is believed without hashing.
    let fake = "0".repeat(64);
    let meta = std::fs::metadata(&exe).unwrap();
    let stamp = dir.join("labctl-agent.stamp");
    let line = |m: &std::fs::Metadata| format!("{fake} {} {} {}\n", m.size(), m.mtime(), m.ino());
    std::fs::write(&stamp, line(&meta)).unwrap();
    assert_eq!(version_hash(&exe), fake);

    // The file changed since (another mtime): hashed again.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&exe)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(version_hash(&exe), real);
}
