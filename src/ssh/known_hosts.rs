//! OpenSSH known_hosts files: the lab's own (labctl's pins) and the user's
//! `~/.ssh/known_hosts` (read only, to trust what the user already trusts).
//!
//! labctl writes one plain line per node into the lab's file, `host` for
//! port 22 and `[host]:port` otherwise, exactly what the system `ssh` looks
//! up (so `labctl ssh` trusts the same keys), with the node's name as the
//! line's comment (`labctl-node=NAME`) so the pin can be dropped with the
//! node. Reading understands what OpenSSH writes: comma-separated names,
//! hashed names (`|1|salt|hash`), `*`/`?` wildcards and `!` negations, and
//! `@revoked` lines; `@cert-authority` lines are skipped (labctl does not
//! check host certificates).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, Mac};

/// Serialises read-check-write of the lab's file across the threads of one
/// labctl process (one per node): two nodes pinned at once must both end
/// up in the file. Other processes only read it while `up` holds the lab.
pub(super) static FILE_LOCK: Mutex<()> = Mutex::new(());

/// The comment labctl puts on the lines it writes.
const NODE_TAG: &str = "labctl-node=";

/// One key line of a known_hosts file that names a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub key_type: String,
    pub key_base64: String,
    /// An `@revoked` line: this key must be refused.
    pub revoked: bool,
}

/// The known_hosts name for a host: `host` on port 22, else `[host]:port`.
pub(super) fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

pub(super) fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Every entry of `text` that names `pattern` (see [`host_pattern`]).
pub(super) fn entries_for(text: &str, pattern: &str) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut hosts = fields.next()?;
            let mut revoked = false;
            if let Some(marker) = hosts.strip_prefix('@') {
                if marker != "revoked" {
                    return None;
                }
                revoked = true;
                hosts = fields.next()?;
            }
            let key_type = fields.next()?;
            let key_base64 = fields.next()?;
            names_match(hosts, pattern).then(|| Entry {
                key_type: key_type.to_string(),
                key_base64: key_base64.to_string(),
                revoked,
            })
        })
        .collect()
}

/// Whether a known_hosts name field (`a,b,!c`, `|1|salt|hash`) names
/// `pattern`: a hash matches, or a positive name matches and no negated
/// one does.
fn names_match(field: &str, pattern: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_match(hashed, pattern);
    }
    let mut matched = false;
    for name in field.split(',') {
        match name.strip_prefix('!') {
            Some(negated) if glob(negated.as_bytes(), pattern.as_bytes()) => return false,
            Some(_) => {}
            None => matched |= glob(name.as_bytes(), pattern.as_bytes()),
        }
    }
    matched
}

/// `|1|` entries: HMAC-SHA1 of the name, keyed with the salt (OpenSSH's
/// `HashKnownHosts`).
fn hashed_match(salt_and_hash: &str, pattern: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(pattern.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's host patterns: `*` any run of characters, `?` one character,
/// case-insensitive (host names are).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(n) => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Appends a pin for `node` (call with [`FILE_LOCK`] held). The file and
/// its parent folders are created as needed, the file with mode 0600.
pub(super) fn append_pin(
    path: &Path,
    pattern: &str,
    node: &str,
    key_type: &str,
    key_base64: &str,
) -> io::Result<()> {
    let text = read_or_empty(path)?;
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
    file.write_all(
        format!(
            "{separator}{}",
            pin_line(pattern, node, key_type, key_base64)
        )
        .as_bytes(),
    )?;
    file.sync_all()
}

/// The line that pins `node`'s key at `pattern`.
pub(super) fn pin_line(pattern: &str, node: &str, key_type: &str, key_base64: &str) -> String {
    format!("{pattern} {key_type} {key_base64} {NODE_TAG}{node}\n")
}

/// `text` without the lines pinning `node` (by their comment) or naming
/// one of `patterns` exactly (pins written before lines carried the node).
pub(super) fn without_node(text: &str, node: &str, patterns: &[String]) -> String {
    without_nodes(
        text,
        &std::iter::once(node).collect(),
        &patterns.iter().cloned().collect(),
    )
}

/// `text` without the lines of any node in `nodes` (by their comment) or
/// naming one of `patterns` exactly: [`without_node`] for many nodes in one
/// pass.
pub(super) fn without_nodes(
    text: &str,
    nodes: &std::collections::BTreeSet<&str>,
    patterns: &std::collections::BTreeSet<String>,
) -> String {
    text.lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let hosts = fields.next().unwrap_or("");
            let names_it = hosts.split(',').any(|h| patterns.contains(h));
            let tagged = fields
                .nth(2)
                .and_then(|c| c.strip_prefix(NODE_TAG))
                .is_some_and(|n| nodes.contains(n));
            !(names_it || tagged)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_lists_wildcards_and_negations() {
        let text = "# comment\n\
            10.0.0.2 ssh-ed25519 AAAA1\n\
            a.example,[10.0.0.2]:2222 ssh-rsa AAAA2\n\
            10.0.0.* ssh-ed25519 AAAA3\n\
            10.0.0.?,!10.0.0.7 ssh-ed25519 AAAA4\n\
            @cert-authority 10.0.0.2 ssh-ed25519 AAAA5\n\
            @revoked 10.0.0.2 ssh-ed25519 AAAA6\n\
            broken-line\n";
        let keys = |pattern: &str| -> Vec<String> {
            entries_for(text, pattern)
                .into_iter()
                .map(|e| format!("{}{}", if e.revoked { "!" } else { "" }, e.key_base64))
                .collect()
        };
        assert_eq!(keys("10.0.0.2"), ["AAAA1", "AAAA3", "AAAA4", "!AAAA6"]);
        assert_eq!(keys("[10.0.0.2]:2222"), ["AAAA2"]);
        assert_eq!(keys("A.EXAMPLE"), ["AAAA2"]);
        assert_eq!(keys("10.0.0.7"), ["AAAA3"]);
        assert_eq!(keys("10.0.0.77"), ["AAAA3"]);
        assert!(keys("10.0.1.2").is_empty());
    }

    #[test]
    fn hashed_names_match_what_ssh_keygen_wrote() {
        // `ssh-keygen -H` of the line `[10.1.2.3]:2222 ssh-ed25519 AAAA1`.
        let line = "|1|1lrUpSN02MfYZXaKgG0FkHfmhSM=|QOgLEZTueTmqvOnu85gi8m8t4m0= ssh-ed25519 AAAA1";
        assert_eq!(entries_for(line, "[10.1.2.3]:2222").len(), 1);
        assert!(entries_for(line, "10.1.2.3").is_empty());
        assert!(entries_for(line, "[10.1.2.3]:2223").is_empty());
        assert!(entries_for("|1|bad|bad ssh-ed25519 AAAA", "10.1.2.3").is_empty());
    }

    #[test]
    fn pins_are_appended_and_dropped_by_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/known_hosts");
        append_pin(&path, "[10.0.0.2]:2222", "w1", "ssh-ed25519", "AAAA1").unwrap();
        append_pin(&path, "10.0.0.3", "w2", "ssh-ed25519", "AAAA2").unwrap();
        let text = read_or_empty(&path).unwrap();
        assert_eq!(
            text,
            "[10.0.0.2]:2222 ssh-ed25519 AAAA1 labctl-node=w1\n10.0.0.3 ssh-ed25519 AAAA2 labctl-node=w2\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            without_node(&text, "w1", &[]),
            "10.0.0.3 ssh-ed25519 AAAA2 labctl-node=w2\n"
        );
        // An untagged line goes by its host name.
        let old = "10.0.0.3 ssh-ed25519 AAAA2\n10.0.0.30 ssh-ed25519 AAAA3\n";
        assert_eq!(
            without_node(old, "w2", &["10.0.0.3".into()]),
            "10.0.0.30 ssh-ed25519 AAAA3\n"
        );
    }
}
