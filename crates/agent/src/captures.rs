//! `captures start|collect`: every capture of one verify round on this
//! node, in two agent processes and no shell. `start` makes a folder
//! (under /dev/shm when it is a tmpfs, else /tmp), starts a detached `captures run` of this executable that
//! opens every capture's socket, and returns as soon as they are all open
//! (the child says so on a pipe: no polling); `collect` waits for the
//! child's result file, prints the outcomes in the request's order and
//! removes the folder. A capture that cannot open is reported as failed;
//! the others still run.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use labctl_nodeplan::report::{
    CaptureOutcome, CaptureSpec, CapturesCollected, CapturesRequest, CapturesStarted, KernelLog,
};

use crate::dump::DumpSocket;
use crate::error::{AgentError, Result, EXIT_OK};
use crate::observe::Kernel;
use crate::report::{header, print};
use crate::{capture, capture_icmp};

/// Where capture folders are made: /dev/shm when it is a tmpfs, else
/// /tmp. On a disk file system a folder and its three files cost an inode
/// allocation each, and when 200 nodes' agents make theirs at once that
/// was 5% of a 200-node verify's CPU (ext4 scanning its inode bitmap past
/// recently deleted inodes).
const BASES: [&str; 2] = ["/dev/shm", "/tmp"];
/// Every capture folder's name starts so, under one of [`BASES`];
/// `collect` takes no other.
const NAME_PREFIX: &str = "labctl-verify.";
/// The request, as `start` was given it.
const REQUEST: &str = "request.json";
/// The outcomes, written (renamed into place) when every capture ended.
const RESULT: &str = "result.json";
/// The child's stderr.
const ERRORS: &str = "err";
/// The child prints this line once every socket is open.
const READY: &str = "ready";
/// Longest capture a request may ask for.
const MAX_SECONDS: f64 = 600.0;
/// Folders older than this are left over from an interrupted verify.
const STALE: Duration = Duration::from_secs(600);
/// Kernel log lines `collect --kernel-log` prints.
const LOG_LINES: usize = 300;

/// `captures start REQUEST`: arms the request's captures (in network
/// namespace `netns` when given) and prints [`CapturesStarted`].
pub fn start(request_json: &str, netns: Option<&str>) -> Result<i32> {
    let request: CapturesRequest = serde_json::from_str(request_json)
        .map_err(|e| AgentError::Input(format!("captures start: the request is not valid: {e}")))?;
    if request.captures.is_empty() {
        return Err(AgentError::Input(
            "captures start: the request asks for no capture".into(),
        ));
    }
    if let Some(s) = request
        .captures
        .iter()
        .map(CaptureSpec::seconds)
        .find(|s| !(0.0..=MAX_SECONDS).contains(s))
    {
        return Err(AgentError::Input(format!(
            "captures start: a capture of {s} s is not between 0 and {MAX_SECONDS} s"
        )));
    }
    crate::require_root()?;
    if let Some(ns) = netns {
        crate::netns::enter(ns)?;
    }
    let base = folder_base();
    let dir = nix::unistd::mkdtemp(&Path::new(base).join(format!("{NAME_PREFIX}XXXXXX"))).map_err(
        |e| AgentError::Environment(format!("cannot make a capture folder under {base}: {e}")),
    )?;
    let started = arm(&dir, &request);
    if started.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    let route = started?;
    let (report_version, command) = header::<CapturesStarted>();
    print(&CapturesStarted {
        report_version,
        command,
        node: request.plan.node.clone(),
        dir: dir.to_string_lossy().into_owned(),
        route,
    });
    Ok(EXIT_OK)
}

/// Starts the detached child in `dir` and waits for its ready line; the
/// route asked for is looked up meanwhile.
fn arm(dir: &Path, request: &CapturesRequest) -> Result<Option<String>> {
    let failed = |what: &str, e: std::io::Error| AgentError::Failed(format!("{what}: {e}"));
    let json = serde_json::to_vec(request)
        .map_err(|e| AgentError::Failed(format!("cannot write the request: {e}")))?;
    fs::write(dir.join(REQUEST), json).map_err(|e| failed("cannot write the request", e))?;
    let errors = fs::File::create(dir.join(ERRORS))
        .map_err(|e| failed("cannot create its error file", e))?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/proc/self/exe")
        .args(["captures", "run"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errors)
        // Its own process group: nothing aimed at this command's reaches it.
        .process_group(0)
        .spawn()
        .map_err(|e| failed("cannot start the capture process", e))?;
    let route = request.route_to.map(route_line);
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() == READY {
        return Ok(route);
    }
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    let said = fs::read_to_string(dir.join(ERRORS)).unwrap_or_default();
    Err(AgentError::Failed(format!(
        "the capture process ended before its sockets were open ({status}): {}",
        said.trim()
    )))
}

/// `ip -4 route get TO`'s first line (without its `uid`), or its error as
/// `ip` words it, read over netlink (an `ip` process per node and verify
/// round before).
fn route_line(to: Ipv4Addr) -> String {
    let taken = DumpSocket::open().and_then(|mut s| {
        let taken = crate::decode::route_taken(&mut s, to)?;
        Ok((taken, Kernel::read_links()?))
    });
    match taken {
        Ok((Some(r), k)) => {
            let mut line = r.dst.to_string();
            if let Some(gw) = r.gateway {
                line.push_str(&format!(" via {gw}"));
            }
            if let Some(oif) = r.oif {
                line.push_str(&format!(" dev {}", k.link_name(oif)));
            }
            if let Some(src) = r.src {
                line.push_str(&format!(" src {src}"));
            }
            line
        }
        Ok((None, _)) => format!("{to}: the kernel gave no route"),
        Err(e) if e.errno != 0 => format!("RTNETLINK answers: {e}"),
        Err(e) => format!("cannot look the route up: {e}"),
    }
}

/// One opened capture, or why it could not open.
enum Opened {
    Vxlan(capture::Watch, f64, Option<u64>),
    IcmpTo(capture_icmp::Watch, f64, Option<u64>),
    Failed(String),
}

impl Opened {
    fn watch(self) -> CaptureOutcome {
        match self {
            Opened::Vxlan(w, s, n) => CaptureOutcome::Vxlan {
                report: w.watch(s, n),
            },
            Opened::IcmpTo(w, s, n) => CaptureOutcome::IcmpTo {
                report: w.watch(s, n),
            },
            Opened::Failed(error) => CaptureOutcome::Failed { error },
        }
    }
}

/// `captures run DIR` (started by [`start`]): opens every capture, says
/// so on stdout, runs them side by side and writes their outcomes.
pub fn run(dir: &str) -> Result<i32> {
    let dir = capture_dir(dir)?;
    let request: CapturesRequest = read_request(&dir)?;
    let opened: Vec<Opened> = request
        .captures
        .iter()
        .map(|spec| {
            let opened = match spec {
                CaptureSpec::Vxlan { seconds, count } => {
                    capture::open(&request.plan).map(|w| Opened::Vxlan(w, *seconds, *count))
                }
                CaptureSpec::IcmpTo { to, seconds, count } => {
                    capture_icmp::open(&request.plan.node, *to)
                        .map(|w| Opened::IcmpTo(w, *seconds, *count))
                }
            };
            opened.unwrap_or_else(|e| Opened::Failed(e.to_string()))
        })
        .collect();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY}");
        let _ = out.flush();
    }
    let outcomes: Vec<CaptureOutcome> = std::thread::scope(|scope| {
        let running: Vec<_> = opened
            .into_iter()
            .map(|o| scope.spawn(move || o.watch()))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| CaptureOutcome::Failed {
                    error: "the capture thread panicked".into(),
                })
            })
            .collect()
    });
    let json = serde_json::to_vec(&outcomes)
        .map_err(|e| AgentError::Failed(format!("cannot write the outcomes: {e}")))?;
    let partial = dir.join(format!("{RESULT}.partial"));
    fs::write(&partial, json)
        .and_then(|()| fs::rename(&partial, dir.join(RESULT)))
        .map_err(|e| AgentError::Failed(format!("cannot write {}: {e}", dir.display())))?;
    Ok(EXIT_OK)
}

/// `captures collect DIR --seconds S [--kernel-log]`: waits at most S s
/// and one more for the captures [`start`] armed in DIR, prints
/// [`CapturesCollected`] and removes DIR (and folders an interrupted
/// verify left).
pub fn collect(dir: &str, seconds: f64, kernel_log: bool) -> Result<i32> {
    let dir = capture_dir(dir)?;
    let request = read_request(&dir)?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, MAX_SECONDS) + 1.0);
    let result = dir.join(RESULT);
    while !result.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let captures = match fs::read(&result) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::Failed(format!("cannot read {}: {e}", result.display())))?,
        Err(_) => {
            let said = fs::read_to_string(dir.join(ERRORS)).unwrap_or_default();
            let error = format!(
                "the capture did not end within {seconds} s{}",
                if said.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", said.trim())
                }
            );
            let failed = CaptureOutcome::Failed { error };
            vec![failed; request.captures.len()]
        }
    };
    let _ = fs::remove_dir_all(&dir);
    sweep_stale();
    let (report_version, command) = header::<CapturesCollected>();
    print(&CapturesCollected {
        report_version,
        command,
        node: request.plan.node,
        captures,
        kernel_log: kernel_log.then(read_kernel_log),
    });
    Ok(EXIT_OK)
}

/// The first of [`BASES`] that is a tmpfs folder, else the last.
fn folder_base() -> &'static str {
    const TMPFS: nix::sys::statfs::FsType = nix::sys::statfs::TMPFS_MAGIC;
    let on_tmpfs = |p: &str| {
        nix::sys::statfs::statfs(p).is_ok_and(|st| st.filesystem_type() == TMPFS)
            && nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
    };
    BASES
        .into_iter()
        .find(|b| on_tmpfs(b))
        .unwrap_or(BASES[BASES.len() - 1])
}

/// `dir` when it is a capture folder (one of [`BASES`], then
/// [`NAME_PREFIX`] and a name), else why not.
fn capture_dir(dir: &str) -> Result<PathBuf> {
    let name = BASES
        .iter()
        .find_map(|b| {
            dir.strip_prefix(b)?
                .strip_prefix('/')?
                .strip_prefix(NAME_PREFIX)
        })
        .unwrap_or("");
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(AgentError::Input(format!(
            "{dir:?} is not a capture folder (/dev/shm/{NAME_PREFIX}* or /tmp/{NAME_PREFIX}*)"
        )));
    }
    Ok(PathBuf::from(dir))
}

fn read_request(dir: &Path) -> Result<CapturesRequest> {
    let path = dir.join(REQUEST);
    let bytes = fs::read(&path).map_err(|e| {
        AgentError::Input(format!(
            "no capture in {} ({e}): was it started, and not collected yet?",
            dir.display()
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AgentError::Failed(format!("cannot read {}: {e}", path.display())))
}

/// Removes capture folders older than [`STALE`].
fn sweep_stale() {
    let now = SystemTime::now();
    for e in BASES
        .iter()
        .filter_map(|b| fs::read_dir(b).ok())
        .flatten()
        .flatten()
    {
        let path = e.path();
        let ours = path.to_str().is_some_and(|p| capture_dir(p).is_ok());
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE);
        if ours && old && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// The kernel log's last [`LOG_LINES`] lines and the uptime now (empty
/// lines when dmesg is not allowed to read it).
fn read_kernel_log() -> KernelLog {
    let uptime = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let text = Command::new("dmesg")
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_LINES)..];
    KernelLog {
        uptime,
        lines: tail.iter().map(|l| l.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_capture_folders_are_collected() {
        assert!(capture_dir("/tmp/labctl-verify.AbC123").is_ok());
        assert!(capture_dir("/dev/shm/labctl-verify.AbC123").is_ok());
        for bad in [
            "/tmp/labctl-verify.",
            "/dev/shm/labctl-verify.",
            "/dev/shm/../tmp/labctl-verify.x",
            "/dev/shmlabctl-verify.x",
            "/run/labctl-verify.AbC123",
            "/tmp/labctl-verify./../etc",
            "/tmp/labctl-verify.a/b",
            "/tmp/labctl-verify..x",
            "/etc",
            "/tmp/other.AbC123",
        ] {
            let e = capture_dir(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_BAD_INPUT, "{bad}");
        }
    }
}
