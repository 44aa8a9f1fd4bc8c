//! `labctl-agent underlay` in fresh namespaces: a node's and an outside
//! world's eth1 set up from scratch (they then reach each other), a second
//! run that changes nothing, a repair of exactly what was removed, the
//! neighbour flush, and a missing namespace reported while the others are
//! still set up.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{nsh, prefix, root_or_skip, sh, Netns};
use labctl_nodeplan::report::{
    self, NamespaceOutcome, NamespaceUnderlay, UnderlayReport, UnderlayRequest, UnderlayRoute,
};
use labctl_nodeplan::MacAddr;

const NODE_MAC: MacAddr = MacAddr([0x02, 0x4c, 0xc0, 0xa8, 0x43, 0x0a]);
const EXT_MAC: MacAddr = MacAddr([0x02, 0x4c, 0xc6, 0x12, 0x00, 0x01]);

/// Runs `underlay` with `body` on stdin.
fn run_underlay(body: &[u8]) -> std::process::Output {
    let mut child = Command::new(common::AGENT)
        .arg("underlay")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `underlay` with `request`: exit code and report.
fn underlay(request: &UnderlayRequest) -> (i32, UnderlayReport) {
    let out = run_underlay(&serde_json::to_vec(request).unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = report::decode("host", &stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), r)
}

/// eth1 of `netns` as the lab asks for it: MTU 1400, `mac`, `address`.
fn eth1(netns: &str, mac: MacAddr, address: &str, route: UnderlayRoute) -> NamespaceUnderlay {
    NamespaceUnderlay {
        netns: netns.into(),
        device: "eth1".into(),
        mtu: 1400,
        mac,
        address: address.parse().unwrap(),
        route,
        flush_neighbours: false,
    }
}

/// A node: 192.168.67.10/24, default route via the outside world.
fn node(netns: &str) -> NamespaceUnderlay {
    let via = "198.18.0.1".parse().unwrap();
    eth1(
        netns,
        NODE_MAC,
        "192.168.67.10/24",
        UnderlayRoute::Default { via },
    )
}

/// The outside world: 198.18.0.1/15, a link route back to the node.
fn ext(netns: &str) -> NamespaceUnderlay {
    let dst = "192.168.67.0/24".parse().unwrap();
    eth1(netns, EXT_MAC, "198.18.0.1/15", UnderlayRoute::Link { dst })
}

fn changed(o: &NamespaceOutcome) -> Vec<&str> {
    o.changed.iter().map(String::as_str).collect()
}

#[test]
fn each_namespace_is_set_up_once_and_repaired_where_it_drifted() {
    if !root_or_skip("underlay") {
        return;
    }
    let p = prefix("ul");
    let n = Netns::new(&format!("{p}n"));
    let x = Netns::new(&format!("{p}x"));
    sh(&format!(
        "ip link add eth1 netns {} type veth peer name eth1 netns {}",
        n.name, x.name
    ));
    nsh(&n.name, "ip link set lo down");
    let missing = format!("{p}gone");

    // From scratch, with a namespace that does not exist among them.
    let request = UnderlayRequest {
        namespaces: vec![ext(&x.name), node(&missing), node(&n.name)],
    };
    let (code, r) = underlay(&request);
    assert_eq!(code, 4, "a namespace failed: {r:?}");
    let [x_out, gone, n_out] = r.namespaces.as_slice() else {
        panic!("one outcome per namespace: {r:?}");
    };
    assert!(
        gone.error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("network namespace {missing} does not exist"))),
        "{gone:?}"
    );
    assert_eq!(
        changed(n_out),
        [
            "ip link set lo up",
            "ip link set eth1 mtu 1400 address 02:4c:c0:a8:43:0a up",
            "ip addr add 192.168.67.10/24 dev eth1",
            "ip route replace default via 198.18.0.1 dev eth1 onlink",
        ],
        "{n_out:?}"
    );
    assert_eq!(n_out.error, None);
    assert_eq!(
        changed(x_out),
        [
            "ip link set eth1 mtu 1400 address 02:4c:c6:12:00:01 up",
            "ip addr add 198.18.0.1/15 dev eth1",
            "ip route replace 192.168.67.0/24 dev eth1 scope link",
        ],
        "{x_out:?}"
    );
    let link = nsh(&n.name, "ip -o link show eth1");
    assert!(
        link.contains("mtu 1400") && link.contains("02:4c:c0:a8:43:0a"),
        "{link}"
    );
    assert!(nsh(&n.name, "ip -o link show lo").contains("UP"));
    // The node reaches the outside world through its default route.
    nsh(&n.name, "ping -c1 -W2 198.18.0.1 > /dev/null");

    // Again, with nothing changed: nothing written.
    let request = UnderlayRequest {
        namespaces: vec![ext(&x.name), node(&n.name)],
    };
    let (code, r) = underlay(&request);
    assert_eq!(code, 0, "{r:?}");
    assert!(r.namespaces.iter().all(|o| o.changed.is_empty()), "{r:?}");

    // Exactly what was removed comes back (the route first: removing a
    // device's last address takes its routes along).
    nsh(
        &n.name,
        "ip route del default && ip addr del 192.168.67.10/24 dev eth1",
    );
    let (code, r) = underlay(&request);
    assert_eq!(code, 0, "{r:?}");
    assert!(r.namespaces[0].changed.is_empty(), "{r:?}");
    assert_eq!(
        changed(&r.namespaces[1]),
        [
            "ip addr add 192.168.67.10/24 dev eth1",
            "ip route replace default via 198.18.0.1 dev eth1 onlink",
        ]
    );
    nsh(&n.name, "ping -c1 -W2 198.18.0.1 > /dev/null");

    // A flush forgets learned neighbours and keeps permanent ones.
    nsh(
        &n.name,
        "ip neigh replace 192.168.67.50 lladdr 02:00:00:00:00:50 dev eth1 nud stale && \
         ip neigh replace 192.168.67.51 lladdr 02:00:00:00:00:51 dev eth1 nud permanent",
    );
    let mut flushing = node(&n.name);
    flushing.flush_neighbours = true;
    let (code, r) = underlay(&UnderlayRequest {
        namespaces: vec![flushing],
    });
    assert_eq!(code, 0, "{r:?}");
    assert!(
        changed(&r.namespaces[0]).contains(&"ip neigh del 192.168.67.50 dev eth1"),
        "{r:?}"
    );
    let left = nsh(&n.name, "ip neigh show dev eth1");
    assert!(!left.contains("192.168.67.50"), "{left}");
    assert!(left.contains("192.168.67.51"), "{left}");
}

#[test]
fn a_request_that_is_not_valid_is_refused_with_exit_2() {
    if !root_or_skip("underlay refusal") {
        return;
    }
    let body = serde_json::to_vec(&UnderlayRequest {
        namespaces: vec![node("../../etc")],
    })
    .unwrap();
    let out = run_underlay(&body);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a plain name"), "{stderr}");
    assert!(out.stdout.is_empty());
}
