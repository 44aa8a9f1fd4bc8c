//! Rendered artifacts: golden files, the top-level Vagrantfile, kubeadm
//! YAML parsed back, secrets handling.
//!
//! `UPDATE_GOLDEN=1 cargo test -p labctl --test render` rewrites
//! tests/golden/ and the top-level Vagrantfile; without it a stale file
//! fails the test.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use labctl::render::{self, Artifact, JoinSecrets};

fn render_lab(file: &str, secrets: &JoinSecrets) -> (labctl_lab::Lab, Vec<Artifact>) {
    let path = lab_path(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let lab = labctl_lab::parse(&format!("labs/{file}"), &text).unwrap();
    let plans = labctl_lab::plan(&lab);
    let artifacts = render::render_all(&lab, &plans, secrets).unwrap();
    (lab, artifacts)
}

/// UPDATE_GOLDEN=1 (refused under CI, which checks the committed files).
fn updating() -> bool {
    labctl_testenv::update_golden()
}

/// Compares `contents` with the file at `path`, or rewrites it under
/// UPDATE_GOLDEN=1. Returns a problem description when stale.
fn check_golden(path: &Path, contents: &str) -> Option<String> {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(old) if old == contents => None,
        Ok(old) => Some(format!(
            "{} is stale:\n{}",
            path.display(),
            first_difference(&old, contents)
        )),
        Err(_) => Some(format!("{} is missing", path.display())),
    }
}

fn first_difference(old: &str, new: &str) -> String {
    for (i, (a, b)) in old.lines().zip(new.lines()).enumerate() {
        if a != b {
            return format!("  line {}:\n  - {a}\n  + {b}", i + 1);
        }
    }
    format!(
        "  lengths differ: {} vs {} lines",
        old.lines().count(),
        new.lines().count()
    )
}

#[test]
fn golden_files_match_every_artifact() {
    let mut problems = Vec::new();
    for (file, dir) in [
        ("vagrant.yaml", "vagrant"),
        ("netns.yaml", "netns"),
        ("vagrant-libvirt.yaml", "vagrant-libvirt"),
        ("vagrant-netonly.yaml", "vagrant-netonly"),
    ] {
        let golden = repo_root().join("tests/golden").join(dir);
        let (_, artifacts) = render_lab(file, &JoinSecrets::default());
        if updating() {
            let _ = std::fs::remove_dir_all(&golden);
        }
        let rendered: std::collections::BTreeSet<String> = artifacts
            .iter()
            .map(|a| a.path.display().to_string())
            .collect();
        for artifact in &artifacts {
            problems.extend(check_golden(
                &golden.join(&artifact.path),
                &artifact.contents,
            ));
        }
        let on_disk = files_under(&golden);
        for extra in on_disk.difference(&rendered) {
            problems.push(format!(
                "{}/{extra} is no longer rendered",
                golden.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(run `UPDATE_GOLDEN=1 cargo test -p labctl --test render` and review the diff)",
        problems.join("\n")
    );
}

#[test]
fn top_level_vagrantfile_is_the_render_of_labs_vagrant_yaml() {
    let (_, artifacts) = render_lab("vagrant.yaml", &JoinSecrets::default());
    let vagrantfile = artifacts
        .iter()
        .find(|a| a.path == Path::new("Vagrantfile"))
        .unwrap();
    if let Some(problem) = check_golden(&repo_root().join("Vagrantfile"), &vagrantfile.contents) {
        panic!("{problem}\n(run `UPDATE_GOLDEN=1 cargo test -p labctl --test render`)");
    }
}

#[test]
fn vagrantfile_has_one_machine_per_node_and_no_hostname() {
    let (lab, artifacts) = render_lab("vagrant.yaml", &JoinSecrets::default());
    let text = &artifacts[0].contents;
    assert!(!text.contains('\r'), "CRLF in the Vagrantfile");
    assert!(
        !text.contains("vm.hostname"),
        "vm.hostname costs ~50 s per VM: labctl sets it over SSH"
    );
    assert!(text.contains(r#"config.vm.synced_folder ".", "/vagrant", disabled: true"#));
    assert!(text.contains("config.vm.boot_timeout = 900"));
    assert!(text.contains(r#"config.vm.box = "bento/ubuntu-24.04""#));
    for node in &lab.nodes {
        assert!(
            text.contains(&format!(r#"config.vm.define "{}""#, node.name)),
            "{}",
            node.name
        );
        assert!(text.contains(&format!(
            r#"node.vm.network "private_network", ip: "{}""#,
            node.ip
        )));
    }
    for provider in ["virtualbox", "libvirt", "vmware_desktop", "hyperv"] {
        assert_eq!(
            text.matches(&format!(r#"node.vm.provider "{provider}""#))
                .count(),
            3,
            "{provider}"
        );
    }
    // The lab's provider is declared first, so Vagrant picks it by default.
    let first = text.find("node.vm.provider").unwrap();
    assert!(text[first..].starts_with(r#"node.vm.provider "virtualbox""#));
}

/// The rendered YAML documents of a file, as JSON values.
fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(text).unwrap()
}

#[test]
fn kubeadm_init_parses_back_with_the_key_fields() {
    let (lab, artifacts) = render_lab("vagrant.yaml", &JoinSecrets::default());
    let init = artifacts
        .iter()
        .find(|a| a.path == Path::new("kubeadm-init.yaml"))
        .unwrap();
    let docs = yaml_documents(&init.contents);
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("kubeadm.k8s.io/v1beta4", "InitConfiguration"),
            ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration"),
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
            ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"),
        ]
    );
    let (initc, cluster, kubelet, proxy) = (&docs[0], &docs[1], &docs[2], &docs[3]);
    assert_eq!(
        initc["localAPIEndpoint"]["advertiseAddress"],
        "192.168.56.10"
    );
    assert_eq!(initc["nodeRegistration"]["name"], "master");
    assert_eq!(
        initc["nodeRegistration"]["criSocket"],
        "unix:///run/containerd/containerd.sock"
    );
    assert_eq!(
        initc["nodeRegistration"]["kubeletExtraArgs"],
        serde_json::json!([{"name": "node-ip", "value": "192.168.56.10"}])
    );
    assert_eq!(
        initc["bootstrapTokens"][0]["token"],
        render::TOKEN_PLACEHOLDER
    );
    assert!(initc["timeouts"]["controlPlaneComponentHealthCheck"].is_string());
    assert_eq!(cluster["kubernetesVersion"], "v1.37.0");
    assert_eq!(cluster["controlPlaneEndpoint"], "192.168.56.10:6443");
    assert_eq!(
        cluster["networking"]["podSubnet"],
        lab.network.pod_network.to_string()
    );
    assert_eq!(cluster["networking"]["podSubnet"], "10.244.0.0/16");
    assert_eq!(cluster["networking"]["serviceSubnet"], "10.96.0.0/12");
    assert_eq!(cluster["networking"]["dnsDomain"], "cluster.local");
    assert!(cluster["apiServer"]["certSANs"]
        .as_array()
        .unwrap()
        .contains(&"192.168.56.10".into()));
    assert_eq!(kubelet["cgroupDriver"], "systemd");
    assert_eq!(proxy["mode"], "iptables");
}

#[test]
fn kubeadm_join_per_worker_parses_back() {
    let (lab, artifacts) = render_lab("vagrant.yaml", &JoinSecrets::default());
    let joins: BTreeMap<String, &Artifact> = artifacts
        .iter()
        .filter(|a| a.path.to_string_lossy().starts_with("kubeadm-join-"))
        .map(|a| (a.path.display().to_string(), a))
        .collect();
    assert_eq!(
        joins.keys().collect::<Vec<_>>(),
        ["kubeadm-join-worker1.yaml", "kubeadm-join-worker2.yaml"]
    );
    for node in lab.nodes.iter().filter(|n| n.name != "master") {
        let docs = yaml_documents(&joins[&format!("kubeadm-join-{}.yaml", node.name)].contents);
        assert_eq!(docs.len(), 1);
        let join = &docs[0];
        assert_eq!(join["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(join["kind"], "JoinConfiguration");
        let token = &join["discovery"]["bootstrapToken"];
        assert_eq!(token["apiServerEndpoint"], "192.168.56.10:6443");
        assert_eq!(token["token"], render::TOKEN_PLACEHOLDER);
        assert_eq!(
            token["caCertHashes"],
            serde_json::json!([render::CA_HASH_PLACEHOLDER])
        );
        assert_eq!(join["nodeRegistration"]["name"], node.name.as_str());
        assert_eq!(
            join["nodeRegistration"]["kubeletExtraArgs"],
            serde_json::json!([{"name": "node-ip", "value": node.ip.to_string()}])
        );
        assert!(join["timeouts"]["discovery"].is_string());
    }
}

#[test]
fn node_files_are_the_plan_contents() {
    let path = lab_path("netns.yaml");
    let lab =
        labctl_lab::parse("labs/netns.yaml", &std::fs::read_to_string(path).unwrap()).unwrap();
    let plans = labctl_lab::plan(&lab);
    let artifacts = render::render_all(&lab, &plans, &JoinSecrets::default()).unwrap();
    for plan in &plans {
        let plan_json = artifacts
            .iter()
            .find(|a| a.path == Path::new("nodes").join(&plan.node).join("plan.json"))
            .unwrap();
        assert_eq!(
            labctl_nodeplan::NodePlan::from_json(&plan_json.contents).unwrap(),
            *plan
        );
        for file in &plan.files {
            let name = Path::new(&file.path).file_name().unwrap();
            let artifact = artifacts
                .iter()
                .find(|a| a.path == Path::new("nodes").join(&plan.node).join(name))
                .unwrap();
            assert_eq!(artifact.contents, file.contents);
        }
    }
}

#[test]
fn real_secrets_fill_the_slots_and_make_files_private() {
    let secrets = JoinSecrets {
        token: Some("abcdef.0123456789abcdef".into()),
        ca_cert_hash: Some(format!("sha256:{}", "ab".repeat(32))),
    };
    let (_, artifacts) = render_lab("vagrant.yaml", &secrets);
    for artifact in &artifacts {
        let name = artifact.path.display().to_string();
        let has_token = artifact.contents.contains("abcdef.0123456789abcdef");
        assert_eq!(artifact.secret, has_token, "{name}");
        assert_eq!(
            artifact.mode(),
            if has_token { 0o600 } else { 0o644 },
            "{name}"
        );
        // The placeholders themselves: Ruby's `__dir__` is not one.
        assert!(
            !artifact.contents.contains(render::TOKEN_PLACEHOLDER)
                && !artifact.contents.contains(render::CA_HASH_PLACEHOLDER),
            "{name} still has a placeholder"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    render::write_all(tmp.path(), &artifacts).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(tmp.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("kubeadm-init.yaml"), 0o600);
    assert_eq!(mode("kubeadm-join-worker1.yaml"), 0o600);
    assert_eq!(mode("Vagrantfile"), 0o644);
    // Atomic writes leave no temporary files behind.
    assert!(files_under(tmp.path()).iter().all(|f| !f.contains(".tmp-")));
}

#[test]
fn malformed_secrets_are_refused_without_echoing_them() {
    let path = lab_path("vagrant.yaml");
    let lab =
        labctl_lab::parse("labs/vagrant.yaml", &std::fs::read_to_string(path).unwrap()).unwrap();
    let plans = labctl_lab::plan(&lab);
    let bad = JoinSecrets {
        token: Some("SECRETVALUE".into()),
        ca_cert_hash: None,
    };
    let error = render::render_all(&lab, &plans, &bad).unwrap_err();
    assert_eq!(labctl::exit::exit_code_for(&error), 2);
    assert!(!format!("{error:#}").contains("SECRETVALUE"));
    let bad = JoinSecrets {
        token: None,
        ca_cert_hash: Some("md5:00".into()),
    };
    assert!(render::render_all(&lab, &plans, &bad).is_err());
}

#[test]
fn kubernetes_version_becomes_a_concrete_release() {
    assert_eq!(render::kubernetes_version("1.37"), "v1.37.0");
    assert_eq!(render::kubernetes_version("1.31"), "v1.31.0");
}

#[test]
fn each_provider_gets_only_what_it_uses() {
    let top_level = |file: &str| -> Vec<String> {
        let (_, artifacts) = render_lab(file, &JoinSecrets::default());
        let mut names: Vec<String> = artifacts
            .iter()
            .filter(|a| !a.path.starts_with("nodes"))
            .map(|a| a.path.display().to_string())
            .collect();
        names.sort();
        assert!(
            artifacts.iter().any(|a| a.path.ends_with("plan.json")),
            "{file}: node plans are always rendered"
        );
        names
    };
    let kubeadm = [
        "kubeadm-init.yaml",
        "kubeadm-join-worker1.yaml",
        "kubeadm-join-worker2.yaml",
    ];
    assert!(
        top_level("netns.yaml").is_empty(),
        "netns labs use neither Vagrant nor kubeadm"
    );
    assert_eq!(top_level("vagrant-netonly.yaml"), ["Vagrantfile"]);
    let mut vagrant = vec!["Vagrantfile"];
    vagrant.extend(kubeadm);
    assert_eq!(top_level("vagrant.yaml"), vagrant);
    assert_eq!(
        top_level("ssh.yaml"),
        [
            "kubeadm-init.yaml",
            "kubeadm-join-node1.yaml",
            "kubeadm-join-node2.yaml"
        ]
    );
}
