//! The cluster-side pieces of the kubeadm path: bootstrap tokens, the CA
//! hash (checked against openssl on a certificate openssl makes), recorded
//! `kubectl get nodes -o json`, the `up` step list, the admin kubeconfig.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ipnet::Ipv4Net;
use labctl::kubeadm::{self, Input, StepKind};
use support::fixtures::{recorded, vagrant_lab};

#[test]
fn bootstrap_tokens_match_kubeadm_form_and_are_never_printed() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let token = kubeadm::generate_bootstrap_token().unwrap();
        let t = token.expose();
        assert_eq!(t.len(), 23);
        assert!(kubeadm::is_bootstrap_token(t), "{t}");
        assert_eq!(format!("{token} {token:?}"), "<redacted> <redacted>");
        seen.insert(t.to_string());
    }
    assert_eq!(seen.len(), 200, "tokens repeat");
}

/// `sha256:` + the digest openssl computes for the certificate's public key.
fn openssl_hash(cert: &std::path::Path) -> String {
    let script =
        "openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der | sha256sum";
    let out = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn make_ca(dir: &std::path::Path, name: &str, key_args: &[&str]) -> PathBuf {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes",
        ])
        .args(key_args)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

#[test]
fn ca_cert_hash_matches_openssl() {
    if !labctl::hostcmd::have_program("openssl") {
        support::skip(
            "ca_cert_hash_matches_openssl",
            "openssl is not installed (Debian package `openssl`), nothing to compare the hash with",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rsa = make_ca(dir.path(), "rsa", &["-newkey", "rsa:2048"]);
    let ec = make_ca(
        dir.path(),
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    );
    for cert in [&rsa, &ec] {
        let pem = std::fs::read_to_string(cert).unwrap();
        let hash = kubeadm::ca_cert_hash(&pem).unwrap();
        assert_eq!(hash, openssl_hash(cert), "{}", cert.display());
        assert_eq!(hash.len(), "sha256:".len() + 64);
        // CRLF text (a file that went through Windows) hashes the same.
        assert_eq!(
            kubeadm::ca_cert_hash(&pem.replace('\n', "\r\n")).unwrap(),
            hash
        );
    }
    // A chain: the first certificate counts.
    let chain = std::fs::read_to_string(&ec).unwrap() + &std::fs::read_to_string(&rsa).unwrap();
    assert_eq!(kubeadm::ca_cert_hash(&chain).unwrap(), openssl_hash(&ec));
}

#[test]
fn pod_cidrs_are_read_back_as_assigned_not_in_node_order() {
    let cidrs = kubeadm::pod_cidrs(&recorded("kubectl-nodes-ready.json")).unwrap();
    let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
    let expected: BTreeMap<String, Ipv4Net> = [
        ("master".to_string(), net("10.244.0.0/24")),
        ("worker1".to_string(), net("10.244.2.0/24")),
        ("worker2".to_string(), net("10.244.1.0/24")),
    ]
    .into();
    assert_eq!(cidrs, expected);
    // They feed the plans directly.
    let plans = labctl_lab::plan_with_subnets(&vagrant_lab(), &cidrs).unwrap();
    let worker1 = plans.iter().find(|p| p.node == "worker1").unwrap();
    assert_eq!(worker1.subnet, net("10.244.2.0/24"));
}

#[test]
fn a_node_without_pod_cidr_is_named() {
    let mut json: serde_json::Value =
        serde_json::from_str(&recorded("kubectl-nodes-ready.json")).unwrap();
    json["items"][1]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("podCIDR");
    let err = kubeadm::pod_cidrs(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("node worker1 has no podCIDR"), "{err}");
    json["items"][1]["spec"]["podCIDR"] = "fd00::/64".into();
    let err = kubeadm::pod_cidrs(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("worker1") && err.contains("not an IPv4 network"),
        "{err}"
    );
    let err = kubeadm::pod_cidrs("error: the server doesn't have a resource type").unwrap_err();
    assert!(format!("{err:#}").contains("not a node list"), "{err:#}");
}

#[test]
fn readiness_and_pending_nodes() {
    let ready = kubeadm::nodes_ready(&recorded("kubectl-nodes-ready.json")).unwrap();
    assert!(ready.values().all(|r| r.ready), "{ready:?}");
    let json = recorded("kubectl-nodes-notready.json");
    let ready = kubeadm::nodes_ready(&json).unwrap();
    assert!(ready["master"].ready && ready["worker1"].ready);
    assert!(!ready["worker2"].ready);
    assert!(ready["worker2"]
        .detail
        .starts_with("KubeletNotReady: container runtime network not ready"));
    let pending =
        kubeadm::pending_nodes(&json, &["master", "worker1", "worker2", "worker3"]).unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert!(
        pending[0].starts_with("worker2 (KubeletNotReady:")
            && pending[0].contains("cni plugin not initialized")
    );
    assert_eq!(pending[1], "worker3 (not registered with the API server)");
    let all = kubeadm::pending_nodes(
        &recorded("kubectl-nodes-ready.json"),
        &["master", "worker1", "worker2"],
    );
    assert!(all.unwrap().is_empty());
}

#[test]
fn internal_ips_show_lab_ips_or_the_nat_address() {
    let ips = kubeadm::internal_ips(&recorded("kubectl-nodes-ready.json")).unwrap();
    let as_text: Vec<String> = ips.iter().map(|(n, ip)| format!("{n}={ip}")).collect();
    assert_eq!(
        as_text,
        [
            "master=192.168.56.10",
            "worker1=192.168.56.11",
            "worker2=192.168.56.12"
        ]
    );
    let ips = kubeadm::internal_ips(&recorded("kubectl-nodes-nat-ip.json")).unwrap();
    assert_eq!(ips["worker1"].to_string(), "10.0.2.15");
}

#[test]
fn up_steps_in_order_with_secrets_only_in_files() {
    let lab = vagrant_lab();
    let steps = kubeadm::up_steps(&lab);
    let summary: Vec<String> = steps
        .iter()
        .map(|s| format!("{} {}", s.kind.name(), s.node))
        .collect();
    assert_eq!(
        summary,
        [
            "prepare master",
            "prepare worker1",
            "prepare worker2",
            "validate-init-config master",
            "kubeadm-init master",
            "fetch-ca-cert master",
            "validate-join-config worker1",
            "validate-join-config worker2",
            "kubeadm-join worker1",
            "kubeadm-join worker2",
            "read-pod-cidrs master",
            "wait-ready master",
            "fetch-admin-conf master",
        ]
    );
    let init = steps.iter().find(|s| s.kind == StepKind::Init).unwrap();
    assert_eq!(
        init.argv,
        [
            "kubeadm",
            "init",
            "--config",
            "/etc/labctl/kubeadm-init.yaml",
            "--skip-token-print"
        ]
    );
    assert_eq!(
        init.done_if.as_deref().unwrap(),
        ["test", "-f", "/etc/kubernetes/admin.conf"]
    );
    assert!(steps
        .iter()
        .filter(|s| s.kind.polls())
        .all(|s| s.argv.contains(&"json".to_string())));

    let token = kubeadm::Secret::new("abcdef.0123456789abcdef");
    let hash = format!("sha256:{}", "ab".repeat(32));
    for step in &steps {
        assert!(!step.argv.iter().any(|a| a.contains(token.expose())));
        let Some(put) = &step.put else { continue };
        assert_eq!(
            put.argv()[..5],
            [
                "install",
                "-D",
                "-m",
                &format!("{:04o}", put.mode),
                "/dev/stdin"
            ]
        );
        let contents = put.contents(&lab, &step.node, &token, Some(&hash)).unwrap();
        match put.input {
            Input::PrepareScript => {
                assert_eq!(put.mode, 0o700);
                let node = lab.nodes.iter().find(|n| n.name == step.node).unwrap();
                assert_eq!(contents, kubeadm::node_prepare_script(&lab, node));
            }
            Input::InitConfig => {
                assert_eq!(put.mode, 0o600);
                assert!(
                    contents.contains("kind: InitConfiguration")
                        && contents.contains(token.expose())
                );
            }
            Input::JoinConfig => {
                assert_eq!(put.mode, 0o600);
                assert!(contents.contains("kind: JoinConfiguration") && contents.contains(&hash));
                assert!(
                    contents.contains(&format!("name: \"{}\"", step.node)),
                    "{contents}"
                );
            }
        }
    }
}

#[test]
fn commands_run_as_root_through_sudo_for_other_users() {
    let argv = vec!["kubeadm".to_string(), "reset".to_string()];
    assert_eq!(kubeadm::as_root("root", &argv), argv);
    assert_eq!(
        kubeadm::as_root("vagrant", &argv),
        ["sudo", "-n", "--", "kubeadm", "reset"]
    );
}

#[test]
fn admin_kubeconfig_points_at_the_control_plane_lab_ip() {
    let admin = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTg==\n    \
                 server: https://10.0.2.15:6443\n  name: flannel-vagrant\ncontexts:\n- context:\n    \
                 cluster: flannel-vagrant\n    user: kubernetes-admin\n  name: kubernetes-admin@flannel-vagrant\n\
                 current-context: kubernetes-admin@flannel-vagrant\nkind: Config\nusers:\n- name: kubernetes-admin\n  \
                 user:\n    client-certificate-data: LS0t\n    client-key-data: LS0t\n";
    let lab = vagrant_lab();
    let url = kubeadm::api_server_url(lab.control_plane().ip);
    assert_eq!(url, "https://192.168.56.10:6443");
    let out = kubeadm::rewrite_server(admin, &url).unwrap();
    assert_eq!(out, admin.replace("https://10.0.2.15:6443", &url));
}
