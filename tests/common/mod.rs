//! Fixtures shared by the CLI and render tests: the repository's paths, the
//! labctl binary, temporary lab files and folder listings.
#![allow(dead_code)] // each test crate uses a different part

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where Cargo.toml and labs/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `labs/<name>`.
pub fn lab_path(name: &str) -> PathBuf {
    repo_root().join("labs").join(name)
}

/// Every `labs/*.yaml`, sorted.
pub fn all_labs() -> Vec<PathBuf> {
    let mut labs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("labs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    labs.sort();
    labs
}

/// The labctl binary under test, with colour off and a private state folder.
pub fn labctl(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labctl"));
    cmd.env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", state)
        .env_remove("RUST_LOG");
    cmd
}

/// A finished labctl run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs labctl with `args` in `cwd`, a fresh state folder under `cwd`.
pub fn run_in(cwd: &Path, args: &[&str]) -> Run {
    let output = labctl(&cwd.join("state"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    Run::from(output)
}

/// Writes `text` as `name` in `dir`, returning its path.
pub fn write_lab(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file under `dir`, as paths relative to it.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The files `labctl render` writes for a vagrant lab with Kubernetes and
/// these workers and nodes.
pub fn expected_render_files(workers: &[&str], nodes: &[&str]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ["Vagrantfile", "kubeadm-init.yaml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in workers {
        out.insert(format!("kubeadm-join-{w}.yaml"));
    }
    for n in nodes {
        for f in ["plan.json", "subnet.env", "10-flannel.conflist"] {
            out.insert(format!("nodes/{n}/{f}"));
        }
    }
    out
}

/// Where [`run_in`]'s labctl keeps labs: /var/lib/labctl/labs as root,
/// else the private state folder under `cwd`.
pub fn labs_root(cwd: &Path) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/lib/labctl/labs")
    } else {
        cwd.join("state/labctl/labs")
    }
}

/// A hand-written state folder for lab `name` under `labs`, nodes
/// `master` and `worker1` on loopback port 1 where nothing listens.
pub fn fake_lab_state(labs: &Path, name: &str, provider: &str) -> PathBuf {
    let dir = labs.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let node = |ip: &str, cp: bool| {
        format!(
            r#"{{"ip": "{ip}", "controlPlane": {cp}, "sshHost": "127.0.0.1", "sshPort": 1, "sshUser": "root", "sshKey": "/nonexistent/key", "pods": {{}}}}"#
        )
    };
    let state = format!(
        r#"{{"name": "{name}", "provider": "{provider}", "labFile": "/nonexistent/lab.yaml",
  "underlay": "192.168.79.0/24", "podNetwork": "10.79.0.0/16", "serviceNetwork": "10.96.0.0/12",
  "nodes": {{"master": {}, "worker1": {}}}, "netns": null, "kubernetes": false}}"#,
        node("192.168.79.10", true),
        node("192.168.79.11", false)
    );
    std::fs::write(dir.join("state.json"), state).unwrap();
    // Pinned: labctl reached the nodes once (destroy skips nodes it never
    // reached).
    let pin = "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJPgenuWz01PTj4mYCyJi4LIGJh7h5klsogZsvhrGsd8";
    std::fs::write(
        dir.join("known_hosts"),
        format!("{pin} labctl-node=master\n"),
    )
    .unwrap();
    dir
}

/// Removes a fake lab's state folder whatever the test did.
pub struct StateGuard(pub PathBuf);

impl Drop for StateGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
