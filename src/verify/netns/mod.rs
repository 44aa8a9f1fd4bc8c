//! Probes for netns labs: everything runs on this host. Pods and nodes are
//! network namespaces, so verify enters them directly (one thread per
//! namespace, see [`enter`]): ICMP from a raw socket in each pod, capture
//! with AF_PACKET in each node, MTUs by ioctl. Only nslookup (busybox) and
//! `iptables -S` run as processes, forked from a thread inside the
//! namespace so they inherit it.

pub mod capture;
pub mod enter;
pub mod icmp;
pub mod neighbours;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::evidence::{DnsProbe, EgressProbe, LinkMtu, MtuProbe, PingCell, PingMatrix, VxlanPair};
use super::model::{LabView, NodeView, PodView};
use super::parse::{self, BadChecksum, FirewallFacts};
use capture::{Captured, Seen};
use icmp::{PingOptions, PingOutcome};

/// The pods that can be probed: those with a namespace and an IP.
fn usable(pods: &[PodView]) -> Vec<(&PodView, &str, Ipv4Addr)> {
    pods.iter()
        .filter(|p| p.problem.is_none())
        .filter_map(|p| Some((p, p.namespace.as_deref()?, p.ip?)))
        .collect()
}

/// Fills each pod's IP from its namespace (the first non-loopback IPv4
/// address) or says why it is unusable.
pub fn inspect_pods(pods: &mut [PodView]) {
    std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|p| {
                let ns = p.namespace.clone().unwrap_or_default();
                enter::spawn_in(s, &ns, || {
                    Ok(enter::ipv4_addresses()?
                        .into_iter()
                        .find(|(name, _, _)| name != "lo")
                        .map(|(_, ip, _)| ip))
                })
            })
            .collect();
        for (pod, h) in pods.iter_mut().zip(handles) {
            let found = h
                .join()
                .unwrap_or_else(|_| Err(anyhow!("probe thread panicked")));
            pod.record_address(found.map_err(|e| format!("{e:#}")));
        }
    });
}

/// Pings from every pod to each of its targets at once, one thread per
/// source; returns the outcomes per source in order.
fn ping_from_all(
    jobs: &[(String, Vec<Ipv4Addr>)],
    opts: &PingOptions,
) -> Vec<Result<Vec<PingOutcome>>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(ns, targets)| enter::spawn_in(s, ns, move || icmp::ping_many(targets, opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("probe thread panicked")))
            })
            .collect()
    })
}

/// `pod-mesh`: every pod pings every other pod, all sources at once.
pub fn mesh(pods: &[PodView]) -> PingMatrix {
    let pods = usable(pods);
    let jobs: Vec<(String, Vec<Ipv4Addr>)> = pods
        .iter()
        .map(|(p, ns, ip)| {
            let targets = pods
                .iter()
                .filter(|(q, _, _)| q.name != p.name || q.node != p.node)
                .map(|(_, _, t)| *t);
            let _ = ip;
            (ns.to_string(), targets.collect())
        })
        .collect();
    let results = ping_from_all(&jobs, &PingOptions::default());
    let mut matrix = PingMatrix {
        nodes: pods.iter().map(|(p, _, _)| p.node.clone()).collect(),
        cells: Vec::new(),
    };
    for ((from, _, _), result) in pods.iter().zip(results) {
        let targets: Vec<_> = pods
            .iter()
            .filter(|(q, _, _)| q.name != from.name || q.node != from.node)
            .collect();
        match result {
            Ok(outcomes) => {
                for ((to, _, ip), o) in targets.into_iter().zip(outcomes) {
                    matrix.cells.push(PingCell {
                        from: from.node.clone(),
                        to: to.node.clone(),
                        to_ip: *ip,
                        sent: o.sent,
                        received: o.received,
                        rtt_avg_ms: o.avg_ms(),
                        error: o.error.filter(|_| o.received == 0),
                    });
                }
            }
            Err(e) => {
                for (to, _, ip) in targets {
                    matrix.cells.push(PingCell {
                        from: from.node.clone(),
                        to: to.node.clone(),
                        to_ip: *ip,
                        sent: 0,
                        received: 0,
                        rtt_avg_ms: None,
                        error: Some(format!("{e:#}")),
                    });
                }
            }
        }
    }
    matrix
}

/// Source → destination pairs of a ring over the pods' nodes (each node
/// sends to the next): every node is a sender and a receiver once.
fn ring<'a>(pods: &[(&'a PodView, &'a str, Ipv4Addr)]) -> Vec<(usize, usize)> {
    let n = pods.len();
    if n < 2 {
        return Vec::new();
    }
    (0..n)
        .map(|i| (i, (i + 1) % n))
        .filter(|(a, b)| a != b)
        .collect()
}

/// Captures in the given namespaces while `traffic` runs; one result per
/// namespace.
fn capture_during<T>(
    namespaces: &[(String, Vec<String>)],
    port: u16,
    traffic: impl FnOnce() -> T,
) -> (Vec<Result<Captured>>, T) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let handles: Vec<_> = namespaces
            .iter()
            .map(|(ns, names)| {
                let ready = ready_tx.clone();
                let stop = &stop;
                enter::spawn_in(s, ns, move || {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    capture::capture_here(&names, port, stop, ready)
                })
            })
            .collect();
        drop(ready_tx);
        // Every capture socket open (or its thread ended) before traffic.
        let deadline = Instant::now() + Duration::from_secs(3);
        for _ in 0..namespaces.len() {
            if ready_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_err()
            {
                break;
            }
        }
        let out = traffic();
        // Frames still in flight on the far side.
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::Relaxed);
        let captured = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("capture thread panicked")))
            })
            .collect();
        (captured, out)
    })
}

/// The interface holding `ip` in namespace `ns`.
fn interface_with(ns: &str, ip: Ipv4Addr) -> Option<String> {
    enter::run_in(ns, || {
        Ok(enter::ipv4_addresses()?
            .into_iter()
            .find(|(_, a, _)| *a == ip)
            .map(|(n, _, _)| n))
    })
    .ok()
    .flatten()
}

/// `vxlan`: a ring of cross-node pings with an AF_PACKET capture on every
/// node's underlay interface and VXLAN device.
pub fn vxlan(lab: &LabView, pods: &[PodView]) -> Vec<VxlanPair> {
    let pods = usable(pods);
    let pairs = ring(&pods);
    let node_of = |p: &PodView| lab.node(&p.node).cloned();
    let nodes: Vec<Option<NodeView>> = pods.iter().map(|(p, _, _)| node_of(p)).collect();
    let underlay: Vec<Option<String>> = nodes
        .iter()
        .map(|n| {
            n.as_ref()
                .and_then(|n| interface_with(n.namespace.as_deref()?, n.underlay_ip))
        })
        .collect();
    let namespaces: Vec<(String, Vec<String>)> = nodes
        .iter()
        .zip(&underlay)
        .map(|(n, u)| {
            let ns = n
                .as_ref()
                .and_then(|n| n.namespace.clone())
                .unwrap_or_default();
            (
                ns,
                u.iter()
                    .cloned()
                    .chain([lab.vxlan_device.clone()])
                    .collect(),
            )
        })
        .collect();
    let jobs: Vec<(String, Vec<Ipv4Addr>)> = pairs
        .iter()
        .map(|(a, b)| (pods[*a].1.to_string(), vec![pods[*b].2]))
        .collect();
    let (captured, pings) = capture_during(&namespaces, lab.port, || {
        ping_from_all(
            &jobs,
            &PingOptions {
                count: 3,
                interval: Duration::from_millis(20),
                ..Default::default()
            },
        )
    });
    let mut out = Vec::new();
    for ((a, b), ping) in pairs.iter().zip(pings) {
        let (pa, pb) = (pods[*a].2, pods[*b].2);
        let ping_ok = ping
            .map(|o| o.first().is_some_and(|o| o.received > 0))
            .unwrap_or(false);
        let mut pair = VxlanPair {
            from: pods[*a].0.node.clone(),
            to: pods[*b].0.node.clone(),
            ping_ok,
            method: "AF_PACKET capture in the node namespaces (in-process)".into(),
            ..Default::default()
        };
        let inner_match =
            |inner: &Option<capture::Ip>| inner.is_some_and(|i| i.src == pa && i.dst == pb);
        if let (Ok(cap), Some(u)) = (&captured[*a], &underlay[*a]) {
            let idx = cap.index_of(u);
            for r in cap
                .records
                .iter()
                .filter(|r| Some(r.ifindex) == idx && r.outgoing)
            {
                if let Seen::Vxlan {
                    outer, vni, inner, ..
                } = r.seen
                {
                    if inner_match(&inner) {
                        pair.sender_out += 1;
                        if !pair.outer_sources.contains(&outer.src) {
                            pair.outer_sources.push(outer.src);
                        }
                        if !pair.vnis.contains(&vni) {
                            pair.vnis.push(vni);
                        }
                    }
                }
            }
        }
        if let Ok(cap) = &captured[*b] {
            let idx = underlay[*b].as_deref().and_then(|u| cap.index_of(u));
            let vx = cap.index_of(&lab.vxlan_device);
            for r in cap.records.iter().filter(|r| !r.outgoing) {
                match r.seen {
                    Seen::Vxlan { inner, .. } if Some(r.ifindex) == idx && inner_match(&inner) => {
                        pair.receiver_in += 1
                    }
                    Seen::Plain(ip) if Some(r.ifindex) == vx && ip.src == pa && ip.dst == pb => {
                        *pair.receiver_decapsulated.get_or_insert(0) += 1
                    }
                    _ => {}
                }
            }
            if vx.is_some() && pair.receiver_decapsulated.is_none() {
                pair.receiver_decapsulated = Some(0);
            }
        }
        out.push(pair);
    }
    out
}

/// `mtu`: DF pings of MTU − 28 and MTU − 27 bytes both ways round the ring,
/// plus the MTUs of every VXLAN device, cni0 and pod interface.
pub fn mtu(lab: &LabView, pods: &[PodView]) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let pods = usable(pods);
    let mut pairs = ring(&pods);
    if pods.len() > 2 {
        pairs.extend(ring(&pods).into_iter().map(|(a, b)| (b, a)));
    }
    let fits = lab.pod_mtu.saturating_sub(28) as usize;
    let opts = |payload| PingOptions {
        count: 2,
        payload,
        interval: Duration::from_millis(20),
        wait: Duration::from_millis(600),
        dont_fragment: true,
    };
    let jobs: Vec<(String, Vec<Ipv4Addr>)> = pairs
        .iter()
        .map(|(a, b)| (pods[*a].1.to_string(), vec![pods[*b].2]))
        .collect();
    let (fit, over) = std::thread::scope(|s| {
        let over = s.spawn(|| ping_from_all(&jobs, &opts(fits + 1)));
        let fit = ping_from_all(&jobs, &opts(fits));
        (fit, over.join().unwrap_or_default())
    });
    let mut probes = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let first = |r: Option<&Result<Vec<PingOutcome>>>| -> PingOutcome {
            match r {
                Some(Ok(v)) => v.first().cloned().unwrap_or_default(),
                Some(Err(e)) => PingOutcome {
                    error: Some(format!("{e:#}")),
                    ..Default::default()
                },
                None => PingOutcome {
                    error: Some("not run".into()),
                    ..Default::default()
                },
            }
        };
        let (f, o) = (first(fit.get(i)), first(over.get(i)));
        let mut detail = Vec::new();
        if let Some(e) = f.error.as_ref().filter(|_| f.received == 0) {
            detail.push(format!("{fits} bytes: {e}"));
        }
        if o.received == 0 {
            detail.push(format!(
                "{} bytes: {}",
                fits + 1,
                o.error.as_deref().unwrap_or("no answer")
            ));
        }
        probes.push(MtuProbe {
            from: pods[*a].0.node.clone(),
            to: pods[*b].0.node.clone(),
            payload: fits as u32,
            fits_passed: f.received > 0,
            over_failed: o.received == 0,
            detail: detail.join("; "),
        });
    }
    let mut links = Vec::new();
    for node in &lab.nodes {
        let Some(ns) = node.namespace.as_deref() else {
            continue;
        };
        let devices = [lab.vxlan_device.as_str(), "cni0"];
        if let Ok(found) = enter::run_in(ns, || Ok(devices.map(|d| enter::if_mtu(d).ok()))) {
            for (d, m) in devices.iter().zip(found) {
                if let Some(mtu) = m {
                    links.push(LinkMtu {
                        node: node.name.clone(),
                        device: d.to_string(),
                        mtu,
                    });
                }
            }
        }
    }
    for (p, ns, _) in &pods {
        let mtu = enter::run_in(ns, || {
            let name = enter::ipv4_addresses()?
                .into_iter()
                .find(|(n, _, _)| n != "lo")
                .map(|(n, _, _)| n);
            Ok(name.and_then(|n| enter::if_mtu(&n).ok()))
        });
        if let Ok(Some(mtu)) = mtu {
            links.push(LinkMtu {
                node: p.node.clone(),
                device: format!("pod {} eth0", p.name),
                mtu,
            });
        }
    }
    (probes, links)
}

/// Runs `argv` from a thread inside `ns` (the child inherits the
/// namespace), killing it after `limit`. Returns (success, stdout+stderr).
pub fn run_in_netns(ns: &str, argv: &[&str], limit: Duration) -> Result<(bool, String)> {
    enter::run_in(ns, || run_on_host(argv, limit)).map_err(|e| anyhow!("in namespace {ns}: {e:#}"))
}

/// Runs `argv`, killing it after `limit`. Returns (success, stdout+stderr).
fn run_on_host(argv: &[&str], limit: Duration) -> Result<(bool, String)> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot run {}: {e}", argv[0]))?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// `dns`: the pod's own `nslookup kubernetes.default`, as the walkthrough
/// runs it: through the pod's resolv.conf (`ip netns exec` binds
/// /etc/netns/<pod>/resolv.conf over /etc/resolv.conf), no server named.
/// The same script and reading as on VM and ssh labs, run on this host.
pub fn dns(lab: &LabView, pods: &[PodView]) -> Vec<DnsProbe> {
    let pods = usable(pods);
    std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(p, ns, _)| {
                s.spawn(move || {
                    let text = run_on_host(
                        &["sh", "-c", super::remote::scripts::DNS_SCRIPT, "sh", ns],
                        Duration::from_secs(15),
                    )
                    .map_or_else(|e| format!("{e:#}"), |(_, text)| text);
                    super::remote::dns_probe(&p.node, &text, lab)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// `egress`: every pod pings the outside address while the outside
/// namespace captures; records the source addresses it saw per pod.
pub fn egress(lab: &LabView, pods: &[PodView]) -> Result<Vec<EgressProbe>> {
    let outside = lab
        .outside
        .as_ref()
        .ok_or_else(|| anyhow!("the lab has no outside namespace"))?;
    let ext_ns = outside
        .namespace
        .clone()
        .ok_or_else(|| anyhow!("the lab has no outside namespace"))?;
    let pods = usable(pods);
    let jobs: Vec<(String, Vec<Ipv4Addr>)> = pods
        .iter()
        .map(|(_, ns, _)| (ns.to_string(), vec![outside.ip]))
        .collect();
    let (captured, pings) = capture_during(&[(ext_ns.clone(), Vec::new())], lab.port, || {
        ping_from_all(
            &jobs,
            &PingOptions {
                count: 2,
                ..Default::default()
            },
        )
    });
    let cap = captured
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(anyhow!("no capture")))?;
    let requests: Vec<capture::Ip> = cap
        .records
        .iter()
        .filter(|r| !r.outgoing)
        .filter_map(|r| match r.seen {
            Seen::Plain(ip) if ip.dst == outside.ip && ip.icmp_type == Some(8) => Some(ip),
            _ => None,
        })
        .collect();
    Ok(pods
        .iter()
        .zip(pings)
        .map(|((p, _, pod_ip), ping)| {
            let node_ip = lab
                .node(&p.node)
                .map_or(Ipv4Addr::UNSPECIFIED, |n| n.underlay_ip);
            let mut observed: Vec<Ipv4Addr> = Vec::new();
            for r in &requests {
                if (r.src == *pod_ip || r.src == node_ip) && !observed.contains(&r.src) {
                    observed.push(r.src);
                }
            }
            EgressProbe {
                node: p.node.clone(),
                pod_ip: *pod_ip,
                node_ip,
                target: outside.ip,
                observed_sources: observed,
                reply_received: ping
                    .map(|o| o.first().is_some_and(|o| o.received > 0))
                    .unwrap_or(false),
                seen_leaving_node: false,
            }
        })
        .collect())
}

/// `iptables -S` (filter table) inside every node namespace.
pub fn firewall(lab: &LabView) -> BTreeMap<String, FirewallFacts> {
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .nodes
            .iter()
            .filter_map(|n| Some((n, n.namespace.clone()?)))
            .map(|(n, ns)| {
                s.spawn(move || {
                    (
                        n.name.clone(),
                        run_in_netns(&ns, &["iptables", "-w", "-S"], Duration::from_secs(10)),
                    )
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    results
        .into_iter()
        .filter_map(|(node, r)| match r {
            Ok((true, text)) => Some((node, parse::parse_iptables(&text, lab.port))),
            _ => None,
        })
        .collect()
}

/// The kernel log of the last ten minutes (netns nodes share this host's
/// kernel); empty when dmesg cannot be read.
pub fn recent_kernel_log() -> String {
    let Ok(out) = Command::new("dmesg").stdin(Stdio::null()).output() else {
        return String::new();
    };
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| {
            let stamp = l
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(t, _)| t.trim().parse::<f64>().ok());
            stamp.is_none_or(|t| uptime - t < 600.0)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Kernel log lines of the last ten minutes about bad VXLAN checksums
/// between lab nodes, attributed to the receiving node.
pub fn kernel_log(lab: &LabView) -> Vec<(String, BadChecksum)> {
    parse::parse_bad_checksums(&recent_kernel_log(), lab.port)
        .into_iter()
        .filter_map(|b| {
            let to = b.to?;
            let node = lab.nodes.iter().find(|n| n.underlay_ip == to)?;
            Some((node.name.clone(), b))
        })
        .collect()
}
