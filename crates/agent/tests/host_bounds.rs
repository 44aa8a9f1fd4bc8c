//! Where the agent touches more than its own objects: the state folder
//! when it is a mount point, and bridge netfilter. Both are tested without
//! changing this host: mounts are made in a fresh mount namespace (gone
//! when its shell exits), the bridge sysctl is read and set in a fresh
//! network namespace (it is per namespace since Linux 5.3), and
//! br_netfilter is never loaded here. Needs root.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use labctl_nodeplan::report::{decode, Action, ObjectKind, State, TeardownReport};

/// A one-node lab in a fresh namespace on an underlay no lab uses.
fn one_node(test: &str) -> (Netns, TempDir, labctl_nodeplan::NodePlan) {
    let p = prefix(test);
    let ip = "10.250.0.10".parse().unwrap();
    let ns = node_ns(&p, ip);
    let dir = TempDir::new(&p);
    let me = NodeSpec {
        name: "n0".into(),
        number: 0,
        ip,
    };
    let plan = plan(&p, &me, std::slice::from_ref(&me), &dir.path());
    (ns, dir, plan)
}

/// Writes the plan next to the test's files, for `--plan FILE`.
fn plan_file(dir: &TempDir, plan: &labctl_nodeplan::NodePlan) -> String {
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("plan.json");
    std::fs::write(&path, plan.to_json()).unwrap();
    path.display().to_string()
}

#[test]
fn teardown_empties_a_state_folder_that_is_a_mount_point_and_leaves_mounts_alone() {
    if !root_or_skip("teardown_empties_a_state_folder_that_is_a_mount_point") {
        return;
    }
    let (ns, dir, plan) = one_node("mp");
    let plan_path = plan_file(&dir, &plan);
    let state = plan.state_dir.clone();
    std::fs::create_dir_all(&state).unwrap();
    // In a mount namespace of its own (private propagation, so nothing
    // reaches this host's mounts), as `ensure_agent` and the netns
    // provider arrange it: the state folder a tmpfs, and inside it a
    // `bin` tmpfs holding a file, mounted by someone else.
    let script = format!(
        "set -e
        mount -t tmpfs labctl-test-state {state}
        {agent} --plan {plan_path} apply >/dev/null
        mkdir {state}/bin
        mount -t tmpfs labctl-test-bin {state}/bin
        echo agent > {state}/bin/labctl-agent
        echo conf > {state}/dnsmasq.conf
        {agent} --plan {plan_path} teardown > {dir}/teardown.json
        echo mounts:
        grep -o ' {state}[^ ]* ' /proc/self/mountinfo | sort
        echo entries:
        ls -A {state} {state}/bin",
        agent = AGENT,
        dir = dir.path(),
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "unshare", "--mount"])
        .args(["--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = std::fs::read_to_string(dir.0.join("teardown.json")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: TeardownReport = decode(&plan.node, &report).unwrap();
    assert!(
        report.errors.is_empty(),
        "a mount point is not an error: {report:#?}"
    );
    let kept = &report.kept;
    assert!(
        kept.iter()
            .any(|k| k.starts_with(&format!("directory {state}/bin:"))),
        "{report:#?}"
    );
    assert!(
        kept.iter()
            .any(|k| k.starts_with(&format!("directory {state} (emptied)"))),
        "{report:#?}"
    );
    // Both mounts still there; the state folder holds only the mount point
    // `bin`, whose contents belong to whoever mounted it.
    let expected = format!("mounts:\n {state} \n {state}/bin \nentries:\n{state}:\nbin\n\n{state}/bin:\nlabctl-agent\n");
    assert_eq!(stdout, expected);

    // Without any mount, the same teardown removes the folder.
    let r = agent(&ns.name, &plan, &["apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = agent(&ns.name, &plan, &["teardown"]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.json);
    assert!(r.json.get("kept").is_none(), "{:#}", r.json);
    let report: TeardownReport = r.report();
    assert!(
        report.kept.is_empty() && report.errors.is_empty(),
        "{report:#?}"
    );
    assert!(!Path::new(&state).exists(), "{state} is removed");
}

#[test]
fn bridge_netfilter_sysctl_is_checked_and_set_in_the_node_namespace_only() {
    if !root_or_skip("bridge_netfilter_sysctl_is_checked_and_set_in_the_node_namespace_only") {
        return;
    }
    // Loading br_netfilter would change every bridge on this host, and
    // this test must leave the host as it was: with the module absent it
    // tests nothing here (the load/unload decisions are unit tests in
    // src/bridge_nf.rs) and says so.
    if !Path::new("/proc/sys/net/bridge").is_dir() {
        common::skip(
            "bridge_netfilter_sysctl_is_checked_and_set_in_the_node_namespace_only",
            "br_netfilter is not loaded on this host, and a test must not load it",
        );
        return;
    }
    let host_value = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .unwrap()
        .trim()
        .to_string();
    let (ns, _dir, mut plan) = one_node("bnf");
    plan.bridge_netfilter = true;
    let n = &ns.name;
    let read = || nsh(n, "cat /proc/sys/net/bridge/bridge-nf-call-iptables");
    // Per network namespace (Linux 5.3 and later): turning it off in the
    // node's namespace leaves the host's alone.
    nsh(n, "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables");
    assert_eq!(read().trim(), "0");
    let host_now = || {
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(host_now(), host_value, "the sysctl is per namespace here");

    let r = agent(n, &plan, &["apply"]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.json);
    let check = agent(n, &plan, &["check"]);
    assert_eq!(check.code, 0, "{:#}", check.json);
    // The module is there, so apply counts it as unchanged.
    assert_eq!(
        r.apply().unchanged_by_kind.get(&ObjectKind::Module),
        Some(&1),
        "{:#}",
        r.json
    );

    nsh(n, "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables");
    let check = agent(n, &plan, &["check"]);
    assert_eq!(check.code, 1, "{:#}", check.json);
    let check = check.check();
    assert_eq!(
        diff_objects(&check),
        vec!["sysctl net.bridge.bridge-nf-call-iptables"]
    );
    let d = &check.differences[0];
    assert_eq!(
        (d.kind, d.name.as_str()),
        (ObjectKind::Sysctl, "net.bridge.bridge-nf-call-iptables")
    );
    assert_eq!(
        (d.expected.clone(), d.actual.clone()),
        (Some(State::Text("1".into())), Some(State::Text("0".into())))
    );
    let r = agent(n, &plan, &["apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        action(&r.apply(), "sysctl net.bridge.bridge-nf-call-iptables"),
        (ObjectKind::Sysctl, Action::Updated)
    );
    assert_eq!(read().trim(), "1");
    assert_eq!(host_now(), host_value, "the host's value is untouched");

    // Teardown: the agent did not load the module, so it says nothing
    // about it and leaves it.
    let r = agent(n, &plan, &["teardown"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = r.json.to_string();
    assert!(!text.contains("br_netfilter"), "{:#}", r.json);
    assert!(Path::new("/proc/sys/net/bridge").is_dir());
}
