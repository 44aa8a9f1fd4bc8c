//! Helpers for the netns-lab end-to-end tests: root check (tests skip with
//! a printed reason when not root), running the labctl binary, writing lab
//! files, a guard that destroys the lab whatever happens, and host snapshots
//! (`support::snapshot`) to prove destroy leaves the host
//! as it was.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// netns tests change host-wide things (the host-dirs record, snapshots):
/// one at a time within a test binary.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when running as root with the tools a netns lab needs; otherwise
/// prints why the test is skipped.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return super::skip(test, "needs root (network namespaces, sshd, iptables)");
    }
    for tool in [
        "ip",
        "iptables",
        "/usr/sbin/sshd",
        "busybox",
        "ssh-keygen",
        "dnsmasq",
    ] {
        let found = if tool.starts_with('/') {
            std::path::Path::new(tool).exists()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !found {
            return super::skip(test, &format!("{tool} is not installed (see .ci/run)"));
        }
    }
    true
}

/// Runs the labctl binary.
pub fn labctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .output()
        .expect("labctl runs")
}

/// Text of an output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A unique, short lab name for this test process (`t<pid><tag>`).
pub fn lab_name(tag: &str) -> String {
    format!("t{}{tag}", std::process::id())
}

/// A lab file in a temporary folder; destroys the lab when dropped.
pub struct TestLab {
    pub name: String,
    pub dir: PathBuf,
    pub file: PathBuf,
}

impl TestLab {
    /// Writes a netns lab with `nodes` (first is the control plane).
    pub fn new(name: &str, underlay: &str, pod_network: &str, nodes: &[&str]) -> TestLab {
        let dir = std::env::temp_dir().join(format!("labctl-test-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lab.yaml");
        let lab = TestLab {
            name: name.to_string(),
            dir,
            file,
        };
        lab.write(underlay, pod_network, nodes);
        lab
    }

    /// A lab named `lab_name(tag)` on networks numbered `k`: underlay
    /// 192.168.k.0/24, pods 10.k.0.0/16, services 10.(100+k).0.0/16.
    pub fn numbered(tag: &str, k: u8, nodes: &[&str]) -> TestLab {
        TestLab::new(
            &lab_name(tag),
            &format!("192.168.{k}.0/24"),
            &format!("10.{k}.0.0/16"),
            nodes,
        )
        .with_service_network(&format!("10.{}.0.0/16", 100 + u16::from(k)))
    }

    /// Rewrites the lab file (e.g. to add or remove a node).
    pub fn write(&self, underlay: &str, pod_network: &str, nodes: &[&str]) {
        let mut text = format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {}\nnetwork:\n  underlay: {underlay}\n  podNetwork: {pod_network}\nnodes:\n",
            self.name
        );
        for (i, n) in nodes.iter().enumerate() {
            let role = if i == 0 { "control-plane" } else { "worker" };
            text.push_str(&format!("  - name: {n}\n    role: {role}\n"));
        }
        std::fs::write(&self.file, text).unwrap();
    }

    /// Sets the lab's service network (labs up side by side keep theirs
    /// apart); call before `up`.
    pub fn with_service_network(self, service: &str) -> TestLab {
        let text = std::fs::read_to_string(&self.file).unwrap();
        let text = text.replacen(
            "\nnodes:\n",
            &format!("\n  serviceNetwork: {service}\nnodes:\n"),
            1,
        );
        std::fs::write(&self.file, text).unwrap();
        self
    }

    pub fn path(&self) -> &str {
        self.file.to_str().unwrap()
    }

    pub fn up(&self) -> Output {
        labctl(&["up", self.path()])
    }

    /// `up`, which must succeed.
    pub fn up_ok(&self) -> Output {
        let out = self.up();
        assert!(out.status.success(), "up: {}", show(&out));
        out
    }

    /// `labctl exec NODE -- ARGS` over the lab's SSH.
    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        let mut argv = vec!["exec", "--lab", &self.name, node, "--"];
        argv.extend_from_slice(args);
        labctl(&argv)
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let out = labctl(&["destroy", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("cleanup of lab {} failed:\n{}", self.name, show(&out));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a host command, returning stdout (panics on failure).
pub fn host(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("host command runs");
    assert!(out.status.success(), "{program} {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip netns exec NS ARGS...`.
pub fn in_netns(ns: &str, args: &[&str]) -> Output {
    let mut argv = vec!["netns", "exec", ns];
    argv.extend_from_slice(args);
    Command::new("ip").args(&argv).output().expect("ip runs")
}

/// `iptables-save` output without what changes by itself: comment lines
/// (they carry the time) and the packet counters after each chain.
pub fn iptables_rules(save: &str) -> Vec<String> {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with(':') => l[..i].to_string(),
            _ => l.to_string(),
        })
        .collect()
}
