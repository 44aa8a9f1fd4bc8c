//! labctl as a library: the CLI binary (`src/main.rs`) is a thin shell over
//! these modules so integration tests can drive them directly.
//!
//! Ownership while the first version is built (one module tree per concern):
//! - `cli`, `render`, `embedded`, `output`: command line, templates, the
//!   embedded agent.
//! - `ssh`: the SSH client every provider ends in.
//! - `provider`, `lifecycle`, `state`: providers (netns, vagrant, ssh) and
//!   the up/destroy/status/list/ssh/exec commands.
//! - `wsl`: what stops a vagrant lab on a WSL host (a leaf: no I/O in its
//!   assessment, no imports from the modules above).

pub mod cli;
pub mod embedded;
pub mod exit;
pub mod hostcmd;
pub mod kubeadm;
pub mod lab_owner;
pub mod labfile;
pub mod lifecycle;
pub mod names;
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
pub mod wsl;
