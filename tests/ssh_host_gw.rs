//! host-gw on an ssh lab of real sshd hosts (network namespaces on one
//! bridge): `up` asks the nodes how they reach each other before it touches
//! their data plane. A worker that reaches a peer through a router (a host
//! route via the bridge's .1, injected here) makes `up` refuse with exit 2,
//! naming both nodes and the fix, with no data plane built on any node;
//! without it the lab comes up and verifies green. Hosts 192.168.97.0/24,
//! pods 10.92.0.0/16. Needs root.

mod support;

use support::netns::{in_netns, labctl, show};
use support::ssh_lab::{lab_file, three_hosts_or_skip, LabGuard};

#[test]
fn host_gw_across_a_router_is_refused_before_the_data_plane() {
    let test = "host_gw_across_a_router_is_refused_before_the_data_plane";
    let Some((_serial, hosts)) = three_hosts_or_skip(test, "thg", [192, 168, 97]) else {
        return;
    };
    let text = lab_file(&hosts, "10.92.0.0/16").replacen(
        "\nnodes:\n",
        "\n  backend: {type: host-gw}\nnodes:\n",
        1,
    );
    let file = hosts.dir.path().join("lab.yaml");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let _guard = LabGuard(hosts.tag.clone());
    let worker1 = hosts.by_name("worker1");
    let worker2 = hosts.by_name("worker2");

    // worker1 reaches worker2 through the bridge's .1: a router between them.
    let detour = format!("{}/32", worker2.ip);
    let out = in_netns(
        &worker1.netns,
        &["ip", "route", "add", &detour, "via", "192.168.97.1"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = labctl(&["up", file]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "host-gw backend needs every node on one L2 segment",
        &format!(
            "worker1 reaches worker2 ({}) via the router 192.168.97.1",
            worker2.ip
        ),
        "type: vxlan",
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing: {}",
            show(&out)
        );
    }
    // Nothing of the data plane exists on any node.
    for h in &hosts.hosts {
        let cni0 = in_netns(&h.netns, &["ip", "link", "show", "cni0"]);
        assert!(
            !cni0.status.success(),
            "{} has cni0 after the refusal",
            h.name
        );
        let routes = in_netns(&h.netns, &["ip", "-4", "route"]);
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        assert!(!routes.contains("10.92."), "{}: {routes}", h.name);
    }

    // One segment again: the lab comes up with host-gw and verifies green.
    let out = in_netns(&worker1.netns, &["ip", "route", "del", &detour]);
    assert!(out.status.success(), "{}", show(&out));
    let out = labctl(&["up", file]);
    assert!(out.status.success(), "{}", show(&out));
    let routes = in_netns(&worker1.netns, &["ip", "-4", "route"]);
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let want = format!("10.92.2.0/24 via {} dev", worker2.ip);
    assert!(routes.contains(&want), "no `{want}` in:\n{routes}");
    let out = labctl(&["verify", file]);
    assert!(out.status.success(), "{}", show(&out));
}
