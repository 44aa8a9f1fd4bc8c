//! A node's whole `up` in one SSH command: `labctl-agent converge` runs
//! the agent's `apply` (data plane and service chains) and its `pod add`
//! for every wanted pod, with the plan sent once on stdin. A
//! converged node then costs one session and one process besides the
//! login shell; the rest of `up` is only comparing. A node without the
//! agent (or with another build of it) answers so, and the caller uploads
//! it and asks again. The framing of the answer is
//! [`labctl_nodeplan::converge`]'s.

use anyhow::{anyhow, Result};
use labctl_nodeplan::converge::{split_parts, BUILD_OK};
use labctl_nodeplan::report::{self, AgentReport, ApplyReport, PodAddReport};
use labctl_nodeplan::NodePlan;

use super::AGENT_PATH;
use crate::ssh::Session;

/// What one node reported from its one command.
#[derive(Debug)]
pub struct Converged {
    pub apply: ApplyReport,
    /// The pods' reports, in the order asked for.
    pub pods: Vec<(String, PodAddReport)>,
}

/// The node's answer to `converge`.
#[derive(Debug)]
pub enum Answer {
    Converged(Converged),
    /// The node does not run this build of the agent (none at its path,
    /// another build, or one too old to know `converge`): what it said.
    NotThisAgent(String),
}

/// Runs the node's whole convergence in one command.
pub fn converge(session: &Session, plan: &NodePlan, pods: &[&str]) -> Result<Answer> {
    let mut argv = vec![
        AGENT_PATH,
        "converge",
        "--want",
        crate::embedded::agent_sha256(),
    ];
    argv.extend_from_slice(pods);
    let out = session.run(&argv, Some(plan.to_json().as_bytes()))?;
    let text = out.stdout_text();
    let stderr = out.stderr_text();
    let Some(text) = text
        .strip_prefix(BUILD_OK)
        .and_then(|rest| rest.strip_prefix('\n'))
    else {
        let first = text.lines().next().unwrap_or("");
        let said = format!("{first} {}", stderr.trim());
        let said = said.trim();
        let colon = if said.is_empty() { "" } else { ": " };
        return Ok(Answer::NotThisAgent(format!(
            "exit status {}{colon}{said}",
            out.status
        )));
    };
    let parts = split_parts(text);
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
    Ok(Answer::Converged(Converged {
        apply,
        pods: reports,
    }))
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
