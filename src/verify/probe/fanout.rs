//! Commands on the nodes, all at once: every probe is a list of [`Job`]s
//! (an argv and the node whose session runs it); [`run_jobs`] sends each
//! node its jobs in one command over its one SSH session, every node at
//! once, and the jobs of one node run side by side ([`FANOUT`]). A node
//! with one job runs it directly, with no shell around it.

use crate::ssh::{command_line, Session};
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

/// Runs every job (`$1…`, each the words of its argv quoted for the shell)
/// at once (each bounds itself, and the session bounds the whole), then
/// prints, job
/// by job, `@rc N STATUS` and its output lines as `@o N LINE` (stdout) and
/// `@e N LINE` (stderr). `eval` only ever sees single-quoted words (and
/// plain ones without any character a shell treats specially), so each
/// job becomes exactly its argv again.
const FANOUT: &str = r#"dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
set -f
i=0
for job in "$@"; do
  ( eval "set -- $job"; "$@" > "$dir/$i.out" 2> "$dir/$i.err" < /dev/null; echo $? > "$dir/$i.rc" ) &
  i=$((i + 1))
done
wait
i=0
for job in "$@"; do
  [ -e "$dir/$i.rc" ] && { read -r rc < "$dir/$i.rc"; printf '@rc %s %s\n' "$i" "$rc"; }
  while IFS= read -r l || [ -n "$l" ]; do printf '@o %s %s\n' "$i" "$l"; done < "$dir/$i.out"
  while IFS= read -r l || [ -n "$l" ]; do printf '@e %s %s\n' "$i" "$l"; done < "$dir/$i.err"
  i=$((i + 1))
done"#;

/// The command that runs `jobs` (argvs) at once on one node.
fn fanout_argv(jobs: &[&[String]]) -> Vec<String> {
    let mut argv: Vec<String> = ["sh", "-c", FANOUT, "sh"].map(String::from).to_vec();
    argv.extend(jobs.iter().map(|job| {
        let words: Vec<&str> = job.iter().map(String::as_str).collect();
        command_line(&words)
    }));
    argv
}

/// Splits [`FANOUT`]'s output into `n` jobs' outputs.
fn parse_fanout(text: &str, n: usize) -> Vec<JobOutput> {
    let mut out = vec![JobOutput::default(); n];
    for line in text.lines() {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        let (index, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some(job) = index.parse::<usize>().ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        match tag {
            "@rc" => job.status = value.trim().parse().ok(),
            "@o" => {
                job.stdout.push_str(value);
                job.stdout.push('\n');
            }
            "@e" => {
                job.stderr.push_str(value);
                job.stderr.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Runs `jobs` on `s`: one directly, several side by side.
fn run_on(s: &Session, jobs: &[&[String]]) -> Result<Vec<JobOutput>, String> {
    if let [only] = jobs {
        let argv: Vec<&str> = only.iter().map(String::as_str).collect();
        let out = s.run(&argv, None).map_err(|e| e.to_string())?;
        return Ok(vec![JobOutput {
            status: Some(out.status),
            stdout: out.stdout_text(),
            stderr: out.stderr_text(),
        }]);
    }
    let argv = fanout_argv(jobs);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    match s.run(&argv, None) {
        Ok(out) if out.success() => Ok(parse_fanout(&out.stdout_text(), jobs.len())),
        Ok(out) => Err(format!(
            "{}: the probe fan-out exited {}: {}",
            s.endpoint().node,
            out.status,
            last_lines(&out.stderr_text())
        )),
        Err(e) => Err(e.to_string()),
    }
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
        (!mine.is_empty()).then(|| run_on(s, &mine))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the fan-out exactly as a node's shell receives it over SSH
    /// (`sh -c` of the quoted command line), in folder `dir`.
    fn run_fan_out(dir: &std::path::Path, jobs: &[Vec<String>]) -> Vec<JobOutput> {
        let refs: Vec<&[String]> = jobs.iter().map(Vec::as_slice).collect();
        let argv = fanout_argv(&refs);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = std::process::Command::new("sh")
            .current_dir(dir)
            .args(["-c", &command_line(&argv)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        parse_fanout(&String::from_utf8_lossy(&out.stdout), jobs.len())
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn every_job_runs_with_its_status_and_both_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let outs = run_fan_out(
            dir.path(),
            &[
                words(&["sh", "-c", "echo one; echo two", "sh"]),
                words(&["sh", "-c", "echo oops >&2; exit 3", "sh"]),
                words(&["printf", ""]),
            ],
        );
        assert_eq!(outs[0].status, Some(0));
        assert_eq!(outs[0].stdout, "one\ntwo\n");
        assert_eq!(outs[1].status, Some(3));
        assert_eq!(outs[1].stderr, "oops\n");
        assert_eq!(
            outs[2],
            JobOutput {
                status: Some(0),
                ..Default::default()
            }
        );
        let e = outs[1].clone().success("w1", "probe").unwrap_err();
        assert_eq!(e, "w1: `probe` exited 3: oops");
        let cut = JobOutput::default().success("cp", "probe").unwrap_err();
        assert!(cut.ends_with("printed no exit status: no output"), "{cut}");
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
        "''\\''",
    ];

    /// Hostile words reach the command exactly as given, and nothing in
    /// them runs on the way.
    #[test]
    fn hostile_words_arrive_intact_and_run_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut job = words(&["printf", "<%s>"]);
        job.extend(words(HOSTILE));
        let outs = run_fan_out(dir.path(), &[job, words(&["echo", "10.244.1.2"])]);
        let echoed: String = HOSTILE.iter().map(|a| format!("<{a}>")).collect();
        assert_eq!(outs[0].stdout, format!("{echoed}\n"));
        assert_eq!(outs[1].stdout, "10.244.1.2\n");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("pwned"))
            .collect();
        assert!(left.is_empty(), "a word ran as a command: {left:?}");
    }
}
