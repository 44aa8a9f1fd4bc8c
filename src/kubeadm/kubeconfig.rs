//! The admin kubeconfig copied from the control plane to the lab folder,
//! with its API server address set to one this host can reach.
//!
//! The file holds the cluster admin's client key: write it with mode 0600.

use std::net::Ipv4Addr;

use anyhow::{anyhow, Result};

/// kubeadm's API server port (the init config's `bindPort`).
pub const API_PORT: u16 = 6443;

/// `https://IP:6443`.
pub fn api_server_url(ip: Ipv4Addr) -> String {
    format!("https://{ip}:{API_PORT}")
}

/// `kubeconfig` (kubeadm's admin.conf) with every cluster's `server:` set to
/// `server_url`, everything else byte for byte as it was.
pub fn rewrite_server(kubeconfig: &str, server_url: &str) -> Result<String> {
    let mut found = false;
    let mut out = String::with_capacity(kubeconfig.len());
    for line in kubeconfig.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if body.trim_start().starts_with("server:") {
            found = true;
            out.push_str(&body[..indent]);
            out.push_str("server: ");
            out.push_str(server_url);
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    if !found {
        return Err(anyhow!(
            "the admin kubeconfig from the control plane has no `server:` line to point at {server_url}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_lines_change() {
        let conf = "clusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: https://10.0.2.15:6443\n  name: lab\n";
        let out = rewrite_server(conf, &api_server_url("192.168.56.10".parse().unwrap())).unwrap();
        assert_eq!(out, conf.replace("10.0.2.15", "192.168.56.10"));
        assert!(rewrite_server("apiVersion: v1\n", "https://x:6443").is_err());
    }
}
