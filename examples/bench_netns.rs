//! Benchmark of netns labs, one lab size after another, every figure from
//! the same run: `labctl up` (cold), `labctl up` again (converged, no
//! changes), `labctl verify` (every default check, full pod mesh),
//! `labctl destroy`; labctl's peak RSS over the four and its session
//! keeper's (which holds the nodes' SSH sessions between commands), and
//! the lab's memory per node (the host's MemAvailable drop while the lab
//! is up, and the proportional set size of the lab's own processes: sshd
//! per node with its held sessions, dnsmasq), with the load average before
//! each lab.
//!
//! Needs root; not a test (nothing here runs in `cargo test`). Build labctl
//! in release first, then:
//!   cargo build --release -p labctl --bin labctl --examples
//!   target/release/examples/bench_netns [SIZES...]   (default: 20 200 1000)
//! (`LABCTL=/path/to/labctl` measures another build.)
//! One pod per node; underlay 192.168.64.0/22, podNetwork 10.240.0.0/13.
//! Targets (2-core machine): 200 nodes up ≤ 6 s, verify ≤ 5 s, destroy
//! ≤ 3 s; 1,000 nodes up ≤ 60 s, verify ≤ 60 s, destroy ≤ 20 s, peak RSS
//! ≤ 300 MiB; no-op up ≥ 3× faster than cold.

use std::process::{Command, Stdio};
use std::time::Instant;

/// The labctl binary measured: `$LABCTL` (e.g. another build, for a
/// before/after), else the one built next to this example.
fn labctl_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("LABCTL") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/bench_netns -> target/release/labctl
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("labctl"))
        .expect("target dir")
}

/// One labctl run: seconds, max RSS in MiB, success, stdout.
struct Run {
    secs: f64,
    rss_mib: f64,
    ok: bool,
    stdout: String,
}

/// Runs labctl with args, stdout captured to a file (so a big JSON
/// report cannot block the pipe while we wait4).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std does not see
fn timed(args: &[&str]) -> Run {
    let out_path = std::env::temp_dir().join(format!("labctl-bench-out-{}", std::process::id()));
    let out_file = std::fs::File::create(&out_path).expect("output file");
    let started = Instant::now();
    let child = Command::new(labctl_path())
        .args(args)
        .stdout(Stdio::from(out_file))
        .spawn()
        .expect("labctl runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    Run {
        secs,
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
        ok,
        stdout,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// MemAvailable in KiB.
fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Every process: pid, parent pid, command line.
fn processes() -> Vec<(u32, u32, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name, which may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        all.push((pid, ppid, cmdline));
    }
    all
}

/// A field of /proc/PID/smaps_rollup or /proc/PID/status, in KiB.
fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Total Pss (KiB) of the processes whose command line mentions `needle`
/// (the lab's state folder: every sshd config and the dnsmasq config) and
/// of their descendants (the sshd processes of the sessions held open).
fn lab_pss_kib(needle: &str) -> u64 {
    let all = processes();
    let mut lab: Vec<u32> = all
        .iter()
        .filter(|(_, _, cmdline)| cmdline.contains(needle))
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut i = 0;
    while i < lab.len() {
        let parent = lab[i];
        lab.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, _)| *pid),
        );
        i += 1;
    }
    lab.iter()
        .map(|pid| proc_kib(*pid, "smaps_rollup", "Pss:"))
        .sum()
}

/// The lab's session keeper's peak RSS (MiB), 0 when none runs.
fn keeper_peak_mib(lab: &str) -> f64 {
    let title = format!("keep-sessions --name {lab} ");
    processes()
        .iter()
        .filter(|(_, _, cmdline)| cmdline.contains(&title))
        .map(|(pid, _, _)| proc_kib(*pid, "status", "VmHWM:"))
        .max()
        .unwrap_or(0) as f64
        / 1024.0
}

fn main() {
    let sizes: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![20, 200, 1000]
        } else {
            given
        }
    };
    let dir = std::env::temp_dir().join(format!("labctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!(
        "| nodes | up (cold) | up (no-op) | cold ÷ no-op | verify | mesh pairs | destroy | peak RSS (labctl / its session keeper) | memory per node (MemAvailable drop / lab processes' Pss) | load before |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let name = format!("bench{n}");
        let mut text = format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.64.0/22\n  podNetwork: 10.240.0.0/13\nnodes:\n"
        );
        for i in 0..n {
            let role = if i == 0 { "control-plane" } else { "worker" };
            text.push_str(&format!("  - name: n{i}\n    role: {role}\n"));
        }
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, text).expect("lab file");
        let file = file.to_string_lossy().into_owned();
        let load = loadavg();
        let mem_before = mem_available_kib();
        let up = timed(&["up", "-q", &file]);
        let again = timed(&["up", "-q", &file]);
        let mem_up = mem_available_kib();
        let pss = lab_pss_kib(&format!("/labctl/labs/{name}/"));
        let verify = timed(&["verify", &file, "--output", "json"]);
        let keeper = keeper_peak_mib(&name);
        let destroy = timed(&["destroy", "-q", "--name", &name]);
        let report: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap_or_default();
        let pairs = report["mesh"]["cells"].as_array().map_or(0, Vec::len);
        let failed: Vec<String> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["outcome"] == "fail")
            .map(|c| format!("{}: {}", c["id"], c["summary"]))
            .collect();
        if !(up.ok && again.ok && verify.ok && destroy.ok) {
            eprintln!(
                "bench {n}: a command failed (up {}, up again {}, verify {} {failed:?}, destroy {})",
                up.ok, again.ok, verify.ok, destroy.ok
            );
            // What a failed check saw (its first details), for the cause.
            for check in report["checks"].as_array().into_iter().flatten() {
                if check["outcome"] != "fail" {
                    continue;
                }
                let details = check["details"].as_array().into_iter().flatten();
                for line in details.filter_map(|d| d.as_str()).take(8) {
                    eprintln!("bench {n}:   {}: {line}", check["id"]);
                }
            }
        }
        // Where verify's time went, and each command's peak RSS.
        let took: Vec<String> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["outcome"] != "skip")
            .map(|c| {
                let ms = c["duration_ms"].as_f64().unwrap_or(0.0);
                format!("{} {:.2} s", c["id"].as_str().unwrap_or("?"), ms / 1000.0)
            })
            .collect();
        eprintln!("bench {n}: verify checks: {}", took.join(", "));
        eprintln!(
            "bench {n}: peak RSS: up {:.0} MiB, up again {:.0} MiB, verify {:.0} MiB, destroy {:.0} MiB",
            up.rss_mib, again.rss_mib, verify.rss_mib, destroy.rss_mib
        );
        let per_node = |kib: u64| kib as f64 / 1024.0 / n as f64;
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.1}× | {:.2} s{} | {pairs} | {:.2} s | {:.0} / {keeper:.0} MiB | {:.2} / {:.2} MiB | {load} |",
            up.secs,
            again.secs,
            up.secs / again.secs,
            verify.secs,
            if verify.ok { "" } else { " (failed)" },
            destroy.secs,
            up.rss_mib
                .max(again.rss_mib)
                .max(verify.rss_mib)
                .max(destroy.rss_mib),
            per_node(mem_before.saturating_sub(mem_up)),
            per_node(pss),
        );
    }
    println!("load after: {}", loadavg());
    let _ = std::fs::remove_dir_all(&dir);
}
