//! Summarising `vagrant up` output per machine.
//!
//! Vagrant prints `Bringing machine 'NAME' up with 'PROVIDER' provider...`
//! for each machine, then its steps as `==> NAME: Booting VM...` and details
//! indented as `    NAME: SSH address: ...`. The last step of a machine
//! says how far it got: that is what a progress line or an error message
//! shows.
//!
//! Not every `==>` line is a step. Vagrant prefixes every line of a
//! wrapped message, so a repeat `up` ends with
//! `==> NAME: Machine already provisioned. Run `vagrant provision` or use the `--provision``
//! and `==> NAME: flag to force provisioning. ...`: the second line
//! continues the first mid-sentence, and starts in lower case like every
//! continuation (steps start with a capital). vagrant-libvirt also lists
//! the domain's settings as `==> NAME:  -- Cpus: 1` (indented): details.

use std::collections::BTreeMap;

/// Each machine's last step, in machine-name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpSummary {
    pub machines: BTreeMap<String, String>,
}

impl UpSummary {
    /// Feeds one line of output; returns the machine and its new status
    /// when the line is a step of a machine (not a detail, nor the
    /// continuation of a wrapped message).
    pub fn observe(&mut self, line: &str) -> Option<(String, String)> {
        let (machine, status) = parse_line(line)?;
        self.machines.insert(machine.clone(), status.clone());
        Some((machine, status))
    }

    /// Summarises a whole log.
    pub fn from_log(text: &str) -> UpSummary {
        let mut summary = UpSummary::default();
        for line in text.lines() {
            summary.observe(line);
        }
        summary
    }

    /// One `NAME: last step` line per machine.
    pub fn lines(&self) -> Vec<String> {
        self.machines
            .iter()
            .map(|(machine, status)| format!("{machine}: {status}"))
            .collect()
    }
}

/// `(machine, status)` of a step line or a `Bringing machine` line.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = strip_ansi(line);
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("Bringing machine '") {
        let (machine, rest) = rest.split_once('\'')?;
        let provider = rest
            .strip_prefix(" up with '")
            .and_then(|r| r.split_once('\''))
            .map(|(p, _)| p);
        let status = match provider {
            Some(p) => format!("queued ({p} provider)"),
            None => "queued".to_string(),
        };
        return Some((machine.to_string(), status));
    }
    let rest = line.strip_prefix("==> ")?;
    let (machine, status) = rest.split_once(": ")?;
    if machine.is_empty() || machine.contains(char::is_whitespace) {
        return None;
    }
    // `==> NAME:  -- Name: ...`: a detail of the step before;
    // `==> NAME: flag to force ...`: the rest of a wrapped message.
    if !status.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit()) {
        return None;
    }
    Some((machine.to_string(), status.trim().to_string()))
}

/// Removes terminal colour sequences (`ESC [ ... m`), in case Vagrant was
/// told to colour its output anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines() {
        assert_eq!(
            parse_line("==> master: Booting VM..."),
            Some(("master".into(), "Booting VM...".into()))
        );
        assert_eq!(
            parse_line("\u{1b}[0m==> worker1: Machine booted and ready!\u{1b}[0m"),
            Some(("worker1".into(), "Machine booted and ready!".into()))
        );
        assert_eq!(parse_line("    master: SSH address: 127.0.0.1:2222"), None);
        assert_eq!(
            parse_line("Bringing machine 'worker2' up with 'libvirt' provider..."),
            Some(("worker2".into(), "queued (libvirt provider)".into()))
        );
        assert_eq!(parse_line("==> master:  -- Cpus:              1"), None);
    }

    #[test]
    fn continuation_lines_are_not_steps() {
        let mut summary = UpSummary::default();
        let lines = [
            "==> master: Machine already provisioned. Run `vagrant provision` or use the `--provision`",
            "==> master: flag to force provisioning. Provisioners marked to run always will still run.",
        ];
        let steps: Vec<_> = lines.iter().filter_map(|l| summary.observe(l)).collect();
        assert_eq!(parse_line(lines[1]), None);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            summary.lines(),
            ["master: Machine already provisioned. Run `vagrant provision` or use the `--provision`"]
        );
    }
}
