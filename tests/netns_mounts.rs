//! The node launcher's mount namespaces (provider::netns::launch and
//! pod_mounts), tested against a SHARED mount made for the test (as `/` is
//! on systemd hosts): binds made for a node must not reach the host; a
//! network namespace the node registers in its /run/netns must show on
//! the host in the node's pod folder, and only there; the node must not
//! see the host's /run/netns; a node started again sees the pods already
//! registered. Needs root (mounts, namespaces).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labctl::provider::netns::launch::{spawn, LazyTemplate, NodeMounts, Placement, NETNS_DIR};
use labctl::provider::netns::pod_mounts;
use support::netns::{can_run, host, serial};

struct Cleanup {
    base: String,
    node_ns: String,
    pids: Vec<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in &self.pids {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.node_ns])
            .output();
        for mount in ["shared/pods", "shared"] {
            let _ = std::process::Command::new("umount")
                .args(["-l", &format!("{}/{mount}", self.base)])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Waits until `file` holds `done`, returns its text.
fn wait_for_done(file: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = std::fs::read_to_string(file).unwrap_or_default();
        if seen.contains("done") || Instant::now() > until {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn node_binds_stay_private_and_pods_reach_the_host_in_the_nodes_folder() {
    if !can_run("node_binds_stay_private_and_pods_reach_the_host_in_the_nodes_folder") {
        return;
    }
    let _serial = serial();
    let pid = std::process::id();
    let base = format!("/tmp/lcmt{pid}");
    let mut guard = Cleanup {
        base: base.clone(),
        node_ns: format!("lcmt{pid}n"),
        pids: Vec::new(),
    };
    let pod_ns = format!("lcmt{pid}p");
    let shared = format!("{base}/shared");
    let node_src = format!("{base}/node-folder");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&node_src).unwrap();
    std::fs::write(format!("{node_src}/marker"), "node's own file\n").unwrap();
    // A shared mount like systemd's `/`, with the bind target inside it.
    host("mount", &["-t", "tmpfs", "lcmt", &shared]);
    host("mount", &["--make-shared", &shared]);
    std::fs::create_dir_all(format!("{shared}/target")).unwrap();
    host("ip", &["netns", "add", &guard.node_ns]);
    // The lab's pod mount inside the shared one, as a lab folder below a
    // shared `/` is.
    let pods = PathBuf::from(format!("{shared}/pods"));
    pod_mounts::ensure_shared(&pods).unwrap();
    let folder = pods.join("node");
    std::fs::create_dir_all(&folder).unwrap();
    let template = LazyTemplate::hiding(vec![PathBuf::from(NETNS_DIR), pods.clone()]);

    let script = format!(
        "cat {shared}/target/marker > {base}/seen; hostname >> {base}/seen; \
         ip netns add {pod_ns}; ls /run/netns >> {base}/seen; echo done >> {base}/seen; sleep 30"
    );
    let placement = Placement {
        netns: guard.node_ns.clone(),
        node: Some(NodeMounts {
            template: template.get().unwrap(),
            netns_dir: folder.clone(),
            binds: vec![(node_src.clone().into(), format!("{shared}/target").into())],
        }),
        hostname: Some("lcmt-node".into()),
    };
    let argv = vec!["sh".to_string(), "-c".to_string(), script];
    guard
        .pids
        .push(spawn(&argv, &placement, Path::new(&format!("{base}/log"))).unwrap());

    let seen = wait_for_done(&format!("{base}/seen"));
    let log = std::fs::read_to_string(format!("{base}/log")).unwrap_or_default();
    assert!(
        seen.starts_with("node's own file"),
        "the node must see its bind; seen={seen:?} log={log}"
    );
    assert!(
        seen.contains("lcmt-node\n"),
        "the node has its own hostname: {seen:?}"
    );
    // The node's /run/netns is its folder: its pod, none of the host's
    // namespaces (its own network namespace is registered on the host).
    assert!(seen.contains(&format!("{pod_ns}\n")), "{seen:?}");
    assert!(
        !seen.contains(&guard.node_ns),
        "the node sees the host's /run/netns: {seen:?}"
    );
    // The bind did not propagate to the host's shared mount.
    assert!(
        !Path::new(&format!("{shared}/target/marker")).exists(),
        "the node's bind leaked onto the host"
    );
    // The namespace made inside the node shows on the host in the node's
    // folder, usable, and a namespace of its own (a real nsfs mount); not
    // in the host's /run/netns.
    let pod_file = folder.join(&pod_ns);
    let pod_arg = format!("--net={}", pod_file.display());
    host("nsenter", &[&pod_arg, "true"]);
    let node_ino = std::fs::metadata(format!("{NETNS_DIR}/{}", guard.node_ns)).map(|m| m.ino());
    let pod_ino = std::fs::metadata(&pod_file).map(|m| m.ino()).unwrap();
    assert_ne!(node_ino.unwrap(), pod_ino);
    assert!(!Path::new(NETNS_DIR).join(&pod_ns).exists());
    // Registered once on the host: the pod mount is a peer group of its
    // own, not of the shared mount it sits in (whose peers would each get
    // a copy, hidden under it).
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let copies = mountinfo.lines().filter(|l| l.contains(&pod_ns)).count();
    assert_eq!(copies, 1, "{mountinfo}");

    // A node started again (its first process gone) sees that pod.
    unsafe { libc::kill(guard.pids[0] as i32, libc::SIGKILL) };
    let again = format!("ls /run/netns > {base}/again; echo done >> {base}/again; sleep 30");
    let argv = vec!["sh".to_string(), "-c".to_string(), again];
    guard
        .pids
        .push(spawn(&argv, &placement, Path::new(&format!("{base}/log"))).unwrap());
    let again = wait_for_done(&format!("{base}/again"));
    assert_eq!(again, format!("{pod_ns}\ndone\n"));
    // The pod outlived the node's first mount namespace.
    assert_eq!(
        std::fs::metadata(&pod_file).map(|m| m.ino()).unwrap(),
        pod_ino
    );
    pod_mounts::remove_folder(&folder).unwrap();
    assert!(!folder.exists());
}
