//! The SVG: well-formed, every part with its id, broken parts marked,
//! text escaped, and a grid that keeps 20 nodes apart.

use super::*;
use crate::graph::model::tests::{graph, inputs};
use crate::graph::model::{build, NodeLive};
use labctl_nodeplan::report::{Difference, ObjectKind};

/// Every `<tag` opened is closed, in order (self-closing ones aside).
fn balanced(svg: &str) -> bool {
    let mut stack: Vec<String> = Vec::new();
    for part in svg.split('<').skip(1) {
        let head = part.split('>').next().unwrap_or("");
        if head.starts_with('?') || head.starts_with('!') {
            continue;
        }
        if let Some(name) = head.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return false;
            }
        } else if !head.ends_with('/') {
            stack.push(head.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    stack.is_empty()
}

/// The numbers of attribute `name` in `tag` (e.g. `x="12"`).
fn attr(tag: &str, name: &str) -> u32 {
    let key = format!(" {name}=\"");
    let start = tag.find(&key).unwrap() + key.len();
    tag[start..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn every_node_pod_and_tunnel_has_its_stable_id() {
    let svg = render(&graph(3, false));
    assert!(balanced(&svg), "{svg}");
    assert!(svg.starts_with("<?xml"));
    for id in [
        "node-master",
        "node-worker1",
        "node-worker2",
        "vtep-worker1",
        "bridge-worker2",
        "pod-worker1-busybox",
        "tunnel-master-worker1",
        "tunnel-master-worker2",
        "tunnel-worker1-worker2",
        "underlay",
        "dns-service",
    ] {
        assert_eq!(svg.matches(&format!("id=\"{id}\"")).count(), 1, "{id}");
    }
    assert!(svg.contains("0e:fa:0a:f4:01:00"));
    assert!(svg.contains("from the plan"));
    assert!(!svg.contains("broken\""), "nothing broken in a plan");
    assert!(
        !svg.contains("http://") || svg.matches("http://").count() == 1,
        "only the namespace"
    );
}

#[test]
fn a_broken_tunnel_and_vtep_carry_the_class_and_the_difference() {
    let mut inputs = inputs(3, true);
    let down = Difference::new(ObjectKind::Link, "vxlan flannel.1 state", "flannel.1")
        .expected(Some("up".into()))
        .actual(Some("<down & out>".into()));
    inputs[1].live = Some(NodeLive::Checked(vec![down]));
    let svg = render(&build("pic", None, &inputs));
    assert!(balanced(&svg));
    assert!(svg.contains("<g id=\"node-worker1\" class=\"node broken\">"));
    assert!(svg.contains("<g id=\"vtep-worker1\" class=\"broken\">"));
    assert!(svg.contains("id=\"tunnel-master-worker1\" class=\"cell broken\""));
    assert!(svg.contains("id=\"tunnel-master-worker2\" class=\"cell\""));
    assert!(svg.contains("actual &lt;down &amp; out&gt;"), "escaped");
    assert!(!svg.contains("<down"));
    assert!(svg.contains("live state"));
}

#[test]
fn escape_covers_the_five_xml_characters() {
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
}

#[test]
fn twenty_nodes_sit_in_rows_of_four_without_overlapping() {
    let svg = render(&graph(20, true));
    assert!(balanced(&svg));
    let boxes: Vec<(u32, u32, u32, u32)> = svg
        .split("<rect class=\"box\"")
        .skip(1)
        .map(|t| {
            let tag = t.split('>').next().unwrap();
            (
                attr(tag, "x"),
                attr(tag, "y"),
                attr(tag, "width"),
                attr(tag, "height"),
            )
        })
        .collect();
    assert_eq!(boxes.len(), 20);
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "{a:?} overlaps {b:?}");
        }
    }
    let rows: std::collections::BTreeSet<u32> = boxes.iter().map(|b| b.1).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(svg.matches("class=\"cell\"").count(), 190);
    let width = attr(&svg[svg.find("<svg").unwrap()..], "width");
    assert!(boxes.iter().all(|b| b.0 + b.2 <= width));
    assert!(
        boxes.iter().all(|b| b.0 > MARGIN + 6),
        "the underlay's spine runs left of every box"
    );
}
