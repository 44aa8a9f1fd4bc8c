//! The CLI paths of verify on a real netns lab: `labctl up LAB --verify`
//! (verify's exit status), `labctl verify LAB` as a learner types it (text
//! report, exit 1 with the cause named, `--check`, `--junit`), exit 3 for a
//! lab that is not up, and a small lab leaving the host's ARP table limits
//! alone. Needs root; the lab has a name and networks unique to this run
//! and is destroyed at the end, also on failure.

use std::process::{Command, Output};

fn labctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .output()
        .expect("labctl runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn arp_limits() -> Vec<String> {
    ["gc_thresh1", "gc_thresh2", "gc_thresh3"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/{n}"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

/// Destroys the lab and removes its file, also when the test fails.
struct Cleanup {
    name: String,
    file: std::path::PathBuf,
    junit: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = labctl(&["destroy", "--name", &self.name]);
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.junit);
    }
}

#[test]
fn up_verify_and_verify_from_the_command_line() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: a netns lab needs root (network namespaces, sshd, iptables)");
        return;
    }
    let n = std::process::id() % 40;
    let name = format!("vc{}", std::process::id() % 100000);
    let file = std::env::temp_dir().join(format!("{name}.yaml"));
    let lab = Cleanup {
        name: name.clone(),
        file: file.clone(),
        junit: std::env::temp_dir().join(format!("{name}-junit.xml")),
    };
    std::fs::write(
        &file,
        format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.{}.0/24\n  podNetwork: 10.{}.0.0/16\n  serviceNetwork: 10.{}.0.0/16\nnodes:\n  - name: master\n    role: control-plane\n  - name: worker1\n  - name: worker2\n",
            160 + n,
            60 + n,
            110 + n
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    // Not up yet: verify cannot run (exit 3) and says how to bring it up.
    let out = labctl(&["verify", path]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("labctl up"), "{}", text(&out));

    let limits = arp_limits();
    let out = labctl(&["up", path, "--verify"]);
    assert_eq!(out.status.code(), Some(0), "up --verify: {}", text(&out));
    let shown = text(&out);
    assert!(shown.contains(&format!("Lab {name} is up")), "{shown}");
    assert!(
        shown.contains("pod-mesh") && shown.contains("PASS"),
        "{shown}"
    );
    assert_eq!(
        arp_limits(),
        limits,
        "a 3-node lab fits the default ARP table: the host's limits stay"
    );

    // Break worker1's route to worker2's pods: verify (text, as typed by a
    // learner) fails with exit 1 and names the cause.
    let ns = format!("{name}-worker1");
    let routes = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "ip",
            "-4",
            "route",
            "show",
            "dev",
            "flannel.1",
        ])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let victim = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .next_back()
        .unwrap_or_else(|| panic!("no flannel.1 routes on worker1: {routes}"))
        .to_string();
    let del = Command::new("ip")
        .args(["netns", "exec", &ns, "ip", "route", "del", &victim])
        .output()
        .unwrap();
    assert!(del.status.success(), "{}", text(&del));
    let out = labctl(&["verify", path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("missing-route"), "{}", text(&out));

    // `up --verify` repairs it and its exit status is verify's: 0 again.
    let out = labctl(&["up", path, "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // --check and --junit.
    let junit = lab.junit.to_str().unwrap();
    let out = labctl(&["verify", path, "--check", "nodes", "--junit", junit]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let xml = std::fs::read_to_string(&lab.junit).unwrap();
    assert!(xml.contains("nodes") && !xml.contains("pod-mesh"), "{xml}");

    drop(lab);
    assert_eq!(arp_limits(), limits);
}
