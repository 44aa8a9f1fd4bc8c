//! Vagrant's `--machine-readable` output, and `vagrant status` read from it.
//!
//! Each line is `TIMESTAMP,TARGET,TYPE,DATA...`; inside a field Vagrant
//! writes `,` as `%!(VAGRANT_COMMA)` and newlines as `\n`. A failed command
//! ends with `error-exit,ERROR_CLASS,MESSAGE`.

use std::collections::BTreeMap;

/// One line of machine-readable output, fields decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub timestamp: u64,
    /// Machine name; empty for messages about the whole environment.
    pub target: String,
    /// `state`, `provider-name`, `ui`, `error-exit`, ...
    pub kind: String,
    pub data: Vec<String>,
}

/// Every well-formed line of `text`, in order. Other lines (a plugin's
/// warning printed as plain text) are skipped: they carry nothing labctl
/// reads.
pub fn records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim_end_matches('\r').split(',');
            let timestamp = fields.next()?.parse::<u64>().ok()?;
            let target = decode(fields.next()?);
            let kind = decode(fields.next()?);
            let data = fields.map(decode).collect();
            Some(Record {
                timestamp,
                target,
                kind,
                data,
            })
        })
        .collect()
}

fn decode(field: &str) -> String {
    field
        .replace("%!(VAGRANT_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

/// The `error-exit` of a failed machine-readable command: its Ruby error
/// class and its message.
pub fn error_exit(records: &[Record]) -> Option<(String, String)> {
    records
        .iter()
        .rev()
        .find(|r| r.kind == "error-exit")
        .map(|r| {
            let class = r.data.first().cloned().unwrap_or_default();
            let message = r.data.get(1..).map(|m| m.join(",")).unwrap_or_default();
            (class, message.trim().to_string())
        })
}

/// One machine's line in `vagrant status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineStatus {
    /// `virtualbox`, `libvirt`, ...
    pub provider: String,
    /// Vagrant's state id: `running`, `not_created`, `poweroff`, `shutoff`,
    /// `saved`, `aborted`, ...
    pub state: String,
    /// The short human form (`not created`).
    pub state_short: String,
    /// The provider's explanation of the state.
    pub description: String,
}

impl MachineStatus {
    /// The machine is up (Vagrant's `running` state).
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// `vagrant status --machine-readable` failed: what Vagrant said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Vagrant could not tell the machines' states ({class}): {message}")]
pub struct StatusError {
    pub class: String,
    pub message: String,
}

/// Machines by name. An `error-exit` line makes it an error.
pub fn parse_status(text: &str) -> Result<BTreeMap<String, MachineStatus>, StatusError> {
    let records = records(text);
    if let Some((class, message)) = error_exit(&records) {
        return Err(StatusError { class, message });
    }
    let mut machines: BTreeMap<String, MachineStatus> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.target.is_empty()) {
        if !matches!(
            r.kind.as_str(),
            "provider-name" | "state" | "state-human-short" | "state-human-long"
        ) {
            continue;
        }
        let value = r.data.join(",");
        let machine = machines.entry(r.target.clone()).or_default();
        match r.kind.as_str() {
            "provider-name" => machine.provider = value,
            "state" => machine.state = value,
            "state-human-short" => machine.state_short = value,
            _ => machine.description = value,
        }
    }
    Ok(machines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded() {
        let r = records("1700000000,m,ui,info,a%!(VAGRANT_COMMA) b\\nc\nnot a record\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data, ["info", "a, b\nc"]);
    }

    #[test]
    fn error_exit_is_an_error() {
        let text = "1,,error-exit,Vagrant::Errors::NoDefaultProvider,No usable default provider%!(VAGRANT_COMMA) sorry\n";
        let err = parse_status(text).unwrap_err();
        assert_eq!(err.class, "Vagrant::Errors::NoDefaultProvider");
        assert_eq!(err.message, "No usable default provider, sorry");
    }
}
