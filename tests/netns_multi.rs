//! Several netns labs on one host: two side by side, an overlapping one
//! refused before anything is created, and Ctrl-C during `up` followed by
//! destroy leaving the host clean. Needs root: skipped otherwise, with the
//! reason printed.

mod support;

use std::time::Duration;

use support::netns::{can_run, in_netns, lab_name, labctl, serial, show, TestLab};
use support::snapshot::Snapshot;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_labs_side_by_side_and_overlap_refused() {
    if !can_run("two_labs_side_by_side_and_overlap_refused") {
        return;
    }
    let _serial = serial();
    let (a_name, b_name, c_name) = (lab_name("b"), lab_name("c"), lab_name("d"));
    let before_b = Snapshot::take(&b_name);
    let a = TestLab::new(&a_name, "192.168.58.0/24", "10.58.0.0/16", &["cp", "w1"]);
    let b = TestLab::new(&b_name, "192.168.57.0/24", "10.245.0.0/16", &["cp", "w1"]);
    let out = b.up();
    assert!(out.status.success(), "up b: {}", show(&out));
    let before_a = Snapshot::take(&a_name);
    let out = a.up();
    assert!(out.status.success(), "up a: {}", show(&out));

    // Overlapping another lab's underlay, and a host route: refused, exit 2,
    // nothing created.
    let c_before = Snapshot::take(&c_name);
    let c = TestLab::new(&c_name, "192.168.57.128/25", "10.200.0.0/16", &["cp"]);
    let out = c.up();
    assert_eq!(
        out.status.code(),
        Some(2),
        "overlapping lab: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overlaps lab"),
        "{}",
        show(&out)
    );
    assert_eq!(Snapshot::take(&c_name), c_before);
    assert!(!std::path::Path::new(&format!("/var/lib/labctl/labs/{c_name}/state.json")).exists());
    let host_route = support::netns::host("ip", &["-4", "-o", "route", "show", "scope", "link"]);
    if let Some(net) = host_route
        .split_whitespace()
        .next()
        .filter(|n| n.contains('/'))
    {
        c.write(net, "10.200.0.0/16", &["cp"]);
        let out = c.up();
        assert_eq!(
            out.status.code(),
            Some(2),
            "lab on a host route {net}: {}",
            show(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("host route"),
            "{}",
            show(&out)
        );
    }

    // Both labs work, each in its own network.
    for (lab, subnet) in [(&a, "10.58.1.1/24"), (&b, "10.245.1.1/24")] {
        let out = lab.exec("w1", &["cat", "/run/flannel/subnet.env"]);
        assert!(
            stdout(&out).contains(&format!("FLANNEL_SUBNET={subnet}")),
            "{}",
            show(&out)
        );
    }
    let out = in_netns(
        &format!("{b_name}-cp-busybox"),
        &["busybox", "ping", "-c1", "-W2", "10.245.1.2"],
    );
    assert!(out.status.success(), "lab b pods: {}", show(&out));
    let out = labctl(&["list"]);
    assert!(
        stdout(&out).contains(&a_name) && stdout(&out).contains(&b_name),
        "{}",
        show(&out)
    );

    // Destroying one leaves the other running.
    let out = labctl(&["destroy", "--name", &a_name]);
    assert!(out.status.success(), "destroy a: {}", show(&out));
    assert_eq!(Snapshot::take(&a_name), before_a);
    let out = b.exec("cp", &["cat", "/run/flannel/subnet.env"]);
    assert!(
        out.status.success(),
        "lab b after a's destroy: {}",
        show(&out)
    );
    let out = labctl(&["destroy", "--name", &b_name]);
    assert!(out.status.success(), "destroy b: {}", show(&out));
    assert_eq!(Snapshot::take(&b_name), before_b);
}

#[test]
fn ctrl_c_during_up_then_destroy_leaves_the_host_clean() {
    if !can_run("ctrl_c_during_up_then_destroy_leaves_the_host_clean") {
        return;
    }
    let _serial = serial();
    let name = lab_name("e");
    let before = Snapshot::take(&name);
    let lab = TestLab::new(
        &name,
        "192.168.59.0/24",
        "10.59.0.0/16",
        &["cp", "w1", "w2", "w3"],
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(["up", lab.path()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Late enough that namespaces and sshds exist, early enough that up
    // is still working.
    std::thread::sleep(Duration::from_millis(250));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("note: up finished before Ctrl-C arrived; destroy is still checked");
    } else {
        assert!(stderr.contains("interrupted"), "{}", show(&out));
        assert!(
            stderr.contains(&format!("labctl destroy --name {name}")),
            "{}",
            show(&out)
        );
    }
    let out = labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy after Ctrl-C: {}", show(&out));
    assert_eq!(
        Snapshot::take(&name),
        before,
        "host differs after Ctrl-C + destroy"
    );
}
