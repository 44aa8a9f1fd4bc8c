//! Commands on the nodes, all at once: every probe is a list of [`Job`]s
//! (an argv and the node whose session runs it); [`run_jobs`] sends each
//! node its jobs in one command over its one SSH session, every node at
//! once. A node with one job runs it directly; several run side by side
//! in one `labctl-agent jobs` process (the argvs travel as JSON, no shell
//! sees them).

use labctl_nodeplan::report::{self, JobsReport, JobsRequest};

use crate::nodes::AGENT_PATH;
use crate::ssh::Session;
use crate::verify::model::LabView;
use crate::verify::parse::last_lines;
use crate::verify::pool;

/// One command for one node: `at` is the node's index in the lab view
/// (and in the sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    pub at: usize,
    pub argv: Vec<String>,
}

/// What one job printed and how it exited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JobOutput {
    /// `None` when the fan-out printed no status (the job was cut short).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl JobOutput {
    /// stdout when the job exited 0, else a sentence naming the node, the
    /// command (`what`) and the last lines it printed.
    pub(crate) fn success(self, node: &str, what: &str) -> Result<String, String> {
        match self.status {
            Some(0) => Ok(self.stdout),
            status => Err(format!(
                "{node}: `{what}` {}: {}",
                status.map_or("printed no exit status".to_string(), |s| format!(
                    "exited {s}"
                )),
                last_lines(&format!("{}{}", self.stdout, self.stderr))
            )),
        }
    }
}

/// Runs `jobs` on `s`: one directly, several side by side by the node's
/// agent (`labctl-agent jobs`: no shell, one process). `stdin` goes to the
/// first job.
pub(crate) fn run_on(
    s: &Session,
    node: &str,
    jobs: &[&[String]],
    stdin: Option<&[u8]>,
) -> Result<Vec<JobOutput>, String> {
    if let [only] = jobs {
        let argv: Vec<&str> = only.iter().map(String::as_str).collect();
        let out = s.run(&argv, stdin).map_err(|e| e.to_string())?;
        return Ok(vec![JobOutput {
            status: Some(out.status),
            stdout: out.stdout_text(),
            stderr: out.stderr_text(),
        }]);
    }
    let request = JobsRequest {
        node: node.to_string(),
        jobs: jobs.iter().map(|j| j.to_vec()).collect(),
        stdin_to: stdin.map(|_| 0),
    };
    let request = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    let out = s
        .run(&[AGENT_PATH, "jobs", &request], stdin)
        .map_err(|e| e.to_string())?;
    if let Some(why) = crate::verify::parse::older_agent("jobs", out.status, &out.stderr_text()) {
        return Err(format!("{node}: {why}"));
    }
    if out.status == 2 && out.stderr_text().contains("unknown field `stdinTo`") {
        return Err(format!(
            "{node}: its labctl-agent is older than this labctl (its `jobs` gives no job the stdin): run `labctl up` to update it"
        ));
    }
    let report: JobsReport = report::decode(node, &out.stdout_text()).map_err(|e| {
        format!(
            "{e} (exit status {}: {})",
            out.status,
            last_lines(&out.stderr_text())
        )
    })?;
    if report.jobs.len() != jobs.len() {
        return Err(format!(
            "{node}: `labctl-agent jobs` answered for {} jobs of {}",
            report.jobs.len(),
            jobs.len()
        ));
    }
    Ok(report
        .jobs
        .into_iter()
        .map(|j| JobOutput {
            status: j.status,
            stdout: j.stdout,
            stderr: j.stderr,
        })
        .collect())
}

/// Runs every job, each node's jobs in one command, all nodes at once;
/// the outputs in job order, or why a job has none.
pub(crate) fn run_jobs(
    sessions: &mut [Option<Session>],
    view: &LabView,
    jobs: &[Job],
) -> Vec<Result<JobOutput, String>> {
    let answers = on_nodes(sessions, |i, s| {
        let mine: Vec<&[String]> = jobs
            .iter()
            .filter(|j| j.at == i)
            .map(|j| j.argv.as_slice())
            .collect();
        let node = view.nodes.get(i).map_or("?", |n| n.name.as_str());
        (!mine.is_empty()).then(|| run_on(s, node, &mine, None))
    });
    let mut next = vec![0usize; answers.len()];
    jobs.iter()
        .map(|job| {
            let node = view.nodes.get(job.at).map_or("?", |n| n.name.as_str());
            let k = next.get(job.at).copied().unwrap_or(0);
            if let Some(slot) = next.get_mut(job.at) {
                *slot += 1;
            }
            match answers.get(job.at).and_then(Option::as_ref) {
                Some(Some(Ok(outs))) => outs
                    .get(k)
                    .cloned()
                    .ok_or_else(|| format!("{node}: the probe printed nothing for this job")),
                Some(Some(Err(e))) => Err(e.clone()),
                _ => Err(format!("{node} is not reachable over SSH")),
            }
        })
        .collect()
}

/// Runs `work` on every node with a session, all nodes at once (the probes
/// are mostly waiting on the nodes), and puts the sessions back; `None`
/// for a node without a session.
pub(crate) fn on_nodes<R: Send>(
    sessions: &mut [Option<Session>],
    work: impl Fn(usize, &Session) -> R + Sync,
) -> Vec<Option<R>> {
    let items: Vec<(usize, Option<Session>)> =
        sessions.iter_mut().map(Option::take).enumerate().collect();
    let n = items.len();
    let results = pool::map(
        items,
        n.max(1),
        |(i, s)| {
            let r = s.as_ref().map(|s| work(i, s));
            (s, r)
        },
        |_| (None, None),
    );
    results
        .into_iter()
        .zip(sessions.iter_mut())
        .map(|((s, r), slot)| {
            *slot = s;
            r
        })
        .collect()
}
