//! `labctl explain` on a real netns lab: the walk of a pod-to-pod packet
//! across nodes (text and JSON), a same-node pair, the DNS service, an
//! outside address; `--trace` seeing every hop; an FDB entry deleted
//! inside a node's namespace making the walk and the trace point at that
//! hop; a bad SRC refused with exit 2. One lab, destroyed at the end (and
//! on failure, from Drop). Needs root.

mod support;

use serde_json::Value;
use support::netns::{can_run, lab_name, labctl, show, TestLab};

const UNDERLAY: &str = "192.168.86";

/// `labctl [--output json] explain ARGS... LAB`: exit status and stdout.
fn explain(lab: &TestLab, json: bool, args: &[&str]) -> (i32, String) {
    let mut argv = if json {
        vec!["--output", "json", "explain"]
    } else {
        vec!["explain"]
    };
    argv.extend_from_slice(args);
    argv.push(lab.path());
    let out = labctl(&argv);
    let code = out.status.code().unwrap_or(-1);
    if code > 1 {
        panic!("labctl {argv:?}: {}", show(&out));
    }
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn explain_json(lab: &TestLab, args: &[&str]) -> (i32, Value) {
    let (code, text) = explain(lab, true, args);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (code, v)
}

/// The hops' places, in order, space-separated.
fn ats(v: &Value) -> String {
    let hops = v["hops"].as_array().unwrap();
    let ats: Vec<&str> = hops.iter().map(|h| h["at"].as_str().unwrap()).collect();
    ats.join(" ")
}

fn hop<'a>(v: &'a Value, at: &str) -> &'a Value {
    v["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["at"] == at)
        .unwrap_or_else(|| panic!("no {at} hop: {v:#}"))
}

fn all_seen(v: &Value) {
    for h in v["hops"].as_array().unwrap() {
        // The DNAT rule changes udp/tcp 53 only: a ping cannot show it.
        if h["at"] != "dnat" {
            assert_eq!(h["seen"], true, "hop not seen: {h:#}\n{v:#}");
        }
    }
    assert!(v.get("firstBroken").is_none(), "{v:#}");
}

#[test]
fn explain_walks_and_traces_a_packet_and_points_at_a_deleted_fdb_entry() {
    if !can_run("explain_walks_and_traces_a_packet_and_points_at_a_deleted_fdb_entry") {
        return;
    }
    let _serial = support::netns::serial();
    let lab = TestLab::new(
        &lab_name("ex"),
        &format!("{UNDERLAY}.0/24"),
        "10.86.0.0/16",
        &["master", "worker1", "worker2"],
    )
    .with_service_network("10.186.0.0/16");

    // Before the lab is up: exit 3 saying what to run.
    let out = labctl(&["explain", "worker1/busybox", "worker2/busybox", lab.path()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("labctl up"),
        "{}",
        show(&out)
    );

    let out = lab.up();
    assert!(out.status.success(), "labctl up failed: {}", show(&out));

    // A bad SRC: exit 2 naming what exists; an address must parse.
    let out = labctl(&["explain", "worker9", "worker2/busybox", lab.path()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    support::assert_mentions(
        &err,
        &[
            "`worker9`",
            "nodes: master, worker1, worker2",
            "worker1/busybox",
        ],
    );
    let out = labctl(&["explain", "worker1/busybox", "10.86.1.300", lab.path()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // Pod to pod across nodes, as text: one numbered line per hop.
    let (code, text) = explain(&lab, false, &["worker1/busybox", "worker2/busybox"]);
    assert_eq!(code, 0, "{text}");
    support::assert_mentions(
        &text,
        &[
            " 3. worker1: route lookup for 10.86.2.2: 10.86.2.0/24 via 10.86.2.0 dev flannel.1 onlink",
            "dev flannel.1 → dst 192.168.86.12 (worker2's underlay IP)",
            &format!("outer {UNDERLAY}.11 → {UNDERLAY}.12 UDP 8472 VNI 1, inner 10.86.1.2 → 10.86.2.2"),
            "12. worker2: pod busybox eth0 10.86.2.2 receives it",
        ],
    );
    assert!(!text.contains("broken"), "{text}");

    // The same as JSON.
    let (code, v) = explain_json(&lab, &["worker1/busybox", "worker2/busybox"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(ats(&v), "pod-eth0 bridge route postrouting vxlan-device neighbour fdb underlay vxlan-device route bridge arrive");
    assert_eq!(v["src"]["kind"], "pod");
    assert_eq!(v["dst"]["node"], "worker2");
    assert!(
        v["hops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["status"] == "ok"),
        "{v:#}"
    );
    assert!(
        hop(&v, "postrouting")["summary"]
            .as_str()
            .unwrap()
            .contains("-j RETURN"),
        "{v:#}"
    );

    // A same-node pair: the bridge only.
    let (code, v) = explain_json(&lab, &["master/busybox", "coredns"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(ats(&v), "pod-eth0 bridge arrive");

    // The DNS service: DNATed on the source node to the DNS pod.
    let (code, v) = explain_json(&lab, &["worker1/busybox", "kube-dns"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["dst"]["ip"], "10.186.0.10");
    let endpoint = v["to"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("10.86.0."), "{v:#}");
    let dnat = hop(&v, "dnat");
    assert_eq!(dnat["node"], "worker1");
    assert!(
        dnat["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("--to-destination {endpoint}:53")),
        "{v:#}"
    );

    // An outside address, traced: FLANNEL-POSTRTG masquerades it, and the
    // echo request leaves with the node's address.
    let (code, v) = explain_json(&lab, &["--trace", "worker1/busybox", "198.18.0.1"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(ats(&v), "pod-eth0 bridge route postrouting leave arrive");
    let route = hop(&v, "route")["summary"].as_str().unwrap().to_string();
    assert!(
        route.contains("dev eth1") && route.contains("the node's own route"),
        "{route}"
    );
    let masq = hop(&v, "postrouting")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    support::assert_mentions(
        &masq,
        &["MASQUERADE", &format!("masqueraded to {UNDERLAY}.11")],
    );
    all_seen(&v);

    // Pod to pod and pod to service, traced: every hop seen.
    let (code, v) = explain_json(&lab, &["--trace", "worker1/busybox", "worker2/busybox"]);
    assert_eq!(code, 0, "{v:#}");
    all_seen(&v);
    let (code, v) = explain_json(&lab, &["--trace", "worker2/busybox", "kube-dns"]);
    assert_eq!(code, 0, "{v:#}");
    all_seen(&v);
    let (code, text) = explain(
        &lab,
        false,
        &["--trace", "worker1/busybox", "worker2/busybox"],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("✓").count(), 12, "{text}");

    // worker1 forgets worker2's FDB entry (inside its namespace).
    let out = lab.exec("worker1", &["bridge", "fdb", "show", "dev", "flannel.1"]);
    assert!(out.status.success(), "{}", show(&out));
    let fdb = String::from_utf8_lossy(&out.stdout);
    let mac = fdb
        .lines()
        .find(|l| l.contains(&format!("dst {UNDERLAY}.12")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no FDB entry for worker2: {fdb}"))
        .to_string();
    let dst = format!("{UNDERLAY}.12");
    let del = format!("bridge fdb del {mac} dev flannel.1 dst {dst} self");
    let out = lab.exec("worker1", &["sh", "-c", &del]);
    assert!(out.status.success(), "{}", show(&out));

    let (code, v) = explain_json(&lab, &["--trace", "worker1/busybox", "worker2/busybox"]);
    assert_eq!(code, 1, "a broken hop fails: {v:#}");
    let fdb = hop(&v, "fdb");
    assert_eq!(fdb["status"], "broken", "{v:#}");
    assert_eq!(fdb["expected"], dst.as_str());
    assert_eq!(fdb["actual"], "missing");
    assert_eq!(fdb["seen"], false, "{v:#}");
    assert_eq!(v["firstBroken"], fdb["step"], "{v:#}");
    for before in ["pod-eth0", "route", "neighbour"] {
        assert_eq!(hop(&v, before)["seen"], true, "{before}: {v:#}");
    }
    assert_eq!(hop(&v, "arrive")["seen"], false, "{v:#}");

    // `up` puts it back; the trace sees every hop again.
    let out = lab.up();
    assert!(out.status.success(), "{}", show(&out));
    let (code, v) = explain_json(&lab, &["--trace", "worker1/busybox", "worker2/busybox"]);
    assert_eq!(code, 0, "{v:#}");
    all_seen(&v);
}
