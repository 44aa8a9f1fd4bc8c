//! A node's whole `up` in one SSH command: when the node already has this
//! labctl's agent, one remote script runs the agent's `apply`, its
//! `pod add` for every wanted pod and reads the service chains, with the
//! plan sent once on stdin. A converged node then costs one session and
//! one command, the rest of `up` is only comparing. A node without the
//! agent (or with another build of it) answers so, and the caller uploads
//! it and asks again. Hashing the 1.7 MiB agent on every node costs more
//! than the rest of a converged node's work: the script keeps a stamp next
//! to it (its hash with the binary's size, mtime and inode) and hashes only
//! when the binary is not the one stamped.

use anyhow::{anyhow, Result};
use labctl_nodeplan::report::{self, AgentReport, ApplyReport, PodAddReport};
use labctl_nodeplan::NodePlan;

use super::{AGENT_PATH, SHOW_SERVICES};
use crate::ssh::Session;

/// The line that ends each part of the script's output, with the part's
/// exit status after it.
const PART_END: &str = "@@labctl-part-status ";
/// What the script prints when the node lacks this exact agent.
const AGENT_MISSING: &str = "@@labctl-agent-missing";

/// `sh -c SCRIPT sh AGENT SHA256 POD...`, the plan on stdin. Constant: the
/// agent's path, hash and the pod names come as quoted arguments.
const SCRIPT: &str = r#"agent=$1; want=$2; shift 2
stamp=$agent.stamp
now=$(stat -c '%s %Y %i' "$agent" 2>/dev/null) || now=
had=; [ -r "$stamp" ] && read -r had < "$stamp"
if [ -z "$now" ] || [ "$had" != "$want $now" ]; then
  sum=$(sha256sum "$agent" 2>/dev/null) || sum=
  if [ "${sum%% *}" != "$want" ] || [ ! -x "$agent" ]; then
    echo "@@labctl-agent-missing"; exit 0
  fi
  printf '%s %s\n' "$want" "$now" > "$stamp" 2>/dev/null || :
fi
plan=$(cat)
printf '%s' "$plan" | "$agent" apply
printf '\n@@labctl-part-status %s\n' "$?"
for pod in "$@"; do
  printf '%s' "$plan" | "$agent" pod add "$pod"
  printf '\n@@labctl-part-status %s\n' "$?"
done
"#;

/// What one node reported from its one command.
#[derive(Debug)]
pub struct Converged {
    pub apply: ApplyReport,
    /// The pods' reports, in the order asked for.
    pub pods: Vec<(String, PodAddReport)>,
    /// The service chains as `iptables -S` showed them (see
    /// [`super::ensure_services_shown`]).
    pub services_shown: String,
}

/// Runs the node's whole convergence in one command; `Ok(None)` when the
/// node does not have this agent (upload it, then call again).
pub fn converge(session: &Session, plan: &NodePlan, pods: &[&str]) -> Result<Option<Converged>> {
    let script = format!("{SCRIPT}{SHOW_SERVICES}\n");
    let mut argv = vec![
        "sh",
        "-c",
        &script,
        "sh",
        AGENT_PATH,
        crate::embedded::agent_sha256(),
    ];
    argv.extend_from_slice(pods);
    let out = session.run(&argv, Some(plan.to_json().as_bytes()))?;
    let text = out.stdout_text();
    if text.lines().next() == Some(AGENT_MISSING) {
        return Ok(None);
    }
    let parts = split_parts(&text);
    let stderr = out.stderr_text();
    let part = |i: usize, command: &str| -> Result<&(String, i32)> {
        parts.get(i).ok_or_else(|| {
            anyhow!(
                "`labctl-agent {command}` on node {} gave no answer (exit status {} of the whole command): {}",
                plan.node,
                out.status,
                stderr.trim()
            )
        })
    };
    let apply = decode::<ApplyReport>(plan, part(0, "apply")?, &["apply"], &stderr)?;
    let mut reports = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let args = ["pod", "add", pod];
        let r = decode::<PodAddReport>(plan, part(i + 1, &args.join(" "))?, &args, &stderr)?;
        reports.push((pod.to_string(), r));
    }
    let services_shown = parts
        .get(pods.len() + 1)
        .map(|(t, _)| t.clone())
        .unwrap_or_default();
    Ok(Some(Converged {
        apply,
        pods: reports,
        services_shown,
    }))
}

/// The output's parts: text up to each end line with its status; what
/// follows the last end line is the last part (status 0).
fn split_parts(text: &str) -> Vec<(String, i32)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        match line.trim_end().strip_prefix(PART_END) {
            Some(status) => {
                parts.push((std::mem::take(&mut current), status.parse().unwrap_or(-1)));
            }
            None => current.push_str(line),
        }
    }
    parts.push((current, 0));
    parts
}

/// One part's report, or an error naming the node and the command with the
/// report's errors (else the command's stderr).
fn decode<T: AgentReport>(
    plan: &NodePlan,
    (text, status): &(String, i32),
    args: &[&str],
    stderr: &str,
) -> Result<T> {
    if *status == 0 {
        return Ok(report::decode(&plan.node, text)?);
    }
    let errors = report::decode::<T>(&plan.node, text)
        .ok()
        .map(|r| r.errors().join("; "))
        .filter(|s| !s.is_empty());
    let detail = errors.unwrap_or_else(|| stderr.trim().to_string());
    Err(anyhow!(
        "`labctl-agent {}` on node {} failed with exit status {status}: {detail}",
        args.join(" "),
        plan.node,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_on_status_lines() {
        let text =
            "{\"a\":1}\n@@labctl-part-status 0\n{\"b\":2}\n@@labctl-part-status 4\n-N X\n---\n";
        let parts = split_parts(text);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], ("{\"a\":1}\n".to_string(), 0));
        assert_eq!(parts[1], ("{\"b\":2}\n".to_string(), 4));
        assert_eq!(parts[2].0, "-N X\n---\n");
    }

    #[test]
    fn a_report_without_newline_still_splits() {
        // printf '\n...' ends a report that has no newline of its own.
        let parts = split_parts("{}\n@@labctl-part-status 1\n");
        assert_eq!(parts[0], ("{}\n".to_string(), 1));
        assert_eq!(parts[1], (String::new(), 0));
    }
}
