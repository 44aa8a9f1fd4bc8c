//! Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`) and the [`Secret`] wrapper
//! that keeps them out of logs: its `Debug` and `Display` print
//! `<redacted>`, so a token reaches text only through [`Secret::expose`].

use std::fmt;
use std::io::Read;

use anyhow::{Context, Result};

/// A secret string (bootstrap token, key material). Not `Display`-able in
/// the clear; write it only to 0600 files or a command's stdin.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A new random bootstrap token from the kernel's CSPRNG (/dev/urandom).
pub fn generate_bootstrap_token() -> Result<Secret> {
    let mut urandom = std::fs::File::open("/dev/urandom")
        .context("cannot open /dev/urandom to make a bootstrap token")?;
    let mut token = String::with_capacity(23);
    while token.len() < 23 {
        if token.len() == 6 {
            token.push('.');
            continue;
        }
        let mut byte = [0u8; 1];
        urandom
            .read_exact(&mut byte)
            .context("cannot read /dev/urandom to make a bootstrap token")?;
        // 252 = 7 * 36: rejecting 252..=255 keeps every character equally likely.
        if byte[0] < 252 {
            token.push(ALPHABET[usize::from(byte[0] % 36)] as char);
        }
    }
    Ok(Secret(token))
}

/// True for `[a-z0-9]{6}\.[a-z0-9]{16}`, the only form kubeadm accepts.
pub fn is_bootstrap_token(token: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    matches!(token.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kubeadm_form_and_differ() {
        let a = generate_bootstrap_token().unwrap();
        let b = generate_bootstrap_token().unwrap();
        assert!(is_bootstrap_token(a.expose()), "{}", a.expose());
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret::new("abcdef.0123456789abcdef");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s)), "Some(<redacted>)");
    }

    #[test]
    fn token_form() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef0123456789abcdef"));
        assert!(!is_bootstrap_token("abcde.0123456789abcdefg"));
    }
}
