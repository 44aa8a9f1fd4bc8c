//! Building blocks of the vagrant provider: the `vagrant` command run in a
//! lab's render folder, and what it prints.
//!
//! - [`Vagrant`]: `up` (logged, summarised per machine), `ssh-config`,
//!   `status`, `destroy`, `validate`.
//! - [`ssh_config::parse`]: `vagrant ssh-config` into one
//!   [`SshConfigEntry`] per machine (turn it into an [`crate::ssh::Endpoint`]
//!   with [`SshConfigEntry::endpoint`]).
//! - [`stage_identity`]: each private key copied to a 0600 file in the lab
//!   folder first (WSL2 shows keys on /mnt/c as 0777 and OpenSSH refuses
//!   them); [`ensure_lab_key`]: the lab's own key, which replaces the box's
//!   insecure key on every machine.
//! - [`status::parse_status`], [`UpSummary`]: machine-readable status and
//!   the per-machine summary of `vagrant up`.

pub mod keys;
pub mod runner;
pub mod ssh_config;
pub mod status;
pub mod up_log;

pub use keys::{
    ensure_lab_key, lab_key_path, stage_identities, stage_identity, LAB_KEY_FILE, STAGED_KEYS_DIR,
};
pub use runner::Vagrant;
pub use ssh_config::{SshConfigEntry, SshConfigError};
pub use status::{MachineStatus, StatusError};
pub use up_log::UpSummary;
