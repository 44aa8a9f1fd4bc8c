//! Replacing the box's insecure key with the lab's own key on each machine.
//!
//! Boxes authorise Vagrant's well-known insecure key. Vagrant would swap it
//! for a per-machine key itself, but that costs a dozen SSH round trips per
//! machine (upload, append, upload, filter, reconnect: ~25 s under software
//! emulation). The rendered Vagrantfile turns that off when the lab has its
//! own key and lists [lab key, insecure keys] for Vagrant to log in with;
//! labctl then logs in once with the insecure key, authorises the lab key
//! and removes every insecure key in one command. After `up` only the lab
//! key opens the machines; a machine that already refuses the insecure key
//! was swapped by an earlier `up`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::hostcmd;
use crate::nodes;
use crate::ssh::{Endpoint, HostKeyPolicy, Session, SshError};
use crate::state::{LabDir, LabState};
use crate::ui::progress::Progress;

/// stdin: the lab's public key line, then one key blob (base64) per line
/// to remove. Adds the lab key unless present, drops every line holding a
/// listed blob, replaces the file atomically (mode 0600).
const SWAP_SCRIPT: &str = r#"set -e
umask 077
mkdir -p "$HOME/.ssh"
f="$HOME/.ssh/authorized_keys"
touch "$f"
IFS= read -r new
grep -vF -f /dev/stdin "$f" > "$f.labctl" || [ $? = 1 ]
grep -qxF "$new" "$f.labctl" || printf '%s\n' "$new" >> "$f.labctl"
chmod 0600 "$f.labctl"
mv -f "$f.labctl" "$f""#;

/// What to swap on one machine: the insecure private keys Vagrant named
/// (staged copies), in Vagrant's order.
pub struct Swap {
    pub node: String,
    pub insecure_keys: Vec<PathBuf>,
}

/// On every machine in parallel: when one of its insecure keys still logs
/// in, authorise the lab key and remove the insecure keys. The lab state
/// must already record the lab key as each node's key.
pub fn replace_insecure_keys(
    dir: &LabDir,
    state: &LabState,
    lab_key: &Path,
    swaps: &[Swap],
    progress: &Progress,
) -> Result<()> {
    let lab_pub = std::fs::read_to_string(lab_key.with_extension("pub"))
        .with_context(|| format!("cannot read the lab's public key {}.pub", lab_key.display()))?;
    let lab_pub = lab_pub.trim();
    // Every machine names the same staged files: one ssh-keygen per file.
    let files: std::collections::BTreeSet<&PathBuf> =
        swaps.iter().flat_map(|s| &s.insecure_keys).collect();
    let mut blobs = Vec::new();
    for key in files {
        let blob = public_blob(key)?;
        if !blobs.contains(&blob) {
            blobs.push(blob);
        }
    }
    let mut stdin = format!("{lab_pub}\n");
    for blob in &blobs {
        stdin.push_str(blob);
        stdin.push('\n');
    }
    let names: Vec<String> = swaps.iter().map(|s| s.node.clone()).collect();
    let results = nodes::parallel(&names, |name| {
        let swap = swaps.iter().find(|s| s.node == name);
        let keys = swap.map(|s| s.insecure_keys.as_slice()).unwrap_or(&[]);
        progress.step(Some(name), "Replacing the insecure SSH key", || {
            swap_node(dir, state, name, keys, stdin.as_bytes())
        })
    });
    // Keeps each error's kind (Ctrl-C, environment) for the exit status.
    crate::nodes::fail_with_all(results.into_iter().filter_map(Result::err).collect())
}

/// Logs in with the first insecure key the machine accepts and swaps;
/// does nothing when it accepts none (swapped by an earlier `up`).
fn swap_node(
    dir: &LabDir,
    state: &LabState,
    node: &str,
    insecure_keys: &[PathBuf],
    stdin: &[u8],
) -> Result<()> {
    let base = nodes::endpoint(dir, state, node)?;
    for key in insecure_keys {
        let ep = Endpoint {
            key: key.clone(),
            ..base.clone()
        };
        // First contact with a machine Vagrant made: `create` dropped the
        // pin of any machine it (re-)created, so only those get one here.
        let policy = HostKeyPolicy::PinNew {
            expected: None,
            user_known_hosts: None,
        };
        match Session::connect(&ep, &policy, nodes::CONNECT_DEADLINE) {
            // Run as the login user: it is their authorized_keys.
            Ok(session) => {
                session
                    .run_ok(&["sh", "-c", SWAP_SCRIPT, "sh"], Some(stdin))
                    .with_context(|| {
                        format!(
                            "cannot replace the insecure key with the lab key on node {node} \
                             (~{}/.ssh/authorized_keys)",
                            base.user
                        )
                    })?;
                return Ok(());
            }
            Err(SshError::Auth { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The base64 blob of a private key's public half (`ssh-keygen -y`): the
/// part of an authorized_keys line that identifies the key.
fn public_blob(private_key: &Path) -> Result<String> {
    let path = private_key.to_string_lossy();
    let line = hostcmd::run("ssh-keygen", &["-y", "-f", &path])
        .with_context(|| format!("cannot read the public half of {path}"))?;
    blob_of(&line).ok_or_else(|| anyhow!("`ssh-keygen -y -f {path}` printed no public key"))
}

/// The second field of a public key line (`TYPE BLOB [COMMENT]`).
fn blob_of(line: &str) -> Option<String> {
    let blob = line.split_whitespace().nth(1)?;
    (blob.len() > 16).then(|| blob.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script as a node runs it, with a local `sh` and a temporary home.
    fn swap_locally(authorized: Option<&str>, stdin: &str) -> (String, u32) {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(".ssh/authorized_keys");
        if let Some(text) = authorized {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text).unwrap();
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", SWAP_SCRIPT, "sh"])
            .env("HOME", home.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        (std::fs::read_to_string(&file).unwrap(), mode)
    }

    #[test]
    fn the_lab_key_replaces_every_insecure_key_and_nothing_else() {
        let lab = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILAB labctl lab x";
        let before = "ssh-rsa AAAAB3NzaC1yc2EAAAINSECURE1 vagrant insecure public key\n\
                      ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWN someone@else\n\
                      ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSECURE2 vagrant\n";
        let stdin =
            format!("{lab}\nAAAAB3NzaC1yc2EAAAINSECURE1\nAAAAC3NzaC1lZDI1NTE5AAAAINSECURE2\n");
        let (after, mode) = swap_locally(Some(before), &stdin);
        assert_eq!(
            after,
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOWN someone@else\n{lab}\n")
        );
        assert_eq!(mode, 0o600);
        // Again: nothing changes, the lab key is not added twice.
        let (again, _) = swap_locally(Some(&after), &stdin);
        assert_eq!(again, after);
    }

    #[test]
    fn a_missing_authorized_keys_gets_the_lab_key() {
        let lab = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILAB labctl lab x";
        let (after, mode) = swap_locally(None, &format!("{lab}\n"));
        assert_eq!(after, format!("{lab}\n"));
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn blob_is_the_second_field() {
        assert_eq!(
            blob_of("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc vagrant\n").as_deref(),
            Some("AAAAC3NzaC1lZDI1NTE5AAAAIabc")
        );
        // An empty or short blob would make grep -v drop every line.
        assert_eq!(blob_of("ssh-rsa"), None);
        assert_eq!(blob_of("ssh-rsa AAA"), None);
    }
}
