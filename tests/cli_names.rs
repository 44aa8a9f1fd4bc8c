//! Words from the command line never become paths unchecked (the real
//! binary): every command that takes a lab name refuses a word that is not
//! one with exit 2 and the word quoted, a node word must be a node of the
//! lab, and a folder with a bad name in the state directory is no lab.
//! Sentinel lab folders wait where the hostile words lead (`../X`, `/abs`,
//! `X/b`), each a forgettable ssh lab: `destroy --forget` would remove them.

mod common;

use std::path::PathBuf;

use common::*;
use labctl::names::quoted;

/// The words the issue names, with a few more of the same kind.
fn hostile_words() -> Vec<String> {
    [
        "..", "../x", "/abs", "a/b", "", "a\nb", "a;b", "$(x)", "`x`", "Lab", ".",
    ]
    .iter()
    .map(|w| w.to_string())
    .chain(["a".repeat(300), "a".repeat(21)])
    .collect()
}

/// A unique suffix for this run's folders (other tests may run alongside).
fn unique(what: &str) -> String {
    format!("tnames{what}{}", std::process::id() % 100_000)
}

/// Each sentinel's folder must still hold its state.
fn assert_intact(sentinels: &[PathBuf]) {
    for s in sentinels {
        assert!(
            s.join("state.json").is_file(),
            "{} was touched",
            s.display()
        );
    }
}

#[test]
fn hostile_lab_words_are_refused_and_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let labs = labs_root(tmp.path());
    std::fs::create_dir_all(&labs).unwrap();

    // Where `../X`, an absolute path and `X/b` lead from the labs folder.
    let beside = fake_lab_state(labs.parent().unwrap(), &unique("up"), "ssh");
    let _beside_guard = StateGuard(beside.clone());
    let absolute = fake_lab_state(tmp.path(), "abs-sentinel", "ssh");
    let nested_top = labs.join(unique("nest"));
    let _nested_guard = StateGuard(nested_top.clone());
    let nested = fake_lab_state(&nested_top, "b", "ssh");
    let sentinels = [beside.clone(), absolute.clone(), nested];

    let mut words = hostile_words();
    words.push(format!("../{}", unique("up")));
    words.push(absolute.display().to_string());
    words.push(format!("{}/b", unique("nest")));

    let before = files_under(tmp.path());
    let existed: Vec<bool> = words.iter().map(|w| labs.join(w).exists()).collect();
    for word in &words {
        let commands: [Vec<&str>; 5] = [
            vec!["destroy", "--name", word],
            vec!["destroy", "--name", word, "--forget"],
            vec!["status", "--name", word],
            vec!["exec", "--lab", word, "master", "--", "true"],
            vec!["ssh", "--lab", word, "master"],
        ];
        for args in &commands {
            let run = run_in(tmp.path(), args);
            assert_eq!(run.code, 2, "{args:?}: {run}");
            assert!(run.stderr.contains(&quoted(word)), "{args:?}: {run}");
            assert!(
                run.stderr.contains("at most 20 lowercase letters"),
                "{args:?}: {run}"
            );
            assert_intact(&sentinels);
        }
        // verify takes a lab file: a word that is none is exit 2 too.
        let run = run_in(tmp.path(), &["verify", word]);
        assert_eq!(run.code, 2, "verify {word:?}: {run}");
        assert!(run.stderr.contains(word.as_str()), "verify {word:?}: {run}");
        assert_intact(&sentinels);
    }
    assert_eq!(
        files_under(tmp.path()),
        before,
        "files appeared or vanished"
    );
    for (word, existed) in words.iter().zip(existed) {
        assert_eq!(labs.join(word).exists(), existed, "{word:?}");
    }
}

#[test]
fn node_words_must_be_nodes_of_the_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let labs = labs_root(tmp.path());
    let name = unique("nodes");
    let dir = fake_lab_state(&labs, &name, "ssh");
    let _guard = StateGuard(dir.clone());
    let before = files_under(&dir);
    let mut words = hostile_words();
    words.push("Master".into());
    words.push("worker9".into());
    for word in &words {
        for args in [
            vec!["exec", word, "--lab", &name, "--", "true"],
            vec!["ssh", word, "--lab", &name],
        ] {
            let run = run_in(tmp.path(), &args);
            assert_eq!(run.code, 2, "{args:?}: {run}");
            assert!(
                run.stderr
                    .contains(&format!("lab {name} has no node {}", quoted(word))),
                "{args:?}: {run}"
            );
            assert!(
                run.stderr.contains("(nodes: master, worker1)"),
                "{args:?}: {run}"
            );
        }
    }
    assert_eq!(files_under(&dir), before, "the lab folder changed");
}

#[test]
fn a_folder_with_a_bad_name_in_the_state_directory_is_no_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let labs = labs_root(tmp.path());
    let strays: Vec<PathBuf> = ["Bad_Name", "x;y", "a b"]
        .iter()
        .map(|w| fake_lab_state(&labs, &format!("{w}{}", unique("")), "ssh"))
        .collect();
    let _guards: Vec<StateGuard> = strays.iter().cloned().map(StateGuard).collect();
    let good = fake_lab_state(&labs, &unique("good"), "ssh");
    let _good_guard = StateGuard(good.clone());

    let run = run_in(tmp.path(), &["--output", "json", "list"]);
    assert_eq!(run.code, 0, "{run}");
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(names.contains(&unique("good").as_str()), "{run}");
    for stray in &strays {
        let stray_name = stray.file_name().unwrap().to_str().unwrap();
        assert!(!names.contains(&stray_name), "{stray_name} listed: {run}");
        assert!(stray.join("state.json").is_file(), "{stray:?} was touched");
    }
}
