//! `labctl init`: the file it writes passes `labctl validate` for every
//! provider (the real binary on the real file), teaches in its comments,
//! and bad values or an existing file stop it with exit 2 and nothing
//! written.

mod common;

use common::*;

fn validate_json(dir: &std::path::Path, file: &str) -> serde_json::Value {
    let run = run_in(dir, &["validate", "--output", "json", file]);
    assert_eq!(run.code, 0, "labctl validate {file}:\n{run}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"))
}

#[test]
fn init_writes_a_lab_that_validates_for_every_provider() {
    let dir = tempfile::tempdir().unwrap();
    for (provider, teaches) in [
        ("netns", &["Needs root", "Nothing", "10.244.0.0/16"][..]),
        (
            "vagrant",
            &["192.168.56.0/21", "/etc/vbox/networks.conf", "MiB"][..],
        ),
        ("ssh", &["authorized_keys", "ssh-keygen", "ssh-copy-id"][..]),
    ] {
        for workers in ["0", "3"] {
            let file = format!("{provider}-{workers}.yaml");
            let run = run_in(
                dir.path(),
                &[
                    "init",
                    "--provider",
                    provider,
                    "--workers",
                    workers,
                    "--name",
                    "mylab",
                    "-o",
                    &file,
                ],
            );
            assert_eq!(run.code, 0, "{run}");
            assert!(run.stdout.contains(&file), "says where it wrote: {run}");
            let doc = validate_json(dir.path(), &file);
            assert_eq!(doc["lab"]["name"], "mylab");
            assert_eq!(doc["lab"]["provider"]["type"], provider);
            let nodes = doc["lab"]["nodes"].as_array().unwrap();
            assert_eq!(nodes.len(), 1 + workers.parse::<usize>().unwrap(), "{doc}");
            assert_eq!(nodes[0]["role"], "control-plane");
            assert_eq!(doc["warnings"].as_array().unwrap().len(), 0, "{doc}");
            let text = std::fs::read_to_string(dir.path().join(&file)).unwrap();
            for needle in teaches.iter().chain(&["labctl validate", "default"]) {
                assert!(
                    text.contains(needle),
                    "{file} does not mention {needle:?}:\n{text}"
                );
            }
            let comments = text
                .lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count();
            assert!(comments >= 20, "{file} has only {comments} comment lines");
        }
    }
}

#[test]
fn init_defaults_to_lab_yaml_and_prints_with_dash() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(dir.path(), &["init"]);
    assert_eq!(run.code, 0, "{run}");
    let doc = validate_json(dir.path(), "lab.yaml");
    assert_eq!(doc["lab"]["name"], "flannel");
    assert_eq!(doc["lab"]["provider"]["type"], "netns");
    assert_eq!(
        doc["lab"]["nodes"].as_array().unwrap().len(),
        3,
        "default 2 workers"
    );

    let run = run_in(
        dir.path(),
        &[
            "init",
            "--output",
            "json",
            "--provider",
            "ssh",
            "-o",
            "j.yaml",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let doc: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    assert_eq!(
        doc,
        serde_json::json!({"file": "j.yaml", "name": "flannel", "provider": "ssh", "nodes": ["master", "worker1", "worker2"]})
    );

    let printed = run_in(dir.path(), &["init", "--provider", "vagrant", "-o", "-"]);
    assert_eq!(printed.code, 0, "{printed}");
    std::fs::write(dir.path().join("printed.yaml"), &printed.stdout).unwrap();
    let doc = validate_json(dir.path(), "printed.yaml");
    assert_eq!(doc["lab"]["provider"]["type"], "vagrant");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.yaml");
    std::fs::write(&file, "mine\n").unwrap();
    let run = run_in(dir.path(), &["init"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("lab.yaml exists") && run.stderr.contains("--force"),
        "{run}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "mine\n",
        "untouched"
    );

    let run = run_in(dir.path(), &["init", "--force", "--workers", "1"]);
    assert_eq!(run.code, 0, "{run}");
    let doc = validate_json(dir.path(), "lab.yaml");
    assert_eq!(doc["lab"]["nodes"].as_array().unwrap().len(), 2);
}

#[test]
fn init_rejects_bad_values_with_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let too_long = "a".repeat(21);
    for (args, says) in [
        (&["init", "--name", "Bad_Name"][..], "is not a lab name"),
        (&["init", "--name", too_long.as_str()][..], "at most 20"),
        (&["init", "--name=-lead"][..], "is not a lab name"),
        (&["init", "--workers", "241"][..], "--workers"),
        (&["init", "--workers=-1"][..], "--workers"),
        (&["init", "--provider", "kvm"][..], "--provider"),
        (&["init", "-o", "missing/lab.yaml"][..], "does not exist"),
        (&["init", "-o", "."][..], "is a folder"),
    ] {
        let run = run_in(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}:\n{run}");
        assert!(
            run.stderr.contains(says),
            "{args:?} should say {says:?}:\n{run}"
        );
        assert!(
            !dir.path().join("lab.yaml").exists(),
            "{args:?} wrote a file"
        );
    }
}
