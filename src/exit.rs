//! Exit statuses and the error kinds that choose them.
//!
//! 0 success, 1 a check or step failed, 2 invalid lab file or usage, 3 the
//! environment is missing something (privileges, a host tool, an
//! unreachable node). `main` maps any error to one of these with
//! [`exit_code_for`]: wrap an error in [`ExitError`] to choose its status.

use std::fmt;

pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const ENVIRONMENT: u8 = 3;

/// An error that carries the exit status it should end labctl with.
#[derive(Debug)]
pub struct ExitError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl ExitError {
    /// Invalid lab file or usage (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(ExitError {
            code: USAGE,
            error: error.into(),
        })
    }
    /// A check or step failed (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(ExitError {
            code: FAILED,
            error: error.into(),
        })
    }
    /// The environment lacks something: privileges, a tool, a node (exit 3).
    pub fn environment(error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(ExitError {
            code: ENVIRONMENT,
            error: error.into(),
        })
    }
}

impl fmt::Display for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for ExitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The exit status for an error: its `ExitError` code if it has one anywhere
/// in its chain, 2 for an invalid lab file, 3 for a refused SSH host key,
/// else 1.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<ExitError>() {
            return e.code;
        }
        if cause.downcast_ref::<labctl_lab::LabError>().is_some() {
            return USAGE;
        }
        if let Some(ssh) = cause.downcast_ref::<crate::ssh::SshError>() {
            if ssh.is_host_key_refusal() {
                return ENVIRONMENT;
            }
        }
    }
    FAILED
}
