//! `labctl doctor`'s host preflight: what this host lacks for a lab (or
//! for any lab), one finding per thing, each with its fix.
//!
//! [`gather`](gather::gather) does all the I/O once, reading from
//! injectable [`Sources`] (so tests feed prepared /proc files, route tables
//! and program outputs); [`assess`](assess::assess) turns the [`Inputs`]
//! into [`Finding`]s without I/O. `up` runs [`preflight`] before it touches
//! anything: failures stop it (exit 3), warnings are printed. WSL's own
//! traps come from [`crate::wsl`].

mod assess;
mod gather;
pub mod parse;
pub mod tools;

use std::path::Path;

use anyhow::{anyhow, Result};
use labctl_lab::{Lab, ProviderType, VagrantProvider};
use serde::Serialize;

use crate::output::{paint, Style};

pub use assess::assess;
pub use gather::{gather, Sources};
pub use parse::HostRoute;
pub use tools::{Tool, NETNS_TOOLS, SSH_TOOLS};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    /// Printed; `up` goes on.
    Warn,
    /// What the lab needs is missing: `up` stops (exit 3).
    Fail,
}

/// One thing doctor looked at, what it found, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub message: String,
    /// Empty for findings that are fine.
    pub fix: String,
}

impl Finding {
    pub fn ok(id: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            id: id.into(),
            severity: Severity::Ok,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn new(
        id: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.into(),
            severity,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The finding's one line: `✓ [id] message`, or with ` — fix: ...`.
    pub fn line(&self, color: bool) -> String {
        let (mark, style) = match self.severity {
            Severity::Ok => ("✓", Style::Green),
            Severity::Warn => ("!", Style::Yellow),
            Severity::Fail => ("✗", Style::Red),
        };
        let mut line = format!(
            "{} [{}] {}",
            paint(mark, style, color),
            self.id,
            self.message
        );
        if !self.fix.is_empty() {
            line.push_str(&format!(" — fix: {}", self.fix));
        }
        line
    }
}

/// Which checks apply: every provider's (no lab), or one lab's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Host,
    Netns,
    Vagrant(VagrantProvider),
    Ssh,
}

impl Scope {
    pub fn of(lab: Option<&Lab>) -> Scope {
        match lab.map(|l| (l.provider.kind, l.provider.vagrant_provider)) {
            None => Scope::Host,
            Some((ProviderType::Netns, _)) => Scope::Netns,
            Some((ProviderType::Vagrant, p)) => Scope::Vagrant(p),
            Some((ProviderType::Ssh, _)) => Scope::Ssh,
        }
    }

    pub fn netns(self) -> bool {
        matches!(self, Scope::Host | Scope::Netns)
    }

    /// The Vagrant provider to check (VirtualBox for the host-wide run).
    pub fn vagrant(self) -> Option<VagrantProvider> {
        match self {
            Scope::Host => Some(VagrantProvider::Virtualbox),
            Scope::Vagrant(p) => Some(p),
            _ => None,
        }
    }

    /// Fail when a lab needs it, warn in the host-wide run.
    pub fn needed(self) -> Severity {
        if self == Scope::Host {
            Severity::Warn
        } else {
            Severity::Fail
        }
    }
}

/// Everything the assessment looks at, read once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    pub euid: u32,
    /// Programs of the scope's tool lists that are not on PATH.
    pub missing_programs: Vec<String>,
    pub modules: Vec<Module>,
    /// `iptables -V`.
    pub iptables_version: Option<String>,
    /// Rules in each backend; None where not read (or not loaded).
    pub legacy_rules: Option<usize>,
    pub nft_rules: Option<usize>,
    /// `vagrant --version`; None when Vagrant does not run.
    pub vagrant_version: Option<String>,
    /// `vagrant plugin list`, read where a plugin matters.
    pub vagrant_plugins: Option<String>,
    /// `VBoxManage --version`.
    pub virtualbox_version: Option<String>,
    /// /etc/vbox/networks.conf; None when absent.
    pub vbox_networks: Option<String>,
    /// `ip -4 -j route show table all`; None when it could not be read.
    pub routes: Option<Vec<HostRoute>>,
    /// /proc/meminfo.
    pub meminfo: Option<String>,
    pub cpus: Option<usize>,
    /// The host links the lab itself made (a netns lab's bridge): routes
    /// through them are the lab's own.
    pub own_links: Vec<String>,
    pub wsl: crate::wsl::Inputs,
}

/// A kernel module doctor needs, as found (doctor never loads one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: &'static str,
    /// Loaded or built in.
    pub present: bool,
    /// `modprobe -n` finds it.
    pub loadable: bool,
}

/// The finding of a lab network on one of the host's routes.
pub const ROUTE_OVERLAP: &str = "route-overlap";

/// The kernel modules a netns lab uses on the host's kernel.
pub const MODULES: &[&str] = &["vxlan", "bridge", "br_netfilter"];

/// `up`'s preflight: the lab's findings on this host; warnings printed to
/// stderr, failures returned as one error with the same lines: exit 3, or
/// 2 when the only failures are the lab's networks on the host's routes.
/// `own_links`: the host links the lab makes (routes through them are its
/// own).
pub fn preflight(lab: &Lab, lab_folder: &Path, own_links: &[String]) -> Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let euid = crate::process::effective_uid();
    let mut inputs = gather(&Sources::host(), &env, euid, Some(lab), lab_folder);
    inputs.own_links = own_links.to_vec();
    let findings = assess(&inputs, Some(lab));
    let color = crate::output::stderr_color();
    for finding in findings.iter().filter(|f| f.severity == Severity::Warn) {
        eprintln!("{}", finding.line(color));
    }
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| f.line(false))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    // Networks on the host's routes are the lab file's to fix, like
    // networks on another lab's: exit 2, as for any lab file problem.
    let lab_file_only = findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .all(|f| f.id == ROUTE_OVERLAP);
    let before = if lab.provider.kind == ProviderType::Vagrant {
        "`vagrant up`"
    } else {
        "creating anything"
    };
    let error = anyhow!(
        "this host cannot run lab {} as it is set up; labctl stopped before {before} \
         (`labctl doctor` shows every check):\n{}",
        lab.name,
        failed.join("\n")
    );
    Err(if lab_file_only {
        crate::exit::ExitError::usage(error)
    } else {
        crate::exit::ExitError::environment(error)
    })
}

#[cfg(test)]
#[path = "assess_tests.rs"]
mod assess_tests;
#[cfg(test)]
#[path = "gather_tests.rs"]
mod gather_tests;
