//! A network-only ssh lab brought up, verified, inspected and destroyed by
//! a normal user, as the people labctl is for run it: the test hosts (real
//! sshd in network namespaces) need root to exist, labctl itself runs as
//! uid/gid 65534 with its own HOME, so the lab's state lands in that
//! user's XDG state folder and never in /var/lib/labctl. Root then finds
//! no lab of that name and is told whose it is not; the user is told that
//! a netns lab needs `sudo`.

mod support;

use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::host_snapshot::snapshot;
use support::netns::{labctl, show};
use support::ssh_lab::{assert_passed, lab_file, three_hosts_or_skip, NETWORK_CHECKS};

/// The unprivileged user labctl runs as (Debian's `nogroup`/`nobody`
/// numbers; no entry in /etc/passwd is needed or changed).
const UID: u32 = 65534;

/// A home folder owned by [`UID`], removed on drop.
struct UserHome(tempfile::TempDir);

impl UserHome {
    fn new() -> UserHome {
        let dir = tempfile::Builder::new()
            .prefix("labctl-user-")
            .tempdir_in("/tmp")
            .expect("temporary home");
        chown(dir.path(), Some(UID), Some(UID)).expect("chown home");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        UserHome(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `data` to `name` in the home, owned by the user, mode 0600.
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, data).unwrap();
        chown(&path, Some(UID), Some(UID)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// Runs labctl as the user, with a minimal login-like environment.
    fn labctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(args)
            .env_clear()
            .env("HOME", self.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .uid(UID)
            .gid(UID) // std drops root's supplementary groups with the uid
            .output()
            .expect("labctl runs as the user")
    }
}

/// Destroys the user's lab on drop, as the user (then forgets it if the
/// hosts are already gone), so a failing test leaves no state behind.
struct UserLabGuard<'a> {
    home: &'a UserHome,
    name: String,
}

impl Drop for UserLabGuard<'_> {
    fn drop(&mut self) {
        let out = self.home.labctl(&["destroy", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("cleanup of lab {} failed:\n{}", self.name, show(&out));
            let _ = self
                .home
                .labctl(&["destroy", "--name", &self.name, "--forget"]);
        }
    }
}

#[test]
fn a_normal_user_brings_up_verifies_and_destroys_an_ssh_lab() {
    let test = "a_normal_user_brings_up_verifies_and_destroys_an_ssh_lab";
    let Some((_serial, hosts)) = three_hosts_or_skip(test, "tu", [192, 168, 76]) else {
        return;
    };
    let home = UserHome::new();
    // The hosts' client key is root's; the user brings a copy of their own.
    let key = home.write("id_lab", &std::fs::read(&hosts.client_key).unwrap());
    let text = lab_file(&hosts, "10.76.0.0/16").replace(
        &hosts.client_key.display().to_string(),
        &key.display().to_string(),
    );
    let file = home.write("lab.yaml", text.as_bytes());
    let file = file.to_str().unwrap();
    let name = hosts.tag.clone();
    let _guard = UserLabGuard {
        home: &home,
        name: name.clone(),
    };

    let before = snapshot(&hosts);
    let out = home.labctl(&["up", file]);
    assert!(out.status.success(), "up as the user: {}", show(&out));
    let state_dir = home.path().join(".local/state/labctl/labs").join(&name);
    let state = state_dir.join("state.json");
    assert!(
        state.is_file(),
        "state in the user's XDG folder: {}",
        show(&out)
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), UID);
    let root_dir = Path::new("/var/lib/labctl/labs").join(&name);
    assert!(!root_dir.exists(), "nothing in root's state folder");

    let out = home.labctl(&["verify", file, "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify as the user: {}",
        show(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_passed(&report, &NETWORK_CHECKS);

    let out = home.labctl(&["status", "--name", &name]);
    assert!(out.status.success(), "status as the user: {}", show(&out));
    let out = home.labctl(&[
        "exec",
        "--lab",
        &name,
        "--all",
        "--",
        "cat",
        "/run/flannel/subnet.env",
    ]);
    assert!(out.status.success(), "exec as the user: {}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("FLANNEL_SUBNET=")
            .count(),
        3,
        "{}",
        show(&out)
    );

    // Root without sudo has no such lab; the lab file still names it.
    let out = labctl(&["verify", file]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not up on this host"),
        "{}",
        show(&out)
    );

    let out = home.labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy as the user: {}", show(&out));
    assert!(!state_dir.exists(), "the user's lab folder is gone");
    assert_eq!(
        snapshot(&hosts),
        before,
        "destroy as the user left the hosts as before"
    );
    for h in &hosts.hosts {
        let out = Command::new("ip")
            .args(["-n", &h.netns, "link", "show", "flannel.1"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}: flannel.1 is gone", h.name);
    }
    let out = home.labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy twice: {}", show(&out));
}

#[test]
fn a_normal_user_is_sent_to_sudo_for_a_root_lab() {
    let test = "a_normal_user_is_sent_to_sudo_for_a_root_lab";
    // Only the record of a root lab is needed: a state folder as `up`
    // writes it, for a lab name no other test uses.
    if !support::netns::can_run(test) {
        return;
    }
    let name = format!("rootlab{}", std::process::id() % 100_000);
    let dir = Path::new("/var/lib/labctl/labs").join(&name);
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveDir(dir.clone());
    std::fs::write(
        dir.join("state.json"),
        format!(r#"{{"name":"{name}","provider":"netns","nodes":{{}}}}"#),
    )
    .unwrap();
    let home = UserHome::new();
    for args in [
        vec!["status", "--name", &name],
        vec!["destroy", "--name", &name],
    ] {
        let out = home.labctl(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("run `sudo labctl {}`", args[0])),
            "{args:?}: {}",
            show(&out)
        );
    }
    assert!(
        dir.join("state.json").is_file(),
        "the root lab is untouched"
    );
}
