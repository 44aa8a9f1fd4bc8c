//! `transfer`: the agent's own TCP transfer between two real network
//! namespaces joined by a veth pair (what verify's throughput check runs
//! where nodes have no iperf3): the listener counts every byte the sender
//! wrote, both report a rate, and a bad address is refused with exit 2.
//! Needs root.

mod common;

use std::process::{Command, Stdio};

use common::*;
use labctl_nodeplan::report::{decode, TransferReport};

#[test]
fn transfer_between_two_namespaces_counts_every_byte() {
    if !root_or_skip("transfer_between_two_namespaces_counts_every_byte") {
        return;
    }
    let p = prefix("tf");
    let a = Netns::new(&format!("{p}a"));
    let b = Netns::new(&format!("{p}b"));
    sh(&format!(
        "ip link add eth0 netns {} type veth peer name eth0 netns {}",
        a.name, b.name
    ));
    nsh(
        &a.name,
        "ip addr add 10.246.9.1/24 dev eth0 && ip link set eth0 up",
    );
    nsh(
        &b.name,
        "ip addr add 10.246.9.2/24 dev eth0 && ip link set eth0 up",
    );

    let listener = Command::new(AGENT)
        .args([
            "--netns",
            &b.name,
            "transfer",
            "listen",
            "10.246.9.2",
            "5201",
            "--seconds",
            "0.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = Command::new(AGENT)
        .args([
            "--netns",
            &a.name,
            "transfer",
            "send",
            "10.246.9.2",
            "5201",
            "--seconds",
            "0.5",
        ])
        .output()
        .unwrap();
    let got = listener.wait_with_output().unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(sent.status.success(), "{}", text(&sent));
    assert!(got.status.success(), "{}", text(&got));
    let sent: TransferReport = decode("a", &String::from_utf8_lossy(&sent.stdout)).unwrap();
    let got: TransferReport = decode("b", &String::from_utf8_lossy(&got.stdout)).unwrap();
    assert_eq!(sent.bytes, got.bytes, "{sent:?} {got:?}");
    assert!(got.bytes > 1_000_000, "{got:?}");
    assert!(got.bits_per_second > 0.0 && sent.bits_per_second > 0.0);
    assert!(got.peer.starts_with("10.246.9.1:"), "{got:?}");

    let bad = Command::new(AGENT)
        .args(["transfer", "send", "10.246.9.300", "5201"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("not an IPv4 address"), "{}", text(&bad));
}
