//! The node launcher's mount-namespace logic (provider::netns::launch),
//! tested against a SHARED mount made for the test: binds made for a node
//! must not propagate back to the host, while network namespaces created
//! from inside the node (under /run/netns) must appear on the host.
//! Needs root (mounts, namespaces).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use labctl::provider::netns::launch::{spawn, Placement};
use support::netns::{can_run, host, serial};

struct Cleanup {
    base: String,
    node_ns: String,
    pod_ns: String,
    pid: Option<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.pod_ns])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.node_ns])
            .output();
        let _ = std::process::Command::new("umount")
            .args(["-l", &format!("{}/shared", self.base)])
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

#[test]
fn node_binds_stay_private_and_pod_namespaces_reach_the_host() {
    if !can_run("node_binds_stay_private_and_pod_namespaces_reach_the_host") {
        return;
    }
    let _serial = serial();
    let pid = std::process::id();
    let base = format!("/tmp/lcmt{pid}");
    let mut guard = Cleanup {
        base: base.clone(),
        node_ns: format!("lcmt{pid}n"),
        pod_ns: format!("lcmt{pid}p"),
        pid: None,
    };
    let shared = format!("{base}/shared");
    let node_src = format!("{base}/node-folder");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&node_src).unwrap();
    std::fs::write(format!("{node_src}/marker"), "node's own file\n").unwrap();
    // A shared mount like systemd's `/`, with the bind target inside it.
    host("mount", &["-t", "tmpfs", "lcmt", &shared]);
    host("mount", &["--make-shared", &shared]);
    std::fs::create_dir_all(format!("{shared}/target")).unwrap();
    // `ip netns add` makes /run/netns a shared mount, as labs rely on.
    host("ip", &["netns", "add", &guard.node_ns]);

    let script = format!(
        "cat {shared}/target/marker > {base}/seen; hostname >> {base}/seen; ip netns add {pod}; echo done >> {base}/seen; sleep 30",
        pod = guard.pod_ns
    );
    let placement = Placement {
        netns: guard.node_ns.clone(),
        binds: Some(vec![(
            node_src.clone().into(),
            format!("{shared}/target").into(),
        )]),
        hostname: Some("lcmt-node".into()),
    };
    let argv = vec!["sh".to_string(), "-c".to_string(), script];
    guard.pid = Some(spawn(&argv, &placement, Path::new(&format!("{base}/log"))).unwrap());

    let until = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen = std::fs::read_to_string(format!("{base}/seen")).unwrap_or_default();
        if seen.contains("done") || Instant::now() > until {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(format!("{base}/log")).unwrap_or_default();
    assert!(
        seen.starts_with("node's own file"),
        "the node must see its bind; seen={seen:?} log={log}"
    );
    assert!(
        seen.contains("lcmt-node\n"),
        "the node has its own hostname: {seen:?}"
    );
    // The bind did not propagate to the host's shared mount.
    assert!(
        !Path::new(&format!("{shared}/target/marker")).exists(),
        "the node's bind leaked onto the host"
    );
    // The namespace made inside the node is usable from the host.
    let list = host("ip", &["netns", "list"]);
    assert!(
        list.contains(&guard.pod_ns),
        "pod namespace missing on host: {list}"
    );
    host("ip", &["netns", "exec", &guard.pod_ns, "true"]);
    // And it is a different namespace from the node's (a real nsfs mount).
    let node_ino = std::fs::metadata(format!("/run/netns/{}", guard.node_ns))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let pod_ino = std::fs::metadata(format!("/run/netns/{}", guard.pod_ns))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    assert_ne!(node_ino.unwrap(), pod_ino.unwrap());
}
