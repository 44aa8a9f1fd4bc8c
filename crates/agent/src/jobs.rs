//! `labctl-agent jobs REQUEST`: every argv of the request started at once,
//! without a shell, then waited for; one report with each one's exit
//! status, stdout and stderr, in order. It stands in for a shell fan-out
//! that cost a shell, `mktemp`, `rm` and a subshell per job on every node
//! of a verify round (and read the outputs back a byte at a time).
//!
//! Needs neither a plan nor root: the jobs run as whoever runs it. One job
//! may be given the command's own stdin (`stdinTo`). Each job
//! bounds itself (`timeout`, the agent's own deadlines); labctl's session
//! bounds the whole.

use std::process::{Command, Stdio};

use labctl_nodeplan::report::{JobResult, JobsReport, JobsRequest, REPORT_VERSION};

use crate::error::{AgentError, Result};

/// More jobs than any verify round gives a node.
const MAX_JOBS: usize = 256;

/// Decodes and checks the request (exit 2 before anything runs).
pub fn parse_request(text: &str) -> Result<JobsRequest> {
    let request: JobsRequest = serde_json::from_str(text)
        .map_err(|e| AgentError::Input(format!("jobs: the request is not valid: {e}")))?;
    if request.jobs.len() > MAX_JOBS {
        return Err(AgentError::Input(format!(
            "jobs: {} jobs asked, at most {MAX_JOBS}",
            request.jobs.len()
        )));
    }
    if let Some(i) = request.stdin_to.filter(|i| *i >= request.jobs.len()) {
        return Err(AgentError::Input(format!(
            "jobs: stdinTo {i} names no job ({} asked)",
            request.jobs.len()
        )));
    }
    if let Some(i) = request.jobs.iter().position(|argv| {
        argv.first().is_none_or(String::is_empty) || argv.iter().any(|w| w.contains('\0'))
    }) {
        return Err(AgentError::Input(format!(
            "jobs: job {i} has no program, or a word with a NUL byte"
        )));
    }
    Ok(request)
}

/// Runs every job of `request` side by side; the job `stdin_to` names
/// gets this process's stdin.
pub fn run(request: &JobsRequest) -> JobsReport {
    let children: Vec<std::io::Result<std::process::Child>> = request
        .jobs
        .iter()
        .enumerate()
        .map(|(i, argv)| {
            let stdin = if request.stdin_to == Some(i) {
                Stdio::inherit()
            } else {
                Stdio::null()
            };
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(stdin)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    let jobs = std::thread::scope(|s| {
        let waits: Vec<_> = children
            .into_iter()
            .zip(&request.jobs)
            .map(|(child, argv)| s.spawn(move || finish(child, &argv[0])))
            .collect();
        waits
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| JobResult {
                    stderr: "labctl-agent: the job's waiting thread panicked".into(),
                    ..Default::default()
                })
            })
            .collect()
    });
    JobsReport {
        report_version: REPORT_VERSION,
        command: "jobs".into(),
        node: request.node.clone(),
        jobs,
    }
}

/// Waits for one job and reads both its outputs.
fn finish(child: std::io::Result<std::process::Child>, program: &str) -> JobResult {
    let out = child.and_then(std::process::Child::wait_with_output);
    match out {
        Ok(out) => JobResult {
            status: out.status.code().or_else(|| {
                std::os::unix::process::ExitStatusExt::signal(&out.status).map(|s| 128 + s)
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => JobResult {
            status: None,
            stdout: String::new(),
            stderr: format!(
                "labctl-agent: cannot run {program}: {}",
                crate::error::describe_io(&e)
            ),
        },
    }
}
