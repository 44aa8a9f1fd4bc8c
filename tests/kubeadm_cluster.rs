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
            "read-kubernetes-release master",
            "prepare worker1",
            "prepare worker2",
            "validate-init-config master",
            "kubeadm-init master",
            "fetch-ca-cert master",
            "check-bootstrap-token master",
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
    assert_eq!(init.state_check, Some(kubeadm::StateCheck::ControlPlane));
    for step in &steps {
        let expected = match step.kind {
            StepKind::Init => Some(kubeadm::StateCheck::ControlPlane),
            StepKind::Join => Some(kubeadm::StateCheck::Worker),
            _ => None,
        };
        assert_eq!(step.state_check, expected, "{}", step.kind.name());
    }
    assert!(steps
        .iter()
        .filter(|s| s.kind.polls())
        .all(|s| s.argv.contains(&"json".to_string())));

    let token = kubeadm::Secret::new("abcdef.0123456789abcdef");
    let hash = format!("sha256:{}", "ab".repeat(32));
    let known = kubeadm::Known {
        token: &token,
        ca_cert_hash: Some(&hash),
        release: Some("1.37.2"),
    };
    let unknown = kubeadm::Known {
        release: None,
        ..known
    };
    let worker_prepare = steps[2].put.as_ref().unwrap();
    let err = worker_prepare
        .contents(&lab, "worker1", &unknown)
        .unwrap_err();
    assert!(
        err.to_string().contains("release is not known yet"),
        "{err}"
    );
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
        let contents = put.contents(&lab, &step.node, &known).unwrap();
        match put.input {
            Input::PrepareScript => {
                assert_eq!(put.mode, 0o700);
                // The control plane picks the release, workers get it.
                let node = lab.nodes.iter().find(|n| n.name == step.node).unwrap();
                let release = (node.name != "master").then_some("1.37.2");
                assert_eq!(contents, kubeadm::node_prepare_script(&lab, node, release));
            }
            Input::InitConfig => {
                assert_eq!(put.mode, 0o600);
                assert!(
                    contents.contains("kind: InitConfiguration")
                        && contents.contains(token.expose())
                        && contents.contains("kubernetesVersion: \"v1.37.2\"")
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
fn saved_tokens_are_checked_against_the_cluster_list() {
    use kubeadm::TokenState::{Expired, Unknown, Valid};
    let list = recorded("kubeadm-token-list.json");
    let saved = kubeadm::Secret::new("abcdef.0123456789abcdef");
    let at = |text: &str| {
        let out = Command::new("date")
            .args(["-u", "-d", text, "+%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let state =
        |token: &kubeadm::Secret, now: &str| kubeadm::token_state(&list, token, at(now)).unwrap();
    // Made a day before its expiry: valid.
    assert_eq!(state(&saved, "2026-12-06T16:51:49Z"), Valid);
    // Within the last hour, and after: a fresh one is needed.
    assert_eq!(state(&saved, "2026-12-07T16:00:00Z"), Expired);
    assert_eq!(state(&saved, "2026-12-08T09:00:00Z"), Expired);
    // Not in the cluster, or the right id with another secret.
    assert_eq!(
        state(
            &kubeadm::Secret::new("zzzzzz.0123456789abcdef"),
            "2026-12-06T17:00:00Z"
        ),
        Unknown
    );
    assert_eq!(
        state(
            &kubeadm::Secret::new("abcdef.ffffffffffffffff"),
            "2026-12-06T17:00:00Z"
        ),
        Unknown
    );
    // A token without expiry (ttl 0) never expires.
    assert_eq!(
        state(
            &kubeadm::Secret::new("q1w2e3.forevertoken00001"),
            "2030-01-01T00:00:00Z"
        ),
        Valid
    );
    // An empty list: no token at all.
    assert_eq!(kubeadm::token_state("", &saved, 0).unwrap(), Unknown);
    // Something else is an error that does not echo the (secret) text.
    let err = kubeadm::token_state("abcdef.0123456789abcdef oops", &saved, 0).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("not a token list") && !err.contains("0123456789abcdef"),
        "{err}"
    );
}

#[test]
fn fresh_tokens_come_from_kubeadm_without_a_token_in_the_argv() {
    let argv = kubeadm::steps::create_token_argv(&vagrant_lab());
    assert_eq!(argv.len(), 7, "{argv:?}");
    assert_eq!(
        argv[..5].join(" ") + " " + &argv[6],
        "kubeadm token create --ttl 24h0m0s labctl lab flannel-vagrant"
    );
    assert!(argv.iter().all(|a| !kubeadm::is_bootstrap_token(a)));
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

#[test]
fn subnet_len_reaches_the_controller_manager() {
    let mut lab = vagrant_lab();
    lab.network.subnet_len = 26;
    let secrets = labctl::render::JoinSecrets::default();
    let text = labctl::render::kubeadm_init(&lab, &secrets).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let cluster = docs
        .iter()
        .find(|d| d["kind"] == "ClusterConfiguration")
        .unwrap();
    // v1beta4: extraArgs is a list of {name, value}, values are strings.
    assert_eq!(
        cluster["controllerManager"]["extraArgs"],
        serde_json::json!([{"name": "node-cidr-mask-size", "value": "26"}])
    );
    assert_eq!(cluster["networking"]["podSubnet"], "10.244.0.0/16");
}
