//! Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`) and the [`Secret`] wrapper
//! that keeps them out of logs: its `Debug` and `Display` print
//! `<redacted>`, so a token reaches text only through [`Secret::expose`].
//! Tokens expire (24 h): [`token_state`] says whether the cluster still
//! takes the lab's saved one.

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

/// Whether the cluster takes a token for joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Valid,
    /// Expired, or expiring within [`EXPIRY_MARGIN_SECS`].
    Expired,
    /// Not in the cluster (never created there, or deleted after expiry).
    Unknown,
}

/// A token this close to its expiry counts as expired: a join must not
/// race it, and the host's clock may differ from the control plane's.
pub const EXPIRY_MARGIN_SECS: i64 = 3600;

/// What `kubeadm token list -o json` (a stream of one JSON object per
/// token, secrets included: never echoed) says about `token`, at `now`
/// (seconds since the epoch).
pub fn token_state(list: &str, token: &Secret, now: i64) -> Result<TokenState> {
    #[derive(serde::Deserialize)]
    struct Listed {
        token: String,
        expires: Option<String>,
    }
    for item in serde_json::Deserializer::from_str(list).into_iter::<Listed>() {
        let item = item.map_err(|e| {
            anyhow::anyhow!(
                "`kubeadm token list -o json` printed something that is not a token list \
                 (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if item.token != token.expose() {
            continue;
        }
        let Some(expires) = item.expires.filter(|e| !e.is_empty()) else {
            return Ok(TokenState::Valid);
        };
        let at = unix_seconds(&expires).ok_or_else(|| {
            anyhow::anyhow!(
                "kubeadm lists the lab's token as expiring at {expires:?}, not a UTC time"
            )
        })?;
        return Ok(if at - now > EXPIRY_MARGIN_SECS {
            TokenState::Valid
        } else {
            TokenState::Expired
        });
    }
    Ok(TokenState::Unknown)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (how the API writes times) as seconds since the
/// epoch.
fn unix_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let num = |from: usize, to: usize| text.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
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
    fn api_times_are_epoch_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(unix_seconds("2026-12-06T16:51:49Z"), Some(1_796_575_909));
        for bad in [
            "2026-12-06 16:51:49Z",
            "2026-12-06T16:51:49+01:00",
            "2026-13-06T16:51:49Z",
            "",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_form() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef0123456789abcdef"));
        assert!(!is_bootstrap_token("abcde.0123456789abcdefg"));
    }
}
