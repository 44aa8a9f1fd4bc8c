//! Benchmark of netns labs: wall time and peak memory (max RSS of the
//! labctl process) of `labctl up` (fresh), `labctl up` again (converged, no
//! changes) and `labctl destroy` for labs of 3, 10 and 50 nodes. Verify
//! belongs to another command and is not measured here.
//!
//! Needs root. Build labctl in release first, then:
//!   cargo build --release -p labctl && cargo run --release --example bench_netns [SIZES...]
//! Targets: 3 nodes up < 2 s, 50 nodes up < 20 s on a 2-core machine.

use std::process::Command;
use std::time::Instant;

fn labctl_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/bench_netns -> target/release/labctl
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("labctl"))
        .expect("target dir")
}

/// Runs labctl with args; returns (seconds, max RSS in MiB, success).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std does not see
fn timed(args: &[&str]) -> (f64, f64, bool) {
    let started = Instant::now();
    let child = Command::new(labctl_path())
        .args(args)
        .arg("-q")
        .spawn()
        .expect("labctl runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (secs, usage.ru_maxrss as f64 / 1024.0, ok)
}

fn main() {
    let sizes: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![3, 10, 50]
        } else {
            given
        }
    };
    let dir = std::env::temp_dir().join(format!("labctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("| nodes | up (fresh) | up (again) | destroy | peak RSS (labctl) |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let name = format!("bench{n}");
        let mut text = format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.240.0/24\n  podNetwork: 10.240.0.0/16\nnodes:\n"
        );
        for i in 0..n {
            let role = if i == 0 { "control-plane" } else { "worker" };
            text.push_str(&format!("  - name: n{i}\n    role: {role}\n"));
        }
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, text).expect("lab file");
        let file = file.to_string_lossy().into_owned();
        let up = timed(&["up", &file]);
        let again = timed(&["up", &file]);
        let destroy = timed(&["destroy", "--name", &name]);
        if !(up.2 && again.2 && destroy.2) {
            eprintln!(
                "bench {n}: a command failed (up {}, up again {}, destroy {})",
                up.2, again.2, destroy.2
            );
        }
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s | {:.0} MiB |",
            up.0,
            again.0,
            destroy.0,
            up.1.max(again.1).max(destroy.1)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
