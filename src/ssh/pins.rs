//! Keeping the lab's known_hosts in step with its machines: pins labctl
//! writes from keys it generated itself (netns nodes), and pins that go
//! (a node removed, a machine about to be re-created) or move (the same
//! machine at another forwarded port). Connections pin through
//! [`super::host_key`] only.

use std::path::Path;

use super::known_hosts::{self, FILE_LOCK};

/// Pins `node`'s key from a public key line labctl generated itself (netns
/// nodes, before their sshd starts), replacing the node's older pins.
pub fn pin_own_key(
    known_hosts: &Path,
    node: &str,
    host: &str,
    port: u16,
    public_line: &str,
) -> anyhow::Result<()> {
    pin_own_keys(
        known_hosts,
        &[OwnKey {
            node,
            host,
            port,
            public_line,
        }],
    )
}

/// A node's key that labctl made, and where the node answers.
pub struct OwnKey<'a> {
    pub node: &'a str,
    pub host: &'a str,
    pub port: u16,
    /// The public key as `ssh-keygen` wrote it (`TYPE BASE64 [COMMENT]`).
    pub public_line: &'a str,
}

/// [`pin_own_key`] for many nodes: one read and at most one write of the
/// file, however many nodes (a lab of 1,000 nodes would otherwise rewrite
/// it 1,000 times).
pub fn pin_own_keys(known_hosts: &Path, keys: &[OwnKey]) -> anyhow::Result<()> {
    let mut lines = String::new();
    let mut nodes = std::collections::BTreeSet::new();
    let mut patterns = std::collections::BTreeSet::new();
    for key in keys {
        let mut fields = key.public_line.split_whitespace();
        let (Some(key_type), Some(data)) = (fields.next(), fields.next()) else {
            anyhow::bail!(
                "node {}: `{}` is not an OpenSSH public key line",
                key.node,
                key.public_line
            );
        };
        let pattern = known_hosts::host_pattern(key.host, key.port);
        lines.push_str(&known_hosts::pin_line(&pattern, key.node, key_type, data));
        nodes.insert(key.node);
        patterns.insert(pattern);
    }
    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = known_hosts::read_or_empty(known_hosts)?;
    let kept = known_hosts::without_nodes(&text, &nodes, &patterns);
    // Already pinned: the nodes' only lines are these.
    if text.len() - kept.len() == lines.len() {
        let have: std::collections::HashSet<&str> = text.lines().collect();
        if lines.lines().all(|l| have.contains(l)) {
            return Ok(());
        }
    }
    write_pins(known_hosts, (kept + &lines).as_bytes())
}

/// Drops every pin of `node` (its tagged lines and any line naming one of
/// its `endpoints`), for a node labctl removed or is about to re-create.
pub fn forget_node(
    known_hosts: &Path,
    node: &str,
    endpoints: &[(&str, u16)],
) -> anyhow::Result<()> {
    let patterns: Vec<String> = endpoints
        .iter()
        .map(|(host, port)| known_hosts::host_pattern(host, *port))
        .collect();
    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = known_hosts::read_or_empty(known_hosts)?;
    let kept = known_hosts::without_node(&text, node, &patterns);
    if kept.len() == text.len() {
        return Ok(());
    }
    write_pins(known_hosts, kept.as_bytes())
}

/// Moves `node`'s pins (its tagged lines and lines naming `old`) to
/// `host:port`: the same machine, reached at another address.
pub fn move_pins(
    known_hosts: &Path,
    node: &str,
    old: &[(&str, u16)],
    host: &str,
    port: u16,
) -> anyhow::Result<()> {
    let old: Vec<String> = old
        .iter()
        .map(|(host, port)| known_hosts::host_pattern(host, *port))
        .collect();
    let pattern = known_hosts::host_pattern(host, port);
    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = known_hosts::read_or_empty(known_hosts)?;
    let kept = known_hosts::without_node(&text, node, &old);
    let mut moved = kept.clone();
    for line in text.lines().filter(|l| !kept.lines().any(|k| k == *l)) {
        let mut fields = line.split_whitespace().skip(1);
        if let (Some(key_type), Some(data)) = (fields.next(), fields.next()) {
            moved.push_str(&known_hosts::pin_line(&pattern, node, key_type, data));
        }
    }
    if moved == text {
        return Ok(());
    }
    write_pins(known_hosts, moved.as_bytes())
}

/// Whether the lab's known_hosts pins a key for `host:port`.
pub fn is_pinned(known_hosts: &Path, host: &str, port: u16) -> std::io::Result<bool> {
    let pattern = known_hosts::host_pattern(host, port);
    let text = known_hosts::read_or_empty(known_hosts)?;
    Ok(known_hosts::entries_for(&text, &pattern)
        .iter()
        .any(|e| !e.revoked))
}

/// Writes the lab's known_hosts atomically, 0600.
fn write_pins(known_hosts: &Path, text: &[u8]) -> anyhow::Result<()> {
    labctl_atomicfile::write(known_hosts, text, 0o600)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", known_hosts.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519`'s public line.
    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJPgenuWz01PTj4mYCyJi4LIGJh7h5klsogZsvhrGsd8";

    #[test]
    fn own_keys_replace_pins_which_go_or_move_with_their_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let read = || std::fs::read_to_string(&path).unwrap();
        pin_own_key(&path, "w1", "10.0.0.11", 22, LINE).unwrap();
        pin_own_key(&path, "w2", "10.0.0.12", 22, &format!("{LINE} comment\n")).unwrap();
        let both = read();
        assert_eq!(
            both,
            format!("10.0.0.11 {LINE} labctl-node=w1\n10.0.0.12 {LINE} labctl-node=w2\n")
        );
        pin_own_key(&path, "w1", "10.0.0.11", 22, LINE).unwrap();
        assert_eq!(read(), both, "pinning the same key again changes nothing");
        let key = |node, host| OwnKey {
            node,
            host,
            port: 22,
            public_line: LINE,
        };
        pin_own_keys(&path, &[key("w2", "10.0.0.12"), key("w1", "10.0.0.11")]).unwrap();
        assert_eq!(read(), both, "pinning both again at once changes nothing");
        pin_own_keys(&path, &[key("w1", "10.0.0.21"), key("w3", "10.0.0.13")]).unwrap();
        assert_eq!(
            read(),
            format!(
                "10.0.0.12 {LINE} labctl-node=w2\n10.0.0.21 {LINE} labctl-node=w1\n10.0.0.13 {LINE} labctl-node=w3\n"
            ),
            "a batch replaces its nodes' pins and keeps the others'"
        );
        pin_own_keys(&path, &[key("w1", "10.0.0.11")]).unwrap();
        std::fs::write(&path, &both).unwrap();
        assert!(is_pinned(&path, "10.0.0.11", 22).unwrap());
        assert!(!is_pinned(&path, "10.0.0.11", 2222).unwrap());

        move_pins(&path, "w1", &[("10.0.0.11", 22)], "127.0.0.1", 2201).unwrap();
        assert_eq!(
            read(),
            format!("10.0.0.12 {LINE} labctl-node=w2\n[127.0.0.1]:2201 {LINE} labctl-node=w1\n")
        );
        forget_node(&path, "w1", &[("127.0.0.1", 2201)]).unwrap();
        assert_eq!(read(), format!("10.0.0.12 {LINE} labctl-node=w2\n"));
        // A pin written before lines carried their node goes by address.
        std::fs::write(&path, format!("10.0.0.12 {LINE}\n10.0.0.13 {LINE}\n")).unwrap();
        forget_node(&path, "w2", &[("10.0.0.12", 22)]).unwrap();
        assert_eq!(read(), format!("10.0.0.13 {LINE}\n"));
        assert!(pin_own_key(&path, "w3", "10.0.0.13", 22, "garbage").is_err());
    }
}
