//! labctl as a library: the CLI binary (`src/main.rs`) is a thin shell over
//! these modules so integration tests can drive them directly.
//!
//! Ownership while the first version is built (one module tree per concern):
//! - `cli`, `render`, `embedded`, `output`: command line, templates, the
//!   embedded agent.
//! - `ssh`: the SSH client every provider ends in.
//! - `provider`, `lifecycle`, `state`: providers (netns, vagrant, ssh) and
//!   the up/destroy/status/list/ssh/exec commands.

pub mod cli;
pub mod embedded;
pub mod exit;
pub mod hostcmd;
pub mod kubeadm;
pub mod lab_owner;
pub mod labfile;
pub mod lifecycle;
pub mod output;
pub mod paths;
pub mod provider;
pub mod render;
pub mod render_cmd;
pub mod ssh;
pub mod state;
pub mod vagrant;
pub mod validate_cmd;
pub mod verify;
