//! Starting a long-lived process (a node's sshd, the lab's dnsmasq) inside a
//! network namespace and, for nodes, a mount namespace of its own.
//!
//! A node's mount namespace gives it its own /run/flannel, /etc/cni/net.d
//! and /run/labctl-agent (per-node folders of the lab's state folder bound
//! over those paths), a sysfs of its network namespace (as `ip netns exec`
//! does), and as /run/netns its folder of the lab's pod mount (see
//! [`super::pod_mounts`]).
//!
//! Every node's mount namespace is a copy of one [`MountTemplate`], made
//! once per command: the host's mounts, each one a slave (binds made for a
//! node never reach the host, even where `/` is shared as on systemd
//! hosts), without /run/netns and without any lab's pod mount. A node's
//! copy holds the host's few dozen mounts, not the thousands of namespace
//! entries a big lab registers. The node's /run/netns is a clone of its
//! pod folder made in this process (`open_tree`) and attached in the child
//! (`move_mount`): a peer of the lab's shared mount, so the pods the agent
//! registers in the node show on the host.
//!
//! Everything the child does between fork and exec is a plain syscall on
//! data prepared before the fork (no allocation: the parent may have other
//! threads holding the allocator's lock).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::mounts;

/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// How to place a process on a node.
#[derive(Debug, Clone, Default)]
pub struct Placement<'a> {
    /// Name of the network namespace (under /run/netns) to enter.
    pub netns: String,
    /// Give the process a node's mount namespace; `None` keeps the host's.
    pub node: Option<NodeMounts<'a>>,
    /// Give the process its own UTS namespace with this hostname (a node's
    /// shell prompt then names the node).
    pub hostname: Option<String>,
}

/// A node's mount namespace: a copy of `template` with `netns_dir` as its
/// /run/netns and `binds` (source folder or file, target path).
#[derive(Debug, Clone)]
pub struct NodeMounts<'a> {
    pub template: &'a MountTemplate,
    /// A folder below a shared mount (see [`super::pod_mounts`]).
    pub netns_dir: PathBuf,
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// The mount namespace every node's is copied from (see the module doc).
#[derive(Debug)]
pub struct MountTemplate {
    ns: OwnedFd,
}

impl MountTemplate {
    /// Copies this host's mount namespace with every mount a slave and the
    /// mounts at or below `hidden` detached. Made on a thread of its own
    /// (which leaves the process's namespace alone); the namespace lives
    /// as long as the returned handle.
    pub fn new(hidden: &[PathBuf]) -> Result<Self> {
        let hidden = hidden.to_vec();
        let made = std::thread::spawn(move || -> Result<OwnedFd> {
            // SAFETY: unshare affects this thread only (CLONE_FS first).
            check(unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) })
                .context("cannot make a mount namespace for the nodes")?;
            let root = mounts::cpath(Path::new("/"))?;
            mounts::mount(None, &root, libc::MS_SLAVE | libc::MS_REC)
                .context("cannot make the nodes' mounts slaves of the host's")?;
            let mut detached: Vec<PathBuf> = Vec::new();
            for mp in mount_points_of("/proc/thread-self/mountinfo")? {
                let hide = hidden.iter().any(|h| mp.starts_with(h));
                if !hide || detached.iter().any(|d| mp.starts_with(d)) {
                    continue;
                }
                mounts::detach(&mp)?;
                detached.push(mp);
            }
            let ns = File::open("/proc/thread-self/ns/mnt")
                .context("cannot open the nodes' mount namespace")?;
            Ok(ns.into())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("making the nodes' mount namespace panicked"))??;
        Ok(MountTemplate { ns: made })
    }
}

/// A [`MountTemplate`] made on first use, for commands that may start no
/// node at all.
#[derive(Debug)]
pub struct LazyTemplate {
    hidden: Vec<PathBuf>,
    made: std::sync::OnceLock<std::result::Result<MountTemplate, String>>,
}

impl LazyTemplate {
    /// Hides /run/netns and every lab's folder (their pod mounts).
    pub fn for_labs() -> Result<Self> {
        Ok(Self::hiding(vec![
            PathBuf::from(NETNS_DIR),
            crate::state::labs_root()?,
        ]))
    }

    pub fn hiding(hidden: Vec<PathBuf>) -> Self {
        LazyTemplate {
            hidden,
            made: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> Result<&MountTemplate> {
        self.made
            .get_or_init(|| MountTemplate::new(&self.hidden).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Mount points in a mountinfo file (field 5, with the kernel's octal
/// escapes decoded), in the order the kernel lists them.
fn mount_points_of(mountinfo: &str) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string(mountinfo).with_context(|| format!("cannot read {mountinfo}"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .collect())
}

fn unescape_mount_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&p[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything the child needs, prepared before fork.
struct ChildPlan {
    netns: OwnedFd,
    node: Option<ChildNode>,
    hostname: Option<CString>,
}

/// A node's mounts, prepared before fork.
struct ChildNode {
    template: RawFd,
    /// The node's /run/netns, cloned and not yet attached.
    netns_tree: OwnedFd,
    run_netns: CString,
    empty: CString,
    binds: Vec<(CString, CString)>,
    sys: CString,
    sysfs: CString,
}

// open_tree(2) and move_mount(2) flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// A detached copy of the mount tree at `path` (with its submounts), as
/// open_tree(2) with OPEN_TREE_CLONE makes it: a peer of `path`'s mount.
fn clone_tree(path: &Path) -> Result<OwnedFd> {
    let c = mounts::cpath(path)?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a NUL-terminated path; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            anyhow::bail!(
                "this kernel has no open_tree(2), which netns nodes need for their /run/netns: \
                 netns labs need Linux 5.2 or newer (use the vagrant or ssh provider here)"
            );
        }
        return Err(e).with_context(|| format!("cannot clone the mount at {}", path.display()));
    }
    // SAFETY: open_tree returned a descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Spawns `argv` placed as `placement` says, in a new session (so Ctrl-C in
/// labctl's terminal does not reach it), stdin from /dev/null and
/// stdout+stderr appended to `log`. Returns its pid; the process outlives
/// labctl.
pub fn spawn(argv: &[String], placement: &Placement, log: &Path) -> Result<u32> {
    let ns_path = Path::new(NETNS_DIR).join(&placement.netns);
    let netns: OwnedFd = File::open(&ns_path)
        .with_context(|| format!("cannot open network namespace {}", ns_path.display()))?
        .into();
    let node = match &placement.node {
        None => None,
        Some(n) => Some(ChildNode {
            template: n.template.ns.as_raw_fd(),
            netns_tree: clone_tree(&n.netns_dir)?,
            run_netns: CString::new(NETNS_DIR).expect("static"),
            empty: CString::default(),
            binds: n
                .binds
                .iter()
                .map(|(src, dst)| Ok((mounts::cpath(src)?, mounts::cpath(dst)?)))
                .collect::<Result<_>>()?,
            sys: CString::new("/sys").expect("static"),
            sysfs: CString::new("sysfs").expect("static"),
        }),
    };
    let plan = ChildPlan {
        netns,
        node,
        hostname: match &placement.hostname {
            Some(h) => Some(CString::new(h.as_str()).context("hostname contains a NUL byte")?),
            None => None,
        },
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let (program, args) = argv.split_first().context("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().context("duplicating a log handle")?)
        .stderr(log_file);
    // SAFETY: the closure only makes syscalls on data prepared above.
    unsafe {
        cmd.pre_exec(move || enter(&plan));
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "cannot start `{}` in network namespace {} (entering its namespaces and mounts failed)",
            argv.join(" "),
            placement.netns
        )
    })?;
    Ok(child.id())
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in the forked child: only syscalls.
fn enter(plan: &ChildPlan) -> std::io::Result<()> {
    // SAFETY: plain syscalls with valid fds and NUL-terminated strings.
    unsafe {
        check(libc::setsid())?;
        check(libc::setns(plan.netns.as_raw_fd(), libc::CLONE_NEWNET))?;
        if let Some(name) = &plan.hostname {
            check(libc::unshare(libc::CLONE_NEWUTS))?;
            check(libc::sethostname(name.as_ptr(), name.as_bytes().len()))?;
        }
        let Some(node) = &plan.node else {
            return Ok(());
        };
        check(libc::setns(node.template, libc::CLONE_NEWNS))?;
        check(libc::unshare(libc::CLONE_NEWNS))?;
        // A sysfs of this network namespace (what `ip netns exec` does), so
        // /sys/class/net lists the node's own interfaces.
        if libc::umount2(node.sys.as_ptr(), libc::MNT_DETACH) == 0 {
            check(libc::mount(
                node.sysfs.as_ptr(),
                node.sys.as_ptr(),
                node.sysfs.as_ptr(),
                0,
                std::ptr::null(),
            ))?;
        }
        let moved = libc::syscall(
            libc::SYS_move_mount,
            node.netns_tree.as_raw_fd(),
            node.empty.as_ptr(),
            libc::AT_FDCWD,
            node.run_netns.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        check(moved as libc::c_int)?;
        for (src, dst) in &node.binds {
            check(libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path("/run/netns"), "/run/netns");
    }
}
