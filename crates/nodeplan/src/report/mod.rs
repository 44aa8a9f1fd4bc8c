//! What the agent prints: one report type per command, serialized by the
//! agent and decoded by labctl. Every report starts with `reportVersion`,
//! `command` and `node` (`underlay`'s, which covers many namespaces of one
//! host, has no `node`); [`decode`] checks the first two before reading
//! the rest, so an agent of another version is named instead of misread.
//!
//! A `check` difference says what kind of object differs ([`ObjectKind`]),
//! its node-local identity (`name`: a device, a route's destination, a
//! neighbour's IP, a MAC, a chain, a path), the peer node it serves, and
//! what the plan wants against what the node has. Readers match on those
//! fields, never on the words of `object` (a label for people).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod captures;
mod dataplane;
mod inspect;
mod jobs;
mod links;
mod lookup;
mod objects;
mod traffic;
mod underlay;

pub use captures::*;
pub use dataplane::*;
pub use inspect::*;
pub use jobs::*;
pub use links::*;
pub use lookup::*;
pub use objects::*;
pub use traffic::*;
pub use underlay::*;

/// Version of the report layout. Bump it with any change a reader of the
/// previous layout would misread; labctl refuses other versions.
pub const REPORT_VERSION: u32 = 1;

/// A report of one agent command.
pub trait AgentReport: Serialize + DeserializeOwned {
    /// The command, as the report's `command` field says it.
    const COMMAND: &'static str;
    /// The errors the report lists (commands that keep going past them).
    fn errors(&self) -> &[String] {
        &[]
    }
}

/// Why a report could not be read; says which node and which command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    pub node: String,
    /// The command whose report it was meant to be.
    pub command: &'static str,
    pub problem: ReportProblem,
}

/// What was wrong with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportProblem {
    /// Nothing on stdout.
    Empty,
    /// Another report version (0: an agent from before versions).
    Version(u32),
    /// A report of another command.
    Command(String),
    /// Not JSON, or not this report's fields.
    Invalid(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (node, command) = (&self.node, self.command);
        match &self.problem {
            ReportProblem::Version(v) => write!(
                f,
                "node {node} runs agent report version {v}, labctl expects {REPORT_VERSION}: \
                 run `labctl up` to update it (`labctl-agent {command}`)"
            ),
            ReportProblem::Empty => {
                write!(
                    f,
                    "`labctl-agent {command}` on node {node} printed no report"
                )
            }
            ReportProblem::Command(c) => write!(
                f,
                "`labctl-agent {command}` on node {node} printed a `{c}` report"
            ),
            ReportProblem::Invalid(e) => write!(
                f,
                "`labctl-agent {command}` on node {node} printed a report labctl cannot read: {e}"
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// The fields every report starts with; read first so that another
/// version is named before its other fields can fail to decode.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    report_version: u32,
    #[serde(default)]
    command: String,
}

/// Decodes node `node`'s report of command `T::COMMAND` from `text`.
pub fn decode<T: AgentReport>(node: &str, text: &str) -> Result<T, ReportError> {
    let error = |problem| ReportError {
        node: node.to_string(),
        command: T::COMMAND,
        problem,
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(error(ReportProblem::Empty));
    }
    let header: Header =
        serde_json::from_str(text).map_err(|e| error(ReportProblem::Invalid(e.to_string())))?;
    if header.report_version != REPORT_VERSION {
        return Err(error(ReportProblem::Version(header.report_version)));
    }
    if header.command != T::COMMAND {
        return Err(error(ReportProblem::Command(header.command)));
    }
    serde_json::from_str(text).map_err(|e| error(ReportProblem::Invalid(e.to_string())))
}

#[cfg(test)]
mod tests;
