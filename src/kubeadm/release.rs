//! The one Kubernetes release a lab runs: the control plane's node
//! preparation picks it (`1.N.P`, the newest of the lab's minor on a fresh
//! node), `kubeadm version -o short` reads it back, and the workers'
//! preparation and the control plane's `kubernetesVersion` get exactly it,
//! so kubelets and control plane are one patch release.

use anyhow::{bail, Result};

/// `kubeadm version -o short` output (`v1.37.2`) as `1.37.2`, checked to
/// be a release of the lab's minor `1.N`.
pub fn parse_release(stdout: &str, minor: &str) -> Result<String> {
    let text = stdout.trim();
    let release = text.strip_prefix('v').unwrap_or(text);
    let parts: Vec<&str> = release.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        bail!("`kubeadm version -o short` printed {text:?}, not a release like v1.37.2");
    }
    if format!("{}.{}", parts[0], parts[1]) != minor {
        bail!("kubeadm is {text}, not a release of the lab's Kubernetes {minor}");
    }
    Ok(release.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_of_the_lab_minor_only() {
        assert_eq!(parse_release("v1.37.2\n", "1.37").unwrap(), "1.37.2");
        assert_eq!(parse_release("v1.37.12", "1.37").unwrap(), "1.37.12");
        let err = parse_release("v1.36.4\n", "1.37").unwrap_err().to_string();
        assert!(
            err.contains("not a release of the lab's Kubernetes 1.37"),
            "{err}"
        );
        for bad in ["", "v1.37", "v1.37.2-rc.0", "command not found"] {
            assert!(parse_release(bad, "1.37").is_err(), "{bad:?}");
        }
    }
}
