//! What `labctl-agent ping` prints: the outcome of ICMP echo probes sent
//! from one network namespace (a pod's, with `--netns`) to many targets at
//! once. The agent serializes it, `labctl verify` decodes it with
//! [`crate::report::decode`] (same header and version as every report).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::report::AgentReport;

/// `labctl-agent [--netns NS] ping ... TARGET...`: one result per target,
/// in the order given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PingReport {
    pub report_version: u32,
    pub command: String,
    /// The host's name: `ping` needs no plan, so no lab node name.
    pub node: String,
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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

impl AgentReport for PingReport {
    const COMMAND: &'static str = "ping";
}

impl PingReport {
    /// The result for `target`, if it was probed.
    pub fn result(&self, target: Ipv4Addr) -> Option<&PingResult> {
        self.targets.iter().find(|r| r.target == target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{decode, ReportProblem, REPORT_VERSION};

    #[test]
    fn round_trips_and_refuses_another_version() {
        let report = PingReport {
            report_version: REPORT_VERSION,
            command: "ping".into(),
            node: "host".into(),
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
        assert_eq!(decode::<PingReport>("w1", &text).unwrap(), report);
        assert_eq!(
            report
                .result(Ipv4Addr::new(10, 244, 1, 2))
                .map(|r| r.received),
            Some(2)
        );
        let other = text.replace("\"reportVersion\":1", "\"reportVersion\":9");
        let err = decode::<PingReport>("w1", &other).unwrap_err();
        assert_eq!(err.problem, ReportProblem::Version(9));
        assert!(err.to_string().contains("labctl up"), "{err}");
    }
}
