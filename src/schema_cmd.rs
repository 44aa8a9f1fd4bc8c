//! `labctl schema`: prints the lab file's JSON Schema.
//!
//! The schema is derived from the lab crate's decoding types
//! ([`labctl_lab::json_schema`]), so it names exactly the keys `labctl
//! validate` accepts. `schema/lab.schema.json` is this output, committed for
//! the `# yaml-language-server: $schema=` line of the files in `labs/`.

use std::process::ExitCode;

/// The schema as printed: pretty JSON and a final newline.
pub fn schema_text() -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&labctl_lab::json_schema())? + "\n")
}

pub fn schema() -> anyhow::Result<ExitCode> {
    print!("{}", schema_text()?);
    Ok(ExitCode::SUCCESS)
}
