//! Reading the probe scripts' output ([`super::scripts`]) into evidence,
//! and the pairs the probes run between. Pure.

use std::net::Ipv4Addr;

use labctl_nodeplan::probe::PingReport;
use labctl_nodeplan::report::{self, AgentReport, CaptureOutcome, CaptureReport, KernelLog};

use crate::verify::evidence::{DnsProbe, LinkMtu, VxlanPair};
use crate::verify::model::LabView;
use crate::verify::parse;

/// `@@ KEY… OUTPUT` lines: the first `keys` words, then the output with
/// its newlines restored.
pub fn parse_tagged(text: &str, keys: usize) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("@@ "))
        .map(|l| {
            let mut parts = l.splitn(keys + 1, ' ');
            let k: Vec<String> = (0..keys)
                .map(|_| parts.next().unwrap_or("").to_string())
                .collect();
            (k, parts.next().unwrap_or("").replace('|', "\n"))
        })
        .collect()
}

/// What one node's capture and its pod's ping gave for `vxlan`.
#[derive(Debug, Default)]
pub struct VxlanNodeOutput {
    /// The node's pod's ping: answered at all, or why not.
    pub ping: Option<Result<bool, String>>,
    pub capture: Option<CaptureReport>,
    pub capture_error: Option<String>,
    pub kernel_log: String,
}

/// The agent report in a script's `@capture STATUS REPORT STDERR` line
/// (`tagged`: what follows `@capture `) from node `node`: the first JSON
/// value after the status, decoded as a `T`, or why there is none.
pub(crate) fn tagged_report<T: AgentReport>(node: &str, tagged: &str) -> Result<T, String> {
    let (status, rest) = tagged.split_once(' ').unwrap_or((tagged, ""));
    let rest = rest.trim();
    if status != "0" {
        return Err(format!(
            "`labctl-agent {}` on node {node} exited {status}: {rest}",
            T::COMMAND
        ));
    }
    // The report is one JSON value; the agent's stderr may follow it.
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
    let end = match values.next() {
        Some(Ok(_)) => values.byte_offset(),
        _ => rest.len(),
    };
    report::decode(node, &rest[..end]).map_err(|e| e.to_string())
}

/// Whether any target answered a ping, or why it did not run.
pub(crate) fn answered(report: &Result<PingReport, String>) -> Result<bool, String> {
    report
        .as_ref()
        .map(|r| r.targets.iter().any(|t| t.received > 0))
        .map_err(Clone::clone)
}

/// What one capture of `captures start` / `captures collect` gave on one
/// node: the route `start` looked up, the capture's outcome, and the
/// kernel log when it was asked for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeCapture {
    pub route: Option<String>,
    pub outcome: CaptureOutcome,
    pub kernel_log: Option<KernelLog>,
}

impl NodeCapture {
    /// The outcome's `T` report as `pick` finds it, or why there is none
    /// (named by `T`'s command).
    pub(crate) fn report<T>(
        &self,
        node: &str,
        pick: impl FnOnce(&CaptureOutcome) -> Option<&T>,
    ) -> Result<T, String>
    where
        T: AgentReport + Clone,
    {
        if let CaptureOutcome::Failed { error } = &self.outcome {
            return Err(format!(
                "`labctl-agent {}` on node {node}: {error}",
                T::COMMAND
            ));
        }
        pick(&self.outcome).cloned().ok_or_else(|| {
            format!(
                "`labctl-agent captures collect` on node {node} reported another capture where \
                 `{}` belongs",
                T::COMMAND
            )
        })
    }
}

/// Node `node`'s VXLAN capture, as `vxlan` reads it.
pub(crate) fn vxlan_node_output(node: &str, got: &NodeCapture) -> VxlanNodeOutput {
    let mut out = VxlanNodeOutput::default();
    match got.report::<CaptureReport>(node, |o| match o {
        CaptureOutcome::Vxlan { report } => Some(report),
        _ => None,
    }) {
        Ok(r) => out.capture = Some(r),
        Err(e) => out.capture_error = Some(e),
    }
    if let Some(log) = &got.kernel_log {
        out.kernel_log =
            parse::recent_kernel_lines(log.lines.iter().map(String::as_str), log.uptime);
    }
    out
}

/// The vxlan evidence from every node's capture output (in view order):
/// one [`VxlanPair`] per (sender node, receiver node, sender pod IP,
/// receiver pod IP), its ping judged from the sender's ping; and
/// the bad VXLAN checksums in the kernel logs.
pub(crate) fn vxlan_evidence(
    view: &LabView,
    pairs: &[(String, String, Ipv4Addr, Ipv4Addr)],
    outputs: &[Option<Result<VxlanNodeOutput, String>>],
    method: &str,
) -> (Vec<VxlanPair>, Vec<(String, parse::BadChecksum)>) {
    let by_node = |node: &str| -> Option<&Result<VxlanNodeOutput, String>> {
        let i = view.nodes.iter().position(|n| n.name == node)?;
        outputs.get(i)?.as_ref()
    };
    let mut out = Vec::new();
    for (from, to, pa, pb) in pairs {
        let (pa, pb) = (*pa, *pb);
        let mut pair = VxlanPair {
            from: from.clone(),
            to: to.clone(),
            method: method.to_string(),
            ..Default::default()
        };
        let mut notes = Vec::new();
        match by_node(from) {
            Some(Ok(o)) => {
                pair.ping_ok = o.ping == Some(Ok(true));
                if let Some(Err(e)) = &o.ping {
                    notes.push(e.clone());
                }
                if let Some(c) = &o.capture {
                    let (n, outer) = c.flow_packets(pa, pb);
                    pair.sender_out = n;
                    pair.outer_sources = outer;
                    if n > 0 {
                        pair.vnis.push(view.vni);
                    }
                }
                notes.extend(o.capture_error.iter().map(|e| format!("{from}: {e}")));
            }
            Some(Err(e)) => notes.push(e.clone()),
            None => notes.push(format!("{from}: not reachable over SSH")),
        }
        match by_node(to) {
            Some(Ok(o)) => {
                if let Some(c) = &o.capture {
                    pair.receiver_in = c.flow_packets(pa, pb).0;
                }
                notes.extend(o.capture_error.iter().map(|e| format!("{to}: {e}")));
            }
            Some(Err(e)) => notes.push(e.clone()),
            None => notes.push(format!("{to}: not reachable over SSH")),
        }
        if !notes.is_empty() {
            pair.method = format!("{}; {}", pair.method, notes.join("; "));
        }
        out.push(pair);
    }
    let mut bad = Vec::new();
    for (node, o) in view.nodes.iter().zip(outputs) {
        if let Some(Ok(o)) = o {
            for b in parse::parse_bad_checksums(&o.kernel_log, view.port) {
                // Attributed to the receiving node.
                let to =
                    b.to.and_then(|ip| view.nodes.iter().find(|n| n.underlay_ip == ip));
                bad.push((to.map_or(node.name.clone(), |n| n.name.clone()), b));
            }
        }
    }
    bad.dedup_by(|x, y| x.1.line == y.1.line);
    (out, bad)
}

/// The `@mtu DEVICE VALUE` lines of an MTU script on node `node` (`eth0`:
/// the eth0 of its pod `pod`).
pub(crate) fn link_mtus(node: &str, pod: &str, text: &str) -> Vec<LinkMtu> {
    text.lines()
        .filter_map(|line| {
            let (dev, value) = line.strip_prefix("@mtu ")?.split_once(' ')?;
            let mtu = value.trim().parse().ok()?;
            let device = if dev == "eth0" {
                format!("pod {pod} eth0")
            } else {
                dev.to_string()
            };
            Some(LinkMtu {
                node: node.to_string(),
                device,
                mtu,
            })
        })
        .collect()
}

/// The DNS evidence from a `@version` line and busybox nslookup's output
/// (or the error that stood in for it).
pub(crate) fn dns_probe(node: &str, pod: &str, text: &str, view: &LabView) -> DnsProbe {
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("@version "))
        .and_then(parse::parse_busybox_version);
    let nameservers = text
        .lines()
        .filter_map(|l| l.strip_prefix("@nameserver "))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    // The @ lines are ours; nslookup's answer is the rest.
    let answer: String = text
        .lines()
        .filter(|l| !l.starts_with('@'))
        .map(|l| format!("{l}\n"))
        .collect();
    let a = parse::parse_nslookup(&answer);
    DnsProbe {
        node: node.to_string(),
        pod: pod.to_string(),
        query: "kubernetes.default".into(),
        server: a.server,
        ok: a.addresses.contains(&view.api_service_ip),
        addresses: a.addresses,
        nxdomain: a.nxdomain,
        timed_out: a.timed_out || (a.server.is_none() && !a.nxdomain),
        busybox: version,
        nameservers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_lines_restore_newlines() {
        let text = "noise\n@@ 10.0.0.2 1422 PING x|2 packets transmitted, 2 packets received, 0% packet loss|\n";
        let t = parse_tagged(text, 2);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, ["10.0.0.2", "1422"]);
        assert!(t[0].1.ends_with("0% packet loss\n"), "{:?}", t[0].1);
    }

    fn flow(src: &str, dst: &str, packets: u64) -> labctl_nodeplan::report::Flow {
        labctl_nodeplan::report::Flow {
            outer_src: "192.168.71.2".parse().unwrap(),
            outer_dst: "192.168.71.3".parse().unwrap(),
            inner_src: src.parse().unwrap(),
            inner_dst: dst.parse().unwrap(),
            inner_protocol: 1,
            packets,
        }
    }

    #[test]
    fn vxlan_output_capture_flows_and_recent_kernel_log() {
        let report = CaptureReport {
            report_version: 1,
            command: "capture".into(),
            node: "worker1".into(),
            interface: "eth1".into(),
            port: 8472,
            vni: 1,
            seconds: 4.0,
            packets: 6,
            other_vni: 0,
            flows: vec![flow("10.71.1.2", "10.71.2.2", 3)],
        };
        let got = NodeCapture {
            route: None,
            outcome: CaptureOutcome::Vxlan { report },
            kernel_log: Some(KernelLog {
                uptime: 1000.5,
                lines: vec!["[  100.0] old line".into(), "[  900.0] recent line".into()],
            }),
        };
        let o = vxlan_node_output("worker1", &got);
        assert_eq!(o.capture_error, None);
        let c = o.capture.unwrap();
        assert_eq!(
            (c.node.as_str(), c.interface.as_str(), c.packets),
            ("worker1", "eth1", 6)
        );
        let (n, outer) = c.flow_packets("10.71.1.2".parse().unwrap(), "10.71.2.2".parse().unwrap());
        assert_eq!((n, outer), (3, vec!["192.168.71.2".parse().unwrap()]));
        assert_eq!(
            c.flow_packets("10.71.2.2".parse().unwrap(), "10.71.1.2".parse().unwrap())
                .0,
            0
        );
        assert_eq!(o.kernel_log, "[  900.0] recent line\n");
        let failed = NodeCapture {
            route: None,
            outcome: CaptureOutcome::Failed {
                error: "no underlay".into(),
            },
            kernel_log: None,
        };
        let failed = vxlan_node_output("worker1", &failed);
        assert!(failed.capture.is_none());
        assert_eq!(
            failed.capture_error.as_deref(),
            Some("`labctl-agent capture` on node worker1: no underlay")
        );
        assert_eq!(failed.kernel_log, "");
    }
}
