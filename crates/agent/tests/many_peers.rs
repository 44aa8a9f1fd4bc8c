//! A node with many peers (above the agent's threshold, 80 here) has its
//! peers' neighbours looked up one by one instead of dumped: the same
//! answers as a dump for every peer's entry, and an entry of a peer that
//! left the plan (its forwarding entry and route still there) is still
//! found and removed. Needs root (network namespaces).

mod common;

use common::*;

#[test]
fn many_peers_are_looked_up_and_a_departed_peer_still_removed() {
    if !root_or_skip("many_peers_are_looked_up") {
        return;
    }
    let p = prefix("many");
    let ns = node_ns(&p, "192.168.56.10".parse().unwrap());
    let dir = TempDir::new(&p);
    let nodes = nodes_up_to(80);
    let plan = plan(&p, &nodes[0], &nodes, &dir.path());
    let n = &ns.name;
    let apply = agent_netns(n, &plan, &["apply"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let check = agent_netns(n, &plan, &["check"]);
    assert_eq!(check.code, 0, "in sync after apply: {:#}", check.json);

    // A peer's neighbour with the wrong MAC, and one that is gone.
    let wrong = "neighbour 10.244.5.0 dev flannel.1";
    nsh(
        n,
        "ip neigh replace 10.244.5.0 lladdr 0e:00:00:00:00:01 dev flannel.1 nud permanent",
    );
    let gone = "neighbour 10.244.77.0 dev flannel.1";
    nsh(n, "ip neigh del 10.244.77.0 dev flannel.1");
    let check = agent_netns(n, &plan, &["check"]);
    assert_eq!(check.code, 1, "damage not seen: {:#}", check.json);
    let seen = diff_objects(&check.check());
    for object in [wrong, gone] {
        assert!(seen.iter().any(|o| o == object), "{object}: {seen:?}");
    }

    // A peer that left the plan: its neighbour, forwarding entry and route.
    let smaller = plan_without_last_peer(&p, &nodes, &dir);
    let check = agent_netns(n, &smaller, &["check"]);
    let seen = diff_objects(&check.check());
    for object in [
        "neighbour 10.244.80.0 dev flannel.1".to_string(),
        format!("fdb {} dev flannel.1", vtep_mac(80)),
        "route 10.244.80.0/24".to_string(),
    ] {
        assert!(seen.contains(&object), "{object} not seen: {seen:?}");
    }
    let apply = agent_netns(n, &smaller, &["apply"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        nsh(n, "ip neigh show 10.244.80.0 dev flannel.1").trim(),
        "",
        "the departed peer's neighbour is removed"
    );
    let check = agent_netns(n, &smaller, &["check"]);
    assert_eq!(
        check.code, 0,
        "{wrong} and {gone} repaired: {:#}",
        check.json
    );
}

/// The plan of node 0 once node 80 has left the lab.
fn plan_without_last_peer(p: &str, nodes: &[NodeSpec], dir: &TempDir) -> labctl_nodeplan::NodePlan {
    let rest = &nodes[..nodes.len() - 1];
    plan(p, &rest[0], rest, &dir.path())
}
