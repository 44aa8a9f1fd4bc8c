//! Pod-side pings through the node's agent: `labctl-agent --netns POD
//! ping ... TARGET...` pings every target at once from the pod's network
//! namespace and prints a typed [`PingReport`]; one run per pod and probe
//! instead of a `ping` process per pair. An agent older than this labctl
//! (no `ping`) is named with the fix (`labctl up` uploads the agent).

use std::net::Ipv4Addr;

use labctl_nodeplan::probe::{PingReport, PingResult};
use labctl_nodeplan::report::decode;

use crate::verify::evidence::{MtuProbe, PingCell};
use crate::verify::target::AGENT_PATH;

/// How a pod-side ping is sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ping {
    pub count: u32,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    /// Bytes of payload (the agent's default, 56, when `None`).
    pub payload: Option<u32>,
    pub dont_fragment: bool,
    /// Rounds after the first go only to targets still silent (the agent's
    /// `--until-answered`): a retry, not a second load.
    pub until_answered: bool,
}

/// The mesh's pings: one echo per pair, a second only to a pod still
/// silent after the interval (a healthy mesh ends as soon as every reply
/// is in, having sent one echo per pair).
pub(crate) const MESH: Ping = Ping {
    count: 2,
    interval_ms: MESH_RETRY_MS,
    timeout_ms: 1000,
    payload: None,
    dont_fragment: false,
    until_answered: true,
};

/// How long a mesh ping waits for its first answer before asking again.
const MESH_RETRY_MS: u32 = 250;

/// The pings that cross a tunnel while the agents capture (vxlan, egress):
/// three, quickly.
pub(crate) const CAPTURED: Ping = Ping {
    count: 3,
    interval_ms: 20,
    timeout_ms: 1000,
    payload: None,
    dont_fragment: false,
    until_answered: false,
};

/// The `mtu` check's don't-fragment pings of `payload` bytes.
pub(crate) fn dont_fragment(payload: u32) -> Ping {
    Ping {
        count: 2,
        interval_ms: 20,
        timeout_ms: 600,
        payload: Some(payload),
        dont_fragment: true,
        until_answered: true,
    }
}

impl Ping {
    /// The agent's command line from pod namespace `ns` (from the node
    /// itself when `None`) to `targets`.
    pub(crate) fn argv(&self, ns: Option<&str>, targets: &[String]) -> Vec<String> {
        let mut argv = vec![AGENT_PATH.to_string()];
        if let Some(ns) = ns {
            argv.extend(["--netns".to_string(), ns.to_string()]);
        }
        argv.extend(["ping".to_string(), "--count".to_string()]);
        argv.push(self.count.to_string());
        argv.push("--interval-ms".into());
        argv.push(self.interval_ms.to_string());
        argv.push("--timeout-ms".into());
        argv.push(self.timeout_ms.to_string());
        if self.dont_fragment {
            argv.push("--dont-fragment".into());
        }
        if self.until_answered {
            argv.push("--until-answered".into());
        }
        if let Some(payload) = self.payload {
            argv.extend(["--payload".to_string(), payload.to_string()]);
        }
        argv.extend(targets.iter().cloned());
        argv
    }
}

/// The agent's ping report from its exit status and output, or why not.
pub(crate) fn read_report(
    node: &str,
    status: i32,
    stdout: &str,
    stderr: &str,
) -> Result<PingReport, String> {
    if let Some(why) = crate::verify::parse::older_agent("ping", status, stderr) {
        return Err(format!("{node}: {why}"));
    }
    if status != 0 {
        return Err(format!(
            "{node}: `labctl-agent ping` exited {status}: {}",
            stderr.trim()
        ));
    }
    decode::<PingReport>(node, stdout).map_err(|e| e.to_string())
}

/// The mesh cell of `from`'s pod pinging `to`'s pod at `to_ip`, from the
/// sender's report (or the error that stood in for it).
pub(crate) fn cell(
    from: &str,
    to: &str,
    to_ip: Ipv4Addr,
    report: &Result<PingReport, String>,
) -> PingCell {
    let mut cell = PingCell {
        from: from.to_string(),
        to: to.to_string(),
        to_ip,
        sent: 0,
        received: 0,
        rtt_avg_ms: None,
        error: None,
    };
    match report.as_ref().map(|r| r.result(to_ip)) {
        Ok(Some(r)) => {
            cell.sent = r.sent;
            cell.received = r.received;
            cell.rtt_avg_ms = r.rtt_avg_ms;
            cell.error = r
                .error
                .clone()
                .or_else(|| (r.received == 0).then(|| "no answer".to_string()));
        }
        Ok(None) => cell.error = Some("not in the agent's report".into()),
        Err(e) => cell.error = Some(e.clone()),
    }
    cell
}

/// One `mtu` probe from `from`'s DF pings of `fits` and `fits + 1` bytes
/// to `target`: the first must be answered, the second must not.
pub(crate) fn mtu_probe(
    (from, to, target): (&str, &str, Ipv4Addr),
    fits: u32,
    fit: &Result<PingReport, String>,
    over: &Result<PingReport, String>,
) -> MtuProbe {
    let outcome = |r: &Result<PingReport, String>| -> (u32, Option<String>) {
        match r.as_ref().map(|r| r.result(target)) {
            Ok(Some(PingResult {
                received, error, ..
            })) => (*received, error.clone()),
            Ok(None) => (0, Some("not in the agent's report".into())),
            Err(e) => (0, Some(e.clone())),
        }
    };
    let ((f, fe), (o, oe)) = (outcome(fit), outcome(over));
    let mut detail = Vec::new();
    if f == 0 {
        detail.push(format!(
            "{fits} bytes: {}",
            fe.unwrap_or_else(|| "no answer".into())
        ));
    }
    if o == 0 {
        detail.push(format!(
            "{} bytes: {}",
            fits + 1,
            oe.unwrap_or_else(|| "no answer".into())
        ));
    }
    MtuProbe {
        from: from.to_string(),
        to: to.to_string(),
        payload: fits,
        fits_passed: f > 0,
        over_failed: o == 0,
        detail: detail.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_agent_is_named_with_the_fix() {
        let e = read_report(
            "w1",
            2,
            "",
            "labctl-agent: unknown command \"ping 10.0.0.1\"\nusage",
        )
        .unwrap_err();
        assert!(e.starts_with("w1: ") && e.contains("labctl up"), "{e}");
        let e = read_report("w1", 3, "", "labctl-agent: cannot enter namespace x\n").unwrap_err();
        assert_eq!(
            e,
            "w1: `labctl-agent ping` exited 3: labctl-agent: cannot enter namespace x"
        );
    }

    #[test]
    fn cells_and_mtu_probes_come_from_the_report() {
        let ip = Ipv4Addr::new(10, 244, 1, 2);
        let text = r#"{"reportVersion":1,"command":"ping","node":"cp","count":2,"payload":56,"dontFragment":false,
            "targets":[{"target":"10.244.1.2","sent":2,"received":0,"error":"host unreachable (from 10.244.0.1)"}]}"#;
        let report = read_report("cp", 0, text, "");
        let c = cell("cp", "w1", ip, &report);
        assert_eq!((c.sent, c.received), (2, 0));
        assert_eq!(
            c.error.as_deref(),
            Some("host unreachable (from 10.244.0.1)")
        );
        let c = cell("cp", "w2", Ipv4Addr::new(10, 244, 2, 2), &report);
        assert_eq!(c.error.as_deref(), Some("not in the agent's report"));

        let ok = text.replace("\"received\":0", "\"received\":2");
        let fit = read_report("cp", 0, &ok, "");
        let p = mtu_probe(("cp", "w1", ip), 1422, &fit, &report);
        assert!(p.fits_passed && p.over_failed, "{p:?}");
        assert_eq!(p.detail, "1423 bytes: host unreachable (from 10.244.0.1)");
        let p = mtu_probe(("cp", "w1", ip), 1422, &fit, &fit);
        assert!(
            p.fits_passed && !p.over_failed && p.detail.is_empty(),
            "{p:?}"
        );
    }
}
