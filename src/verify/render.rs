//! The text report for people: a compact tree of checks with ✓/✗, what each
//! proves, its evidence, the pod matrix, the diagnoses with their fixes, and
//! the total time. Colour only when allowed (a TTY and no NO_COLOR).

use std::fmt::Write;

use super::evidence::{MeshCoverage, PingMatrix};
use super::model::{Diagnosis, Outcome, Report};

/// Evidence lines shown per check before "… N more" (JSON has them all).
const DETAIL_LINES: usize = 12;
/// Widest lab whose pod matrix is printed in full.
const MATRIX_MAX: usize = 16;

struct Paint {
    color: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn mark(&self, outcome: Outcome) -> String {
        match outcome {
            Outcome::Pass => self.wrap("32", "✓"),
            Outcome::Fail => self.wrap("31", "✗"),
            Outcome::Skip => self.wrap("33", "-"),
        }
    }
    fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }
    fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// Renders the whole report.
pub fn render(report: &Report, color: bool) -> String {
    let p = Paint { color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "labctl verify: lab {} ({})",
            report.lab, report.provider
        ))
    );
    let width = report
        .checks
        .iter()
        .map(|c| c.id.as_str().len())
        .max()
        .unwrap_or(0);
    for (i, check) in report.checks.iter().enumerate() {
        let last = i + 1 == report.checks.len();
        let (branch, stem) = if last {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        let _ = writeln!(
            out,
            "{branch} {} {:<width$}  {}  {}",
            p.mark(check.outcome),
            check.id.as_str(),
            check.summary,
            p.dim(&format!("({})", seconds(check.duration_ms)))
        );
        let _ = writeln!(
            out,
            "{stem}    {}",
            p.dim(&format!("proves: {}", check.proves))
        );
        for line in check.details.iter().take(DETAIL_LINES) {
            let _ = writeln!(out, "{stem}    {line}");
        }
        if check.details.len() > DETAIL_LINES {
            let _ = writeln!(
                out,
                "{stem}    … {} more (see --output json)",
                check.details.len() - DETAIL_LINES
            );
        }
        if !check.diagnoses.is_empty() {
            let _ = writeln!(out, "{stem}    → {}", check.diagnoses.join(", "));
        }
    }
    if let Some(mesh) = &report.mesh {
        out.push('\n');
        out.push_str(&render_matrix(mesh));
    }
    if !report.diagnoses.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("diagnosis"));
        for d in &report.diagnoses {
            out.push_str(&render_diagnosis(d, &p));
        }
    }
    for w in &report.warnings {
        let _ = writeln!(
            out,
            "\n{} {} on {}: {}\n  fix: {}",
            p.wrap("33", "!"),
            p.bold(&format!("warning {}", w.id)),
            w.nodes.join(", "),
            w.message,
            w.fix
        );
    }
    let failed = report.count(Outcome::Fail);
    let passed = report.count(Outcome::Pass);
    let skipped = report.count(Outcome::Skip);
    let verdict = if failed == 0 {
        p.wrap("32", "PASS")
    } else {
        p.wrap("31", "FAIL")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: {passed} passed, {failed} failed, {skipped} skipped in {}",
        seconds(report.total_ms)
    );
    out
}

fn render_diagnosis(d: &Diagnosis, p: &Paint) -> String {
    let mut out = String::new();
    let mut place = String::new();
    if let Some(n) = &d.node {
        let _ = write!(place, " on {n}");
    }
    if let Some(peer) = &d.peer {
        let _ = write!(place, " (peer {peer})");
    }
    let _ = writeln!(
        out,
        "{} {}{place}: {}",
        p.mark(Outcome::Fail),
        p.bold(&d.cause),
        d.message
    );
    for e in d.evidence.iter().take(DETAIL_LINES) {
        let _ = writeln!(out, "    evidence: {e}");
    }
    let _ = writeln!(out, "    fix: {}", d.fix);
    out
}

fn cell_text(mesh: &PingMatrix, from: &str, to: &str) -> String {
    match mesh.cell(from, to) {
        None => "·".to_string(),
        Some(c) if !c.ok() => format!("{:.0}% ✗", c.loss_percent()),
        Some(c) => match c.rtt_avg_ms {
            Some(rtt) => format!("{:.0}% {rtt:.2}", c.loss_percent()),
            None => format!("{:.0}%", c.loss_percent()),
        },
    }
}

/// The N×N pod matrix (rows ping columns: loss and average RTT in ms); for
/// big labs a summary and the failing pairs.
pub fn render_matrix(mesh: &PingMatrix) -> String {
    let mut out = String::new();
    let ok = mesh.cells.iter().filter(|c| c.ok()).count();
    if mesh.nodes.len() > MATRIX_MAX {
        let rtts: Vec<f64> = mesh.cells.iter().filter_map(|c| c.rtt_avg_ms).collect();
        let (min, max) = rtts
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), r| (a.min(*r), b.max(*r)));
        let avg = if rtts.is_empty() {
            0.0
        } else {
            rtts.iter().sum::<f64>() / rtts.len() as f64
        };
        let _ = writeln!(
            out,
            "pod mesh: {}×{} pods, {ok}/{} {}pairs answered, RTT min/avg/max {:.2}/{avg:.2}/{:.2} ms",
            mesh.nodes.len(),
            mesh.nodes.len(),
            mesh.cells.len(),
            match mesh.coverage {
                MeshCoverage::Full => "",
                MeshCoverage::Sampled { .. } => "sampled ",
            },
            if rtts.is_empty() { 0.0 } else { min },
            max
        );
        for c in mesh.failures().take(20) {
            let _ = writeln!(
                out,
                "  ✗ {} → {} ({}): {:.0}% loss",
                c.from,
                c.to,
                c.to_ip,
                c.loss_percent()
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "pod mesh ({ok}/{} pairs answered; row pings column: loss, avg RTT ms)",
        mesh.cells.len()
    );
    let name_w = mesh.nodes.iter().map(String::len).max().unwrap_or(4).max(4);
    let cells: Vec<Vec<String>> = mesh
        .nodes
        .iter()
        .map(|from| {
            mesh.nodes
                .iter()
                .map(|to| cell_text(mesh, from, to))
                .collect()
        })
        .collect();
    let col_w = cells
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .chain(mesh.nodes.iter().map(String::len))
        .max()
        .unwrap_or(6);
    let _ = write!(out, "  {:<name_w$}", "");
    for n in &mesh.nodes {
        let _ = write!(out, "  {n:>col_w$}");
    }
    out.push('\n');
    for (from, row) in mesh.nodes.iter().zip(&cells) {
        let _ = write!(out, "  {from:<name_w$}");
        for c in row {
            let pad = col_w.saturating_sub(c.chars().count());
            let _ = write!(out, "  {}{c}", " ".repeat(pad));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::evidence::PingCell;
    use crate::verify::model::{CheckId, CheckResult};

    fn mesh() -> PingMatrix {
        let nodes = vec!["master".to_string(), "worker1".to_string()];
        let cell = |from: &str, to: &str, received| PingCell {
            from: from.into(),
            to: to.into(),
            to_ip: "10.244.1.2".parse().unwrap(),
            sent: 2,
            received,
            rtt_avg_ms: if received > 0 { Some(0.081) } else { None },
            error: None,
        };
        PingMatrix {
            cells: vec![cell("master", "worker1", 2), cell("worker1", "master", 0)],
            nodes,
            ..Default::default()
        }
    }

    #[test]
    fn tree_with_matrix_and_totals_no_colour() {
        let mut fail = CheckResult::new(CheckId::PodMesh, Outcome::Fail, "1 of 2 pairs failed");
        fail.details.push("worker1 → master: 100% loss".into());
        fail.diagnoses.push("missing-route".into());
        let report = Report {
            lab: "flannel".into(),
            provider: "netns".into(),
            checks: vec![
                CheckResult::new(CheckId::Nodes, Outcome::Pass, "2 nodes answer"),
                fail,
                CheckResult::skip(CheckId::Kubernetes, "not a kubeadm lab"),
            ],
            pods: vec![],
            mesh: Some(mesh()),
            diagnoses: vec![],
            warnings: vec![],
            total_ms: 1234,
            passed: false,
        };
        let text = render(&report, false);
        assert!(text.contains("├─ ✓ nodes"), "{text}");
        assert!(text.contains("├─ ✗ pod-mesh"), "{text}");
        assert!(text.contains("└─ - kubernetes"), "{text}");
        assert!(text.contains("proves: every pod reaches every other pod"));
        assert!(text.contains("→ missing-route"));
        assert!(text.contains("0% 0.08"), "{text}");
        assert!(text.contains("100% ✗"), "{text}");
        assert!(
            text.contains("FAIL: 1 passed, 1 failed, 1 skipped in 1.23 s"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
        assert!(render(&report, true).contains("\x1b[31m✗"));
    }
}
