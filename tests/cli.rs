//! labctl's command line end to end: the real binary on the real lab files.

mod common;

use common::*;

#[test]
fn validate_accepts_every_lab_and_prints_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    for lab in all_labs() {
        let run = run_in(tmp.path(), &["validate", lab.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}: {run}", lab.display());
        for column in [
            "NODE",
            "ROLE",
            "IP",
            "SUBNET",
            "VTEP MAC",
            "FLANNEL.1",
            "CNI0",
        ] {
            assert!(
                run.stdout.contains(column),
                "{}: no {column} column: {run}",
                lab.display()
            );
        }
        assert!(run.stdout.contains("control-plane"), "{run}");
        // The host-gw example has networks of its own, to run beside netns.yaml.
        let pods = if lab.ends_with("netns-host-gw.yaml") {
            assert!(run.stdout.contains("backend host-gw"), "{run}");
            "10.248"
        } else {
            assert!(
                run.stdout.contains("backend vxlan (VNI 1, UDP 8472)"),
                "{run}"
            );
            "10.244"
        };
        assert!(run.stdout.contains(&format!("{pods}.0.0/24")), "{run}");
        assert!(run.stdout.contains(&format!("{pods}.0.1/24")), "{run}");
        assert!(run.stdout.contains("kubernetes API 10.96.0.1,"), "{run}");
        assert!(run.stdout.contains("cluster DNS 10.96.0.10"), "{run}");
    }
}

#[test]
fn validate_netns_lab_shows_the_classic_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(
        tmp.path(),
        &["validate", lab_path("netns.yaml").to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run}");
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("master") || l.starts_with("worker"))
        .collect();
    assert_eq!(rows.len(), 3, "{run}");
    assert!(
        rows[0].contains("192.168.56.10") && rows[0].contains("10.244.0.0/32"),
        "{run}"
    );
    assert!(
        rows[1].contains("192.168.56.11") && rows[1].contains("10.244.1.0/24"),
        "{run}"
    );
    assert!(
        rows[2].contains("192.168.56.12") && rows[2].contains("10.244.2.1/24"),
        "{run}"
    );
}

#[test]
fn validate_json_is_the_full_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(
        tmp.path(),
        &[
            "--output",
            "json",
            "validate",
            lab_path("vagrant.yaml").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["lab"]["name"], "flannel-vagrant");
    assert_eq!(json["apiServiceIp"], "10.96.0.1");
    assert_eq!(json["dnsServiceIp"], "10.96.0.10");
    let plans = json["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(plans[1]["node"], "worker1");
    assert_eq!(plans[1]["underlayIp"], "192.168.56.11");
    assert_eq!(plans[1]["peers"].as_array().unwrap().len(), 2);
    // The option is global: it works after the subcommand too.
    let after = run_in(
        tmp.path(),
        &[
            "validate",
            lab_path("netns.yaml").to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(after.code, 0, "{after}");
    serde_json::from_str::<serde_json::Value>(&after.stdout).unwrap();
}

#[test]
fn invalid_lab_prints_every_diagnostic_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = write_lab(
        tmp.path(),
        "bad.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: bad\nnetwork:\n  backend: {type: vxlan, vni: 0, port: 0}\n\
         nodes:\n  - name: master\n    role: control-plane\n  - name: worker1\n",
    );
    let run = run_in(tmp.path(), &["validate", lab.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(run.stderr.starts_with("error: lab file "), "{run}");
    assert!(run.stderr.contains("bad.yaml"), "{run}");
    assert!(run.stderr.contains("network.backend.vni"), "{run}");
    assert!(run.stderr.contains("network.backend.port"), "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn misspelt_key_names_the_line_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = write_lab(
        tmp.path(),
        "typo.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: typo\nnodez:\n  - name: master\n",
    );
    let run = run_in(tmp.path(), &["validate", lab.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("typo.yaml:4"),
        "no file:line for the unknown key: {run}"
    );
    assert!(run.stderr.contains("nodez"), "{run}");
}

#[test]
fn invalid_lab_renders_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = write_lab(
        tmp.path(),
        "bad.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: Bad_Name\nnodes: []\n",
    );
    let out = tmp.path().join("out");
    let run = run_in(
        tmp.path(),
        &[
            "render",
            lab.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(
        !out.exists(),
        "render of an invalid lab created {}",
        out.display()
    );
    assert!(
        !tmp.path().join("state").exists(),
        "render of an invalid lab created the state folder"
    );
}

#[test]
fn missing_lab_file_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(tmp.path(), &["validate", "nope.yaml"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stderr.trim(),
        "error: lab file nope.yaml does not exist",
        "{run}"
    );
    // No LAB: ./lab.yaml, and the message says so.
    let run = run_in(tmp.path(), &["render"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("lab.yaml does not exist"), "{run}");
    assert!(run.stderr.contains("./lab.yaml"), "{run}");
}

#[test]
fn default_lab_is_lab_yaml_in_the_current_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(lab_path("netns.yaml"), tmp.path().join("lab.yaml")).unwrap();
    let run = run_in(tmp.path(), &["validate"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("lab flannel is valid"), "{run}");
}

#[test]
fn render_writes_exactly_the_expected_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = run_in(
        tmp.path(),
        &[
            "render",
            lab_path("vagrant.yaml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let expected =
        expected_render_files(&["worker1", "worker2"], &["master", "worker1", "worker2"]);
    assert_eq!(files_under(&out), expected);
    assert!(
        run.stdout.contains(&format!("({} files)", expected.len())),
        "{run}"
    );
    // No real token: every file is world-readable, none executable.
    use std::os::unix::fs::PermissionsExt;
    for file in &expected {
        let mode = std::fs::metadata(out.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{file}");
    }
}

#[test]
fn render_json_lists_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = run_in(
        tmp.path(),
        &[
            "--output",
            "json",
            "render",
            lab_path("vagrant.yaml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let files: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"Vagrantfile") && files.contains(&"kubeadm-join-worker2.yaml"),
        "{run}"
    );
}

#[test]
fn help_shows_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(tmp.path(), &["--help"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Examples:"), "{run}");
    assert!(
        run.stdout.contains("labctl validate labs/netns.yaml"),
        "{run}"
    );
    for command in [
        "validate", "render", "up", "destroy", "status", "list", "ssh", "exec", "verify", "doctor",
        "version",
    ] {
        assert!(
            run.stdout.contains(&format!("  {command}")),
            "--help lacks {command}: {run}"
        );
    }
    for sub in ["validate", "render", "verify", "doctor"] {
        let run = run_in(tmp.path(), &[sub, "--help"]);
        assert_eq!(run.code, 0, "{run}");
        assert!(run.stdout.contains("Examples:"), "{sub} --help: {run}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run_in(tmp.path(), &["validate", "--no-such-flag"]).code, 2);
    assert_eq!(run_in(tmp.path(), &["frobnicate"]).code, 2);
    assert_eq!(
        run_in(tmp.path(), &["--output", "yaml", "validate"]).code,
        2
    );
}

#[test]
fn version_shows_the_embedded_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(tmp.path(), &["version"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("labctl {}", env!("CARGO_PKG_VERSION"))),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&format!("sha256 {}", labctl::embedded::agent_sha256())),
        "{run}"
    );
    let json = run_in(tmp.path(), &["version", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["agent"]["sha256"], labctl::embedded::agent_sha256());
}

#[test]
fn no_color_means_no_escape_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_in(tmp.path(), &["validate", "missing.yaml"]);
    assert!(!run.stderr.contains('\x1b'), "{run}");
    let ok = run_in(
        tmp.path(),
        &["validate", lab_path("netns.yaml").to_str().unwrap()],
    );
    assert!(!ok.stdout.contains('\x1b'), "{ok}");
}

#[test]
fn destroy_forget_drops_an_unreachable_ssh_lab_and_refuses_other_providers() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        labctl_testenv::skip(
            "destroy_forget_drops_an_unreachable_ssh_lab_and_refuses_other_providers",
            "lab state lives in /var/lib/labctl only for root",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let labs = labs_root(tmp.path());
    let ssh_name = format!("tforget{}", std::process::id() % 100_000);
    let ssh_dir = fake_lab_state(&labs, &ssh_name, "ssh");
    let _ssh_guard = StateGuard(ssh_dir.clone());

    // Its nodes cannot be reached: destroy fails, names them, keeps the folder.
    let run = run_in(tmp.path(), &["destroy", "--name", &ssh_name]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("node master"), "{run}");
    assert!(run.stderr.contains("stays"), "{run}");
    assert!(run.stderr.contains("--forget"), "the hint: {run}");
    assert!(ssh_dir.join("state.json").is_file());

    let run = run_in(tmp.path(), &["destroy", "--name", &ssh_name, "--forget"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("forgotten"), "{run}");
    assert!(run.stdout.contains("master (127.0.0.1)"), "{run}");
    assert!(!ssh_dir.exists(), "the state folder is gone");
    let run = run_in(tmp.path(), &["destroy", "--name", &ssh_name, "--forget"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("nothing to do"), "{run}");

    // A vagrant lab's VMs and Vagrantfile are on this host: no forgetting.
    let vm_name = format!("tforgetvm{}", std::process::id() % 100_000);
    let vm_dir = fake_lab_state(&labs, &vm_name, "vagrant");
    let _vm_guard = StateGuard(vm_dir.clone());
    let run = run_in(tmp.path(), &["destroy", "--name", &vm_name, "--forget"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("only for ssh labs"), "{run}");
    assert!(vm_dir.join("state.json").is_file(), "nothing touched");
}

#[test]
fn destroy_leaves_nodes_labctl_never_reached_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("tnever{}", std::process::id() % 100_000);
    let dir = fake_lab_state(&labs_root(tmp.path()), &name, "ssh");
    let _guard = StateGuard(dir.clone());
    // No pin: `up` never reached the nodes (it pins before anything else),
    // so there is nothing of the lab on them, and no key to trust now.
    std::fs::remove_file(dir.join("known_hosts")).unwrap();
    let run = run_in(tmp.path(), &["destroy", "--name", &name]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("master: never reached"), "{run}");
    assert!(run.stderr.contains("worker1: never reached"), "{run}");
    assert!(!dir.exists(), "the state folder is gone");
}

/// `labctl … | head -1`: once the reader has gone, labctl ends as `cat`
/// does (killed by SIGPIPE, nothing on stderr), never with
/// "Broken pipe (os error 32)" or an internal-error line. `schema` prints
/// with `print!` (a panic inside std), `man` with `write_all` (an error).
#[test]
fn a_closed_stdout_ends_labctl_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["schema"][..], &["man"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        // The reader is gone before labctl writes a byte: no race.
        drop(reader);
        let out = labctl(tmp.path())
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, "", "labctl {args:?} printed on stderr");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "labctl {args:?} ended with {:?}",
            out.status
        );
    }
}
