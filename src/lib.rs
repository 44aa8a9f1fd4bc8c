//! labctl as a library: the CLI binary (`src/main.rs`) is a thin shell over
//! these modules so integration tests can drive them directly.
//!
//! Ownership while the first version is built (one module tree per concern):
//! - `cli`, `render`, `embedded`, `output`: command line, templates, the
//!   embedded agent.
//! - `ssh`: the SSH client every provider ends in.
//! - `provider`, `lifecycle`, `state`: providers (netns, vagrant, ssh) and
//!   the up/destroy/status/list/ssh/exec commands.

pub mod exit;
pub mod lifecycle;
pub mod output;
