//! `--check throughput` (opt-in): the price of VXLAN, measured. A short
//! TCP transfer pod to pod across two nodes (through flannel.1), then node
//! to node on the underlay between the same two nodes, in the same run, one
//! after the other so they do not compete; the result is both rates and
//! their ratio (the kernel's VXLAN path allows about 0.8). iperf3 where
//! both nodes have it, else the agent's own `transfer`. When the ratio is
//! far below, the node facts read alongside name a likely cause: offloads
//! switched off (`ethtool -k`), or MTUs that make packets fragment.
//!
//! Runs over the sessions verify already holds ([`super::fanout::on_nodes`]);
//! the scripts are constant, lab values travel as their arguments.

use std::time::Instant;

use serde::Serialize;

use crate::ssh::Session;
use crate::verify::evidence::PodView;
use crate::verify::model::{CheckId, CheckResult, LabView, Outcome};

/// Seconds each transfer runs.
const SECONDS: &str = "2";
/// The port both transfers use (iperf3's own).
const PORT: &str = "5201";
/// Below this ratio verify names a cause (VXLAN alone costs ~20 %).
pub const FAR_BELOW: f64 = 0.6;

/// Whether the node has iperf3; its underlay and VXLAN devices' offloads
/// (`ethtool -k` lines that are off) and MTUs. `$1` underlay IP, `$2`
/// VXLAN device, `$3` pod namespace.
const FACTS_SCRIPT: &str = r#"ip=$1; vx=$2; ns=$3
command -v iperf3 >/dev/null 2>&1 && echo '@iperf3'
dev=$(ip -o -4 addr show | while read -r _ d _ a _; do [ "${a%/*}" = "$ip" ] && echo "$d"; done | head -n 1)
for d in "$dev" "$vx"; do
  [ -n "$d" ] || continue
  read -r m < "/sys/class/net/$d/mtu" && printf '@mtu %s %s\n' "$d" "$m"
  if command -v ethtool >/dev/null 2>&1; then
    ethtool -k "$d" 2>/dev/null | while IFS=: read -r k v; do
      case "$k" in
        tx-checksumming|scatter-gather|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload)
          case "$v" in *off*) printf '@off %s %s\n' "$d" "$k";; esac;;
      esac
    done
  fi
done
[ -n "$ns" ] && printf '@mtu pod-eth0 %s\n' "$(ip -n "$ns" -o link show eth0 2>/dev/null | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
true"#;

/// One end of a transfer: `$1` tool (iperf3|agent), `$2` listen|send, `$3`
/// namespace (empty: the node's own), `$4` address, `$5` port, `$6`
/// seconds, `$7` the agent. Prints the tool's JSON report.
const TRANSFER_SCRIPT: &str = r#"tool=$1; role=$2; ns=$3; addr=$4; port=$5; secs=$6; agent=$7
in_ns() { if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }
limit=$((secs + 10))
case "$tool:$role" in
  iperf3:listen) in_ns timeout "$limit" iperf3 -s -1 -B "$addr" -p "$port" >/dev/null 2>&1; exit 0;;
  iperf3:send) i=0
    while [ "$i" -lt 50 ]; do
      # iperf3 -J may exit 0 with an "error" (the server not up yet).
      out=$(in_ns iperf3 -c "$addr" -p "$port" -t "$secs" -J 2>&1) &&
        case "$out" in *'"error"'*) ;; *) printf '%s\n' "$out"; exit 0;; esac
      sleep 0.1; i=$((i + 1))
    done
    printf '%s\n' "$out" >&2; exit 1;;
  agent:listen) exec "$agent" ${ns:+--netns "$ns"} transfer listen "$addr" "$port" --seconds "$secs";;
  agent:send) exec "$agent" ${ns:+--netns "$ns"} transfer send "$addr" "$port" --seconds "$secs";;
esac
echo "unknown tool or role $tool:$role" >&2; exit 2"#;

/// What the check measured (the check's JSON evidence).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Throughput {
    pub tool: String,
    pub from: String,
    pub to: String,
    /// Pod to pod across the two nodes, bits per second.
    pub pod_bits_per_second: f64,
    /// Node to node on the underlay, bits per second.
    pub underlay_bits_per_second: f64,
    /// pod ÷ underlay.
    pub ratio: f64,
    /// When the ratio is far below 0.8: the likely cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A node's facts from [`FACTS_SCRIPT`].
#[derive(Debug, Default)]
struct Facts {
    iperf3: bool,
    mtus: Vec<(String, u32)>,
    offloads_off: Vec<String>,
}

fn parse_facts(text: &str) -> Facts {
    let mut f = Facts::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("@iperf3") => f.iperf3 = true,
            Some("@mtu") => {
                if let (Some(d), Some(Ok(m))) = (w.next(), w.next().map(str::parse)) {
                    f.mtus.push((d.to_string(), m));
                }
            }
            Some("@off") => f.offloads_off.push(w.collect::<Vec<_>>().join(" ")),
            _ => {}
        }
    }
    f
}

/// The rate a report shows: iperf3's received sum (client side), or the
/// agent's `bitsPerSecond`.
pub fn parse_rate(text: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    v.pointer("/end/sum_received/bits_per_second")
        .or_else(|| v.get("bitsPerSecond"))
        .and_then(serde_json::Value::as_f64)
        .filter(|r| *r > 0.0)
}

/// A likely cause of a low ratio from both nodes' facts.
fn cause(view: &LabView, facts: &[&Facts]) -> Option<String> {
    let off: Vec<&String> = facts.iter().flat_map(|f| &f.offloads_off).collect();
    if !off.is_empty() {
        let list: Vec<&str> = off.iter().map(|s| s.as_str()).collect();
        return Some(format!(
            "offloads are off ({}): the kernel checksums and segments every packet in software; turn them on with `ethtool -K DEVICE tx on sg on tso on gso on`",
            list.join(", ")
        ));
    }
    for f in facts {
        let mtu = |d: &str| f.mtus.iter().find(|(n, _)| n == d).map(|(_, m)| *m);
        let (Some(vx), Some(pod)) = (mtu(&view.vxlan_device), mtu("pod-eth0")) else {
            continue;
        };
        let underlay = f
            .mtus
            .iter()
            .find(|(n, _)| n != &view.vxlan_device && n != "pod-eth0")
            .map(|(_, m)| *m);
        if pod > vx || underlay.is_some_and(|u| vx + 50 > u) {
            return Some(format!(
                "MTU mismatch: pod eth0 {pod}, {} {vx}, underlay {}: packets bigger than the path fragment or are dropped and resent; the pod MTU must be the underlay's minus 50",
                view.vxlan_device,
                underlay.map_or("?".into(), |u| u.to_string())
            ));
        }
    }
    None
}

/// Runs the check between the first two nodes with a usable pod and a
/// session.
pub fn check(sessions: &mut [Option<Session>], view: &LabView, pods: &[PodView]) -> CheckResult {
    let started = Instant::now();
    let usable = |i: usize| -> Option<(String, std::net::Ipv4Addr)> {
        let node = &view.nodes.get(i)?.name;
        let p = pods
            .iter()
            .find(|p| &p.node == node && p.problem.is_none())?;
        Some((p.namespace.clone()?, p.ip?))
    };
    let ends: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| sessions.get(i).is_some_and(Option::is_some) && usable(i).is_some())
        .take(2)
        .collect();
    let (Some(&a), Some(&b)) = (ends.first(), ends.get(1)) else {
        return CheckResult::skip(
            CheckId::Throughput,
            "needs two nodes with a running pod reachable over SSH",
        );
    };
    let (Some((a_ns, _)), Some((b_ns, b_pod))) = (usable(a), usable(b)) else {
        return CheckResult::skip(CheckId::Throughput, "the pods went away");
    };
    let facts: Vec<Option<Facts>> = super::fanout::on_nodes(sessions, |i, s| {
        if i != a && i != b {
            return None;
        }
        let ip = view.nodes[i].underlay_ip.to_string();
        let ns = if i == a { &a_ns } else { &b_ns };
        let argv = ["sh", "-c", FACTS_SCRIPT, "sh", &ip, &view.vxlan_device, ns];
        Some(parse_facts(&s.run(&argv, None).ok()?.stdout_text()))
    })
    .into_iter()
    .map(Option::flatten)
    .collect();
    let both: Vec<&Facts> = [a, b].iter().filter_map(|&i| facts[i].as_ref()).collect();
    let tool = if both.len() == 2 && both.iter().all(|f| f.iperf3) {
        "iperf3"
    } else {
        "agent"
    };
    let b_ip = view.nodes[b].underlay_ip.to_string();
    let pod = transfer(sessions, a, b, tool, (&a_ns, &b_ns), &b_pod.to_string());
    let underlay = transfer(sessions, a, b, tool, ("", ""), &b_ip);
    let (from, to) = (view.nodes[a].name.clone(), view.nodes[b].name.clone());
    let tool_name = if tool == "iperf3" {
        "iperf3"
    } else {
        "labctl-agent transfer"
    };
    let (pod_bps, underlay_bps) = match (pod, underlay) {
        (Ok(p), Ok(u)) => (p, u),
        (p, u) => {
            let mut r = CheckResult::new(
                CheckId::Throughput,
                Outcome::Fail,
                format!("a transfer from {from} to {to} failed ({tool_name})"),
            );
            for (what, e) in [("pod to pod", p.err()), ("underlay", u.err())] {
                if let Some(e) = e {
                    r.details.push(format!("{what}: {e}"));
                }
            }
            return r.timed(started);
        }
    };
    let ratio = pod_bps / underlay_bps;
    let found = (ratio < FAR_BELOW).then(|| cause(view, &both)).flatten();
    let gbit = |r: f64| format!("{:.2} Gbit/s", r / 1e9);
    let mut r = CheckResult::new(
        CheckId::Throughput,
        Outcome::Pass,
        format!(
            "pod to pod {} vs underlay {}: ratio {ratio:.2} ({from} → {to}, {tool_name}, {SECONDS} s each)",
            gbit(pod_bps),
            gbit(underlay_bps)
        ),
    );
    if ratio < FAR_BELOW {
        r.details.push(format!(
            "the ratio is far below the ~0.8 the kernel's VXLAN path allows; likely cause: {}",
            found.clone().unwrap_or_else(|| {
                "none found in offloads or MTUs (a busy host also lowers it)".into()
            })
        ));
    }
    let evidence = Throughput {
        tool: tool_name.into(),
        from,
        to,
        pod_bits_per_second: pod_bps,
        underlay_bits_per_second: underlay_bps,
        ratio,
        cause: found,
    };
    r.evidence = serde_json::to_value(&evidence).unwrap_or_default();
    r.timed(started)
}

/// One transfer from node `a` to node `b` (listener on `b` at `address`),
/// both ends at once over their sessions; the measured rate.
fn transfer(
    sessions: &mut [Option<Session>],
    a: usize,
    b: usize,
    tool: &str,
    (a_ns, b_ns): (&str, &str),
    address: &str,
) -> Result<f64, String> {
    let agent = crate::nodes::AGENT_PATH;
    let ends = super::fanout::on_nodes(sessions, |i, s| {
        let (role, ns) = match i {
            i if i == a => ("send", a_ns),
            i if i == b => ("listen", b_ns),
            _ => return None,
        };
        let argv = [
            "sh",
            "-c",
            TRANSFER_SCRIPT,
            "sh",
            tool,
            role,
            ns,
            address,
            PORT,
            SECONDS,
            agent,
        ];
        Some(s.run(&argv, None).map_err(|e| e.to_string()))
    });
    let end = |i: usize| -> Result<String, String> {
        let out = ends
            .get(i)
            .cloned()
            .flatten()
            .flatten()
            .ok_or("no session")??;
        if out.success() {
            Ok(out.stdout_text())
        } else {
            Err(format!(
                "exit status {}: {}",
                out.status,
                out.stderr_text().trim()
            ))
        }
    };
    // iperf3 reports at the sender, the agent at the listener.
    let report = if tool == "iperf3" { end(a)? } else { end(b)? };
    end(if tool == "iperf3" { b } else { a })?;
    parse_rate(&report).ok_or_else(|| format!("no rate in the report: {}", report.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_iperf3_and_the_agent() {
        let iperf = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":9.9e9},"sum_received":{"bits_per_second":9.8e9}}}"#;
        assert_eq!(parse_rate(iperf), Some(9.8e9));
        let agent = r#"{"reportVersion":1,"command":"transfer","node":"n","role":"listen","peer":"1.2.3.4:5","bytes":10,"seconds":1.0,"bitsPerSecond":80.0}"#;
        assert_eq!(parse_rate(agent), Some(80.0));
        assert_eq!(parse_rate("iperf3: error - unable to connect"), None);
    }

    #[test]
    fn facts_name_offloads_and_mtus() {
        let f = parse_facts("@iperf3\n@mtu eth1 1500\n@off eth1 tx-checksumming\n@mtu flannel.1 1450\n@mtu pod-eth0 1500\n");
        assert!(f.iperf3);
        assert_eq!(f.offloads_off, ["eth1 tx-checksumming"]);
        assert_eq!(f.mtus.len(), 3);
    }
}
