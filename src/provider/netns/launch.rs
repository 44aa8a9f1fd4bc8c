//! Starting a long-lived process (a node's sshd, the lab's dnsmasq) inside a
//! network namespace and, for nodes, a mount namespace of its own.
//!
//! A node's mount namespace gives it its own /run/flannel, /etc/cni/net.d
//! and /run/labctl-agent (per-node folders of the lab's state folder bound
//! over those paths) and a sysfs of its network namespace, the way
//! `ip netns exec` does.
//!
//! Propagation: on systemd hosts `/` is a shared mount, so binds made in a
//! copied mount namespace would propagate back to the host. But pod network
//! namespaces that the agent creates from inside a node (nsfs files bound
//! under /run/netns) must appear on the host. So the child unshares with
//! propagation unchanged, turns every mount EXCEPT /run/netns and what is
//! below it into a slave (non-recursively, one mount point at a time), and
//! only then binds the per-node folders. /run/netns must already be a shared
//! mount on the host: `ip netns add` makes it one.
//!
//! Everything the child does between fork and exec is a plain syscall on
//! data prepared before the fork (no allocation: the parent may have other
//! threads holding the allocator's lock).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// How to place a process on a node.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Name of the network namespace (under /run/netns) to enter.
    pub netns: String,
    /// Give the process its own mount namespace with these binds
    /// (source folder or file, target path); `None` keeps the host's.
    pub binds: Option<Vec<(PathBuf, PathBuf)>>,
    /// Give the process its own UTS namespace with this hostname (a node's
    /// shell prompt then names the node).
    pub hostname: Option<String>,
}

/// Mount points of this process, from /proc/self/mountinfo (field 5,
/// with the kernel's octal escapes decoded), in order.
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
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

/// True for /run/netns and mounts below it: those keep their propagation so
/// namespaces created on the node show on the host.
fn keeps_propagation(path: &Path) -> bool {
    path.starts_with(NETNS_DIR)
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains a NUL byte", path.display()))
}

/// Everything the child needs, prepared before fork.
struct ChildPlan {
    netns: OwnedFd,
    mount_ns: bool,
    make_slave: Vec<CString>,
    binds: Vec<(CString, CString)>,
    sys: CString,
    sysfs: CString,
    hostname: Option<CString>,
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
    let mut plan = ChildPlan {
        netns,
        mount_ns: placement.binds.is_some(),
        make_slave: Vec::new(),
        binds: Vec::new(),
        sys: CString::new("/sys").expect("static"),
        sysfs: CString::new("sysfs").expect("static"),
        hostname: match &placement.hostname {
            Some(h) => Some(CString::new(h.as_str()).context("hostname contains a NUL byte")?),
            None => None,
        },
    };
    if let Some(binds) = &placement.binds {
        for mp in mount_points()? {
            if !keeps_propagation(&mp) {
                plan.make_slave.push(cstring(&mp)?);
            }
        }
        for (src, dst) in binds {
            plan.binds.push((cstring(src)?, cstring(dst)?));
        }
    }
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
        if !plan.mount_ns {
            return Ok(());
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        for mp in &plan.make_slave {
            // A mount point that vanished since we read mountinfo is fine.
            let rc = libc::mount(
                std::ptr::null(),
                mp.as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE,
                std::ptr::null(),
            );
            if rc == -1 && *libc::__errno_location() != libc::ENOENT {
                return Err(std::io::Error::last_os_error());
            }
        }
        // A sysfs of this network namespace (what `ip netns exec` does), so
        // /sys/class/net lists the node's own interfaces.
        if libc::umount2(plan.sys.as_ptr(), libc::MNT_DETACH) == 0 {
            check(libc::mount(
                plan.sysfs.as_ptr(),
                plan.sys.as_ptr(),
                plan.sysfs.as_ptr(),
                0,
                std::ptr::null(),
            ))?;
        }
        for (src, dst) in &plan.binds {
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
        assert!(keeps_propagation(Path::new("/run/netns/x")));
        assert!(!keeps_propagation(Path::new("/run/netnsfoo")));
    }
}
