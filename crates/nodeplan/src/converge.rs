//! The framing of `labctl-agent converge`, a node's whole `labctl up` in
//! one process: the apply report (the data plane and the plan's service
//! chains), then one `pod add` report per pod asked for. Each report is
//! followed by a [`PART_END`] line carrying what that command's exit
//! status would have been.
//!
//! The output starts with [`BUILD_OK`] once the agent has made sure it is
//! the build labctl asked for (`--want SHA256`); when it is not, it prints
//! [`AGENT_MISSING`] instead and stops. Output without either line (no
//! agent at that path, or one too old to know `converge`) means the same:
//! upload the agent, then ask again.

/// The first line when this is the build asked for.
pub const BUILD_OK: &str = "@@labctl-agent-build-ok";
/// The first (and only) line when it is another build.
pub const AGENT_MISSING: &str = "@@labctl-agent-missing";
/// Ends each report, with the part's exit status after a space.
pub const PART_END: &str = "@@labctl-part-status ";

/// The parts of a converge output after its first line: the text up to
/// each [`PART_END`] line with its status; what follows the last such
/// line is the last part (status 0).
pub fn split_parts(text: &str) -> Vec<(String, i32)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        match line.trim_end().strip_prefix(PART_END) {
            Some(status) => {
                parts.push((std::mem::take(&mut current), status.parse().unwrap_or(-1)));
            }
            None => current.push_str(line),
        }
    }
    parts.push((current, 0));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_on_status_lines() {
        let text =
            "{\"a\":1}\n@@labctl-part-status 0\n{\"b\":2}\n@@labctl-part-status 4\n-N X\n---\n";
        let parts = split_parts(text);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], ("{\"a\":1}\n".to_string(), 0));
        assert_eq!(parts[1], ("{\"b\":2}\n".to_string(), 4));
        assert_eq!(parts[2].0, "-N X\n---\n");
    }

    #[test]
    fn a_report_without_newline_still_splits() {
        // The agent ends each report with a newline of its own, but a
        // part's text must split the same without it.
        let parts = split_parts("{}\n@@labctl-part-status 1\n");
        assert_eq!(parts[0], ("{}\n".to_string(), 1));
        assert_eq!(parts[1], (String::new(), 0));
    }
}
