//! Parsers for what probes print: ping summaries (busybox and iputils),
//! nslookup answers (busybox 1.28 and newer layouts: addresses are parsed,
//! not the layout), `iptables -S` and kernel log lines; and the agent's
//! `check` report, decoded as its shared type. Pure functions, unit-tested
//! against recorded outputs.

use std::net::Ipv4Addr;

use labctl_nodeplan::report::{CheckReport, Difference, State};
use serde::Serialize;

/// The statistics block of a ping run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
    pub loss_percent: f64,
    pub rtt_min_ms: Option<f64>,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
}

/// The lines of a kernel log (`dmesg`) from the last ten minutes before
/// `uptime` (seconds since boot); lines without a time stamp are kept.
pub fn recent_kernel_lines<'a>(lines: impl IntoIterator<Item = &'a str>, uptime: f64) -> String {
    lines
        .into_iter()
        .filter(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(t, _)| t.trim().parse::<f64>().ok())
                .is_none_or(|t| uptime - t < 600.0)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Why a `labctl-agent COMMAND` that exited `status` with `stderr` ran
/// nothing, when the agent is older than this labctl (it does not know
/// `command`), with the fix; `None` otherwise.
pub fn older_agent(command: &str, status: i32, stderr: &str) -> Option<String> {
    (status == 2 && stderr.contains(&format!("unknown command \"{command}"))).then(|| {
        format!(
            "its labctl-agent has no `{command}` (it is older than this labctl): run `labctl up` to update it"
        )
    })
}

/// The last three non-empty lines of a command's output, joined by ` | `
/// (where an error usually is), or `no output`.
pub fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no output".to_string()
    } else {
        tail.join(" | ")
    }
}

/// Reads `N packets transmitted, M [packets] received, X% packet loss` and
/// the `round-trip`/`rtt min/avg/max[/mdev] = a/b/c[/d] ms` line.
pub fn parse_ping_summary(text: &str) -> Option<PingSummary> {
    let mut summary: Option<PingSummary> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.contains("transmitted") && line.contains("received") {
            let mut transmitted: Option<u32> = None;
            let mut received: Option<u32> = None;
            let mut loss: Option<f64> = None;
            for part in line.split(',') {
                let part = part.trim();
                let number = part.split_whitespace().next().unwrap_or("");
                if part.ends_with("transmitted") {
                    transmitted = number.parse().ok();
                } else if part.ends_with("received") {
                    received = number.parse().ok();
                } else if part.ends_with("packet loss") {
                    loss = number.trim_end_matches('%').parse().ok();
                }
            }
            let (transmitted, received) = (transmitted?, received?);
            let loss_percent = loss.unwrap_or_else(|| {
                if transmitted == 0 {
                    100.0
                } else {
                    100.0 * f64::from(transmitted - received.min(transmitted))
                        / f64::from(transmitted)
                }
            });
            summary = Some(PingSummary {
                transmitted,
                received,
                loss_percent,
                rtt_min_ms: None,
                rtt_avg_ms: None,
                rtt_max_ms: None,
            });
        } else if line.starts_with("round-trip") || line.starts_with("rtt ") {
            if let (Some(s), Some((_, values))) = (summary.as_mut(), line.split_once('=')) {
                let values = values.trim().trim_end_matches("ms").trim();
                let numbers: Vec<f64> = values
                    .split('/')
                    .filter_map(|v| v.trim().parse().ok())
                    .collect();
                if numbers.len() >= 3 {
                    s.rtt_min_ms = Some(numbers[0]);
                    s.rtt_avg_ms = Some(numbers[1]);
                    s.rtt_max_ms = Some(numbers[2]);
                }
            }
        }
    }
    summary
}

/// What an nslookup run answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NslookupAnswer {
    /// The server that answered (the `Server:` section).
    pub server: Option<Ipv4Addr>,
    /// The addresses given for the name asked (the answer section).
    pub addresses: Vec<Ipv4Addr>,
    /// The server said the name does not exist (NXDOMAIN / can't resolve).
    pub nxdomain: bool,
    /// No server answered at all.
    pub timed_out: bool,
}

/// The first IPv4 address in a token such as `10.96.0.10`, `10.96.0.10:53`
/// or `10.96.0.10#53`.
fn ipv4_in(token: &str) -> Option<Ipv4Addr> {
    let token =
        token.trim_matches(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':' || c == '#'));
    let host = token.split([':', '#']).next()?;
    host.parse().ok()
}

/// Parses busybox (1.28 and newer) and bind-style nslookup output. The
/// server is the first address after `Server:`; the answer is every IPv4
/// address after the first `Name:` line.
pub fn parse_nslookup(text: &str) -> NslookupAnswer {
    let mut answer = NslookupAnswer::default();
    let mut in_answer = false;
    for line in text.lines() {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.contains("nxdomain")
            || lower.contains("can't resolve")
            || lower.contains("can't find")
        {
            answer.nxdomain = true;
        }
        if lower.contains("timed out") || lower.contains("no servers could be reached") {
            answer.timed_out = true;
        }
        if lower.starts_with("name:") {
            in_answer = true;
            continue;
        }
        if lower.starts_with("server:") {
            answer.server = trimmed.split_whitespace().skip(1).find_map(ipv4_in);
            continue;
        }
        if lower.starts_with("address") {
            let ip = trimmed
                .split_once(':')
                .and_then(|(_, rest)| rest.split_whitespace().find_map(ipv4_in));
            if in_answer {
                answer.addresses.extend(ip);
            } else if answer.server.is_none() {
                answer.server = ip;
            }
        }
    }
    // A failed lookup can still print "Name:" lines; an NXDOMAIN answer has
    // no addresses by definition.
    if answer.nxdomain && !answer.addresses.is_empty() {
        answer.nxdomain = false;
    }
    answer.addresses.dedup();
    answer
}

/// `BusyBox v1.35.0 (...) multi-call binary.` → (1, 35, 0).
pub fn parse_busybox_version(text: &str) -> Option<(u32, u32, u32)> {
    let at = text.find("BusyBox v")? + "BusyBox v".len();
    let version: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// One difference the agent's `check` reported on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub node: String,
    #[serde(flatten)]
    pub difference: Difference,
}

impl Drift {
    /// `node: object: expected X, actual Y`, for evidence lines.
    pub fn line(&self) -> String {
        let d = &self.difference;
        let show = |v: &Option<State>| v.as_ref().map_or("(absent)".to_string(), State::to_string);
        format!(
            "{}: {}: expected {}, actual {}",
            self.node,
            d.object,
            show(&d.expected),
            show(&d.actual)
        )
    }
}

/// The differences of `node`'s check report.
pub fn drift_of(node: &str, report: CheckReport) -> Vec<Drift> {
    report
        .differences
        .into_iter()
        .map(|difference| Drift {
            node: node.to_string(),
            difference,
        })
        .collect()
}

/// What `iptables -S FORWARD` and `iptables -S INPUT` say about a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FirewallFacts {
    /// `-P FORWARD DROP` → "DROP".
    pub forward_policy: Option<String>,
    /// Whether FORWARD jumps to FLANNEL-FWD.
    pub forward_jump: bool,
    /// INPUT (or FORWARD) rules that drop or reject UDP to the VXLAN port.
    pub vxlan_blocking_rules: Vec<String>,
}

/// Reads `iptables -S` output (any chains) for the facts diagnosis needs.
pub fn parse_iptables(text: &str, vxlan_port: u16) -> FirewallFacts {
    let mut facts = FirewallFacts::default();
    let port = format!("--dport {vxlan_port}");
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 3 && words[0] == "-P" && words[1] == "FORWARD" {
            facts.forward_policy = Some(words[2].to_string());
        }
        if line.starts_with("-A FORWARD") && line.contains("-j FLANNEL-FWD") {
            facts.forward_jump = true;
        }
        let drops = line.ends_with("-j DROP") || line.contains("-j REJECT");
        if line.starts_with("-A ") && drops && line.contains("udp") && line.contains(&port) {
            facts.vxlan_blocking_rules.push(line.to_string());
        }
    }
    facts
}

/// A kernel log line saying a VXLAN packet had a bad UDP checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadChecksum {
    pub line: String,
    pub from: Option<Ipv4Addr>,
    pub to: Option<Ipv4Addr>,
}

/// Picks `UDP: bad checksum. From A:p to B:8472 ulen N` lines for the port.
pub fn parse_bad_checksums(kernel_log: &str, vxlan_port: u16) -> Vec<BadChecksum> {
    let port = format!(":{vxlan_port}");
    kernel_log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("bad checksum") && l.contains(&port))
        .map(|l| {
            let ips: Vec<Ipv4Addr> = l.split_whitespace().filter_map(ipv4_in).collect();
            BadChecksum {
                line: l.trim().to_string(),
                from: ips.first().copied(),
                to: ips.get(1).copied(),
            }
        })
        .collect()
}

/// Kernel log lines saying the neighbour table is full (older kernels
/// spell it "neighbour", newer "neighbor": `neighbour: arp_cache: neighbor
/// table overflow!`).
pub fn parse_neighbour_overflow(kernel_log: &str) -> Vec<String> {
    kernel_log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("neighbour table overflow") || l.contains("neighbor table overflow")
        })
        .map(|l| l.trim().to_string())
        .collect()
}

/// The `table_fulls` counter of /proc/net/stat/arp_cache, summed over the
/// per-CPU rows (hexadecimal columns under a header line).
pub fn parse_arp_table_fulls(stat: &str) -> Option<u64> {
    let mut lines = stat.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let column = header.iter().position(|h| *h == "table_fulls")?;
    let mut total = 0u64;
    for line in lines {
        let field = line.split_whitespace().nth(column)?;
        total += u64::from_str_radix(field, 16).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use labctl_nodeplan::report;

    #[test]
    fn neighbour_overflow_lines_and_table_fulls() {
        let log = "[ 3434.184515] neighbour: arp_cache: neighbor table overflow!\n[ 1.0] eth0: link up\n[ 2.0] Neighbour table overflow.\n";
        assert_eq!(parse_neighbour_overflow(log).len(), 2);
        let stat = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
00001106 0000db1c 0000c895 00000003   0003db66 00017fa6 0000000f   00000000         00000000         00000000         00002aab       00000000            00000010\n\
00001106 0000f3d4 0000f555 00000008   00027817 0000abe2 00000025   00000000         00000000         000000e5         0000256d       00000000            00000002\n";
        assert_eq!(parse_arp_table_fulls(stat), Some(18));
        assert_eq!(parse_arp_table_fulls("nonsense"), None);
    }

    #[test]
    fn busybox_ping_summary() {
        let out = "PING 10.244.1.2 (10.244.1.2): 56 data bytes\n64 bytes from 10.244.1.2: seq=0 ttl=62 time=0.101 ms\n\n--- 10.244.1.2 ping statistics ---\n3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max = 0.061/0.077/0.101 ms\n";
        let s = parse_ping_summary(out).unwrap();
        assert_eq!((s.transmitted, s.received), (3, 3));
        assert_eq!(s.loss_percent, 0.0);
        assert_eq!(s.rtt_avg_ms, Some(0.077));
        assert_eq!(s.rtt_max_ms, Some(0.101));
    }

    #[test]
    fn iputils_ping_summary_with_loss() {
        let out = "--- 10.244.2.2 ping statistics ---\n4 packets transmitted, 2 received, +2 errors, 50% packet loss, time 3004ms\nrtt min/avg/max/mdev = 0.045/0.052/0.060/0.006 ms\n";
        let s = parse_ping_summary(out).unwrap();
        assert_eq!((s.transmitted, s.received), (4, 2));
        assert_eq!(s.loss_percent, 50.0);
        assert_eq!(s.rtt_min_ms, Some(0.045));
        let dead = "2 packets transmitted, 0 packets received, 100% packet loss\n";
        let s = parse_ping_summary(dead).unwrap();
        assert_eq!(s.loss_percent, 100.0);
        assert_eq!(s.rtt_avg_ms, None);
        assert!(parse_ping_summary("ping: sendto: Network unreachable").is_none());
    }

    #[test]
    fn nslookup_busybox_128_layout() {
        let out = "Server:    10.96.0.10\nAddress 1: 10.96.0.10 kube-dns.kube-system.svc.cluster.local\n\nName:      kubernetes.default\nAddress 1: 10.96.0.1 kubernetes.default.svc.cluster.local\n";
        let a = parse_nslookup(out);
        assert_eq!(a.server, Some("10.96.0.10".parse().unwrap()));
        assert_eq!(a.addresses, vec!["10.96.0.1".parse::<Ipv4Addr>().unwrap()]);
        assert!(!a.nxdomain);
    }

    #[test]
    fn nslookup_newer_busybox_layout_and_nxdomain() {
        let out = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n\n";
        let a = parse_nslookup(out);
        assert_eq!(a.server, Some("10.96.0.10".parse().unwrap()));
        assert_eq!(a.addresses, vec!["10.96.0.1".parse::<Ipv4Addr>().unwrap()]);
        let nx = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n** server can't find kubernetes.default: NXDOMAIN\n\n";
        let a = parse_nslookup(nx);
        assert!(a.nxdomain);
        assert!(a.addresses.is_empty());
        let old_fail = "Server:    10.96.0.10\nAddress 1: 10.96.0.10\n\nnslookup: can't resolve 'kubernetes.default'\n";
        assert!(parse_nslookup(old_fail).nxdomain);
        let timeout = ";; connection timed out; no servers could be reached\n";
        assert!(parse_nslookup(timeout).timed_out);
    }

    #[test]
    fn busybox_version() {
        assert_eq!(
            parse_busybox_version("BusyBox v1.35.0 (Debian 1:1.35.0-4) multi-call binary."),
            Some((1, 35, 0))
        );
        assert_eq!(
            parse_busybox_version("BusyBox v1.28.4 (2018-05-22 17:00:17 UTC)"),
            Some((1, 28, 4))
        );
        assert_eq!(parse_busybox_version("toybox"), None);
    }

    #[test]
    fn agent_check_reports_decode_as_typed_differences() {
        let text = r#"{"reportVersion": 1, "command": "check", "node": "worker1", "inSync": false,
            "differences": [
              {"kind": "route", "object": "route 10.244.2.0/24", "name": "10.244.2.0/24", "peer": "worker2",
               "expected": "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink", "actual": null},
              {"kind": "chain", "object": "iptables -t filter FLANNEL-FWD", "name": "FLANNEL-FWD", "table": "filter",
               "expected": ["-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT"], "actual": null}]}"#;
        let decoded = |node: &str, text: &str| -> Result<Vec<Drift>, String> {
            let r: CheckReport = report::decode(node, text).map_err(|e| e.to_string())?;
            Ok(drift_of(node, r))
        };
        let d = decoded("worker1", text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].node, "worker1");
        assert_eq!(d[0].difference.kind, report::ObjectKind::Route);
        assert_eq!(d[0].difference.peer.as_deref(), Some("worker2"));
        assert_eq!(d[0].difference.actual, None);
        assert_eq!(
            d[1].line(),
            "worker1: iptables -t filter FLANNEL-FWD: expected -A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT, actual (absent)"
        );
        // The old guessed layouts are refused, naming the node.
        let old = r#"{"node":"w","differences":[{"object":"flannel.1 mtu","expected":1450,"actual":1400}]}"#;
        let e = decoded("w", old).unwrap_err();
        assert!(
            e.starts_with("node w runs agent report version 0, labctl expects 1"),
            "{e}"
        );
        assert!(decoded("w", "").unwrap_err().contains("printed no report"));
        assert!(decoded("w", "oops").is_err());
        assert!(decoded("w", r#"[{"object":"route"}]"#).is_err());
    }

    #[test]
    fn iptables_facts() {
        let text = "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-A INPUT -p udp -m udp --dport 8472 -j DROP\n";
        let f = parse_iptables(text, 8472);
        assert_eq!(f.forward_policy.as_deref(), Some("DROP"));
        assert!(!f.forward_jump);
        assert_eq!(f.vxlan_blocking_rules.len(), 1);
        let ok = "-P FORWARD ACCEPT\n-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n";
        let f = parse_iptables(ok, 8472);
        assert!(f.forward_jump);
        assert!(f.vxlan_blocking_rules.is_empty());
    }

    #[test]
    fn kernel_log_bad_checksum() {
        let log = "[ 12.0] eth1: link up\n[ 99.1] UDP: bad checksum. From 192.168.56.11:51234 to 192.168.56.10:8472 ulen 106\n[ 99.2] UDP: bad checksum. From 1.2.3.4:53 to 5.6.7.8:4000 ulen 10\n";
        let b = parse_bad_checksums(log, 8472);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].from, Some("192.168.56.11".parse().unwrap()));
        assert_eq!(b[0].to, Some("192.168.56.10".parse().unwrap()));
    }
}
