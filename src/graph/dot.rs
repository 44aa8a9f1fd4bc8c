//! The picture in Graphviz's DOT language (`dot -Tpng`): one cluster per
//! node with its VTEP, bridge and pods, the underlay as a node every lab
//! node hangs from, one dashed edge per tunnel; broken parts and tunnels
//! are red.

use std::fmt::Write;

use super::model::{ids, Graph, Node};

/// A DOT string literal: backslashes and quotes escaped, line breaks as
/// DOT's centred `\n`.
pub fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const RED: &str = ", color=\"#c62828\", fontcolor=\"#b71c1c\", style=\"dashed,bold\"";

fn with_problems(text: String, problems: &[String]) -> String {
    problems.iter().fold(text, |acc, p| format!("{acc}\n✗ {p}"))
}

fn node(out: &mut String, n: &Node) {
    let role = n.role();
    let mut title = format!("{} ({role})\nlab IP {}", n.name, n.ip);
    if let Some(error) = &n.unreachable {
        title.push_str(&format!("\n✗ not reachable: {error}"));
    }
    let title = with_problems(title, &n.problems);
    let _ = writeln!(
        out,
        "  subgraph {} {{\n    id={};\n    label={};{}",
        quote(&format!("cluster_{}", ids::node(&n.name))),
        quote(&ids::node(&n.name)),
        quote(&title),
        if n.broken() {
            " color=\"#c62828\"; style=\"dashed,bold\";"
        } else {
            ""
        }
    );
    if let Some(v) = &n.vtep {
        let text = with_problems(
            format!("{} VTEP {}\n{} · VNI {}", v.device, v.mac, v.address, v.vni),
            &v.problems,
        );
        let red = if v.problems.is_empty() { "" } else { RED };
        let _ = writeln!(
            out,
            "    {0} [id={0}, label={1}{red}];",
            quote(&ids::vtep(&n.name)),
            quote(&text)
        );
    }
    let b = &n.bridge;
    let text = with_problems(
        format!("{} {}\nsubnet {}", b.device, b.address, b.subnet),
        &b.problems,
    );
    let red = if b.problems.is_empty() { "" } else { RED };
    let bridge = quote(&ids::bridge(&n.name));
    let _ = writeln!(
        out,
        "    {bridge} [id={bridge}, label={}{red}];",
        quote(&text)
    );
    if n.vtep.is_some() {
        // Pod traffic to other nodes is routed from the bridge to the VTEP.
        let _ = writeln!(
            out,
            "    {bridge} -- {} [label=\"routed\", style=dotted, constraint=false];",
            quote(&ids::vtep(&n.name))
        );
    }
    for pod in &n.pods {
        let ip = pod
            .ip
            .map_or("no address yet".to_string(), |ip| ip.to_string());
        let pid = quote(&ids::pod(&n.name, &pod.name));
        let _ = writeln!(
            out,
            "    {pid} [id={pid}, shape=ellipse, label={}];\n    {pid} -- {bridge};",
            quote(&format!("pod {} {ip}", pod.name))
        );
    }
    let _ = writeln!(out, "  }}");
}

/// Renders the graph as an undirected DOT graph.
pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "graph {} {{\n  label={};\n  labelloc=t;\n  fontname=monospace;\n  node [shape=box, fontname=monospace, fontsize=10];\n  edge [fontname=monospace, fontsize=9];",
        quote(&graph.lab),
        quote(&graph.title())
    );
    let underlay = graph.underlay_label();
    let _ = writeln!(
        out,
        "  {} [shape=plaintext, label={}];",
        quote(ids::UNDERLAY),
        quote(&underlay)
    );
    if let Some(dns) = &graph.dns {
        let _ = writeln!(
            out,
            "  {} [shape=hexagon, label={}];",
            quote(ids::DNS),
            quote(&format!("DNS service {}", dns.service_ip))
        );
        if let Some((node, _)) = &dns.backend {
            let _ = writeln!(
                out,
                "  {} -- {} [style=dotted];",
                quote(ids::DNS),
                quote(&ids::pod(node, crate::nodes::DNS_POD))
            );
        }
    }
    for n in &graph.nodes {
        node(&mut out, n);
        let anchor = match &n.vtep {
            Some(_) => ids::vtep(&n.name),
            None => ids::bridge(&n.name),
        };
        let _ = writeln!(
            out,
            "  {} -- {} [label={}];",
            quote(ids::UNDERLAY),
            quote(&anchor),
            quote(&n.ip.to_string())
        );
    }
    for t in &graph.tunnels {
        let (label, red) = if t.problems.is_empty() {
            (graph.tunnel_label().to_string(), "")
        } else {
            (format!("✗ {}", t.problems.join("\n")), RED)
        };
        let _ = writeln!(
            out,
            "  {} -- {} [id={}, constraint=false, style=dashed, label={}{red}];",
            quote(&graph.tunnel_end(&t.a)),
            quote(&graph.tunnel_end(&t.b)),
            quote(&ids::tunnel(&t.a, &t.b)),
            quote(&label)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::tests::graph;

    #[test]
    fn every_node_pod_and_tunnel_is_in_the_graph() {
        let text = render(&graph(3, false));
        assert!(text.starts_with("graph \"pic\" {"));
        assert!(text.trim_end().ends_with('}'));
        for id in [
            "\"cluster_node-worker1\"",
            "\"vtep-master\"",
            "\"pod-worker2-busybox\"",
            "id=\"tunnel-worker1-worker2\"",
        ] {
            assert!(text.contains(id), "{id}: {text}");
        }
        assert!(!text.contains("#c62828"), "nothing broken");
    }

    #[test]
    fn quotes_escape_backslashes_and_quotes() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
