//! `labctl ssh NODE` (an interactive shell: the system ssh with the lab's
//! key and pinned host key) and `labctl exec NODE|--all -- CMD` (run a
//! command over SSH, every output line prefixed `node: `, exit status the
//! worst of the nodes').

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};

use super::{ExecArgs, SshArgs};
use crate::exit::ExitError;
use crate::lab_select;
use crate::nodes;
use crate::output::GlobalOpts;
use crate::ssh::{HostKeyPolicy, Session};

pub fn ssh(args: &SshArgs, _global: &GlobalOpts) -> Result<ExitCode> {
    let name = lab_select::lab_word(args.lab.as_deref())?;
    let lab = lab_select::existing(&name, "ssh")?;
    let ep = nodes::endpoint(&lab.dir, &lab.state, &args.node)?;
    // The system ssh would refuse too, but labctl's own check says which
    // key it saw and what to do (exit 3 like every other command).
    Session::check_host_key(&ep, &HostKeyPolicy::RequireKnown, Duration::from_secs(10))
        .map_err(ExitError::environment)?;
    let err = std::process::Command::new("ssh")
        .args(crate::ssh::system_ssh_args(&ep))
        .exec();
    Err(ExitError::environment(anyhow!(
        "cannot run the system ssh client: {err}"
    )))
}

/// What one node's command left.
struct NodeOutput {
    node: String,
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// The node's host key was refused: nothing ran there.
    host_key_refused: bool,
}

pub fn exec(args: &ExecArgs, _global: &GlobalOpts) -> Result<ExitCode> {
    let name = lab_select::lab_word(args.lab.as_deref())?;
    let lab = lab_select::existing(&name, "exec")?;
    let targets: Vec<String> = match (&args.node, args.all) {
        (_, true) => lab.state.nodes.keys().cloned().collect(),
        (Some(node), false) => {
            nodes::endpoint(&lab.dir, &lab.state, node)?;
            vec![node.clone()]
        }
        (None, false) => return Err(ExitError::usage(anyhow!("name a node or pass --all"))),
    };
    let argv: Vec<&str> = args.command.iter().map(String::as_str).collect();
    let outputs = nodes::parallel(&targets, |node| {
        let run = || -> Result<crate::ssh::Output> {
            let session = nodes::connect(
                &lab.dir,
                &lab.state,
                node,
                &HostKeyPolicy::RequireKnown,
                Duration::from_secs(10),
            )?;
            Ok(session.run(&argv, None)?)
        };
        match run() {
            Ok(out) => NodeOutput {
                node: node.to_string(),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
                host_key_refused: false,
            },
            Err(e) => NodeOutput {
                node: node.to_string(),
                status: 255,
                stdout: Vec::new(),
                stderr: format!("labctl: {e:#}\n").into_bytes(),
                host_key_refused: crate::ssh::is_host_key_refusal(&e),
            },
        }
    });
    let mut worst = 0;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for o in &outputs {
        prefix_lines(&mut out, &o.node, &o.stdout)?;
        prefix_lines(&mut err, &o.node, &o.stderr)?;
        worst = worst.max(o.status);
    }
    out.flush()?;
    let refused: Vec<&str> = outputs
        .iter()
        .filter(|o| o.host_key_refused)
        .map(|o| o.node.as_str())
        .collect();
    if !refused.is_empty() {
        return Err(ExitError::environment(anyhow!(
            "host key refused on {} (see above): the command did not run there",
            refused.join(", ")
        )));
    }
    Ok(ExitCode::from(
        u8::try_from(worst.clamp(0, 255)).unwrap_or(255),
    ))
}

fn prefix_lines(w: &mut impl Write, node: &str, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        writeln!(w, "{node}: {line}")?;
    }
    Ok(())
}
