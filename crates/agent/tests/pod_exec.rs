//! `pod-exec`: a command inside a pod namespace sees what `ip netns exec`
//! would show it (the pod's devices in /sys, /etc/netns/POD's resolv.conf
//! over /etc's) and nothing of it leaks out; the bound kills the whole
//! command; bad input is refused before anything runs. Needs root.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn pod_exec(pod: &str, extra: &[&str], argv: &[&str]) -> (i32, String, String) {
    let mut args = vec!["--netns", pod];
    args.extend_from_slice(extra);
    args.extend(["pod-exec", "--"]);
    args.extend_from_slice(argv);
    agent_args(&args)
}

#[test]
fn a_pod_command_sees_the_pods_sys_and_resolv_conf_and_is_bounded() {
    if !root_or_skip("a_pod_command_sees_the_pods_sys_and_resolv_conf") {
        return;
    }
    let p = prefix("podexec");
    let pod = Netns::new(&format!("{p}-pod"));
    let name = pod.name.clone();
    // A veth pair inside the pod (this kernel may have no dummy driver).
    sh(&format!(
        "ip -n {name} link add eth0 mtu 1450 type veth peer name peer0 mtu 1450"
    ));
    let etc = format!("/etc/netns/{name}");
    let _etc = RemoveOnDrop(etc.clone());
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(format!("{etc}/resolv.conf"), "nameserver 10.96.0.10\n").unwrap();
    let host_resolv = std::fs::read("/etc/resolv.conf").ok();

    let (code, out, err) = pod_exec(
        &name,
        &[],
        &[
            "sh",
            "-c",
            "cat /etc/resolv.conf; cat /sys/class/net/eth0/mtu",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "nameserver 10.96.0.10\n1450\n");
    // Nothing was mounted where the caller lives.
    assert_eq!(std::fs::read("/etc/resolv.conf").ok(), host_resolv);
    assert!(
        !std::path::Path::new("/sys/class/net/eth0").exists() || {
            // The host may have an eth0 of its own: then it is not the pod's.
            std::fs::read_to_string("/sys/class/net/eth0/mtu").unwrap_or_default() != "1450\n"
        }
    );

    let (code, _, _) = pod_exec(&name, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "the command's own status");

    // The bound ends the command and what it started, as timeout(1).
    let marker = format!("{p}-sleeper");
    let started = Instant::now();
    let (code, _, err) = pod_exec(
        &name,
        &["--seconds", "0.5"],
        &["sh", "-c", &format!("sleep 30 {marker} & sleep 20")],
    );
    assert_eq!(code, 124, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.contains("did not end within 0.5 s"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    let left = Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "a process of the command outlived its bound"
    );

    for (pod_name, argv, says) in [
        ("../etc", vec!["true"], "not a plain name"),
        (name.as_str(), vec![], "needs a program"),
    ] {
        let (code, _, err) = pod_exec(pod_name, &[], &argv);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, _, err) = pod_exec(&format!("{p}-none"), &[], &["true"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

/// A folder removed when the test ends, however it ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
