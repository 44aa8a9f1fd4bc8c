//! Host key pinning in an OpenSSH known_hosts file.
//!
//! The file is the lab's own: labctl appends one plain (unhashed) line per
//! node on first contact, `host` for port 22 and `[host]:port` otherwise,
//! exactly what the system `ssh` looks up, so `labctl ssh` trusts the same
//! keys. Lines this module does not understand (hashed hosts, `@` markers,
//! wildcard patterns) are left alone and never match.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;

/// Serialises check-then-append across the threads of one labctl process
/// (one per node): two nodes pinned at once must both end up in the file.
static FILE_LOCK: Mutex<()> = Mutex::new(());

/// What the known_hosts file says about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The key was already pinned for this host.
    Known,
    /// The host was unknown; its key is now pinned.
    Pinned,
    /// The host is pinned with other keys: refuse. Carries the offered type.
    Changed { key_type: String },
}

/// The known_hosts name for a host: `host` on port 22, else `[host]:port`.
pub(super) fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Key types already pinned for `pattern` (empty when none, or no file).
pub(super) fn pinned_key_types(path: &Path, pattern: &str) -> io::Result<Vec<String>> {
    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(entries_for(&read_or_empty(path)?, pattern)
        .into_iter()
        .map(|(key_type, _)| key_type.to_string())
        .collect())
}

/// Checks the server's key blob (SSH wire format, as libssh2 hands it over)
/// against the file, pinning it when the host has no entry yet. The file
/// and its parent folders are created as needed, the file with mode 0600.
pub(super) fn verify_or_pin(path: &Path, pattern: &str, key_blob: &[u8]) -> io::Result<Verdict> {
    let key_type = blob_key_type(key_blob).unwrap_or("unknown").to_string();
    let key_base64 = base64::engine::general_purpose::STANDARD.encode(key_blob);

    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = read_or_empty(path)?;
    let entries = entries_for(&text, pattern);
    if entries
        .iter()
        .any(|&(t, k)| t == key_type && k == key_base64)
    {
        return Ok(Verdict::Known);
    }
    if !entries.is_empty() {
        return Ok(Verdict::Changed { key_type });
    }

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // A file whose last line lacks its newline would swallow ours.
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    file.write_all(format!("{separator}{pattern} {key_type} {key_base64}\n").as_bytes())?;
    file.sync_all()?;
    Ok(Verdict::Pinned)
}

fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// `(key type, base64 key)` of every plain line naming `pattern`.
fn entries_for<'a>(text: &'a str, pattern: &str) -> Vec<(&'a str, &'a str)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('@'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hosts = fields.next()?;
            let key_type = fields.next()?;
            let key = fields.next()?;
            hosts
                .split(',')
                .any(|h| h == pattern)
                .then_some((key_type, key))
        })
        .collect()
}

/// The key type named at the start of an SSH public key blob
/// (`uint32 length` + name, RFC 4253 section 6.6).
pub(super) fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(key_type: &str, body: &[u8]) -> Vec<u8> {
        let mut b = (key_type.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(key_type.as_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn pins_then_knows_then_refuses_a_changed_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/known_hosts");
        let first = blob("ssh-ed25519", b"first");
        let second = blob("ssh-ed25519", b"second");
        let pattern = host_pattern("10.0.0.2", 2222);
        assert_eq!(pattern, "[10.0.0.2]:2222");

        assert_eq!(
            verify_or_pin(&path, &pattern, &first).unwrap(),
            Verdict::Pinned
        );
        assert_eq!(
            verify_or_pin(&path, &pattern, &first).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            verify_or_pin(&path, &pattern, &second).unwrap(),
            Verdict::Changed {
                key_type: "ssh-ed25519".into()
            }
        );
        // Another port of the same host is another entry.
        let other = host_pattern("10.0.0.2", 22);
        assert_eq!(
            verify_or_pin(&path, &other, &second).unwrap(),
            Verdict::Pinned
        );
        assert_eq!(pinned_key_types(&path, &pattern).unwrap(), ["ssh-ed25519"]);

        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn reads_key_type_from_blob() {
        assert_eq!(blob_key_type(&blob("ssh-rsa", b"x")), Some("ssh-rsa"));
        assert_eq!(blob_key_type(b"\0\0"), None);
    }
}
