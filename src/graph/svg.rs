//! The picture as one standalone SVG file: no fonts, scripts or images
//! from elsewhere, so any browser opens it. Nodes sit in rows of at most
//! four on the underlay (a bus above each row); the tunnels are a matrix
//! below them (one cell per pair of nodes), which stays readable at 20
//! nodes where a full mesh of lines would not. Every part carries a stable
//! id (`node-worker1`, `pod-worker1-busybox`, `tunnel-master-worker1`, see
//! [`super::model::ids`]) and the class `broken` when it is.

use std::fmt::Write;

use super::model::{ids, Graph, Node, Source};
use super::text::{fit, wrap};

const MARGIN: u32 = 24;
const NODE_W: u32 = 340;
const GAP: u32 = 28;
/// Where the node grid starts, right of the underlay's spine.
const GRID_X: u32 = MARGIN + 20;
const LINE: u32 = 16;
const COLUMNS: usize = 4;
/// Characters of 12px monospace that fit in a node box.
const NODE_CHARS: usize = 44;
/// Problem lines shown per part (the rest are in the tooltip).
const SHOWN_PROBLEMS: usize = 3;
const CELL: u32 = 22;

const STYLE: &str = "text{font-family:monospace;font-size:12px;fill:#222}\
.title{font-size:16px;font-weight:bold}.caption{fill:#555}\
.name{font-size:14px;font-weight:bold}.problem{fill:#b71c1c}\
.box{fill:#fff;stroke:#607d8b;stroke-width:1.5}\
.live .box{stroke:#2e7d32}.part{fill:#f5f7fa;stroke:#90a4ae}\
.bus{stroke:#37474f;stroke-width:3}.stub{stroke:#37474f;stroke-width:1.5}\
.cell{fill:#e3f2fd;stroke:#90a4ae}.live .cell{fill:#c8e6c9}.diag{fill:#eceff1}\
.broken>.box,.broken>.part,.broken.cell,.live .broken.cell{stroke:#c62828;stroke-width:2.5;stroke-dasharray:6 3}\
.broken.cell,.live .broken.cell{fill:#ffcdd2}.broken>.part{fill:#ffebee}";

/// XML escaping, as for verify's JUnit report.
pub use crate::verify::junit::escape;

/// The lines a node box shows, each with its class, and where the parts
/// (VTEP, bridge, pods) start: (index of first line, number of lines, id).
struct NodeText {
    lines: Vec<(String, &'static str)>,
    parts: Vec<(usize, usize, String, bool)>,
    tooltip: String,
}

fn problem_lines(problems: &[String], lines: &mut Vec<(String, &'static str)>) {
    for p in problems.iter().take(SHOWN_PROBLEMS) {
        for line in wrap(&format!("✗ {p}"), NODE_CHARS, 3) {
            lines.push((line, "problem"));
        }
    }
    if problems.len() > SHOWN_PROBLEMS {
        let more = problems.len() - SHOWN_PROBLEMS;
        lines.push((format!("  … and {more} more (hover)"), "problem"));
    }
}

fn node_text(node: &Node) -> NodeText {
    let role = node.role();
    let mut lines = vec![
        (format!("{} ({role})", node.name), "name"),
        (format!("lab IP {}", node.ip), ""),
    ];
    let mut parts = Vec::new();
    if let Some(error) = &node.unreachable {
        lines.push(("✗ not reachable: not checked".to_string(), "problem"));
        lines.push((error.clone(), "problem"));
    }
    if let Some(v) = &node.vtep {
        let start = lines.len();
        lines.push((format!("{} VTEP {}", v.device, v.mac), ""));
        lines.push((format!("{} · VNI {} · MTU {}", v.address, v.vni, v.mtu), ""));
        problem_lines(&v.problems, &mut lines);
        let broken = !v.problems.is_empty();
        parts.push((start, lines.len() - start, ids::vtep(&node.name), broken));
    }
    let b = &node.bridge;
    let start = lines.len();
    lines.push((format!("{} {}", b.device, b.address), ""));
    lines.push((format!("pod subnet {}", b.subnet), ""));
    problem_lines(&b.problems, &mut lines);
    let broken = !b.problems.is_empty();
    parts.push((start, lines.len() - start, ids::bridge(&node.name), broken));
    for pod in &node.pods {
        let ip = pod
            .ip
            .map_or("(no address yet)".to_string(), |ip| ip.to_string());
        parts.push((lines.len(), 1, ids::pod(&node.name, &pod.name), false));
        lines.push((format!("pod {} {ip}", pod.name), ""));
    }
    problem_lines(&node.problems, &mut lines);
    let mut tooltip = node.unreachable.clone().unwrap_or_default();
    for p in node
        .vtep
        .iter()
        .flat_map(|v| &v.problems)
        .chain(&b.problems)
        .chain(&node.problems)
    {
        tooltip.push_str(&format!("\n{p}"));
    }
    NodeText {
        lines,
        parts,
        tooltip: tooltip.trim().to_string(),
    }
}

/// Height of a node box with `lines` lines: the lines, a gap before each
/// part, and padding.
fn box_height(text: &NodeText) -> u32 {
    text.lines.len() as u32 * LINE + text.parts.len() as u32 * 8 + 20
}

/// Renders the graph as an SVG document.
pub fn render(graph: &Graph) -> String {
    let texts: Vec<NodeText> = graph.nodes.iter().map(node_text).collect();
    let columns = graph.nodes.len().clamp(1, COLUMNS);
    let grid_w = columns as u32 * NODE_W + (columns as u32 - 1) * GAP;
    let n = graph.nodes.len() as u32;
    let label_w = graph.nodes.iter().map(|n| n.name.len()).max().unwrap_or(4) as u32 * 8 + 12;
    let matrix_w = label_w + n * CELL + 40;
    let width = GRID_X + MARGIN + grid_w.max(matrix_w).max(640);
    let mut body = String::new();
    let mut y = header(graph, &mut body, width);
    // Rows of nodes, each under its stretch of the underlay bus.
    let bus_x = MARGIN + 6;
    let first_bus = y;
    for (row, chunk) in texts.chunks(COLUMNS).enumerate() {
        let row_h = chunk.iter().map(box_height).max().unwrap_or(0);
        let bus_y = y;
        let last_x = GRID_X + (chunk.len() as u32 - 1) * (NODE_W + GAP) + NODE_W / 2;
        let _ = write!(
            body,
            "<line class=\"bus\" x1=\"{bus_x}\" y1=\"{bus_y}\" x2=\"{last_x}\" y2=\"{bus_y}\"/>"
        );
        if row == 0 {
            let label = graph.underlay_label();
            let _ = write!(
                body,
                "<text id=\"{}\" x=\"{}\" y=\"{}\">{}</text>",
                ids::UNDERLAY,
                bus_x + 4,
                bus_y - 6,
                escape(&label)
            );
        }
        let top = bus_y + 18;
        for (col, text) in chunk.iter().enumerate() {
            let node = &graph.nodes[row * COLUMNS + col];
            let x = GRID_X + col as u32 * (NODE_W + GAP);
            let _ = write!(
                body,
                "<line class=\"stub\" x1=\"{0}\" y1=\"{bus_y}\" x2=\"{0}\" y2=\"{top}\"/>",
                x + NODE_W / 2
            );
            node_box(&mut body, node, text, x, top, row_h);
        }
        y = top + row_h + 28;
    }
    if texts.len() > COLUMNS {
        let last_bus = y
            - 28
            - texts
                .chunks(COLUMNS)
                .last()
                .map_or(0, |c| c.iter().map(box_height).max().unwrap_or(0) + 18);
        let _ = write!(
            body,
            "<line class=\"bus\" x1=\"{bus_x}\" y1=\"{first_bus}\" x2=\"{bus_x}\" y2=\"{last_bus}\"/>"
        );
    }
    y = tunnel_matrix(graph, &mut body, y + 8, label_w, width);
    let height = y + MARGIN;
    let class = match graph.source {
        Source::Live => "live",
        Source::Plan => "plan",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" class=\"{class}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{body}\n</svg>\n",
        escape(&graph.title())
    )
}

/// The title, the caption and the DNS service; returns where the
/// underlay bus goes.
fn header(graph: &Graph, out: &mut String, width: u32) -> u32 {
    let _ = write!(
        out,
        "<text class=\"title\" x=\"{MARGIN}\" y=\"{}\">{}</text>",
        MARGIN + 8,
        escape(&graph.title())
    );
    let tunnels = match graph.nodes.iter().find_map(|n| n.vtep.as_ref()) {
        Some(v) => format!("VXLAN VNI {} over UDP {}", v.vni, v.port),
        None if graph.host_gw => "host-gw: routes via the peers' node IPs, no VXLAN".to_string(),
        None => "no VXLAN device in the plan".to_string(),
    };
    let legend = match graph.source {
        Source::Live => "green: as planned · red, dashed: broken (the difference the agent found)",
        Source::Plan => "grey: planned, not checked (bring the lab up for live state)",
    };
    let pods = graph
        .pod_network
        .map_or(String::new(), |p| format!("pod network {p} · "));
    let caption = [format!("{pods}{tunnels}"), legend.to_string()];
    let mut y = MARGIN + 28;
    for line in caption {
        let _ = write!(
            out,
            "<text class=\"caption\" x=\"{MARGIN}\" y=\"{y}\">{}</text>",
            escape(&line)
        );
        y += LINE;
    }
    if let Some(dns) = &graph.dns {
        let behind = match &dns.backend {
            Some((node, Some(ip))) => format!(" → pod {} {ip} on {node}", crate::nodes::DNS_POD),
            Some((node, None)) => format!(" → pod {} on {node}", crate::nodes::DNS_POD),
            None => String::new(),
        };
        let text = format!("DNS service {}{behind}", dns.service_ip);
        let w = (text.chars().count() as u32 * 15 / 2 + 20).min(width - 2 * MARGIN);
        let _ = write!(
            out,
            "<g id=\"{}\"><rect class=\"part\" x=\"{MARGIN}\" y=\"{}\" width=\"{w}\" height=\"22\" rx=\"4\"/>\
             <text x=\"{}\" y=\"{}\">{}</text></g>",
            ids::DNS,
            y - 4,
            MARGIN + 10,
            y + 11,
            escape(&text)
        );
        y += 30;
    }
    y + 22
}

fn node_box(out: &mut String, node: &Node, text: &NodeText, x: u32, y: u32, h: u32) {
    let class = if node.broken() { "node broken" } else { "node" };
    let _ = write!(
        out,
        "<g id=\"{}\" class=\"{class}\">",
        ids::node(&node.name)
    );
    if !text.tooltip.is_empty() {
        let _ = write!(out, "<title>{}</title>", escape(&text.tooltip));
    }
    let _ = write!(
        out,
        "<rect class=\"box\" x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{h}\" rx=\"6\"/>"
    );
    // Each part's offset: 8px of space before it.
    let mut offsets = vec![0u32; text.lines.len()];
    for (start, _, _, _) in &text.parts {
        for o in offsets.iter_mut().skip(*start) {
            *o += 8;
        }
    }
    let line_y = |i: usize| y + 20 + i as u32 * LINE + offsets[i];
    for (start, len, id, broken) in &text.parts {
        let class = if *broken { " class=\"broken\"" } else { "" };
        let _ = write!(
            out,
            "<g id=\"{id}\"{class}><rect class=\"part\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/></g>",
            x + 8,
            line_y(*start) - 13,
            NODE_W - 16,
            *len as u32 * LINE + 2
        );
    }
    for (i, (line, class)) in text.lines.iter().enumerate() {
        let class = if class.is_empty() {
            String::new()
        } else {
            format!(" class=\"{class}\"")
        };
        let _ = write!(
            out,
            "<text{class} x=\"{}\" y=\"{}\">{}</text>",
            x + 14,
            line_y(i),
            escape(&fit(line, NODE_CHARS))
        );
    }
    out.push_str("</g>");
}

/// One cell per pair of nodes (upper triangle), then the broken tunnels'
/// reasons; returns the y below it all.
fn tunnel_matrix(graph: &Graph, out: &mut String, y: u32, label_w: u32, width: u32) -> u32 {
    let chars = ((width - 2 * MARGIN) * 10 / 73) as usize;
    if graph.tunnels.is_empty() {
        let _ = write!(
            out,
            "<text class=\"caption\" x=\"{MARGIN}\" y=\"{}\">No VXLAN tunnels: the plan has no VXLAN device.</text>",
            y + 12
        );
        return y + 20;
    }
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    let heading = if graph.host_gw {
        "host-gw routes (one cell per pair of nodes: each routes the other's pod subnet via its node IP)"
    } else {
        "VXLAN tunnels (one cell per pair of VTEPs)"
    };
    let _ = write!(
        out,
        "<text class=\"name\" x=\"{MARGIN}\" y=\"{}\">{heading}</text>",
        y + 12
    );
    let x0 = MARGIN + label_w;
    // Column labels rise at 60°: about 6.2px per character above `top`.
    let top = y + 30 + names.iter().map(|n| n.len() as u32).max().unwrap_or(0) * 7;
    for (i, name) in names.iter().enumerate() {
        let cx = x0 + i as u32 * CELL + CELL / 2 + 4;
        let _ = write!(
            out,
            "<text x=\"{cx}\" y=\"{}\" transform=\"rotate(-60 {cx} {})\">{}</text>",
            top - 6,
            top - 6,
            escape(name)
        );
        let ry = top + i as u32 * CELL;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            x0 - 6,
            ry + 15,
            escape(name)
        );
        let _ = write!(
            out,
            "<rect class=\"diag\" x=\"{}\" y=\"{ry}\" width=\"{CELL}\" height=\"{CELL}\"/>",
            x0 + i as u32 * CELL
        );
    }
    for t in &graph.tunnels {
        let (Some(i), Some(j)) = (
            names.iter().position(|n| *n == t.a),
            names.iter().position(|n| *n == t.b),
        ) else {
            continue;
        };
        let broken = !t.problems.is_empty();
        let class = if broken { "cell broken" } else { "cell" };
        let mut tip = format!("{} ⇄ {}", t.a, t.b);
        for p in &t.problems {
            tip.push_str(&format!("\n{p}"));
        }
        let _ = write!(
            out,
            "<rect id=\"{}\" class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{CELL}\" height=\"{CELL}\"><title>{}</title></rect>",
            ids::tunnel(&t.a, &t.b),
            x0 + j as u32 * CELL,
            top + i as u32 * CELL,
            escape(&tip)
        );
    }
    let mut y = top + names.len() as u32 * CELL + 22;
    let broken: Vec<String> = graph
        .tunnels
        .iter()
        .flat_map(|t| {
            t.problems
                .iter()
                .map(move |p| format!("✗ {} ⇄ {}: {p}", t.a, t.b))
        })
        .collect();
    for line in broken.iter().take(12).flat_map(|l| wrap(l, chars, 3)) {
        let _ = write!(
            out,
            "<text class=\"problem\" x=\"{MARGIN}\" y=\"{y}\">{}</text>",
            escape(&line)
        );
        y += LINE;
    }
    if broken.len() > 12 {
        let _ = write!(
            out,
            "<text class=\"problem\" x=\"{MARGIN}\" y=\"{y}\">… and {} more (hover a cell)</text>",
            broken.len() - 12
        );
        y += LINE;
    }
    y
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
