//! Probes for network-only VM labs (ssh and vagrant providers,
//! `kubernetes: {enabled: false}`): the pods are network namespaces on the
//! remote nodes (`<lab>-<node>-busybox`), so every probe is a command run
//! over the node's one SSH session, all nodes at once. Each probe is a
//! constant `sh -c` script in this file; lab values (namespaces, addresses,
//! sizes) travel only as its quoted arguments, never inside the script.
//! The judging and the diagnosis are the same as for netns labs.

use std::net::Ipv4Addr;
use std::time::Instant;

use labctl_nodeplan::NodePlan;

use super::evidence::{DnsProbe, Evidence, LinkMtu, MtuProbe, PingCell, PingMatrix, VxlanPair};
use super::model::{CheckId, CheckResult, LabView, PodView, Report};
use super::parse::{self, PingSummary};
use super::target::{self, Target, AGENT_PATH};
use super::{assemble, checks, pool};
use crate::ssh::Session;

/// Pings every target (`$2…`) from pod namespace `$1` at once, one line
/// `@@ IP OUTPUT` per target (the output's newlines turned into `|`).
const MESH_SCRIPT: &str = r#"ns=$1; shift
for ip in "$@"; do
  ( out=$(ip netns exec "$ns" busybox ping -c 2 -W 1 -q "$ip" 2>&1)
    printf '@@ %s %s\n' "$ip" "$(printf '%s' "$out" | tr '\n' '|')" ) &
done
wait"#;

/// DF pings of `$2` and `$2`+1 bytes from pod `$1` to each target
/// (`$4…`) with iputils ping (busybox ping cannot set don't-fragment);
/// `@tool none` when the node has no iputils ping. Then the MTUs of the
/// VXLAN device `$3`, cni0 and the pod's eth0 as `@mtu DEVICE VALUE`.
const MTU_SCRIPT: &str = r#"ns=$1; size=$2; dev=$3; shift 3
for d in "$dev" cni0; do
  [ -r "/sys/class/net/$d/mtu" ] && printf '@mtu %s %s\n' "$d" "$(cat "/sys/class/net/$d/mtu")"
done
printf '@mtu eth0 %s\n' "$(ip netns exec "$ns" cat /sys/class/net/eth0/mtu 2>/dev/null)"
if ip netns exec "$ns" ping -V >/dev/null 2>&1; then echo '@tool iputils'; else echo '@tool none'; exit 0; fi
for ip in "$@"; do
  for s in "$size" $((size + 1)); do
    ( out=$(ip netns exec "$ns" ping -M do -s "$s" -c 2 -i 0.2 -W 1 -q "$ip" 2>&1)
      printf '@@ %s %s %s\n' "$ip" "$s" "$(printf '%s' "$out" | tr '\n' '|')" ) &
  done
done
wait"#;

/// `busybox nslookup kubernetes.default` in pod `$1` (through the pod's
/// resolv.conf, i.e. the cluster DNS service IP), after the node's busybox
/// version line.
const DNS_SCRIPT: &str = r#"ns=$1
printf '@version %s\n' "$(busybox 2>/dev/null | head -n 1)"
t=; command -v timeout >/dev/null 2>&1 && t="timeout 10"
$t ip netns exec "$ns" busybox nslookup kubernetes.default 2>&1"#;

/// Captures with the agent (`$1`, plan on stdin) for `$3` seconds while pod
/// `$2` pings `$4` (when given); prints `@ping`, `@capture STATUS JSON`,
/// `@uptime` and the kernel log's tail.
pub(super) const VXLAN_SCRIPT: &str = r#"agent=$1; ns=$2; secs=$3; target=$4
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
cat > "$dir/plan.json"
"$agent" --plan "$dir/plan.json" capture --seconds "$secs" > "$dir/capture.json" 2> "$dir/capture.err" &
cap=$!
sleep 1
if [ -n "$target" ]; then
  out=$(ip netns exec "$ns" busybox ping -c 3 -W 1 -q "$target" 2>&1)
  printf '@ping %s\n' "$(printf '%s' "$out" | tr '\n' '|')"
fi
wait "$cap"; rc=$?
printf '@capture %s ' "$rc"; tr '\n' ' ' < "$dir/capture.json"; tr '\n' ' ' < "$dir/capture.err"; echo
printf '@uptime %s\n' "$(cut -d ' ' -f 1 /proc/uptime)"
dmesg 2>/dev/null | tail -n 300"#;

/// How long each node's agent captures; the pings start one second in.
pub(super) const CAPTURE_SECONDS: &str = "4";

/// Runs the selected checks on a network-only VM lab.
pub fn verify(target: &Target, selected: &[CheckId], started: Instant) -> Report {
    let view = &target.view;
    let wants = |id: CheckId| selected.contains(&id);
    let mut ev = Evidence::default();
    let mut results: Vec<CheckResult> = Vec::new();
    let timed = |t: Instant, mut r: CheckResult| {
        r.duration_ms = t.elapsed().as_millis() as u64;
        r
    };

    let mut sessions = node_checks(target, selected, &mut ev, &mut results);
    let pod_of = |i: usize| -> Option<PodView> {
        let node = &view.nodes.get(i)?.name;
        target.pods.iter().find(|p| &p.node == node).cloned()
    };
    let t = Instant::now();
    ev.pods = on_nodes(&mut sessions, |i, s| pod_of(i).map(|p| inspect_pod(s, p)))
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.flatten().or_else(|| {
                pod_of(i).map(|mut p| {
                    p.problem = Some(format!("{} is not reachable over SSH", p.node));
                    p
                })
            })
        })
        .collect();
    if wants(CheckId::Pods) {
        results.push(timed(t, checks::pods(view, &ev)));
    }
    let pods = ev.pods.clone();
    if wants(CheckId::PodMesh) {
        let t = Instant::now();
        let mesh = mesh(&mut sessions, view, &pods);
        results.push(timed(t, checks::pod_mesh(&mesh)));
        ev.mesh = Some(mesh);
    }
    if wants(CheckId::Vxlan) {
        let t = Instant::now();
        let (pairs, bad) = vxlan(&mut sessions, view, &target.plans, &pods);
        ev.vxlan = pairs;
        ev.bad_checksums = bad;
        results.push(timed(t, checks::vxlan(view, &ev)));
    }
    if wants(CheckId::Mtu) {
        let t = Instant::now();
        let r = match mtu(&mut sessions, view, &pods) {
            Some((probes, links)) => {
                ev.mtu = probes;
                ev.link_mtus = links;
                checks::mtu(view, &ev)
            }
            None => CheckResult::skip(
                CheckId::Mtu,
                "no node has iputils ping (busybox ping cannot send don't-fragment packets); install iputils-ping on the nodes to measure the path MTU",
            ),
        };
        results.push(timed(t, r));
    }
    if wants(CheckId::Dns) {
        let t = Instant::now();
        ev.dns = on_nodes(&mut sessions, |i, s| {
            let node = &view.nodes.get(i)?.name;
            dns(s, pods.iter().find(|p| &p.node == node)?, view)
        })
        .into_iter()
        .flatten()
        .flatten()
        .collect();
        results.push(timed(t, checks::dns(view, &ev)));
    }
    if wants(CheckId::Egress) {
        results.push(CheckResult::skip(
            CheckId::Egress,
            format!(
                "{} labs have no outside namespace and none should depend on the internet by default; no egress target is configured",
                view.provider
            ),
        ));
    }
    if wants(CheckId::Kubernetes) {
        results.push(CheckResult::skip(
            CheckId::Kubernetes,
            "network-only lab (kubernetes: {enabled: false}): no cluster to check",
        ));
    }
    target::disconnect_all(sessions);
    assemble(view, ev, results, started)
}

/// `nodes` and `dataplane` (when selected): connects to every node, asks
/// its agent for its version and to check the node against its plan, and
/// reads its iptables rules. Returns the sessions, one per node in view
/// order, for the probes that follow.
pub(super) fn node_checks(
    target: &Target,
    selected: &[CheckId],
    ev: &mut Evidence,
    results: &mut Vec<CheckResult>,
) -> Vec<Option<Session>> {
    let view = &target.view;
    let timed = |t: Instant, mut r: CheckResult| {
        r.duration_ms = t.elapsed().as_millis() as u64;
        r
    };
    let t = Instant::now();
    let (mut sessions, reach) = target.connect_all();
    ev.reach = reach;
    if selected.contains(&CheckId::Nodes) {
        results.push(timed(t, checks::nodes(ev, crate::embedded::AGENT_VERSION)));
    }
    if selected.contains(&CheckId::Dataplane) {
        let t = Instant::now();
        let (kept, errors) = target.agent_check(sessions, true, ev);
        sessions = kept;
        ev.firewall = on_nodes(&mut sessions, |_, s| firewall(s, view.port))
            .into_iter()
            .zip(&view.nodes)
            .filter_map(|(f, n)| Some((n.name.clone(), f.flatten()?)))
            .collect();
        results.push(timed(t, checks::dataplane(view, ev, &errors)));
    }
    sessions
}

/// Runs `work` on every node with a session, all nodes at once (the probes
/// are mostly waiting on the nodes), and puts the sessions back; `None`
/// for a node without a session.
pub(super) fn on_nodes<R: Send>(
    sessions: &mut [Option<Session>],
    work: impl Fn(usize, &Session) -> R + Sync,
) -> Vec<Option<R>> {
    let items: Vec<(usize, Option<Session>)> =
        sessions.iter_mut().map(Option::take).enumerate().collect();
    let n = items.len();
    let results = pool::map(
        items,
        n.max(1),
        |(i, s)| {
            let r = s.as_ref().map(|s| work(i, s));
            (s, r)
        },
        |_| (None, None),
    );
    results
        .into_iter()
        .zip(sessions.iter_mut())
        .map(|((s, r), slot)| {
            *slot = s;
            r
        })
        .collect()
}

/// Runs a constant script with `args` (quoted by the session) and returns
/// stdout, or a sentence naming the node and the failure.
pub(super) fn script(
    s: &Session,
    script: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let mut argv = vec!["sh", "-c", script, "sh"];
    argv.extend_from_slice(args);
    match s.run(&argv, stdin) {
        Ok(out) if out.success() => Ok(out.stdout_text()),
        Ok(out) => Err(format!(
            "{}: probe script exited {}: {}",
            s.endpoint().node,
            out.status,
            out.stderr_text().trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn firewall(s: &Session, port: u16) -> Option<parse::FirewallFacts> {
    let out = s.run(&["iptables", "-w", "-S"], None).ok()?;
    out.success()
        .then(|| parse::parse_iptables(&out.stdout_text(), port))
}

/// The pod's first non-loopback IPv4 address, from `ip -j -n NS -4 addr`.
fn inspect_pod(s: &Session, mut pod: PodView) -> PodView {
    let ns = pod.namespace.clone().unwrap_or_default();
    let found = match s.run(&["ip", "-j", "-n", &ns, "-4", "addr", "show"], None) {
        Ok(out) if out.success() => parse_ip_addr_json(&out.stdout_text()),
        Ok(out) => Err(format!(
            "namespace {ns} on {}: `ip -n {ns} addr` exited {}: {}",
            pod.node,
            out.status,
            out.stderr_text().trim()
        )),
        Err(e) => Err(e.to_string()),
    };
    pod.record_address(found);
    pod
}

/// The first IPv4 address not on `lo` in `ip -j addr` output.
pub fn parse_ip_addr_json(text: &str) -> Result<Option<Ipv4Addr>, String> {
    let doc: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("cannot read `ip -j addr` output: {e}"))?;
    Ok(doc
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet")
        .find_map(|a| a["local"].as_str()?.parse().ok()))
}

/// The usable pods: (index in `pods`, namespace, IP).
fn usable(pods: &[PodView]) -> Vec<(usize, &str, Ipv4Addr)> {
    pods.iter()
        .enumerate()
        .filter(|(_, p)| p.problem.is_none())
        .filter_map(|(i, p)| Some((i, p.namespace.as_deref()?, p.ip?)))
        .collect()
}

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

/// The ping's statistics, or the output as the reason it has none.
pub(super) fn ping_result(output: &str) -> (Option<PingSummary>, Option<String>) {
    match parse::parse_ping_summary(output) {
        Some(s) => (Some(s), None),
        None => {
            let why = output
                .lines()
                .last()
                .unwrap_or("no output")
                .trim()
                .to_string();
            (
                None,
                Some(if why.is_empty() {
                    "no output".into()
                } else {
                    why
                }),
            )
        }
    }
}

/// The pod of the node at `i` in the view, if usable.
fn pod_at<'a>(
    view: &LabView,
    usable: &'a [(usize, &'a str, Ipv4Addr)],
    pods: &[PodView],
    i: usize,
) -> Option<&'a (usize, &'a str, Ipv4Addr)> {
    let node = &view.nodes.get(i)?.name;
    usable.iter().find(|(j, _, _)| &pods[*j].node == node)
}

/// `pod-mesh`: on every node at once, its pod pings every other pod.
fn mesh(sessions: &mut [Option<Session>], view: &LabView, pods: &[PodView]) -> PingMatrix {
    let ok = usable(pods);
    let answers = on_nodes(sessions, |i, s| {
        let (j, ns, _) = pod_at(view, &ok, pods, i)?;
        let targets: Vec<String> = ok
            .iter()
            .filter(|(k, _, _)| k != j)
            .map(|(_, _, ip)| ip.to_string())
            .collect();
        let mut args = vec![*ns];
        args.extend(targets.iter().map(String::as_str));
        Some(script(s, MESH_SCRIPT, &args, None))
    });
    let mut matrix = PingMatrix {
        nodes: ok.iter().map(|(j, _, _)| pods[*j].node.clone()).collect(),
        cells: Vec::new(),
    };
    for (i, answer) in answers.into_iter().enumerate() {
        let Some((j, _, _)) = pod_at(view, &ok, pods, i) else {
            continue;
        };
        let answer = answer.flatten();
        let lines = match &answer {
            Some(Ok(text)) => parse_tagged(text, 1),
            _ => Vec::new(),
        };
        for (k, _, ip) in ok.iter().filter(|(k, _, _)| k != j) {
            let line = lines.iter().find(|(key, _)| key[0] == ip.to_string());
            let (summary, error) = match (line, &answer) {
                (Some((_, out)), _) => ping_result(out),
                (None, Some(Err(e))) => (None, Some(e.clone())),
                (None, _) => (
                    None,
                    Some(format!("{} is not reachable over SSH", pods[*j].node)),
                ),
            };
            let received = summary.as_ref().map_or(0, |s| s.received);
            matrix.cells.push(PingCell {
                from: pods[*j].node.clone(),
                to: pods[*k].node.clone(),
                to_ip: *ip,
                sent: summary.as_ref().map_or(0, |s| s.transmitted),
                received,
                rtt_avg_ms: summary.as_ref().and_then(|s| s.rtt_avg_ms),
                error: error.or_else(|| (received == 0).then(|| "no answer".to_string())),
            });
        }
    }
    matrix
}

/// Ring pairs over the usable pods: pod i sends to pod i+1.
pub(super) fn ring(n: usize) -> Vec<(usize, usize)> {
    if n < 2 {
        return Vec::new();
    }
    (0..n).map(|i| (i, (i + 1) % n)).collect()
}

/// What one node's vxlan script printed.
#[derive(Debug, Default)]
pub struct VxlanNodeOutput {
    pub ping: Option<String>,
    pub capture: Option<serde_json::Value>,
    pub capture_error: Option<String>,
    pub kernel_log: String,
}

/// Reads the vxlan script's output (see [`VXLAN_SCRIPT`]).
pub fn parse_vxlan_output(text: &str) -> VxlanNodeOutput {
    let mut out = VxlanNodeOutput::default();
    let mut uptime: Option<f64> = None;
    let mut log = Vec::new();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("@ping ") {
            out.ping = Some(p.replace('|', "\n"));
        } else if let Some(c) = line.strip_prefix("@capture ") {
            let (status, rest) = c.split_once(' ').unwrap_or((c, ""));
            let mut stream =
                serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
            match (status, stream.next()) {
                ("0", Some(Ok(v))) => out.capture = Some(v),
                _ => {
                    out.capture_error = Some(format!(
                        "`labctl-agent capture` exited {status}: {}",
                        rest.trim()
                    ))
                }
            }
        } else if let Some(u) = line.strip_prefix("@uptime ") {
            uptime = u.trim().parse().ok();
        } else if uptime.is_some() {
            log.push(line);
        }
    }
    // Only the last ten minutes of the kernel log count.
    let now = uptime.unwrap_or(0.0);
    out.kernel_log = log
        .into_iter()
        .filter(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(t, _)| t.trim().parse::<f64>().ok())
                .is_none_or(|t| now - t < 600.0)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out
}

/// Packets of flows inner `src` → `dst` in an agent capture report, and
/// their outer sources.
pub fn flow_packets(
    capture: &serde_json::Value,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> (u64, Vec<Ipv4Addr>) {
    let mut packets = 0;
    let mut outer = Vec::new();
    for f in capture["flows"].as_array().into_iter().flatten() {
        let ip = |k: &str| f[k].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
        if ip("innerSrc") == Some(src) && ip("innerDst") == Some(dst) {
            packets += f["packets"].as_u64().unwrap_or(0);
            if let Some(o) = ip("outerSrc").filter(|o| !outer.contains(o)) {
                outer.push(o);
            }
        }
    }
    (packets, outer)
}

/// `vxlan`: every node's agent captures on its underlay while a ring of
/// cross-node pings runs; the kernel logs are read for bad checksums.
fn vxlan(
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
) -> (Vec<VxlanPair>, Vec<(String, parse::BadChecksum)>) {
    let ok = usable(pods);
    let pairs = ring(ok.len());
    let outputs = on_nodes(sessions, |i, s| {
        let node = &view.nodes.get(i)?.name;
        let plan = plans.iter().find(|p| &p.node == node)?;
        let me = ok.iter().position(|(j, _, _)| &pods[*j].node == node);
        let (ns, target) = match me {
            Some(a) => {
                let to = pairs
                    .iter()
                    .find(|(x, _)| *x == a)
                    .map(|(_, b)| ok[*b].2.to_string());
                (ok[a].1.to_string(), to.unwrap_or_default())
            }
            None => (String::new(), String::new()),
        };
        let args = [AGENT_PATH, ns.as_str(), CAPTURE_SECONDS, target.as_str()];
        Some(
            script(s, VXLAN_SCRIPT, &args, Some(plan.to_json().as_bytes()))
                .map(|t| parse_vxlan_output(&t)),
        )
    });
    let outputs: Vec<_> = outputs.into_iter().map(Option::flatten).collect();
    let pairs: Vec<(String, String, Ipv4Addr, Ipv4Addr)> = pairs
        .iter()
        .map(|(a, b)| {
            let (pa, pb) = (&pods[ok[*a].0], &pods[ok[*b].0]);
            (pa.node.clone(), pb.node.clone(), ok[*a].2, ok[*b].2)
        })
        .collect();
    vxlan_evidence(
        view,
        &pairs,
        &outputs,
        "labctl-agent capture on the underlay interface (AF_PACKET), over SSH",
    )
}

/// The vxlan evidence from every node's capture output (in view order):
/// one [`VxlanPair`] per (sender node, receiver node, sender pod IP,
/// receiver pod IP), its ping judged from the sender's `ping` output; and
/// the bad VXLAN checksums in the kernel logs.
pub(super) fn vxlan_evidence(
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
                pair.ping_ok = o
                    .ping
                    .as_deref()
                    .and_then(parse::parse_ping_summary)
                    .is_some_and(|s| s.received > 0);
                if let Some(c) = &o.capture {
                    let (n, outer) = flow_packets(c, pa, pb);
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
                    pair.receiver_in = flow_packets(c, pa, pb).0;
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
                // Attributed to the receiving node, as in netns labs.
                let to =
                    b.to.and_then(|ip| view.nodes.iter().find(|n| n.underlay_ip == ip));
                bad.push((to.map_or(node.name.clone(), |n| n.name.clone()), b));
            }
        }
    }
    bad.dedup_by(|x, y| x.1.line == y.1.line);
    (out, bad)
}

/// `mtu`: DF pings of pod MTU − 28 and one byte more both ways round the
/// ring, and the interface MTUs; `None` when no node can send DF pings.
fn mtu(
    sessions: &mut [Option<Session>],
    view: &LabView,
    pods: &[PodView],
) -> Option<(Vec<MtuProbe>, Vec<LinkMtu>)> {
    let ok = usable(pods);
    let mut pairs = ring(ok.len());
    if ok.len() > 2 {
        pairs.extend(ring(ok.len()).into_iter().map(|(a, b)| (b, a)));
    }
    let fits = view.pod_mtu.saturating_sub(28);
    let size = fits.to_string();
    let outputs = on_nodes(sessions, |i, s| {
        let (_, ns, _) = pod_at(view, &ok, pods, i)?;
        let a = ok.iter().position(|(_, n, _)| n == ns)?;
        let targets: Vec<String> = pairs
            .iter()
            .filter(|(x, _)| *x == a)
            .map(|(_, b)| ok[*b].2.to_string())
            .collect();
        let mut args = vec![*ns, size.as_str(), view.vxlan_device.as_str()];
        args.extend(targets.iter().map(String::as_str));
        script(s, MTU_SCRIPT, &args, None).ok()
    });
    let texts: Vec<Option<String>> = outputs.into_iter().map(Option::flatten).collect();
    let pairs: Vec<(String, String, Ipv4Addr)> = pairs
        .iter()
        .map(|(a, b)| {
            (
                pods[ok[*a].0].node.clone(),
                pods[ok[*b].0].node.clone(),
                ok[*b].2,
            )
        })
        .collect();
    mtu_evidence(view, &pairs, &texts, fits)
}

/// The mtu evidence from every node's MTU script output (in view order,
/// see [`MTU_SCRIPT`]): one probe per (sender node, receiver node, target
/// IP), and the `@mtu` lines as interface MTUs; `None` when no node had
/// iputils ping.
pub(super) fn mtu_evidence(
    view: &LabView,
    pairs: &[(String, String, Ipv4Addr)],
    texts: &[Option<String>],
    fits: u32,
) -> Option<(Vec<MtuProbe>, Vec<LinkMtu>)> {
    if !texts.iter().flatten().any(|t| t.contains("@tool iputils")) {
        return None;
    }
    let mut links = Vec::new();
    for (node, text) in view.nodes.iter().zip(texts) {
        for line in text.iter().flat_map(|t| t.lines()) {
            let Some(rest) = line.strip_prefix("@mtu ") else {
                continue;
            };
            let Some((dev, value)) = rest.split_once(' ') else {
                continue;
            };
            if let Ok(mtu) = value.trim().parse() {
                let device = if dev == "eth0" {
                    "pod busybox eth0".to_string()
                } else {
                    dev.to_string()
                };
                links.push(LinkMtu {
                    node: node.name.clone(),
                    device,
                    mtu,
                });
            }
        }
    }
    let mut probes = Vec::new();
    for (from, to, target) in pairs {
        let Some(i) = view.nodes.iter().position(|n| &n.name == from) else {
            continue;
        };
        let lines = texts[i]
            .as_deref()
            .map(|t| parse_tagged(t, 2))
            .unwrap_or_default();
        let tool = texts[i]
            .as_deref()
            .is_some_and(|t| t.contains("@tool iputils"));
        let target = target.to_string();
        let answer = |bytes: u32| {
            lines
                .iter()
                .find(|(k, _)| k[0] == target && k[1] == bytes.to_string())
                .map(|(_, out)| ping_result(out))
                .unwrap_or((
                    None,
                    Some(
                        if tool {
                            "no output"
                        } else {
                            "no iputils ping on this node"
                        }
                        .into(),
                    ),
                ))
        };
        let (f, fe) = answer(fits);
        let (o, oe) = answer(fits + 1);
        let fits_passed = f.as_ref().is_some_and(|s| s.received > 0);
        let over_failed = o.as_ref().is_none_or(|s| s.received == 0);
        let mut detail = Vec::new();
        if !fits_passed {
            detail.push(format!(
                "{fits} bytes: {}",
                fe.unwrap_or_else(|| "no answer".into())
            ));
        }
        if over_failed {
            detail.push(format!(
                "{} bytes: {}",
                fits + 1,
                oe.unwrap_or_else(|| "no answer".into())
            ));
        }
        probes.push(MtuProbe {
            from: from.clone(),
            to: to.clone(),
            payload: fits,
            fits_passed,
            over_failed,
            detail: detail.join("; "),
        });
    }
    Some((probes, links))
}

/// `dns`: `busybox nslookup kubernetes.default` in the node's pod.
fn dns(s: &Session, pod: &PodView, view: &LabView) -> Option<DnsProbe> {
    let ns = pod.namespace.as_deref().filter(|_| pod.problem.is_none())?;
    let text = script(s, DNS_SCRIPT, &[ns], None).unwrap_or_else(|e| e);
    Some(dns_probe(&pod.node, &text, view))
}

/// The DNS evidence from a `@version` line and busybox nslookup's output
/// (or the error that stood in for it).
pub(super) fn dns_probe(node: &str, text: &str, view: &LabView) -> DnsProbe {
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("@version "))
        .and_then(parse::parse_busybox_version);
    let a = parse::parse_nslookup(text);
    DnsProbe {
        node: node.to_string(),
        query: "kubernetes.default".into(),
        server: a.server,
        ok: a.addresses.contains(&view.api_service_ip),
        addresses: a.addresses,
        nxdomain: a.nxdomain,
        timed_out: a.timed_out || (a.server.is_none() && !a.nxdomain),
        busybox: version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_json_first_ipv4_not_loopback() {
        let text = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifindex":3,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.71.1.2","prefixlen":24}]}]"#;
        assert_eq!(
            parse_ip_addr_json(text),
            Ok(Some("10.71.1.2".parse().unwrap()))
        );
        assert_eq!(parse_ip_addr_json("[]"), Ok(None));
        assert!(parse_ip_addr_json("Cannot open").is_err());
    }

    #[test]
    fn tagged_lines_restore_newlines() {
        let text = "noise\n@@ 10.0.0.2 1422 PING x|2 packets transmitted, 2 packets received, 0% packet loss|\n";
        let t = parse_tagged(text, 2);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, ["10.0.0.2", "1422"]);
        let (s, e) = ping_result(&t[0].1);
        assert_eq!((s.map(|s| s.received), e), (Some(2), None));
    }

    #[test]
    fn vxlan_output_capture_flows_and_recent_kernel_log() {
        let text = concat!(
            "@ping PING 10.71.2.2|3 packets transmitted, 3 packets received, 0% packet loss\n",
            r#"@capture 0 { "command": "capture", "packets": 6, "flows": [ {"outerSrc": "192.168.71.2", "outerDst": "192.168.71.3", "innerSrc": "10.71.1.2", "innerDst": "10.71.2.2", "innerProtocol": 1, "packets": 3} ] } "#,
            "\n@uptime 1000.5\n[  100.0] old line\n[  900.0] recent line\n"
        );
        let o = parse_vxlan_output(text);
        assert!(o.ping.unwrap().contains("3 packets received"));
        let c = o.capture.unwrap();
        let (n, outer) = flow_packets(
            &c,
            "10.71.1.2".parse().unwrap(),
            "10.71.2.2".parse().unwrap(),
        );
        assert_eq!((n, outer), (3, vec!["192.168.71.2".parse().unwrap()]));
        assert_eq!(
            flow_packets(
                &c,
                "10.71.2.2".parse().unwrap(),
                "10.71.1.2".parse().unwrap()
            )
            .0,
            0
        );
        assert_eq!(o.kernel_log, "[  900.0] recent line\n");
        let failed = parse_vxlan_output("@capture 2 labctl-agent: no underlay\n");
        assert!(failed.capture.is_none());
        assert!(failed.capture_error.unwrap().contains("exited 2"));
    }
}
