//! Running commands on this host (`ip`, `iptables`, `ssh-keygen`, ...) with
//! errors that show the whole command line, its exit status and its stderr.
//!
//! labctl never links netlink: host networking goes through iproute2, with
//! `ip -batch -` so that many changes cost one process.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{anyhow, Context, Result};

/// A command line, for messages: program and arguments, each quoted when it
/// holds characters a shell would treat specially.
pub fn display<I, S>(program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut line = shell_word(program);
    for arg in args {
        line.push(' ');
        line.push_str(&shell_word(&arg.as_ref().to_string_lossy()));
    }
    line
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `program args...` with `stdin` (or nothing) on its standard input and
/// returns its output, whatever its exit status. Fails only when it cannot
/// start (then the message names the program).
pub fn output(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{}`", display(program, args)))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that exits early closes its stdin: its exit status and
        // stderr then say why, so a broken pipe here is not the error.
        let _ = pipe.write_all(data);
    }
    child
        .wait_with_output()
        .with_context(|| format!("waiting for `{}`", display(program, args)))
}

/// Runs a command that must succeed; returns its stdout as text. On failure
/// the error holds the command line, the exit status and stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_stdin(program, args, None)
}

/// Like [`run`], feeding `stdin` to the command.
pub fn run_with_stdin(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
    let out = output(program, args, stdin)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(failure(&display(program, args), &out))
}

/// The error for a command that ran and failed.
pub fn failure(command_line: &str, out: &Output) -> anyhow::Error {
    let status = match out.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        anyhow!("`{command_line}` failed ({status})")
    } else {
        anyhow!("`{command_line}` failed ({status}): {stderr}")
    }
}

/// Runs iproute2 commands as one `ip [-n NETNS] -batch -` process. Each line
/// is an `ip` command without the leading `ip`. On failure the message names
/// the failing line (iproute2 reports `Command failed -:N`).
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    batch("ip", netns, lines)
}

/// [`ip_batch`] for `bridge -batch` (FDB entries).
pub fn bridge_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    batch("bridge", netns, lines)
}

fn batch(program: &str, netns: Option<&str>, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    let script = lines.join("\n") + "\n";
    let out = output(program, &args, Some(script.as_bytes()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed_line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Command failed -:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| lines.get(n.wrapping_sub(1)));
    let err = failure(&display(program, &args), &out);
    match failed_line {
        Some(line) => Err(err.context(format!("`{program} {line}` failed"))),
        None => Err(err),
    }
}

/// True when `program` is found on PATH (or is an existing absolute path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

/// `program args...`'s stdout when it runs and exits 0; `None` otherwise
/// (a tool that is missing, or too old for an option). Nothing on its
/// stdin, its stderr dropped, Vagrant's version check off.
pub fn stdout_if_ok(program: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        assert_eq!(
            display("ip", ["link", "add", "a b", "it's"]),
            "ip link add 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn failure_shows_command_and_stderr() {
        let err = run("sh", &["-c", "echo oops >&2; exit 4"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c 'echo oops >&2; exit 4'"), "{msg}");
        assert!(msg.contains("exit status 4"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
    }

    #[test]
    fn missing_program_is_named() {
        let err = run("labctl-no-such-program", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("labctl-no-such-program"));
    }
}
