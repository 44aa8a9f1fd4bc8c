//! The agent's error type: every failure carries a sentence a human can act
//! on and maps to one of the documented exit codes.

use std::fmt;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code when `check` found differences.
pub const EXIT_DRIFT: i32 = 1;
/// Exit code for a bad plan or bad usage.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for an unusable environment (not root, no iptables, no
/// underlay interface).
pub const EXIT_ENVIRONMENT: i32 = 3;
/// Exit code when an operation on the node failed.
pub const EXIT_FAILED: i32 = 4;

/// What went wrong, by the kind of fix it needs.
#[derive(Debug)]
pub enum AgentError {
    /// The command line or the plan is wrong: the caller must change its input.
    Input(String),
    /// The node cannot run the agent as asked (privileges, tools, addresses).
    Environment(String),
    /// A kernel or tool operation failed.
    Failed(String),
}

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Input(_) => EXIT_BAD_INPUT,
            AgentError::Environment(_) => EXIT_ENVIRONMENT,
            AgentError::Failed(_) => EXIT_FAILED,
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Input(m) | AgentError::Environment(m) | AgentError::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for AgentError {}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, AgentError>;

/// Builds an [`AgentError::Failed`] from a context sentence and a cause.
pub fn failed(context: impl fmt::Display, cause: impl fmt::Display) -> AgentError {
    AgentError::Failed(format!("{context}: {cause}"))
}

/// Describes an OS error by its name, never by its bare number.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}
