//! `nodes[].ssh.hostKey`: the SSH host key a node must present, written as
//! OpenSSH prints it — a fingerprint (`SHA256:` and 43 base64 characters,
//! as `ssh-keygen -l` shows) or a public key line (`ssh-ed25519 AAAA...`,
//! as in a `.pub` file or `ssh-keyscan` output, comment optional).
//!
//! Pure: parsing and format checks only. Comparing with the key a server
//! sends (and hashing it) is the SSH client's job.

use std::fmt;

use base64::Engine;
use serde::{Serialize, Serializer};

/// Key types OpenSSH servers offer as host keys.
pub const HOST_KEY_TYPES: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

/// A host key as the lab file pins it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKey {
    /// `SHA256:` + unpadded base64 of the SHA-256 of the key blob.
    Fingerprint(String),
    /// The key itself: its type and its blob (SSH wire format).
    PublicKey { key_type: String, blob: Vec<u8> },
}

impl HostKey {
    /// Parses a fingerprint or a public key line; the error says what is
    /// wrong in one sentence.
    pub fn parse(text: &str) -> Result<HostKey, String> {
        let text = text.trim();
        if let Some(digest) = text.strip_prefix("SHA256:") {
            let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(digest);
            return match decoded {
                Ok(bytes) if bytes.len() == 32 => Ok(HostKey::Fingerprint(text.to_string())),
                _ => Err(format!(
                    "`{text}` is not a SHA256 fingerprint: `SHA256:` must be followed by the 43 base64 characters `ssh-keygen -l` prints"
                )),
            };
        }
        if text.starts_with("MD5:") || is_hex_md5(text) {
            return Err(format!(
                "`{text}` is an MD5 fingerprint; give the SHA256 one (`ssh-keygen -l -E sha256 -f KEY.pub`)"
            ));
        }
        let mut fields = text.split_whitespace();
        let (Some(key_type), Some(data)) = (fields.next(), fields.next()) else {
            return Err(format!(
                "`{text}` is neither a `SHA256:` fingerprint nor a public key line `TYPE BASE64`"
            ));
        };
        if !HOST_KEY_TYPES.contains(&key_type) {
            return Err(format!(
                "`{key_type}` is not an SSH host key type (one of {})",
                HOST_KEY_TYPES.join(", ")
            ));
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| format!("the key of `{key_type}` is not valid base64"))?;
        if blob_key_type(&blob) != Some(key_type) {
            return Err(format!(
                "the key data does not hold a `{key_type}` key (copy the whole line from the host's .pub file)"
            ));
        }
        Ok(HostKey::PublicKey {
            key_type: key_type.to_string(),
            blob,
        })
    }
}

/// The key type named at the start of an SSH key blob (`uint32` length,
/// then the name: RFC 4253 section 6.6).
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

fn is_hex_md5(text: &str) -> bool {
    text.len() == 47
        && text
            .split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKey::Fingerprint(text) => f.write_str(text),
            HostKey::PublicKey { key_type, blob } => {
                let data = base64::engine::general_purpose::STANDARD.encode(blob);
                write!(f, "{key_type} {data}")
            }
        }
    }
}

/// As written in a lab file (`validate --output json`).
impl Serialize for HostKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
