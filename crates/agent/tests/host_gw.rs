//! flannel's host-gw backend in a fresh network namespace: `apply` builds
//! one route per peer via its underlay IP on eth1 and no flannel.1, `check`
//! finds a missing and a stray route, and switching the node between vxlan
//! and host-gw removes what the other backend made. Needs root.

mod common;

use common::*;
use labctl_nodeplan::{Backend, NodePlan};

/// The node n0 of a 3-node lab, as a vxlan plan and as a host-gw plan.
fn plans(p: &str, dir: &str) -> (NodePlan, NodePlan) {
    let nodes = nodes_up_to(2);
    let vxlan = plan(p, &nodes[0], &nodes, dir);
    let mut host_gw = vxlan.clone();
    host_gw.backend = Backend::HostGw;
    host_gw.vxlan = None;
    host_gw.bridge.mtu = 1500;
    host_gw.files[0].contents = host_gw.files[0]
        .contents
        .replace("FLANNEL_MTU=1450", "FLANNEL_MTU=1500");
    (vxlan, host_gw)
}

fn routes(n: &str) -> String {
    nsh(n, "ip -4 route show")
}

fn assert_host_gw(n: &str, when: &str) {
    let r = routes(n);
    for want in [
        "10.244.1.0/24 via 192.168.56.11 dev eth1",
        "10.244.2.0/24 via 192.168.56.12 dev eth1",
    ] {
        assert!(r.contains(want), "{when}: no `{want}` in\n{r}");
    }
    assert!(
        !r.contains("flannel.1") && !r.contains("onlink"),
        "{when}:\n{r}"
    );
    assert!(
        nsh(n, "ip -o link show type vxlan").trim().is_empty(),
        "{when}: a VXLAN device is left"
    );
    assert!(
        nsh(n, "ip neigh show nud permanent").trim().is_empty(),
        "{when}"
    );
    assert_eq!(
        nsh(n, "cat /sys/class/net/cni0/mtu").trim(),
        "1500",
        "{when}"
    );
}

#[test]
fn host_gw_apply_check_and_switching_backends_converge() {
    if !root_or_skip("host_gw_apply_check_and_switching_backends_converge") {
        return;
    }
    let p = prefix("hgw");
    let ns = node_ns(&p, "192.168.56.10".parse().unwrap());
    let dir = TempDir::new(&p);
    let (vxlan, host_gw) = plans(&p, &dir.path());
    let n = &ns.name;

    let first = agent(n, &host_gw, &["apply"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_host_gw(n, "after a host-gw apply");
    let env = std::fs::read_to_string(&host_gw.files[0].path).unwrap();
    assert!(env.contains("FLANNEL_MTU=1500\n"), "{env}");
    let check = agent(n, &host_gw, &["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);

    // A missing peer route and a stray one into the pod network: both
    // found by check, both fixed by apply.
    nsh(
        n,
        "ip route del 10.244.2.0/24 && ip route add 10.244.9.0/24 via 192.168.56.30 dev eth1",
    );
    let check = agent(n, &host_gw, &["check"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    let diffs = diff_objects(&check.check());
    for obj in ["route 10.244.2.0/24", "route 10.244.9.0/24"] {
        assert!(
            diffs.iter().any(|d| d.contains(obj)),
            "{obj} not in {diffs:?}"
        );
    }
    assert_eq!(agent(n, &host_gw, &["apply"]).code, 0);
    assert!(!routes(n).contains("10.244.9.0"), "{}", routes(n));
    assert_host_gw(n, "after repairing apply");
    // A route with the right destination but another gateway is replaced.
    nsh(
        n,
        "ip route replace 10.244.1.0/24 via 192.168.56.40 dev eth1",
    );
    assert_eq!(agent(n, &host_gw, &["check"]).code, 1);
    assert_eq!(agent(n, &host_gw, &["apply"]).code, 0);
    assert_host_gw(n, "after a wrong gateway was fixed");

    // The VXLAN capture has nothing to watch on a host-gw node.
    let capture = agent(n, &host_gw, &["capture", "--seconds", "0.1"]);
    assert_eq!(capture.code, 2, "{}", capture.stderr);
    assert!(capture.stderr.contains("host-gw"), "{}", capture.stderr);

    // To vxlan: flannel.1 with its neighbours, FDB entries and onlink
    // routes; host-gw's routes replaced.
    let to_vxlan = agent(n, &vxlan, &["apply"]);
    assert_eq!(to_vxlan.code, 0, "{}", to_vxlan.stderr);
    let r = routes(n);
    assert!(!r.contains("via 192.168.56."), "{r}");
    assert!(
        r.contains("10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"),
        "{r}"
    );
    assert_eq!(nsh(n, "bridge fdb show dev flannel.1").lines().count(), 2);
    assert_eq!(agent(n, &vxlan, &["check"]).code, 0);
    // A host-gw check of this node names flannel.1 as something to remove.
    let check = agent(n, &host_gw, &["check"]);
    assert_eq!(check.code, 1);
    assert!(
        diff_objects(&check.check())
            .iter()
            .any(|d| d.contains("vxlan flannel.1")),
        "{:?}",
        diff_objects(&check.check())
    );

    // And back: flannel.1, its entries and routes go.
    let back = agent(n, &host_gw, &["apply"]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_host_gw(n, "after switching back");
    assert_eq!(agent(n, &host_gw, &["check"]).code, 0);

    // Teardown removes the host-gw routes too.
    assert_eq!(agent(n, &host_gw, &["teardown"]).code, 0);
    assert!(!routes(n).contains("10.244."), "{}", routes(n));
}
