//! Network namespaces the way `ip netns` handles them: a namespace is kept
//! alive by a bind mount of its nsfs file on `/run/netns/NAME`, and
//! `/run/netns` is made a shared mount so other mount namespaces see it.
//!
//! Entering a namespace changes only the calling thread, so work inside a
//! pod's namespace runs on a dedicated thread that calls setns first and
//! opens its own netlink socket afterwards (a socket belongs to the
//! namespace it was opened in).

use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{failed, AgentError, Result};

/// Where `ip netns` registers named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The filesystem magic of nsfs (namespace files).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The registration path of namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Moves the calling thread into namespace `name` (a name under
/// /run/netns or a path). Call before opening any netlink socket.
pub fn enter(name: &str) -> Result<()> {
    let p = if name.contains('/') {
        PathBuf::from(name)
    } else {
        path(name)
    };
    let f = File::open(&p).map_err(|e| {
        AgentError::Environment(format!(
            "network namespace {name} does not exist ({}: {})",
            p.display(),
            crate::error::describe_io(&e)
        ))
    })?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        AgentError::Environment(format!(
            "cannot enter network namespace {name}: {}",
            e.desc()
        ))
    })
}

/// True for a plain entry name of /run/netns (no path, not `.`/`..`).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// Threads that enter namespaces side by side in [`each_entered`].
const ENTERING_WORKERS: usize = 2;

/// Runs `work(item)` for every item on a few threads, each entering the
/// item's registered namespace (`name_of(item)`) first; one result per
/// item, in order. A namespace that cannot be entered gives its error and
/// the others still run.
pub fn each_entered<I: Sync, T: Send>(
    items: &[I],
    name_of: impl Fn(&I) -> &str + Sync,
    work: impl Fn(&I) -> std::result::Result<T, String> + Sync,
) -> Vec<std::result::Result<T, String>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let slots: Vec<Mutex<Option<std::result::Result<T, String>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..ENTERING_WORKERS.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let name = name_of(item);
                let done = enter(name)
                    .map_err(|e| e.to_string())
                    .and_then(|()| work(item));
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(done);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err("its worker stopped early".into()))
        })
        .collect()
}

/// Opens the registered namespace `name`, or None when it is not
/// registered (no file, or a file with no namespace mounted on it).
pub fn open(name: &str) -> Option<OwnedFd> {
    let f = File::open(path(name)).ok()?;
    let st = nix::sys::statfs::fstatfs(f.as_fd()).ok()?;
    (st.filesystem_type().0 as i64 == NSFS_MAGIC).then(|| f.into())
}

/// Makes /run/netns exist and be a shared mount, as iproute2 does.
fn prepare_dir() -> Result<()> {
    fs::create_dir_all(NETNS_DIR).map_err(|e| {
        failed(
            format!("cannot create {NETNS_DIR}"),
            crate::error::describe_io(&e),
        )
    })?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>).is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself first.
    mount(
        Some(NETNS_DIR),
        NETNS_DIR,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|_| mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>))
    .map_err(|e| failed(format!("cannot make {NETNS_DIR} a shared mount"), e.desc()))
}

/// True when no other process shares this process's mount namespace: a
/// namespace registered from here would vanish when the agent exits (what
/// happens under `ip netns exec`, which gives each command a private one).
pub fn mount_namespace_is_private() -> bool {
    let Ok(mine) = fs::read_link("/proc/self/ns/mnt") else {
        return false;
    };
    // Usually the parent shares it (sshd's session, a shell): no need to
    // read every process's link, which on a host of 200 netns nodes is
    // thousands of /proc lookups for each `pod add`.
    let parent = format!("/proc/{}/ns/mnt", nix::unistd::getppid());
    if fs::read_link(parent).is_ok_and(|l| l == mine) {
        return false;
    }
    let me = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if fs::read_link(e.path().join("ns/mnt")).is_ok_and(|l| l == mine) {
            return false;
        }
    }
    true
}

/// Creates a new network namespace registered as `name` and returns a
/// handle on it.
pub fn create(name: &str) -> Result<OwnedFd> {
    prepare_dir()?;
    let target = path(name);
    let name = name.to_string();
    let worker = std::thread::spawn(move || -> Result<OwnedFd> {
        File::options()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| {
                failed(
                    format!("cannot create {}", target.display()),
                    crate::error::describe_io(&e),
                )
            })?;
        let undo = |msg: String| {
            let _ = fs::remove_file(&target);
            AgentError::Failed(msg)
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
            undo(format!(
                "cannot create network namespace {name}: {}",
                e.desc()
            ))
        })?;
        let own = "/proc/thread-self/ns/net";
        mount(
            Some(own),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            undo(format!(
                "cannot register network namespace {name} at {}: {}",
                target.display(),
                e.desc()
            ))
        })?;
        File::open(&target).map(OwnedFd::from).map_err(|e| {
            failed(
                format!("cannot open {}", target.display()),
                crate::error::describe_io(&e),
            )
        })
    });
    worker
        .join()
        .map_err(|_| AgentError::Failed("the namespace worker thread panicked".into()))?
}

/// Unregisters namespace `name` (the namespace dies with its last user).
/// Returns true when something was removed.
pub fn delete(name: &str) -> Result<bool> {
    let target = path(name);
    if !target.exists() {
        return Ok(false);
    }
    let _ = umount2(&target, MntFlags::MNT_DETACH);
    fs::remove_file(&target).map_err(|e| {
        failed(
            format!("cannot remove {}", target.display()),
            crate::error::describe_io(&e),
        )
    })?;
    Ok(true)
}

/// Runs `work` on a thread inside the namespace `ns`.
pub fn run_in<T: Send + 'static>(
    ns: &OwnedFd,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = ns.try_clone().map_err(|e| {
        failed(
            "cannot duplicate a namespace handle",
            crate::error::describe_io(&e),
        )
    })?;
    std::thread::spawn(move || {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            AgentError::Failed(format!(
                "cannot enter the pod's network namespace: {}",
                e.desc()
            ))
        })?;
        work()
    })
    .join()
    .map_err(|_| AgentError::Failed("the pod namespace worker thread panicked".into()))?
}
