//! The `vagrant` command, run in a lab's render folder (the one holding its
//! Vagrantfile and Vagrant's `.vagrant` state).
//!
//! Every failure names the command, the folder, the exit status and the
//! end of what Vagrant printed. Vagrant's own environment redirections
//! (`VAGRANT_CWD`, `VAGRANT_VAGRANTFILE`, `VAGRANT_DOTFILE_PATH`) are
//! cleared so a learner's shell settings cannot point labctl at another
//! project, and the version check against the internet is off.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{anyhow, Context, Result};

use super::ssh_config::{self, SshConfigEntry};
use super::status::{self, MachineStatus};
use super::up_log::UpSummary;
use crate::hostcmd;

/// How many lines of output an error message shows.
pub const TAIL_LINES: usize = 25;

/// Marks where one command's output starts in a log file.
const LOG_HEADER: &str = "### labctl ran: ";

/// `vagrant` for one lab folder.
#[derive(Debug, Clone)]
pub struct Vagrant {
    program: PathBuf,
    dir: PathBuf,
    provider: Option<String>,
}

impl Vagrant {
    /// `vagrant` from PATH, working in `dir` (the folder with the Vagrantfile).
    pub fn new(dir: impl Into<PathBuf>) -> Vagrant {
        Vagrant {
            program: PathBuf::from("vagrant"),
            dir: dir.into(),
            provider: None,
        }
    }

    /// Another `vagrant` executable (tests, or a non-standard install).
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Vagrant {
        self.program = program.into();
        self
    }

    /// `vagrant up --provider=NAME` (`virtualbox`, `libvirt`, ...).
    pub fn with_provider(mut self, name: impl Into<String>) -> Vagrant {
        self.provider = Some(name.into());
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `vagrant --version` (`Vagrant 2.3.4`); an environment error (exit 3)
    /// when Vagrant is not installed.
    pub fn version(&self) -> Result<String> {
        let out = self.output(&["--version"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `vagrant validate -p`: checks the Vagrantfile without any provider.
    pub fn validate(&self) -> Result<()> {
        self.captured(&["validate", "-p"]).map(|_| ())
    }

    /// `vagrant up`, its output appended to `log` (see [`Vagrant::up_watching`]).
    pub fn up(&self, log: &Path) -> Result<UpSummary> {
        self.up_watching(log, &mut |_, _| {})
    }

    /// `vagrant up` with its output appended to `log`; `on_step(machine,
    /// status)` is called for every `==> machine: ...` line as it comes.
    /// Returns each machine's last step; on failure the error shows them
    /// and the end of the log.
    pub fn up_watching(
        &self,
        log: &Path,
        on_step: &mut dyn FnMut(&str, &str),
    ) -> Result<UpSummary> {
        let provider = self.provider.as_ref().map(|p| format!("--provider={p}"));
        let mut args = vec!["up", "--no-color"];
        args.extend(provider.as_deref());
        let mut summary = UpSummary::default();
        let status = self.run_logged(&args, log, &mut |line| {
            if let Some((machine, step)) = summary.observe(line) {
                on_step(&machine, &step);
            }
        })?;
        if !status.success() {
            let machines = format!("machines: {}", summary.lines().join("; "));
            return Err(self.logged_failure(&args, status, log, Some(&machines)));
        }
        Ok(summary)
    }

    /// `vagrant ssh-config`: how to reach every machine. Fails while a
    /// machine is not running.
    pub fn ssh_config(&self) -> Result<BTreeMap<String, SshConfigEntry>> {
        self.ssh_config_of(&[])
    }

    /// `vagrant ssh-config NAME...`: only these machines (all when empty),
    /// so one stopped machine does not hide the others.
    pub fn ssh_config_of(&self, machines: &[&str]) -> Result<BTreeMap<String, SshConfigEntry>> {
        let mut args = vec!["ssh-config"];
        args.extend_from_slice(machines);
        let text = self.captured(&args)?;
        ssh_config::parse(&text)
            .with_context(|| format!("cannot read `vagrant ssh-config` in {}", self.dir.display()))
    }

    /// `vagrant status --machine-readable`: every machine's state.
    pub fn status(&self) -> Result<BTreeMap<String, MachineStatus>> {
        let args = ["status", "--machine-readable"];
        let out = self.output(&args)?;
        let text = String::from_utf8_lossy(&out.stdout);
        match status::parse_status(&text) {
            Err(err) => Err(anyhow!(err).context(self.failed_line(&args, out.status))),
            Ok(_) if !out.status.success() => Err(self.captured_failure(&args, &out)),
            Ok(machines) => Ok(machines),
        }
    }

    /// `vagrant destroy -f`, its output appended to `log`.
    pub fn destroy(&self, log: &Path) -> Result<()> {
        self.destroy_machines(&[], log)
    }

    /// `vagrant destroy -f NAME...`: only these machines (all when empty).
    pub fn destroy_machines(&self, machines: &[&str], log: &Path) -> Result<()> {
        let mut args = vec!["destroy", "-f"];
        args.extend_from_slice(machines);
        let status = self.run_logged(&args, log, &mut |_| {})?;
        if !status.success() {
            return Err(self.logged_failure(&args, status, log, None));
        }
        Ok(())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env_remove("VAGRANT_CWD")
            .env_remove("VAGRANT_VAGRANTFILE")
            .env_remove("VAGRANT_DOTFILE_PATH");
        cmd
    }

    fn command_line(&self, args: &[&str]) -> String {
        hostcmd::display(&self.program.to_string_lossy(), args)
    }

    fn cannot_start(&self, args: &[&str], err: std::io::Error) -> anyhow::Error {
        if err.kind() == std::io::ErrorKind::NotFound {
            return crate::exit::ExitError::environment(anyhow!(
                "`{}` cannot run: Vagrant is not installed or not on PATH \
                 (install it from your package manager or vagrantup.com)",
                self.program.display()
            ));
        }
        anyhow!(err).context(format!(
            "cannot run `{}` in {}",
            self.command_line(args),
            self.dir.display()
        ))
    }

    fn output(&self, args: &[&str]) -> Result<std::process::Output> {
        self.command(args)
            .output()
            .map_err(|e| self.cannot_start(args, e))
    }

    /// Runs a command whose output is small; returns stdout on success.
    fn captured(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(self.captured_failure(args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn failed_line(&self, args: &[&str], status: ExitStatus) -> String {
        format!(
            "`{}` in {} failed ({})",
            self.command_line(args),
            self.dir.display(),
            describe(status)
        )
    }

    fn captured_failure(&self, args: &[&str], out: &std::process::Output) -> anyhow::Error {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        anyhow!(
            "{}; it printed:\n{}",
            self.failed_line(args, out.status),
            tail(&text, TAIL_LINES)
        )
    }

    fn logged_failure(
        &self,
        args: &[&str],
        status: ExitStatus,
        log: &Path,
        summary: Option<&str>,
    ) -> anyhow::Error {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let this_run = text.rsplit(LOG_HEADER).next().unwrap_or("");
        let summary = summary.map(|s| format!("; {s}")).unwrap_or_default();
        anyhow!(
            "{}{summary}; last lines of {}:\n{}",
            self.failed_line(args, status),
            log.display(),
            tail(this_run, TAIL_LINES)
        )
    }

    /// Runs with stdout and stderr appended to `log`, feeding each stdout
    /// line to `on_line` as it arrives.
    fn run_logged(
        &self,
        args: &[&str],
        log: &Path,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExitStatus> {
        let open_log = || {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
        };
        let mut file =
            open_log().with_context(|| format!("cannot open the log {}", log.display()))?;
        writeln!(
            file,
            "{LOG_HEADER}{} (in {})",
            self.command_line(args),
            self.dir.display()
        )
        .with_context(|| format!("cannot write the log {}", log.display()))?;
        let stderr = file
            .try_clone()
            .with_context(|| format!("cannot share the log {}", log.display()))?;
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| self.cannot_start(args, e))?;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                // Best effort: a full disk must not stop Vagrant half-way.
                let _ = writeln!(file, "{}", line.trim_end_matches('\r'));
                on_line(&line);
            }
        }
        child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.command_line(args)))
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    }
}

/// The last `n` non-empty lines of `text`, indented for an error message.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        return "  (nothing)".to_string();
    }
    lines[start..]
        .iter()
        .map(|l| format!("  {}", l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}
