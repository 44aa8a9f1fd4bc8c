//! Which host keys a connection accepts, and who may pin one.
//!
//! Only `labctl up` pins, and only where it reaches a machine for the first
//! time ([`HostKeyPolicy::PinNew`]); every other command and every later
//! step of `up` requires the pinned key ([`HostKeyPolicy::RequireKnown`]).
//! The caller chooses the policy: nothing pins by default.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use labctl_lab::HostKey;
use sha2::{Digest, Sha256};

use super::known_hosts::{self, Entry, FILE_LOCK};
use super::{Endpoint, SshError};

/// What a connection does with the server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The key must be the one pinned in the lab's known_hosts: an unknown
    /// or changed key is refused.
    RequireKnown,
    /// `up` reaching a machine it is creating or has never reached: a host
    /// with a pin must match it; a host without one is pinned once its key
    /// passes `expected` (the lab file's `ssh.hostKey`, also checked when
    /// pinned) or, without that, the entries `user_known_hosts` has for the
    /// host (any); a host nobody vouches for is pinned on first use.
    PinNew {
        expected: Option<HostKey>,
        user_known_hosts: Option<PathBuf>,
    },
}

/// Why a key was pinned: [`super::Session::new_pin`] after `up` reached a
/// node for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPin {
    pub fingerprint: String,
    pub key_type: String,
    pub trusted_by: PinSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// The lab file's `ssh.hostKey`.
    LabFile,
    /// The user's known_hosts file, at this path.
    UserKnownHosts(PathBuf),
    /// Nothing vouched for it: trusted on first use.
    FirstUse,
}

impl fmt::Display for NewPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match &self.trusted_by {
            PinSource::LabFile => "it is the lab file's ssh.hostKey".to_string(),
            PinSource::UserKnownHosts(path) => format!("{} trusts it", path.display()),
            PinSource::FirstUse => "first use: compare with `ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub` on the host".into(),
        };
        write!(
            f,
            "host key {} ({}) pinned ({why})",
            self.fingerprint, self.key_type
        )
    }
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64, as
/// `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Whether the server's key blob is the key `expected` describes.
fn matches(expected: &HostKey, blob: &[u8]) -> bool {
    match expected {
        HostKey::Fingerprint(text) => *text == fingerprint(blob),
        HostKey::PublicKey { blob: want, .. } => want == blob,
    }
}

/// An entry's key as a fingerprint (its base64 as written when it does
/// not decode).
fn entry_fingerprint(entry: &Entry) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(&entry.key_base64)
        .map(|b| fingerprint(&b))
        .unwrap_or_else(|_| entry.key_base64.clone())
}

/// Key types labctl should ask the server for first: those it will check
/// against (pins, else the lab file's key, else the user's entries).
pub(super) fn wanted_key_types(
    ep: &Endpoint,
    policy: &HostKeyPolicy,
) -> Result<Vec<String>, SshError> {
    let pattern = known_hosts::host_pattern(&ep.host, ep.port);
    let pinned = read(ep, &ep.known_hosts, &pattern, "read")?;
    let mut types: Vec<String> = pinned.into_iter().map(|e| e.key_type).collect();
    if let HostKeyPolicy::PinNew {
        expected,
        user_known_hosts,
    } = policy
    {
        if let Some(HostKey::PublicKey { key_type, .. }) = expected {
            types.push(key_type.clone());
        } else if let Some(path) = user_known_hosts {
            let entries = read(ep, path, &pattern, "read").unwrap_or_default();
            types.extend(
                entries
                    .into_iter()
                    .filter(|e| !e.revoked)
                    .map(|e| e.key_type),
            );
        }
    }
    Ok(types)
}

fn read(
    ep: &Endpoint,
    path: &Path,
    pattern: &str,
    action: &'static str,
) -> Result<Vec<Entry>, SshError> {
    known_hosts::read_or_empty(path)
        .map(|text| known_hosts::entries_for(&text, pattern))
        .map_err(|source| SshError::KnownHosts {
            node: ep.node.clone(),
            action: action.into(),
            path: path.to_path_buf(),
            source,
        })
}

/// Checks the server's key `blob` (SSH wire format) under `policy`;
/// returns the pin it made, if any.
pub(super) fn check(
    ep: &Endpoint,
    policy: &HostKeyPolicy,
    blob: &[u8],
) -> Result<Option<NewPin>, SshError> {
    let key_type = labctl_lab::host_key::blob_key_type(blob)
        .unwrap_or("unknown")
        .to_string();
    let key_base64 = base64::engine::general_purpose::STANDARD.encode(blob);
    let seen = fingerprint(blob);
    let seen_and_type = format!("{seen} ({key_type})");
    let pattern = known_hosts::host_pattern(&ep.host, ep.port);
    let mismatch = |expected: String, vouched_by: String| SshError::HostKeyMismatch {
        node: ep.node.clone(),
        address: ep.address(),
        seen: seen_and_type.clone(),
        expected,
        vouched_by,
    };

    let _guard = FILE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let HostKeyPolicy::PinNew {
        expected: Some(expected),
        ..
    } = policy
    {
        if !matches(expected, blob) {
            let shown = match expected {
                HostKey::PublicKey { blob, .. } => fingerprint(blob),
                HostKey::Fingerprint(text) => text.clone(),
            };
            return Err(mismatch(shown, "the lab file's ssh.hostKey".into()));
        }
    }
    let pinned = read(ep, &ep.known_hosts, &pattern, "read")?;
    if !pinned.is_empty() {
        if pinned
            .iter()
            .any(|e| !e.revoked && e.key_type == key_type && e.key_base64 == key_base64)
        {
            return Ok(None);
        }
        return Err(SshError::HostKeyChanged {
            node: ep.node.clone(),
            address: ep.address(),
            seen: seen_and_type,
            known_hosts: ep.known_hosts.clone(),
            during_up: matches!(policy, HostKeyPolicy::PinNew { .. }),
        });
    }
    let HostKeyPolicy::PinNew {
        expected,
        user_known_hosts,
    } = policy
    else {
        return Err(SshError::HostKeyUnknown {
            node: ep.node.clone(),
            address: ep.address(),
            seen: seen_and_type,
            known_hosts: ep.known_hosts.clone(),
        });
    };
    let trusted_by = if expected.is_some() {
        PinSource::LabFile
    } else {
        match user_known_hosts {
            Some(path) => {
                let entries = read(ep, path, &pattern, "read")?;
                let same = |e: &&Entry| e.key_type == key_type && e.key_base64 == key_base64;
                if entries.iter().filter(|e| e.revoked).any(|e| same(&e)) {
                    return Err(mismatch(
                        "another key (this one is marked @revoked)".into(),
                        path.display().to_string(),
                    ));
                }
                let trusted: Vec<&Entry> = entries.iter().filter(|e| !e.revoked).collect();
                if trusted.iter().any(same) {
                    PinSource::UserKnownHosts(path.clone())
                } else if trusted.is_empty() {
                    PinSource::FirstUse
                } else {
                    let fps: Vec<String> = trusted.iter().map(|e| entry_fingerprint(e)).collect();
                    return Err(mismatch(fps.join(" or "), path.display().to_string()));
                }
            }
            None => PinSource::FirstUse,
        }
    };
    known_hosts::append_pin(&ep.known_hosts, &pattern, &ep.node, &key_type, &key_base64).map_err(
        |source| SshError::KnownHosts {
            node: ep.node.clone(),
            action: "update".into(),
            path: ep.known_hosts.clone(),
            source,
        },
    )?;
    Ok(Some(NewPin {
        fingerprint: seen,
        key_type,
        trusted_by,
    }))
}

/// Whether `error` (or a cause in its chain) is a refused host key: such
/// errors end labctl with exit status 3.
pub fn is_host_key_refusal(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<SshError>()
            .is_some_and(SshError::is_host_key_refusal)
    })
}

impl SshError {
    /// A refused host key (unknown, changed, or not the expected one).
    pub fn is_host_key_refusal(&self) -> bool {
        matches!(
            self,
            SshError::HostKeyChanged { .. }
                | SshError::HostKeyUnknown { .. }
                | SshError::HostKeyMismatch { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519`'s public line and `ssh-keygen -l`'s
    /// fingerprint for it.
    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJPgenuWz01PTj4mYCyJi4LIGJh7h5klsogZsvhrGsd8";
    const FINGERPRINT: &str = "SHA256:b+NdmL3aurj8DBSX5dnKxWMjxtuKDoDQO4vqp45AyqE";

    #[test]
    fn fingerprints_are_ssh_keygens() {
        let HostKey::PublicKey { blob, .. } = HostKey::parse(LINE).unwrap() else {
            panic!("not a key");
        };
        assert_eq!(fingerprint(&blob), FINGERPRINT);
        assert!(matches(&HostKey::Fingerprint(FINGERPRINT.into()), &blob));
        assert!(matches(&HostKey::parse(LINE).unwrap(), &blob));
        assert!(!matches(
            &HostKey::Fingerprint(FINGERPRINT.replace('b', "c")),
            &blob
        ));
    }
}
