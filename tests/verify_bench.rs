//! Benchmark: `labctl verify` on real netns labs of 3, 10 and 50 nodes
//! (full pod mesh: 2,450 pairs at 50; every probe over the nodes' SSH
//! sessions and agents; run twice, the better run counts). Root only;
//! ignored by default:
//! `cargo test --release -p labctl --test verify_bench -- --ignored --nocapture`
//! (`LABCTL_BENCH_SIZES=3,10` for fewer labs).

use std::process::Command;
use std::time::Instant;

#[test]
#[ignore]
fn bench_verify_3_10_50() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        labctl_testenv::skip(
            "bench_verify_3_10_50",
            "the benchmark brings up netns labs and needs root",
        );
        return;
    }
    // 50 nodes × 49 underlay neighbours overflow the kernel's shared ARP
    // table at its default size (gc_thresh3 1024): `up` raises the limits
    // for such a lab and `destroy` puts them back, which this checks too.
    let limits = || {
        ["gc_thresh1", "gc_thresh2", "gc_thresh3"]
            .map(|n| std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/{n}")))
            .map(|r| r.unwrap_or_default().trim().to_string())
    };
    let limits_before = limits();
    println!(
        "load before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let sizes: Vec<usize> = std::env::var("LABCTL_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 10, 50]);
    for n in sizes {
        let name = format!("vb{n}x{}", std::process::id() % 1000);
        let file = std::env::temp_dir().join(format!("{name}.yaml"));
        let mut yaml = format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.{}.0/24\n  podNetwork: 10.{}.0.0/16\n  serviceNetwork: 10.{}.0.0/16\nnodes:\n  - name: cp\n    role: control-plane\n",
            180 + [3, 10, 50].iter().position(|m| *m == n).unwrap_or(0),
            60 + n,
            20 + n
        );
        for i in 1..n {
            yaml += &format!("  - name: w{i}\n");
        }
        std::fs::write(&file, yaml).unwrap();
        let t = Instant::now();
        let up = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .arg("up")
            .arg(&file)
            .output()
            .unwrap();
        let up_s = t.elapsed().as_secs_f64();
        let mut lab = Destroy(Some(name.clone()));
        assert!(
            up.status.success(),
            "up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let args = labctl::verify::VerifyArgs {
            lab: Some(file.clone()),
            ..Default::default()
        };
        let mut best: Option<(f64, labctl::verify::model::Report)> = None;
        for _ in 0..2 {
            let t = Instant::now();
            let report = labctl::verify::verify(&args).unwrap();
            let s = t.elapsed().as_secs_f64();
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.outcome == labctl::verify::model::Outcome::Fail)
                .map(|c| format!("{}: {} {:?}", c.id, c.summary, c.details))
                .collect();
            assert!(
                report.passed,
                "{failed:?}\n{}",
                labctl::verify::render::render(&report, false)
            );
            if best.as_ref().is_none_or(|(b, _)| s < *b) {
                best = Some((s, report));
            }
        }
        let Some((verify_s, report)) = best else {
            unreachable!("verify ran")
        };
        let (by_hand_s, by_hand_ok, by_hand_pairs) = mesh_by_hand(&report);
        let t = Instant::now();
        lab.0 = None;
        let destroyed = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(["destroy", "--name", &name])
            .output()
            .unwrap();
        let destroy_s = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&file);
        let per: Vec<String> = report
            .checks
            .iter()
            .map(|c| format!("{} {:.2}s", c.id, c.duration_ms as f64 / 1000.0))
            .collect();
        println!(
            "{n} nodes: up {up_s:.2}s, verify {verify_s:.2}s ({} pairs), destroy {destroy_s:.2}s, passed={}: {}",
            report.mesh.as_ref().map_or(0, |m| m.cells.len()),
            report.passed,
            per.join(", ")
        );
        println!(
            "{n} nodes: baseline, the pod mesh by hand (`ip netns exec POD busybox ping -c1 -W1 IP` \
             per pair, in series): {by_hand_s:.2}s, {by_hand_ok}/{by_hand_pairs} pairs answered"
        );
        assert!(
            destroyed.status.success(),
            "destroy: {}",
            String::from_utf8_lossy(&destroyed.stderr)
        );
        assert!(
            report.passed,
            "{}",
            labctl::verify::render::render(&report, false)
        );
        assert_eq!(limits(), limits_before, "destroy restores the ARP limits");
    }
    println!(
        "load after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

/// Destroys the lab it names when dropped (a failed run leaves nothing).
struct Destroy(Option<String>);

impl Drop for Destroy {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            let _ = Command::new(env!("CARGO_BIN_EXE_labctl"))
                .args(["destroy", "--name", &name, "-q"])
                .status();
        }
    }
}

/// The obvious alternative to verify's pod mesh, measured in the same run:
/// what a learner scripts by hand, one `ping` process per pair, in series.
/// Returns (seconds, pairs answered, pairs).
fn mesh_by_hand(report: &labctl::verify::model::Report) -> (f64, usize, usize) {
    let pods: Vec<(&str, std::net::Ipv4Addr)> = report
        .pods
        .iter()
        .filter_map(|p| Some((p.namespace.as_deref()?, p.ip?)))
        .collect();
    let t = Instant::now();
    let (mut ok, mut pairs) = (0, 0);
    for (ns, _) in &pods {
        for (other, ip) in &pods {
            if ns == other {
                continue;
            }
            pairs += 1;
            let ip = ip.to_string();
            let status = Command::new("ip")
                .args(["netns", "exec", ns, "busybox", "ping", "-c1", "-W1", &ip])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                ok += 1;
            }
        }
    }
    (t.elapsed().as_secs_f64(), ok, pairs)
}
