//! A lab's state folder on this host (`/var/lib/labctl/labs/<name>` as root):
//! a copy of the lab file, `state.json` (everything the lab created, written
//! as things are created so that `destroy` works on a half-built lab), the
//! per-lab SSH keys and known_hosts, logs, and the lock that allows one
//! `up` at a time.
//!
//! Layout:
//! - `lab.yaml`: the lab file as last brought up.
//! - `state.json`: [`LabState`].
//! - `id_ed25519`, `id_ed25519.pub`, `known_hosts`: SSH client key and pins.
//! - `nodes/<node>/`: per-node files (netns: sshd config, host key, the
//!   folders bind-mounted over the node's /run/flannel etc.).
//! - `logs/`: sshd and dnsmasq logs.
//! - `lock`: locked (fcntl) by `up`/`destroy`, holds the holder's pid.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::exit::ExitError;

/// Where every lab's folder lives (the parent of [`crate::paths::lab_dir`]).
pub fn labs_root() -> Result<PathBuf> {
    let any = crate::paths::lab_dir("any")?;
    Ok(any.parent().map(Path::to_path_buf).unwrap_or(any))
}

/// The names of the labs that have a state folder on this host, sorted.
pub fn lab_names() -> Vec<String> {
    labs_root()
        .map(|root| lab_names_in(&root))
        .unwrap_or_default()
}

/// The lab folders under `root`, sorted. A folder whose name is not a lab
/// name (put there by hand: `Bad Name`, `x;y`) is no lab of labctl's and is
/// ignored, never opened or removed.
fn lab_names_in(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| labctl_lab::is_lab_name(name))
        .collect();
    names.sort();
    names
}

/// What a lab created, as recorded on this host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    pub name: String,
    /// `netns`, `vagrant` or `ssh`.
    pub provider: String,
    /// The lab file `up` was given (absolute), if any.
    pub lab_file: Option<PathBuf>,
    pub underlay: Option<Ipv4Net>,
    pub pod_network: Option<Ipv4Net>,
    pub service_network: Option<Ipv4Net>,
    /// The nodes, by name, in the lab file's order of addition.
    pub nodes: BTreeMap<String, NodeState>,
    /// What the netns provider created on this host.
    pub netns: Option<NetnsState>,
    /// The nodes run a kubeadm cluster (vagrant and ssh labs): destroy
    /// resets it on nodes that outlive the lab.
    #[serde(default)]
    pub kubernetes: bool,
}

/// One node as labctl reaches it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub ip: std::net::Ipv4Addr,
    pub control_plane: bool,
    /// SSH endpoint (host, port, user); the key is the lab's client key
    /// unless given.
    pub ssh_host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub ssh_key: Option<PathBuf>,
    /// Pods the lab started on this node: name -> IP.
    #[serde(default)]
    pub pods: BTreeMap<String, std::net::Ipv4Addr>,
}

impl NodeState {
    /// The SSH endpoint recorded for node `name` of the lab in `dir`.
    pub fn endpoint(&self, name: &str, dir: &LabDir) -> crate::ssh::Endpoint {
        crate::ssh::Endpoint {
            node: name.to_string(),
            host: self.ssh_host.clone(),
            port: self.ssh_port,
            user: self.ssh_user.clone(),
            key: self.ssh_key.clone().unwrap_or_else(|| dir.client_key()),
            known_hosts: dir.known_hosts(),
        }
    }

    /// Drops every pin of node `name` (its tagged lines and its recorded
    /// address), for a node removed or about to be re-created.
    pub fn forget_pins(&self, name: &str, dir: &LabDir) -> Result<()> {
        let address = [(self.ssh_host.as_str(), self.ssh_port)];
        crate::ssh::forget_node(&dir.known_hosts(), name, &address)
    }
}

impl LabState {
    /// Forgets node `name`: its pins and its record.
    pub fn forget_node(&mut self, name: &str, dir: &LabDir) -> Result<()> {
        if let Some(rec) = self.nodes.get(name) {
            rec.forget_pins(name, dir)?;
        }
        self.nodes.remove(name);
        Ok(())
    }
}

/// Host objects of a netns lab. Names are recorded BEFORE the objects are
/// created: destroy removes whichever of them exist.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetnsState {
    /// The host bridge holding the underlay's .1 address.
    pub bridge: String,
    /// The "outside world" namespace and the host end of its veth.
    pub ext_netns: String,
    pub ext_veth: String,
    /// Per node: its namespace, the host end of its veth, its sshd.
    pub nodes: BTreeMap<String, NetnsNode>,
    /// The cluster DNS server (dnsmasq in a pod namespace).
    pub dns: Option<TrackedProcess>,
    /// Host folders this lab had to create (mount targets, /run/sshd):
    /// removed on destroy when empty and no other lab remains.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// The host's neighbour-table limits before a lab raised them (see
    /// `provider::netns::neighbour_sysctls`); set only when this lab needed more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbour_limits: Option<NeighbourLimits>,
}

/// net.ipv4.neigh.default.gc_thresh1/2/3 as the host had them before any
/// lab raised them: `destroy` of the last lab that needed more puts them back.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NeighbourLimits {
    pub previous: [u32; 3],
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetnsNode {
    pub netns: String,
    pub host_veth: String,
    pub sshd: Option<TrackedProcess>,
}

/// A process labctl started and must stop: its pid and a string its
/// /proc/PID/cmdline must contain (so a recycled pid is never killed).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrackedProcess {
    pub pid: u32,
    pub cmdline_contains: String,
}

impl TrackedProcess {
    /// True when the pid is alive and still runs what was started.
    pub fn is_running(&self) -> bool {
        match fs::read(format!("/proc/{}/cmdline", self.pid)) {
            Ok(cmdline) => {
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                text.contains(&self.cmdline_contains) && crate::process::is_alive(self.pid)
            }
            Err(_) => false,
        }
    }
}

/// An open lab folder.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub path: PathBuf,
}

impl LabDir {
    pub fn new(name: &str) -> Result<LabDir> {
        Ok(LabDir {
            path: crate::paths::lab_dir(name)?,
        })
    }
    pub fn exists(&self) -> bool {
        self.path.join("state.json").is_file()
    }
    /// Creates the folder (0700: it holds private keys).
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create the lab folder {}", self.path.display()))?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", self.path.display()))?;
        Ok(())
    }
    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn lab_copy(&self) -> PathBuf {
        self.path.join("lab.yaml")
    }
    pub fn client_key(&self) -> PathBuf {
        self.path.join("id_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.path.join("known_hosts")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path.join("nodes").join(node)
    }
    /// Where `up` keeps the plan node `node` was last built from.
    pub fn saved_plan_path(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("plan.json")
    }
    /// Keeps `plan` as the one its node was last built from.
    pub fn save_plan(&self, plan: &labctl_nodeplan::NodePlan) -> Result<()> {
        let folder = self.node_dir(&plan.node);
        fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        write_mode(
            &self.saved_plan_path(&plan.node),
            plan.to_json().as_bytes(),
            0o644,
        )
    }
    /// The plan node `node` was last built from.
    pub fn saved_plan(&self, node: &str) -> Result<labctl_nodeplan::NodePlan> {
        let path = self.saved_plan_path(node);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("cannot read node {node}'s plan {}", path.display()))?;
        labctl_nodeplan::NodePlan::from_json(&text)
            .map_err(|e| anyhow::anyhow!("node {node}'s plan {} is invalid: {e}", path.display()))
    }
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// Reads state.json.
    pub fn load(&self) -> Result<LabState> {
        let file = self.state_file();
        let text = fs::read_to_string(&file)
            .with_context(|| format!("cannot read the lab state {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "the lab state {} is not valid (edit or remove it)",
                file.display()
            )
        })
    }

    /// Writes state.json atomically (temp file + rename), 0600.
    pub fn save(&self, state: &LabState) -> Result<()> {
        let text = serde_json::to_string_pretty(state).context("serializing the lab state")?;
        write_private(&self.state_file(), text.as_bytes())
    }

    /// Takes the lab's lock without waiting: when another labctl holds it,
    /// fails (exit 1) naming that process's pid.
    ///
    /// The lock is a POSIX record lock (`fcntl`), which belongs to this
    /// process alone: a child it forks (to start a node's sshd, say) never
    /// holds it, even for the moment before its exec, so a killed labctl's
    /// lock is free at once. Two locks of one process do not conflict, and
    /// closing any descriptor of the file drops them, so this process's
    /// own locks are kept in [`HELD`] and the file is opened once per lock.
    pub fn lock(&self, what: &str) -> Result<LabLock> {
        self.create()?;
        let path = self.path.join("lock");
        let busy = |who: String| {
            ExitError::failed(anyhow::anyhow!(
                "the lab is busy: {who} holds its lock ({}); wait for it to finish",
                path.display()
            ))
        };
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.contains(&path) {
            return Err(busy(format!("this labctl (pid {})", std::process::id())));
        }
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        if !lock_whole(&file) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(busy(if holder.is_empty() {
                "another labctl".to_string()
            } else {
                holder.to_string()
            }));
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "labctl {what} (pid {})", std::process::id())?;
        held.insert(path.clone());
        Ok(LabLock {
            file: Some(file),
            path,
        })
    }

    /// Where [`LabDir::remove`] moves the folder before deleting it: a
    /// hidden sibling, whose name is no lab name.
    fn trash(&self) -> PathBuf {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        self.path.with_file_name(format!(".{name}.removing"))
    }

    /// Removes the whole folder. It is renamed away first, in one step: a
    /// removal killed half-way must not leave a folder that lost its
    /// state.json (so `destroy` no longer sees a lab there) but kept keys
    /// and node files. What such a killed removal left goes first.
    pub fn remove(&self) -> Result<()> {
        let trash = self.trash();
        remove_tree(&trash)?;
        match fs::rename(&self.path, &trash) {
            Ok(()) => remove_tree(&trash),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.path.display())),
        }
    }

    /// True when the lab has no state.json but something of it remains:
    /// the folder of an `up` killed before it first saved its state, or
    /// what a killed [`LabDir::remove`] left.
    pub fn has_leftovers(&self) -> bool {
        !self.exists() && (self.path.exists() || self.trash().exists())
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Held while a command changes the lab; released when dropped.
#[derive(Debug)]
pub struct LabLock {
    file: Option<fs::File>,
    path: PathBuf,
}

impl Drop for LabLock {
    fn drop(&mut self) {
        // Closed first (that releases the lock), then forgotten.
        drop(self.file.take());
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
    }
}

/// The lock files this process holds (see [`LabDir::lock`]).
static HELD: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Writes a file atomically with mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    write_mode(path, data, 0o600)
}

/// Writes a file atomically with the given mode (`labctl_atomicfile`:
/// temporary file, fsync, rename, fsync of the folder).
pub fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    // An `up` that changes nothing rewrites nothing: a file that already
    // holds these bytes with this mode stays as it is (1,000 nodes' plans
    // and configs would otherwise be written and synced on every `up`).
    if unchanged(path, data, mode) {
        return Ok(());
    }
    labctl_atomicfile::write(path, data, mode)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether `path` is a regular file holding exactly `data` with `mode`.
fn unchanged(path: &Path, data: &[u8], mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.len() == data.len() as u64
        && meta.permissions().mode() & 0o7777 == mode
        && fs::read(path).is_ok_and(|have| have == data)
}

/// Takes an exclusive POSIX record lock of the whole of `file` without
/// waiting; false when another process holds one.
fn lock_whole(file: &fs::File) -> bool {
    lock_fd(file.as_raw_fd())
}

/// [`lock_whole`] on a raw descriptor (no allocation: a forked test child
/// calls it too).
fn lock_fd(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: a zeroed flock is valid; the fields set make it an exclusive
    // lock from the start to the end of the file.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on a descriptor with a valid flock.
    unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_the_same_bytes_leaves_the_file_alone() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_mode(&path, b"{}", 0o644).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        write_mode(&path, b"{}", 0o644).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "rewritten");
        write_mode(&path, b"{}", 0o600).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode kept");
        write_mode(&path, b"[]", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"[]");
    }

    #[test]
    fn state_round_trips_and_lock_is_exclusive() {
        let root = std::env::temp_dir().join(format!("labctl-state-{}", std::process::id()));
        let dir = LabDir {
            path: root.join("lab1"),
        };
        let mut state = LabState {
            name: "lab1".into(),
            provider: "netns".into(),
            ..Default::default()
        };
        state.netns = Some(NetnsState {
            bridge: "lcb1".into(),
            ..Default::default()
        });
        dir.create().unwrap();
        dir.save(&state).unwrap();
        assert_eq!(dir.load().unwrap(), state);
        let _held = dir.lock("up").unwrap();
        let err = dir.lock("up").unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("pid {}", std::process::id())),
            "{err:#}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// A child forked while the lock is held (as when labctl starts a
    /// node's sshd) does not hold it: once this process lets go, another
    /// process takes it at once, while that child still runs and still has
    /// the descriptor. (An flock, shared with the child, stayed taken.)
    #[test]
    fn a_forked_child_never_holds_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let dir = LabDir {
            path: root.path().join("lab1"),
        };
        let lock = dir.lock("up").unwrap();
        // SAFETY: the child only sleeps and exits (async-signal-safe).
        let sleeper = unsafe { libc::fork() };
        assert!(sleeper >= 0);
        if sleeper == 0 {
            unsafe {
                libc::usleep(1_000_000);
                libc::_exit(0);
            }
        }
        drop(lock);
        // Another process tries: a second child, with raw calls only.
        let path =
            std::ffi::CString::new(dir.path.join("lock").into_os_string().into_encoded_bytes())
                .unwrap();
        // SAFETY: the child uses only open, the lock call and _exit.
        let trier = unsafe { libc::fork() };
        assert!(trier >= 0);
        if trier == 0 {
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_RDWR);
                let taken = fd >= 0 && lock_fd(fd);
                libc::_exit(if taken { 0 } else { 1 });
            }
        }
        let wait = |pid: libc::pid_t| {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            status
        };
        let tried = wait(trier);
        let sleeper_running = unsafe { libc::kill(sleeper, 0) } == 0;
        wait(sleeper);
        assert!(sleeper_running, "the first child should still run");
        assert!(
            libc::WIFEXITED(tried) && libc::WEXITSTATUS(tried) == 0,
            "another process could not take the lock while the child ran"
        );
    }

    /// A lock this process holds is refused to it as well, and dropping it
    /// frees the lab for the next command.
    #[test]
    fn a_second_lock_in_one_process_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = LabDir {
            path: root.path().join("lab1"),
        };
        let held = dir.lock("up").unwrap();
        let err = dir.lock("destroy").unwrap_err();
        assert!(
            format!("{err:#}").contains("the lab is busy: this labctl"),
            "{err:#}"
        );
        drop(held);
        let again = dir.lock("destroy").expect("free once dropped");
        drop(again);
    }

    #[test]
    fn folders_with_bad_names_are_no_labs() {
        let root = tempfile::tempdir().unwrap();
        for name in [
            "lab1", "Bad_Name", "a;b", "x y", ".hidden", "lab2", "nostate",
        ] {
            fs::create_dir(root.path().join(name)).unwrap();
            if name != "nostate" {
                fs::write(root.path().join(name).join("state.json"), "{}").unwrap();
            }
        }
        assert_eq!(lab_names_in(root.path()), ["lab1", "lab2"]);
    }

    #[test]
    fn remove_renames_away_first_and_clears_a_killed_removal() {
        let root = tempfile::tempdir().unwrap();
        let dir = LabDir {
            path: root.path().join("lab1"),
        };
        // What a removal killed after the rename left, and a lab again.
        let trash = root.path().join(".lab1.removing");
        fs::create_dir_all(trash.join("nodes/w1")).unwrap();
        fs::write(trash.join("nodes/w1/key"), "k").unwrap();
        assert!(dir.has_leftovers());
        fs::create_dir_all(dir.node_dir("w1")).unwrap();
        fs::write(dir.state_file(), "{}").unwrap();
        assert!(!dir.has_leftovers());
        assert_eq!(lab_names_in(root.path()), ["lab1"]);
        dir.remove().unwrap();
        assert!(!dir.path.exists() && !trash.exists());
        assert!(!dir.has_leftovers());
        dir.remove().unwrap();
        // A folder without state.json (an `up` killed before saving).
        fs::create_dir_all(&dir.path).unwrap();
        assert!(dir.has_leftovers());
        dir.remove().unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
