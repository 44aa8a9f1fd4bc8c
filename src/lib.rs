//! labctl as a library: the CLI binary (`src/main.rs`) is a thin shell over
//! these modules so integration tests can drive them directly.
//!
//! Layers, bottom up. A module imports only modules of lower layers (never
//! its own layer, never upward); `tests/layers.rs` reads this list and
//! checks every `crate::` path in `src/` against it:
//! 0. `hostcmd`, `embedded`, `output`, `ui`, `process`: host commands, the
//!    embedded agent, printing, progress lines and Ctrl-C, this process's
//!    user and whether another process is alive.
//! 1. `ssh`: the SSH client (sessions, host keys, pins).
//! 2. `exit`: exit statuses and the errors that choose them.
//! 3. `names`, `render`, `labfile`, `wsl`: lab and node names, rendered
//!    artifacts, reading a lab file, WSL host checks.
//! 4. `paths`, `doctor`: where a lab's state lives, the host preflight
//!    (what this host lacks for a lab, with the fix).
//! 5. `lab_owner`, `state`: whose lab it is, its folder and saved plans.
//! 6. `nodes`, `lab_select`: the node layer (sessions to a lab's nodes,
//!    parallel runs with every error reported, the agent's operations and
//!    typed reports) and which lab a command means.
//! 7. `kubeadm`, `vagrant_cli`: a kubeadm cluster on the nodes (vagrant and
//!    ssh labs), Vagrant's command line on this host.
//! 8. `provider`: make machines exist, say how to reach them, remove them.
//! 9. `verify`: prove the lab works and name what does not.
//! 10. `lifecycle`, `render_cmd`, `validate_cmd`, `init_cmd`, `schema_cmd`, `completions_cmd`, `man_cmd`, `doctor_cmd`, `drill`, `explain`, `graph`:
//!     the commands (one line: tests/layers.rs reads the names from it).
//! 11. `cli`: the command line.

pub mod cli;
pub mod completions_cmd;
pub mod doctor;
pub mod doctor_cmd;
pub mod drill;
pub mod embedded;
pub mod exit;
pub mod explain;
pub mod graph;
pub mod hostcmd;
pub mod init_cmd;
pub mod kubeadm;
pub mod lab_owner;
pub mod lab_select;
pub mod labfile;
pub mod lifecycle;
pub mod man_cmd;
pub mod names;
pub mod nodes;
pub mod output;
pub mod paths;
pub mod process;
pub mod provider;
pub mod render;
pub mod render_cmd;
pub mod schema_cmd;
pub mod ssh;
pub mod state;
pub mod ui;
pub mod vagrant_cli;
pub mod validate_cmd;
pub mod verify;
pub mod wsl;
