//! The discovery hash a joining node pins the cluster CA with:
//! `sha256:` + hex SHA-256 of the CA certificate's DER-encoded
//! SubjectPublicKeyInfo (what `kubeadm join --discovery-token-ca-cert-hash`
//! and JoinConfiguration's `caCertHashes` expect). Same as
//! `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.

use anyhow::{anyhow, Result};
use sha2::{Digest, Sha256};
use x509_cert::der::{DecodePem, Encode};
use x509_cert::Certificate;

/// `sha256:<64 hex>` for the PEM certificate `pem` (the first one, when
/// the text holds a chain; kubeadm's ca.crt holds one).
pub fn ca_cert_hash(pem: &str) -> Result<String> {
    let first = first_pem_block(pem).ok_or_else(|| {
        anyhow!("the CA certificate is not PEM text: no `-----BEGIN CERTIFICATE-----` block found")
    })?;
    let cert = Certificate::from_pem(first.as_bytes())
        .map_err(|e| anyhow!("the CA certificate cannot be decoded: {e}"))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| anyhow!("the CA certificate's public key cannot be encoded: {e}"))?;
    let digest = Sha256::digest(&spki);
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// The first `CERTIFICATE` block, normalised to LF line endings.
fn first_pem_block(text: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = text.replace("\r\n", "\n");
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &text[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_pem_is_a_clear_error() {
        let err = ca_cert_hash("hello").unwrap_err().to_string();
        assert!(err.contains("not PEM"), "{err}");
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = ca_cert_hash(bad).unwrap_err().to_string();
        assert!(err.contains("cannot be decoded"), "{err}");
    }
}
