//! kubectl on the control plane, over its SSH session, as root with the
//! admin kubeconfig (as `up` runs it: `kubectl --kubeconfig
//! /etc/kubernetes/admin.conf`). Commands in pods go through one constant
//! fan-out script that runs every `kubectl exec` at once and tags each
//! output line with its pod; the in-pod scripts are constants too, and lab
//! values (pod names, addresses, sizes) travel only as arguments, each one
//! single-quoted ([`crate::ssh::quote`]) so no value is ever read as shell.

use std::collections::BTreeMap;

use crate::kubeadm::steps::ADMIN_CONF;
use crate::ssh::{command_line, Session};

use super::manifest::NAMESPACE;

/// Runs `kubectl exec -n $2 POD -- sh -c $3 sh ARGS…` for every job
/// (`$4…`, each the words `POD ARG…` quoted for the shell, see [`job`]) at
/// once, kubeconfig `$1`. Prints every output line as `@pod POD LINE` and
/// then `@rc POD STATUS`. `eval` only ever sees single-quoted words (and
/// plain ones without any character a shell treats specially), so each job
/// becomes exactly its arguments again.
const EXEC_SCRIPT: &str = r#"conf=$1; ns=$2; inner=$3; shift 3
set -f
t=; command -v timeout >/dev/null 2>&1 && t="timeout 40"
for job in "$@"; do
  ( eval "set -- $job"; pod=$1; shift
    out=$($t kubectl --kubeconfig "$conf" -n "$ns" exec "$pod" -- sh -c "$inner" sh "$@" 2>&1); rc=$?
    printf '%s\n' "$out" | while IFS= read -r l; do printf '@pod %s %s\n' "$pod" "$l"; done
    printf '@rc %s %s\n' "$pod" "$rc" ) &
done
wait"#;

/// In a busybox pod: pings every target (`$2…`, `$1` pings each) at once,
/// one line `@@ IP OUTPUT` per target (newlines turned into `|`), the
/// same lines as the network-only mesh script prints.
pub const POD_PING_SCRIPT: &str = r#"n=$1; shift
for ip in "$@"; do
  ( out=$(ping -c "$n" -W 1 -q "$ip" 2>&1)
    printf '@@ %s %s\n' "$ip" "$(printf '%s' "$out" | tr '\n' '|')" ) &
done
wait"#;

/// In a busybox pod: its busybox version, its resolv.conf's `@nameserver`
/// lines, then `nslookup kubernetes.default` through that resolv.conf (the
/// cluster DNS service IP).
pub const POD_DNS_SCRIPT: &str = r#"printf '@version %s\n' "$(busybox 2>/dev/null | head -n 1)"
sed -n 's/^nameserver[[:space:]]*/@nameserver /p' /etc/resolv.conf
nslookup kubernetes.default 2>&1"#;

/// In a busybox pod: the MTU of its eth0.
pub const POD_MTU_SCRIPT: &str = r#"printf '@mtu eth0 %s\n' "$(cat /sys/class/net/eth0/mtu)""#;

/// One job of [`EXEC_SCRIPT`]: the pod and its arguments, each quoted for
/// a POSIX shell, joined by spaces.
fn job(pod: &str, args: &[String]) -> String {
    let words: Vec<&str> = std::iter::once(pod)
        .chain(args.iter().map(String::as_str))
        .collect();
    command_line(&words)
}

/// The command that runs `inner` in every pod of `jobs` at once.
fn exec_all_argv(inner: &str, jobs: &[(String, Vec<String>)]) -> Vec<String> {
    let mut argv: Vec<String> = ["sh", "-c", EXEC_SCRIPT, "sh", ADMIN_CONF, NAMESPACE, inner]
        .map(String::from)
        .to_vec();
    argv.extend(jobs.iter().map(|(pod, args)| job(pod, args)));
    argv
}

/// What one `kubectl exec` printed and how it exited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecAnswer {
    /// `None` when the fan-out script printed no status (it was cut short).
    pub status: Option<i32>,
    /// stdout and stderr together, newlines restored.
    pub output: String,
}

impl ExecAnswer {
    /// The answer, or a sentence naming the command (run on `cp`), its
    /// status and what it printed last (kubectl's error).
    pub fn into_result(self, cp: &str, pod: &str) -> Result<String, String> {
        match self.status {
            Some(0) => Ok(self.output),
            status => Err(format!(
                "{cp}: `kubectl -n {NAMESPACE} exec {pod} -- sh -c …` {}: {}",
                status.map_or("printed no exit status".to_string(), |s| format!(
                    "exited {s}"
                )),
                last_lines(&self.output)
            )),
        }
    }
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no output".to_string()
    } else {
        tail.join(" | ")
    }
}

/// Splits [`EXEC_SCRIPT`]'s output by pod.
pub fn parse_exec_output(text: &str) -> BTreeMap<String, ExecAnswer> {
    let mut out: BTreeMap<String, ExecAnswer> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("@pod ") {
            let (pod, l) = rest.split_once(' ').unwrap_or((rest, ""));
            let a = out.entry(pod.to_string()).or_default();
            a.output.push_str(l);
            a.output.push('\n');
        } else if let Some(rest) = line.strip_prefix("@rc ") {
            let (pod, rc) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(pod.to_string()).or_default().status = rc.trim().parse().ok();
        }
    }
    out
}

/// The control plane's session and name, for kubectl.
pub struct Kubectl<'a> {
    pub session: &'a Session,
    pub node: &'a str,
}

impl Kubectl<'_> {
    /// `kubectl --kubeconfig ADMIN_CONF ARGS…` (stdin optional); stdout,
    /// or a sentence naming the node, the command and its stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
        let mut argv = vec!["kubectl", "--kubeconfig", ADMIN_CONF];
        argv.extend_from_slice(args);
        let shown = command_line(&argv);
        match self.session.run(&argv, stdin) {
            Ok(out) if out.success() => Ok(out.stdout_text()),
            Ok(out) => Err(format!(
                "{}: `{shown}` exited {}: {}",
                self.node,
                out.status,
                last_lines(&out.stderr_text())
            )),
            Err(e) => Err(format!("{}: `{shown}`: {e}", self.node)),
        }
    }

    /// Runs `inner` in every pod of `jobs` (pod, arguments) at once; the
    /// answer of each pod, or the error that stands for all of them.
    pub fn exec_all(
        &self,
        inner: &str,
        jobs: &[(String, Vec<String>)],
    ) -> Result<BTreeMap<String, ExecAnswer>, String> {
        let argv = exec_all_argv(inner, jobs);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        match self.session.run(&argv, None) {
            Ok(out) if out.success() => Ok(parse_exec_output(&out.stdout_text())),
            Ok(out) => Err(format!(
                "{}: the kubectl exec script exited {}: {}",
                self.node,
                out.status,
                last_lines(&out.stderr_text())
            )),
            Err(e) => Err(format!("{}: kubectl exec: {e}", self.node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_output_is_split_by_pod_with_status() {
        let text = "@pod busybox-a @@ 10.244.1.2 PING|2 packets transmitted, 2 packets received, 0% packet loss\n\
                    @pod busybox-b error: unable to upgrade connection: container not found (\"busybox\")\n\
                    @rc busybox-b 1\n\
                    @pod busybox-a \n\
                    @rc busybox-a 0\n";
        let answers = parse_exec_output(text);
        let a = answers["busybox-a"].clone();
        assert_eq!(a.status, Some(0));
        assert!(a.output.starts_with("@@ 10.244.1.2 PING|"));
        assert!(a.clone().into_result("master", "busybox-a").is_ok());
        let b = answers["busybox-b"]
            .clone()
            .into_result("master", "busybox-b");
        let e = b.unwrap_err();
        assert!(
            e.starts_with("master: `kubectl -n labctl-verify exec busybox-b -- sh -c …` exited 1: error: unable to upgrade connection"),
            "{e}"
        );
        let cut = ExecAnswer::default().into_result("master", "busybox-c");
        assert!(cut
            .unwrap_err()
            .contains("printed no exit status: no output"));
    }

    /// A `kubectl` stand-in in a fresh folder: it writes the argv it got
    /// after `exec` (POD -- sh -c INNER sh ARGS…) NUL-separated to
    /// `argv-POD`, then runs the in-pod command right here, as kubectl
    /// exec would in the pod; pod `bad` fails like a missing pod.
    fn stand_in() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("kubectl");
        // kubectl --kubeconfig C -n NS exec POD -- sh -c INNER sh ARGS…
        std::fs::write(
            &stub,
            "#!/bin/sh\nshift 5; pod=$1\nprintf '%s\\0' \"$@\" > \"${0%/*}/argv-$pod\"\nshift 2\n[ \"$pod\" = bad ] && { echo 'error: pod not found' >&2; exit 1; }\nexec \"$@\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// Runs the fan-out exactly as the control plane's shell receives it
    /// over SSH (`sh -c` of the quoted command line), `kubectl` stood in.
    fn run_fan_out(dir: &std::path::Path, inner: &str, jobs: &[(String, Vec<String>)]) -> String {
        let argv = exec_all_argv(inner, jobs);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .env("PATH", path)
            .current_dir(dir)
            .args(["-c", &command_line(&argv)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn jobs(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(pod, args)| {
                (
                    pod.to_string(),
                    args.iter().map(|a| a.to_string()).collect(),
                )
            })
            .collect()
    }

    /// The fan-out and in-pod scripts, run by a real `sh` with a `kubectl`
    /// stand-in that runs the in-pod script right here.
    #[test]
    fn exec_script_runs_every_job_and_tags_lines() {
        let dir = stand_in();
        let stdout = run_fan_out(
            dir.path(),
            "printf 'got %s\\n' \"$@\"",
            &jobs(&[
                ("good", &["10.0.0.1", "10.0.0.2"]),
                ("bad", &["10.0.0.3"]),
                ("lonely", &[]),
            ]),
        );
        let answers = parse_exec_output(&stdout);
        assert_eq!(answers["good"].status, Some(0));
        assert_eq!(answers["good"].output, "got 10.0.0.1\ngot 10.0.0.2\n");
        assert_eq!(answers["bad"].status, Some(1));
        assert!(answers["bad"].output.contains("error: pod not found"));
        assert_eq!(answers["lonely"].output, "got \n");
    }

    const HOSTILE: &[&str] = &[
        "a b",
        "it's",
        "\"q\"",
        "$(touch pwned-dollar)",
        "`touch pwned-backtick`",
        "; touch pwned-semicolon",
        "| touch pwned-pipe",
        "a\nb",
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

    #[test]
    fn every_job_is_quoted_word_by_word() {
        let args: Vec<String> = HOSTILE.iter().map(|a| a.to_string()).collect();
        let quoted = job("busybox-a", &args);
        assert!(
            quoted.starts_with("busybox-a 'a b' 'it'\\''s' '\"q\"' '$(touch pwned-dollar)'"),
            "{quoted}"
        );
        assert!(quoted.contains(" '' '*' '~' '$HOME' 'x=y' -n "), "{quoted}");
        // What `eval "set -- JOB"` makes of it: the very same words.
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "eval \"set -- $1\"; printf '%s\\0' \"$@\"",
                "sh",
                &quoted,
            ])
            .output()
            .unwrap();
        let words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect();
        let mut expected = vec!["busybox-a".to_string()];
        expected.extend(args);
        assert_eq!(words, expected);
    }

    /// Hostile arguments reach kubectl exactly as given, and nothing in
    /// them runs on the way.
    #[test]
    fn hostile_arguments_reach_kubectl_intact_and_run_nothing() {
        let dir = stand_in();
        let inner = "printf '<%s>' \"$@\"";
        let stdout = run_fan_out(
            dir.path(),
            inner,
            &jobs(&[("busybox-a", HOSTILE), ("busybox-b", &["10.244.1.2"])]),
        );
        let argv = std::fs::read(dir.path().join("argv-busybox-a")).unwrap();
        let argv: Vec<&str> = std::str::from_utf8(&argv)
            .unwrap()
            .split_terminator('\0')
            .collect();
        let mut expected = vec!["busybox-a", "--", "sh", "-c", inner, "sh"];
        expected.extend(HOSTILE);
        assert_eq!(argv, expected);
        let answers = parse_exec_output(&stdout);
        assert_eq!(answers["busybox-a"].status, Some(0), "{stdout}");
        let echoed: String = HOSTILE.iter().map(|a| format!("<{a}>")).collect();
        assert_eq!(answers["busybox-a"].output, format!("{echoed}\n"));
        assert_eq!(answers["busybox-b"].output, "<10.244.1.2>\n");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("pwned"))
            .collect();
        assert!(left.is_empty(), "an argument ran as a command: {left:?}");
    }
}
