//! `labctl-agent jobs`: every job at once, each word as sent (no shell
//! sees them), each job's status and outputs in order. Needs no root.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use labctl_nodeplan::report::{self, JobsReport, JobsRequest};

use common::{prefix, TempDir, AGENT};

/// A fresh empty folder for one test.
fn folder(test: &str) -> TempDir {
    let dir = TempDir::new(&prefix(test));
    std::fs::create_dir_all(&dir.0).unwrap();
    dir
}

fn jobs(dir: &std::path::Path, jobs: &[&[&str]]) -> JobsReport {
    let request = JobsRequest {
        node: "w1".into(),
        jobs: jobs
            .iter()
            .map(|j| j.iter().map(|w| w.to_string()).collect())
            .collect(),
        stdin_to: None,
    };
    let out = Command::new(AGENT)
        .current_dir(dir)
        .args(["jobs", &serde_json::to_string(&request).unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    report::decode("w1", &String::from_utf8_lossy(&out.stdout)).unwrap()
}

#[test]
fn every_job_runs_with_its_status_and_both_outputs() {
    let dir = folder("jobs");
    let r = jobs(
        &dir.0,
        &[
            &["sh", "-c", "echo one; echo two"],
            &["sh", "-c", "echo oops >&2; exit 3"],
            &["sh", "-c", "kill -9 $$"],
            &["no-such-program-here"],
        ],
    );
    assert_eq!(r.node, "w1");
    assert_eq!(r.jobs.len(), 4);
    assert_eq!(r.jobs[0].status, Some(0));
    assert_eq!(r.jobs[0].stdout, "one\ntwo\n");
    assert_eq!(r.jobs[1].status, Some(3));
    assert_eq!(r.jobs[1].stderr, "oops\n");
    assert_eq!(r.jobs[2].status, Some(128 + 9), "killed by SIGKILL");
    assert_eq!(r.jobs[3].status, None);
    assert!(
        r.jobs[3]
            .stderr
            .contains("cannot run no-such-program-here: No such file or directory"),
        "{:?}",
        r.jobs[3]
    );
}

#[test]
fn jobs_run_side_by_side() {
    let dir = folder("jobs2");
    let started = Instant::now();
    let r = jobs(
        &dir.0,
        &[&["sleep", "0.4"], &["sleep", "0.4"], &["sleep", "0.4"]],
    );
    assert!(r.jobs.iter().all(|j| j.status == Some(0)), "{r:?}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "one after another: {took:?}"
    );
}

const HOSTILE: &[&str] = &[
    "a b",
    "it's",
    "\"q\"",
    "$(touch pwned-dollar)",
    "`touch pwned-backtick`",
    "; touch pwned-semicolon",
    "| touch pwned-pipe",
    "a\tb",
    "",
    "*",
    "~",
    "$HOME",
    "x=y",
    "-n",
    "\\",
    "'",
];

/// Hostile words reach the program exactly as given, and nothing in them
/// runs on the way.
#[test]
fn hostile_words_arrive_intact_and_run_nothing() {
    let dir = folder("jobs3");
    let mut job = vec!["printf", "<%s>"];
    job.extend(HOSTILE);
    let r = jobs(&dir.0, &[&job, &["echo", "10.244.1.2"]]);
    let echoed: String = HOSTILE.iter().map(|a| format!("<{a}>")).collect();
    assert_eq!(r.jobs[0].stdout, echoed);
    assert_eq!(r.jobs[1].stdout, "10.244.1.2\n");
    let left: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "a word ran as a command: {left:?}");
}

#[test]
fn a_request_that_is_not_valid_is_refused_with_exit_2() {
    for request in [
        r#"{"node":"w1","jobs":[[]]}"#,
        r#"{"node":"w1","jobs":[["sh"]],"extra":1}"#,
        r#"{"node":"w1","jobs":[["cat"]],"stdinTo":1}"#,
        "not json",
    ] {
        let out = Command::new(AGENT)
            .args(["jobs", request])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{request}: {out:?}");
        assert!(out.stdout.is_empty());
    }
}

/// The job `stdinTo` names reads the command's stdin; the others read
/// nothing (they would otherwise wait on it, or take part of it).
#[test]
fn one_job_reads_the_commands_stdin() {
    use std::io::Write;
    let request = JobsRequest {
        node: "w1".into(),
        jobs: vec![vec!["cat".into()], vec!["cat".into()]],
        stdin_to: Some(1),
    };
    let mut child = Command::new(AGENT)
        .args(["jobs", &serde_json::to_string(&request).unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"the plan\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: JobsReport = report::decode("w1", &String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(r.jobs[0].stdout, "", "a job not named read the stdin");
    assert_eq!(r.jobs[1].stdout, "the plan\n");
}
