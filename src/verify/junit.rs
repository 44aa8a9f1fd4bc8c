//! `--junit FILE`: the report as JUnit XML, one testcase per check, so CI
//! systems show each check (and its evidence) on its own.

use std::fmt::Write;

use super::model::{Outcome, Report};

/// Escapes text for XML content and attribute values; drops characters XML
/// 1.0 cannot hold (control characters other than tab/newline/CR).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document for a report.
pub fn junit(report: &Report) -> String {
    let mut x = String::new();
    let tests = report.checks.len();
    let failures = report.count(Outcome::Fail);
    let skipped = report.count(Outcome::Skip);
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let suite = escape(&format!("labctl verify {}", report.lab));
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{}\">",
        secs(report.total_ms)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{}\">",
        secs(report.total_ms)
    );
    for check in &report.checks {
        let _ = write!(
            x,
            "    <testcase classname=\"labctl.verify.{}\" name=\"{}\" time=\"{}\"",
            escape(&report.lab),
            escape(check.id.as_str()),
            secs(check.duration_ms)
        );
        let mut body = String::new();
        let _ = writeln!(body, "proves: {}", check.proves);
        for line in &check.details {
            let _ = writeln!(body, "{line}");
        }
        match check.outcome {
            Outcome::Pass => {
                let _ = writeln!(
                    x,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    escape(&body)
                );
            }
            Outcome::Skip => {
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(&check.summary)
                );
            }
            Outcome::Fail => {
                for d in report
                    .diagnoses
                    .iter()
                    .filter(|d| check.diagnoses.contains(&d.cause))
                {
                    let _ = writeln!(
                        body,
                        "diagnosis {}: {}\n  fix: {}",
                        d.cause, d.message, d.fix
                    );
                }
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    escape(&check.summary),
                    escape(
                        &check
                            .diagnoses
                            .first()
                            .cloned()
                            .unwrap_or_else(|| "check-failed".into())
                    ),
                    escape(&body)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::model::{CheckId, CheckResult};

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c\"'d'\u{1b}[31m\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;[31m\n"
        );
    }

    #[test]
    fn one_testcase_per_check() {
        let mut fail = CheckResult::new(
            CheckId::Egress,
            Outcome::Fail,
            "pod <10.244.1.2> not masqueraded & lost",
        );
        fail.details
            .push("-A POSTROUTING -m comment --comment \"flanneld masq\"".into());
        let report = Report {
            lab: "flannel".into(),
            provider: "netns".into(),
            checks: vec![
                CheckResult::new(CheckId::Nodes, Outcome::Pass, "ok"),
                fail,
                CheckResult::skip(CheckId::Kubernetes, "not kubeadm"),
            ],
            pods: vec![],
            mesh: None,
            diagnoses: vec![],
            warnings: vec![],
            total_ms: 1500,
            passed: false,
        };
        let xml = junit(&report);
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(xml.contains("message=\"pod &lt;10.244.1.2&gt; not masqueraded &amp; lost\""));
        assert!(xml.contains("--comment &quot;flanneld masq&quot;"));
        assert!(xml.contains("<skipped message=\"not kubeadm\"/>"));
        assert!(xml.contains("time=\"1.500\""));
    }
}
