//! What `labctl-agent ping` prints: the outcome of ICMP echo probes sent
//! from one network namespace (a pod's, with `--netns`) to many targets at
//! once. The agent serializes it, `labctl verify` deserializes it; a
//! `version` other than [`PROBE_SCHEMA`] means the two were built apart and
//! the report is refused rather than misread.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Version of the probe report schema.
pub const PROBE_SCHEMA: u32 = 1;

/// `labctl-agent [--netns NS] ping ... TARGET...`: one result per target,
/// in the order given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingReport {
    pub version: u32,
    /// The namespace the probes were sent from (`None`: the agent's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Echo requests per target.
    pub count: u32,
    /// ICMP payload bytes of each request (ping's `-s`).
    pub payload: u32,
    /// Sent with don't-fragment, ignoring any cached path MTU.
    pub dont_fragment: bool,
    pub targets: Vec<PingResult>,
}

/// The outcome for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingResult {
    pub target: Ipv4Addr,
    pub sent: u32,
    pub received: u32,
    /// Mean round trip of the answered requests, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<f64>,
    /// The first error: a local send error (e.g. larger than the local
    /// MTU) or an ICMP error from a hop (e.g. fragmentation needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PingReport {
    /// Decodes the agent's output, refusing another schema version.
    pub fn from_json(text: &str) -> Result<PingReport, String> {
        let report: PingReport = serde_json::from_str(text)
            .map_err(|e| format!("cannot read the agent's ping report: {e}"))?;
        if report.version != PROBE_SCHEMA {
            return Err(format!(
                "the agent's ping report has version {} but this labctl reads version {PROBE_SCHEMA}: run `labctl up` to install the matching agent",
                report.version
            ));
        }
        Ok(report)
    }

    /// The result for `target`, if it was probed.
    pub fn result(&self, target: Ipv4Addr) -> Option<&PingResult> {
        self.targets.iter().find(|r| r.target == target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_another_version() {
        let report = PingReport {
            version: PROBE_SCHEMA,
            namespace: Some("lab-w1-busybox".into()),
            count: 2,
            payload: 1422,
            dont_fragment: true,
            targets: vec![PingResult {
                target: Ipv4Addr::new(10, 244, 1, 2),
                sent: 2,
                received: 2,
                rtt_avg_ms: Some(0.1),
                error: None,
            }],
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains("\"dontFragment\":true"), "{text}");
        assert_eq!(PingReport::from_json(&text).unwrap(), report);
        let other = text.replace("\"version\":1", "\"version\":9");
        let err = PingReport::from_json(&other).unwrap_err();
        assert!(
            err.contains("version 9") && err.contains("labctl up"),
            "{err}"
        );
        assert!(PingReport::from_json("{}").is_err());
    }
}
