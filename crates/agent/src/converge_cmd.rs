//! `labctl-agent converge --want SHA256 [POD...]`: a node's whole part of
//! `labctl up` in one process, with the plan read once from stdin: make
//! sure this is the build labctl asked for, `apply` (the data plane and
//! the plan's service chains) and `pod add` each pod. The output's framing
//! is [`labctl_nodeplan::converge`]'s.
//!
//! Before this command, a remote shell script did the same with `stat`,
//! `cat`, `sha256sum`, one agent process per step and `iptables-save`:
//! on a converged node that was most of the work besides the SSH login.

use std::io::Write;

use labctl_nodeplan::converge::{AGENT_MISSING, BUILD_OK, PART_END};
use labctl_nodeplan::NodePlan;

use crate::error::{AgentError, Result, EXIT_FAILED, EXIT_OK};
use crate::links::Mode;
use crate::{build_id, node, pod, report};

/// Runs the command; the exit status is 0 whenever the framing was
/// printed (each part carries its own status).
pub fn run(want: &str, pods: &[&str], verbose: bool) -> Result<i32> {
    if !build_id::is_build(want) {
        println!("{AGENT_MISSING}");
        return Ok(EXIT_OK);
    }
    println!("{BUILD_OK}");
    let plan = crate::plan::load(None)?;
    crate::require_root()?;
    let status = part(|| {
        let out = node::converge(&plan, Mode::Apply, verbose)?;
        let failed = !out.errors.is_empty();
        report::print(&report::apply_report(&plan.node, out));
        Ok(if failed { EXIT_FAILED } else { EXIT_OK })
    });
    end_part(status);
    for name in pods {
        end_part(part(|| pod_add(&plan, name)));
    }
    Ok(EXIT_OK)
}

fn pod_add(plan: &NodePlan, name: &str) -> Result<i32> {
    report::print(&pod::add(plan, name)?.report());
    Ok(EXIT_OK)
}

/// One part's exit status, its error on stderr as the agent's `main`
/// prints one.
fn part(step: impl FnOnce() -> Result<i32>) -> i32 {
    step().unwrap_or_else(|e: AgentError| {
        eprintln!("labctl-agent: {e}");
        e.exit_code()
    })
}

fn end_part(status: i32) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\n{PART_END}{status}\n");
    let _ = out.flush();
}
