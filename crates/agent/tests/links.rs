//! `links NS...`: the links of each named namespace, read from inside it
//! (name, MTU, up, IPv4 addresses); a missing namespace is reported beside
//! the others; a name that is no plain /run/netns entry is refused with
//! exit 2 before anything is read. Needs root.

mod common;

use std::process::Command;

use common::*;
use labctl_nodeplan::report::{decode, LinksReport};

fn links(names: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(AGENT)
        .arg("links")
        .args(names)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn links_reports_each_namespace() {
    if !root_or_skip("links_reports_each_namespace") {
        return;
    }
    let p = prefix("lk");
    let pod = Netns::new(&format!("{p}p"));
    let bare = Netns::new(&format!("{p}b"));
    let peer = Netns::new(&format!("{p}r"));
    sh(&format!(
        "ip link add eth0 netns {} type veth peer name veth0 netns {}",
        pod.name, peer.name
    ));
    nsh(
        &pod.name,
        "ip link set lo up && ip addr add 10.247.9.2/24 dev eth0 && ip link set eth0 mtu 1400 up",
    );
    let missing = format!("{p}gone");
    let (code, stdout, stderr) = links(&[&pod.name, &bare.name, &missing]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let r: LinksReport = decode("test", &stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let names: Vec<&str> = r.namespaces.iter().map(|n| n.netns.as_str()).collect();
    assert_eq!(
        names,
        [pod.name.as_str(), bare.name.as_str(), missing.as_str()]
    );

    let eth0 = r.namespaces[0].link("eth0").expect("eth0 reported");
    assert_eq!((eth0.mtu, eth0.up), (1400, true), "{r:?}");
    assert_eq!(eth0.addresses, ["10.247.9.2/24".parse().unwrap()]);
    assert_eq!(
        r.namespaces[0].pod_address(),
        Ok(Some("10.247.9.2".parse().unwrap()))
    );
    // Only lo (the fixture sets it up): no pod address, and no error.
    let lo = r.namespaces[1].link("lo").expect("lo reported");
    assert_eq!(lo.addresses, ["127.0.0.1/8".parse().unwrap()], "{r:?}");
    assert_eq!(r.namespaces[1].links.len(), 1, "{r:?}");
    assert_eq!(r.namespaces[1].pod_address(), Ok(None));
    let why = r.namespaces[2].pod_address().unwrap_err();
    assert!(
        why.contains(&missing) && why.contains("does not exist"),
        "{why}"
    );
}

#[test]
fn links_refuses_path_like_names_and_no_names() {
    for bad in ["../etc", "a/b", ".."] {
        let (code, stdout, stderr) = links(&[bad]);
        assert_eq!(code, Some(2), "{bad}: {stdout}{stderr}");
        assert!(stderr.contains("not a plain name"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    let (code, _, stderr) = links(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("at least one"), "{stderr}");
}
