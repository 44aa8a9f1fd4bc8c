//! The picture as a Mermaid flowchart (GitHub and many editors draw it
//! from a ```` ```mermaid ```` block): one subgraph per node with its VTEP,
//! bridge and pods, the underlay, the DNS service, one dotted link per
//! tunnel; broken parts get the `broken` class and broken tunnels a red
//! link style.

use std::fmt::Write;

use super::model::{ids, Graph, Node};

/// A Mermaid id from one of [`ids`]: letters, digits and `_` only.
fn id(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A quoted Mermaid label: quotes and markup characters become entities.
pub fn label(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '\n' => out.push_str("<br/>"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes node `n`'s subgraph; returns how many links it drew (Mermaid
/// numbers links in order for `linkStyle`).
fn node(out: &mut String, n: &Node, broken: &mut Vec<String>) -> usize {
    let mut links = 0;
    let role = n.role();
    let group = id(&ids::node(&n.name));
    let _ = writeln!(
        out,
        "  subgraph {group}[{}]",
        label(&format!("{} ({role}) {}", n.name, n.ip))
    );
    if let Some(error) = &n.unreachable {
        let _ = writeln!(
            out,
            "    {group}_unreachable[{}]",
            label(&format!("not reachable: {error}"))
        );
        broken.push(format!("{group}_unreachable"));
    }
    if let Some(v) = &n.vtep {
        let vid = id(&ids::vtep(&n.name));
        let mut text = format!("{} VTEP {}\n{} · VNI {}", v.device, v.mac, v.address, v.vni);
        for p in &v.problems {
            text.push_str(&format!("\n✗ {p}"));
        }
        let _ = writeln!(out, "    {vid}[{}]", label(&text));
        if !v.problems.is_empty() {
            broken.push(vid);
        }
    }
    let b = &n.bridge;
    let bid = id(&ids::bridge(&n.name));
    let mut text = format!("{} {}\nsubnet {}", b.device, b.address, b.subnet);
    for p in &b.problems {
        text.push_str(&format!("\n✗ {p}"));
    }
    let _ = writeln!(out, "    {bid}[{}]", label(&text));
    if !b.problems.is_empty() {
        broken.push(bid.clone());
    }
    if n.vtep.is_some() {
        // Pod traffic to other nodes is routed from the bridge to the VTEP.
        let _ = writeln!(out, "    {bid} -. routed .- {}", id(&ids::vtep(&n.name)));
        links += 1;
    }
    for pod in &n.pods {
        let pid = id(&ids::pod(&n.name, &pod.name));
        let ip = pod
            .ip
            .map_or("no address yet".to_string(), |ip| ip.to_string());
        let _ = writeln!(
            out,
            "    {pid}([{}]) --- {bid}",
            label(&format!("pod {} {ip}", pod.name))
        );
        links += 1;
    }
    if !n.problems.is_empty() {
        let text: Vec<String> = n.problems.iter().map(|p| format!("✗ {p}")).collect();
        let _ = writeln!(out, "    {group}_problems[{}]", label(&text.join("\n")));
        broken.push(format!("{group}_problems"));
    }
    let _ = writeln!(out, "  end");
    links
}

/// Renders the graph as a Mermaid flowchart.
pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let title = graph.title().replace(['"', '\\'], "'");
    let _ = writeln!(out, "---\ntitle: \"{title}\"\n---");
    out.push_str("flowchart TB\n");
    let underlay = graph.underlay_label();
    let _ = writeln!(out, "  {}[{}]", ids::UNDERLAY, label(&underlay));
    if let Some(dns) = &graph.dns {
        let _ = writeln!(
            out,
            "  {}[{}]",
            id(ids::DNS),
            label(&format!("DNS service {}", dns.service_ip))
        );
    }
    let mut broken = Vec::new();
    let mut links = 0;
    for n in &graph.nodes {
        links += node(&mut out, n, &mut broken);
    }
    for n in &graph.nodes {
        let _ = writeln!(out, "  {} --- {}", ids::UNDERLAY, id(&ids::node(&n.name)));
        links += 1;
    }
    if let Some((node, _)) = graph.dns.as_ref().and_then(|d| d.backend.as_ref()) {
        let pod = id(&ids::pod(node, crate::nodes::DNS_POD));
        let _ = writeln!(out, "  {} -.-> {pod}", id(ids::DNS));
        links += 1;
    }
    let mut red = Vec::new();
    for t in &graph.tunnels {
        let text = if t.problems.is_empty() {
            graph.tunnel_label().to_string()
        } else {
            format!("✗ {}", t.problems.join("\n"))
        };
        let _ = writeln!(
            out,
            "  {} <-. {} .-> {}",
            id(&graph.tunnel_end(&t.a)),
            label(&text),
            id(&graph.tunnel_end(&t.b))
        );
        if !t.problems.is_empty() {
            red.push(links.to_string());
        }
        links += 1;
    }
    out.push_str(
        "  classDef broken stroke:#c62828,stroke-width:3px,stroke-dasharray:6 3,fill:#ffebee\n",
    );
    for b in &broken {
        let _ = writeln!(out, "  class {b} broken");
    }
    if !red.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#c62828,stroke-width:3px",
            red.join(",")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::tests::graph;

    #[test]
    fn every_node_pod_and_tunnel_is_in_the_flowchart() {
        let text = render(&graph(3, false));
        assert!(text.contains("flowchart TB"));
        for id in [
            "node_worker1",
            "vtep_master",
            "bridge_worker2",
            "pod_worker1_busybox",
        ] {
            assert!(text.contains(id), "{id}: {text}");
        }
        assert_eq!(text.matches(" <-. ").count(), 3);
        assert!(!text.contains("linkStyle"), "nothing broken");
    }

    #[test]
    fn link_style_counts_every_link_before_the_broken_tunnel() {
        let mut g = graph(3, true);
        g.tunnels[2]
            .problems
            .push("worker1: fdb: expected x, actual (absent)".into());
        let text = render(&g);
        let links: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains(" --- ")
                    || l.contains(" -. ")
                    || l.contains(" -.-> ")
                    || l.contains(" <-. ")
            })
            .collect();
        let styled: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("  linkStyle "))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            links[styled].contains("vtep_worker1 <-. "),
            "{}: {text}",
            links[styled]
        );
        assert!(links[styled].contains("vtep_worker2"), "{text}");
    }

    #[test]
    fn labels_cannot_break_out_of_their_quotes() {
        assert_eq!(label("a\"b<c>#"), "\"a#quot;b#lt;c#gt;#35;\"");
    }
}
