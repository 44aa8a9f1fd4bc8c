//! Judging evidence: each check's pass/fail, its one-line summary and the
//! evidence lines a learner would otherwise collect by hand. Pure (the
//! probes fill [`Evidence`]; these functions only read it).

use labctl_lab::flannel::SUBNET_ENV_PATH;
use labctl_nodeplan::report::ObjectKind;
use serde_json::json;

use super::evidence::{Evidence, MeshCoverage, PingMatrix};
use super::model::{CheckId, CheckResult, LabView, Outcome};

fn result(
    id: CheckId,
    ok: bool,
    summary: String,
    details: Vec<String>,
    evidence: serde_json::Value,
) -> CheckResult {
    let mut r = CheckResult::new(id, if ok { Outcome::Pass } else { Outcome::Fail }, summary);
    r.details = details;
    r.evidence = evidence;
    r
}

/// `nodes`: every node reachable, the agent at `expected_version`.
pub fn nodes(ev: &Evidence, expected_version: &str) -> CheckResult {
    let good = |r: &&super::evidence::NodeReach| {
        r.reachable
            && r.agent_version
                .as_deref()
                .is_some_and(|v| v.contains(expected_version))
    };
    let ok_count = ev.reach.iter().filter(good).count();
    let details = ev
        .reach
        .iter()
        .map(|r| match (&r.error, &r.agent_version) {
            (Some(e), _) => format!("✗ {}: {e}", r.node),
            (None, Some(v)) if v.contains(expected_version) => format!("{}: ssh ok, {v}", r.node),
            (None, Some(v)) => format!("✗ {}: agent {v}, expected {expected_version}", r.node),
            (None, None) => format!("✗ {}: no agent", r.node),
        })
        .collect();
    result(
        CheckId::Nodes,
        ok_count == ev.reach.len() && !ev.reach.is_empty(),
        format!(
            "{ok_count}/{} nodes answer over SSH with labctl-agent {expected_version}",
            ev.reach.len()
        ),
        details,
        json!(ev.reach),
    )
}

/// `dataplane`: the agent's `check` found no difference on any node.
pub fn dataplane(lab: &LabView, ev: &Evidence, errors: &[(String, String)]) -> CheckResult {
    let mut details: Vec<String> = ev.drift.iter().map(|d| format!("✗ {}", d.line())).collect();
    details.extend(errors.iter().map(|(n, e)| format!("✗ {n}: {e}")));
    let ok = ev.drift.is_empty() && errors.is_empty() && ev.checked_nodes.len() == lab.nodes.len();
    let host_gw = lab.backend == labctl_nodeplan::Backend::HostGw;
    let summary = if ok && host_gw {
        super::underlay::dataplane_summary(lab)
    } else if ok {
        format!(
            "{} nodes match their plan: {} VNI {} port {}, cni0, {} peers each (route + neighbour + FDB), FLANNEL-POSTRTG/FLANNEL-FWD, subnet.env, CNI conflist",
            lab.nodes.len(),
            lab.vxlan_device,
            lab.vni,
            lab.port,
            lab.nodes.len().saturating_sub(1)
        )
    } else {
        let nodes: std::collections::BTreeSet<&str> =
            ev.drift.iter().map(|d| d.node.as_str()).collect();
        format!(
            "{} difference(s) on {}{}",
            ev.drift.len(),
            nodes.into_iter().collect::<Vec<_>>().join(", "),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; {} node(s) not checked", errors.len())
            }
        )
    };
    if ok && host_gw {
        details.extend(super::underlay::dataplane_details(lab));
    } else if ok {
        for n in &lab.nodes {
            details.push(format!(
                "{}: {} local {} subnet {}",
                n.name, lab.vxlan_device, n.underlay_ip, n.subnet
            ));
        }
    }
    let mut r = result(
        CheckId::Dataplane,
        ok,
        summary,
        details,
        json!({"checkedNodes": ev.checked_nodes, "differences": ev.drift, "errors": errors, "firewall": ev.firewall}),
    );
    if host_gw {
        r.proves = super::underlay::DATAPLANE_PROVES;
    }
    r
}

/// `pods`: one usable pod per node, IP inside its node's subnet.
pub fn pods(lab: &LabView, ev: &Evidence) -> CheckResult {
    let mut details = Vec::new();
    let mut bad = 0;
    for node in &lab.nodes {
        match ev.pods.iter().find(|p| p.node == node.name) {
            None => {
                bad += 1;
                details.push(format!("✗ {}: no pod", node.name));
            }
            Some(p) => match (&p.problem, p.ip) {
                (Some(problem), _) => {
                    bad += 1;
                    details.push(format!("✗ {}: {} {problem}", node.name, p.name));
                }
                (None, Some(ip)) if node.subnet.contains(&ip) => details.push(format!(
                    "{}: {} {ip} in {}{}",
                    node.name,
                    p.name,
                    node.subnet,
                    p.namespace
                        .as_ref()
                        .map(|n| format!(" (ip netns exec {n} …)"))
                        .unwrap_or_default()
                )),
                (None, Some(ip)) => {
                    bad += 1;
                    details.push(format!(
                        "✗ {}: {} has {ip}, outside its node subnet {}",
                        node.name, p.name, node.subnet
                    ));
                }
                (None, None) => {
                    bad += 1;
                    details.push(format!(
                        "✗ {}: {} has no IPv4 address on eth0",
                        node.name, p.name
                    ));
                }
            },
        }
    }
    result(
        CheckId::Pods,
        bad == 0,
        format!(
            "{}/{} nodes have a running pod with an IP from their subnet",
            lab.nodes.len() - bad,
            lab.nodes.len()
        ),
        details,
        json!(ev.pods),
    )
}

/// `pod-mesh`: every pair answered.
pub fn pod_mesh(mesh: &PingMatrix) -> CheckResult {
    let total = mesh.cells.len();
    let ok = mesh.cells.iter().filter(|c| c.ok()).count();
    let cross: Vec<f64> = mesh
        .cells
        .iter()
        .filter(|c| c.from != c.to)
        .filter_map(|c| c.rtt_avg_ms)
        .collect();
    let avg = if cross.is_empty() {
        0.0
    } else {
        cross.iter().sum::<f64>() / cross.len() as f64
    };
    let details = mesh
        .failures()
        .map(|c| {
            format!(
                "✗ {} → {} ({}): {}/{} answered{}",
                c.from,
                c.to,
                c.to_ip,
                c.received,
                c.sent,
                c.error
                    .as_ref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    result(
        CheckId::PodMesh,
        total > 0 && ok == total,
        match &mesh.coverage {
            MeshCoverage::Full => format!(
                "{ok}/{total} pod pairs answered ({} pods; avg RTT {avg:.3} ms)",
                mesh.nodes.len()
            ),
            sampled => format!(
                "{ok}/{total} pod pairs answered ({} pods; avg RTT {avg:.3} ms; {})",
                mesh.nodes.len(),
                sampled.describe()
            ),
        },
        details,
        json!(mesh),
    )
}

/// `vxlan`: every captured pair shows VXLAN on the right port and VNI,
/// pod IP to pod IP, leaving the sender and decapsulated at the receiver;
/// and no kernel log of bad VXLAN checksums.
pub fn vxlan(lab: &LabView, ev: &Evidence) -> CheckResult {
    let mut details = Vec::new();
    let mut ok = !ev.vxlan.is_empty();
    for p in &ev.vxlan {
        let wrong_vni = p.vnis.iter().any(|v| *v != lab.vni);
        let good = p.ping_ok
            && p.sender_out > 0
            && p.receiver_in > 0
            && p.receiver_decapsulated.is_none_or(|n| n > 0)
            && !wrong_vni;
        ok &= good;
        details.push(format!(
            "{}{} → {}: {} UDP :{} VNI {} packets out of {} ({}), {} into {}, {} decapsulated ({})",
            if good { "" } else { "✗ " },
            p.from,
            p.to,
            p.sender_out,
            lab.port,
            vni_text(lab, p),
            p.from,
            sources_text(lab, p),
            p.receiver_in,
            p.to,
            p.receiver_decapsulated
                .map_or("?".into(), |n| n.to_string()),
            p.method
        ));
    }
    for (node, b) in &ev.bad_checksums {
        ok = false;
        details.push(format!("✗ {node} kernel log: {}", b.line));
    }
    let good = ev
        .vxlan
        .iter()
        .filter(|p| p.ping_ok && p.receiver_in > 0)
        .count();
    result(
        CheckId::Vxlan,
        ok,
        format!(
            "{good}/{} node pairs carry pod traffic as VXLAN (UDP {}, VNI {})",
            ev.vxlan.len(),
            lab.port,
            lab.vni
        ),
        details,
        json!({"pairs": ev.vxlan, "badChecksums": ev.bad_checksums}),
    )
}

/// The VNIs seen for a pair; the lab's VNI when nothing was captured (so
/// the line still says what was looked for).
fn vni_text(lab: &LabView, p: &super::evidence::VxlanPair) -> String {
    if p.vnis.is_empty() {
        return lab.vni.to_string();
    }
    p.vnis
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The outer sources seen at the sender; its planned underlay IP when
/// nothing was captured.
fn sources_text(lab: &LabView, p: &super::evidence::VxlanPair) -> String {
    if p.outer_sources.is_empty() {
        return lab
            .node(&p.from)
            .map_or("?".to_string(), |n| n.underlay_ip.to_string());
    }
    p.outer_sources
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `mtu`: every probe passed at MTU − 28 and was refused at one byte more.
pub fn mtu(lab: &LabView, ev: &Evidence) -> CheckResult {
    let mut ok = !ev.mtu.is_empty();
    let mut details = Vec::new();
    for p in &ev.mtu {
        let good = p.fits_passed && p.over_failed;
        ok &= good;
        details.push(format!(
            "{}{} → {}: DF {} bytes {}, {} bytes {}{}",
            if good { "" } else { "✗ " },
            p.from,
            p.to,
            p.payload,
            if p.fits_passed { "ok" } else { "lost" },
            p.payload + 1,
            if p.over_failed {
                "refused"
            } else {
                "went through"
            },
            if p.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.detail)
            }
        ));
    }
    let mut other_mtus = 0;
    for m in ev.link_mtus.iter().filter(|m| m.mtu != lab.pod_mtu) {
        ok = false;
        other_mtus += 1;
        details.push(format!(
            "✗ {}: {} mtu {} (expected {})",
            m.node, m.device, m.mtu, lab.pod_mtu
        ));
    }
    let fits = lab.pod_mtu.saturating_sub(28);
    // A failure's summary counts what failed: the passing sentence would
    // claim what the probes did not see.
    let summary = if ok {
        format!(
            "pod MTU {} end to end: {fits} bytes + 28 header bytes fit, one more does not ({} node pairs)",
            lab.pod_mtu,
            ev.mtu.len()
        )
    } else {
        let good = ev
            .mtu
            .iter()
            .filter(|p| p.fits_passed && p.over_failed)
            .count();
        let mut text = format!(
            "pod MTU {}: {good}/{} node pairs carry {fits} bytes + 28 header bytes and refuse one more",
            lab.pod_mtu,
            ev.mtu.len()
        );
        if other_mtus > 0 {
            text.push_str(&format!("; {other_mtus} interface(s) with another MTU"));
        }
        text
    };
    result(
        CheckId::Mtu,
        ok,
        summary,
        details,
        json!({"probes": ev.mtu, "links": ev.link_mtus}),
    )
}

/// `dns`: every node's pod got the API service IP from the DNS service IP.
pub fn dns(lab: &LabView, ev: &Evidence) -> CheckResult {
    let nodes: std::collections::BTreeSet<&str> = ev.dns.iter().map(|p| p.node.as_str()).collect();
    // Every pod that asked must get the answer (the DNS pod too, where
    // labctl runs it), and every node must have asked.
    let good = ev.dns.iter().filter(|p| p.ok).count();
    let details = ev
        .dns
        .iter()
        .map(|p| {
            let answer = if p.timed_out {
                "no answer (timed out)".to_string()
            } else if p.nxdomain {
                "NXDOMAIN".to_string()
            } else {
                p.addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "{}{}/{}: nslookup {} → {answer} (server {})",
                if p.ok { "" } else { "✗ " },
                p.node,
                p.pod,
                p.query,
                p.server.map_or("?".into(), |s| s.to_string())
            )
        })
        .collect();
    result(
        CheckId::Dns,
        nodes.len() == lab.nodes.len() && good == ev.dns.len(),
        format!(
            "{good}/{} pods resolve kubernetes.default → {} via {}",
            ev.dns.len().max(lab.nodes.len()),
            lab.api_service_ip,
            lab.dns_service_ip
        ),
        details,
        json!(ev.dns),
    )
}

/// `egress`: every pod got out and was seen as its node.
pub fn egress(lab: &LabView, ev: &Evidence) -> CheckResult {
    let good = ev
        .egress
        .iter()
        .filter(|e| e.reply_received && e.masqueraded())
        .count();
    let details = ev
        .egress
        .iter()
        .map(|e| {
            let seen = if e.observed_sources.is_empty() {
                if e.seen_leaving_node {
                    format!("nothing left {}", e.node)
                } else {
                    "nothing arrived".to_string()
                }
            } else {
                format!(
                    "{} {}",
                    if e.seen_leaving_node {
                        "left the node as"
                    } else {
                        "far end saw"
                    },
                    e.observed_sources
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let good = e.reply_received && e.masqueraded();
            format!(
                "{}{}: pod {} → {}: {seen} (node {}){}",
                if good { "" } else { "✗ " },
                e.node,
                e.pod_ip,
                e.target,
                e.node_ip,
                if e.reply_received { "" } else { ", no reply" }
            )
        })
        .collect();
    let target = lab
        .outside
        .as_ref()
        .map_or("the outside".to_string(), |o| o.ip.to_string());
    result(
        CheckId::Egress,
        !ev.egress.is_empty() && good == ev.egress.len(),
        format!(
            "{good}/{} pods reach {target} masqueraded to their node's IP",
            ev.egress.len()
        ),
        details,
        json!(ev.egress),
    )
}

/// `kubernetes`: every lab node registered and Ready, its InternalIP its
/// lab IP, its podCIDR its planned subnet (and subnet.env the plan, as
/// the agent found), CoreDNS running.
pub fn kubernetes(lab: &LabView, ev: &Evidence) -> CheckResult {
    let k = ev.kubernetes.clone().unwrap_or_default();
    let mut details = Vec::new();
    let mut good_nodes = 0;
    for n in &lab.nodes {
        let Some(kn) = k.nodes.iter().find(|k| k.node == n.name) else {
            details.push(format!("✗ {}: not read from the API server", n.name));
            continue;
        };
        let mut wrong = Vec::new();
        if !kn.registered {
            wrong.push("not registered with the API server".to_string());
        } else if !kn.ready {
            wrong.push(format!("NotReady ({})", kn.ready_detail));
        }
        match kn.internal_ip {
            Some(ip) if ip == n.underlay_ip => {}
            Some(ip) if ip == super::kube::nodes::NAT_NIC_IP => wrong.push(format!(
                "InternalIP {ip} is the NAT NIC, not its lab IP {}",
                n.underlay_ip
            )),
            Some(ip) => wrong.push(format!("InternalIP {ip}, not its lab IP {}", n.underlay_ip)),
            None if kn.registered => wrong.push("no InternalIP".to_string()),
            None => {}
        }
        match kn.pod_cidr {
            Some(c) if c == n.subnet => {}
            Some(c) => wrong.push(format!(
                "podCIDR {c}, but its plan (cni0, subnet.env) has {}",
                n.subnet
            )),
            None if kn.registered => wrong.push("no podCIDR".to_string()),
            None => {}
        }
        let env_drift = ev.drift.iter().find(|d| {
            d.node == n.name
                && d.difference.kind == ObjectKind::File
                && d.difference.name == SUBNET_ENV_PATH
        });
        if let Some(d) = env_drift {
            wrong.push(format!(
                "subnet.env differs from the plan (actual {})",
                d.difference
                    .actual
                    .as_ref()
                    .map_or("(absent)".to_string(), |a| a.to_string())
            ));
        }
        if wrong.is_empty() {
            good_nodes += 1;
            let env = if ev.checked_nodes.contains(&n.name) {
                "= cni0 = subnet.env (agent check)"
            } else {
                "(subnet.env not checked: the dataplane check did not run on it)"
            };
            details.push(format!(
                "{}: Ready, InternalIP {}, podCIDR {} {env}",
                n.name, n.underlay_ip, n.subnet
            ));
        } else {
            details.push(format!("✗ {}: {}", n.name, wrong.join("; ")));
        }
    }
    let running = k
        .coredns
        .iter()
        .filter(|p| super::kube::pods::usable(p) && p.ready)
        .count();
    for p in &k.coredns {
        let good = super::kube::pods::usable(p) && p.ready;
        details.push(format!(
            "{}CoreDNS {} on {}: {}{}",
            if good { "" } else { "✗ " },
            p.name,
            p.node.as_deref().unwrap_or("no node"),
            super::kube::pods::state_text(p),
            if p.phase == "Running" && !p.ready {
                ", not ready"
            } else {
                ""
            }
        ));
    }
    if k.coredns.is_empty() && k.errors.is_empty() {
        details.push("✗ no CoreDNS pod (label k8s-app=kube-dns in kube-system)".into());
    }
    details.extend(k.errors.iter().map(|e| format!("✗ {e}")));
    let ok = good_nodes == lab.nodes.len()
        && !lab.nodes.is_empty()
        && !k.coredns.is_empty()
        && running == k.coredns.len()
        && k.errors.is_empty();
    result(
        CheckId::Kubernetes,
        ok,
        format!(
            "{good_nodes}/{} nodes Ready with their lab IP as InternalIP and podCIDR = planned subnet; CoreDNS {running}/{} running",
            lab.nodes.len(),
            k.coredns.len()
        ),
        details,
        json!(k),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::evidence::*;
    use labctl_nodeplan::report::Difference;

    #[test]
    fn egress_needs_reply_and_node_source() {
        let lab = crate::verify::diagnose::tests::lab3();
        let mut ev = Evidence::default();
        let probe = |src: &str, reply| EgressProbe {
            node: "master".into(),
            pod_ip: "10.244.0.2".parse().unwrap(),
            node_ip: "192.168.56.10".parse().unwrap(),
            target: "198.18.0.1".parse().unwrap(),
            observed_sources: vec![src.parse().unwrap()],
            reply_received: reply,
            seen_leaving_node: false,
        };
        ev.egress.push(probe("192.168.56.10", true));
        assert_eq!(egress(&lab, &ev).outcome, Outcome::Pass);
        ev.egress.push(probe("10.244.0.2", false));
        let r = egress(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(
            r.details[1].contains("far end saw 10.244.0.2"),
            "{:?}",
            r.details
        );
    }

    #[test]
    fn egress_seen_leaving_the_node_says_so_and_never_claims_the_far_end() {
        let lab = crate::verify::diagnose::tests::lab3();
        let mut ev = Evidence::default();
        let probe = |sources: Vec<&str>, reply| EgressProbe {
            node: "worker1".into(),
            pod_ip: "10.244.1.2".parse().unwrap(),
            node_ip: "192.168.56.11".parse().unwrap(),
            target: "192.168.56.1".parse().unwrap(),
            observed_sources: sources.into_iter().map(|s| s.parse().unwrap()).collect(),
            reply_received: reply,
            seen_leaving_node: true,
        };
        ev.egress.push(probe(vec!["192.168.56.11"], true));
        ev.egress.push(probe(vec!["10.244.1.2"], false));
        ev.egress.push(probe(vec![], false));
        let r = egress(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(
            r.details,
            [
                "worker1: pod 10.244.1.2 → 192.168.56.1: left the node as 192.168.56.11 (node 192.168.56.11)",
                "✗ worker1: pod 10.244.1.2 → 192.168.56.1: left the node as 10.244.1.2 (node 192.168.56.11), no reply",
                "✗ worker1: pod 10.244.1.2 → 192.168.56.1: nothing left worker1 (node 192.168.56.11), no reply",
            ]
        );
        assert!(r.details.iter().all(|d| !d.contains("far end")));
        let d = crate::verify::diagnose::diagnose(&lab, &ev);
        let jump = d
            .iter()
            .find(|d| d.cause == "postrouting-jump-missing")
            .expect("named");
        assert_eq!(jump.node.as_deref(), Some("worker1"));
        assert!(
            jump.evidence.iter().any(|e| e
                == "worker1: 10.244.1.2's echo requests left worker1 with source 10.244.1.2 (the pod), expected 192.168.56.11 (the node)"),
            "{jump:?}"
        );
    }

    #[test]
    fn vxlan_line_names_expected_vni_and_underlay_when_nothing_was_captured() {
        let lab = crate::verify::diagnose::tests::lab3();
        let mut ev = Evidence::default();
        ev.vxlan.push(VxlanPair {
            from: "worker1".into(),
            to: "worker2".into(),
            ..Default::default()
        });
        let r = vxlan(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(
            r.details[0].contains("0 UDP :8472 VNI 1 packets out of worker1 (192.168.56.11)"),
            "{:?}",
            r.details
        );
    }

    #[test]
    fn empty_evidence_fails_rather_than_passes() {
        let lab = crate::verify::diagnose::tests::lab3();
        let ev = Evidence::default();
        assert_eq!(pod_mesh(&PingMatrix::default()).outcome, Outcome::Fail);
        assert_eq!(vxlan(&lab, &ev).outcome, Outcome::Fail);
        assert_eq!(mtu(&lab, &ev).outcome, Outcome::Fail);
        assert_eq!(dns(&lab, &ev).outcome, Outcome::Fail);
        assert_eq!(pods(&lab, &ev).outcome, Outcome::Fail);
    }

    /// A failed `mtu` says what failed, never the passing sentence.
    #[test]
    fn a_failed_mtu_summary_counts_the_failures() {
        let lab = crate::verify::diagnose::tests::lab3();
        let probe = |fits_passed| MtuProbe {
            from: "worker1".into(),
            to: "master".into(),
            payload: 1422,
            fits_passed,
            over_failed: true,
            detail: String::new(),
        };
        let mut ev = Evidence {
            mtu: vec![probe(true), probe(false)],
            link_mtus: vec![LinkMtu {
                node: "worker2".into(),
                device: "flannel.1".into(),
                mtu: 1400,
            }],
            ..Default::default()
        };
        let r = mtu(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(
            r.summary,
            "pod MTU 1450: 1/2 node pairs carry 1422 bytes + 28 header bytes and refuse one more; 1 interface(s) with another MTU"
        );
        ev.mtu = vec![probe(true)];
        ev.link_mtus.clear();
        assert!(mtu(&lab, &ev).summary.contains("end to end"));
    }

    /// lab3 with the subnets the cluster handed out in the recorded node
    /// list (round-robin: worker1 got 10.244.2.0/24).
    fn kube_lab() -> LabView {
        let mut lab = crate::verify::diagnose::tests::lab3();
        lab.provider = "vagrant".into();
        lab.nodes[1].subnet = "10.244.2.0/24".parse().unwrap();
        lab.nodes[2].subnet = "10.244.1.0/24".parse().unwrap();
        lab
    }

    fn kube_evidence(lab: &LabView, nodes: &str) -> Evidence {
        let read = crate::verify::recorded::recorded;
        let (nodes, errors) = crate::verify::kube::nodes::kube_nodes(lab, &read(nodes));
        let coredns =
            crate::verify::kube::pods::parse_pods(&read("kubectl-pods-coredns.json")).unwrap();
        Evidence {
            kubernetes: Some(KubeEvidence {
                nodes,
                coredns,
                errors,
            }),
            checked_nodes: lab.nodes.iter().map(|n| n.name.clone()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn kubernetes_passes_on_the_recorded_ready_cluster() {
        let lab = kube_lab();
        let r = kubernetes(&lab, &kube_evidence(&lab, "kubectl-nodes-ready.json"));
        assert_eq!(r.outcome, Outcome::Pass, "{:?}", r.details);
        assert!(r.summary.starts_with("3/3 nodes Ready"), "{}", r.summary);
        assert!(r.summary.ends_with("CoreDNS 2/2 running"), "{}", r.summary);
        assert!(
            r.details[1].contains("worker1: Ready, InternalIP 192.168.56.11, podCIDR 10.244.2.0/24 = cni0 = subnet.env"),
            "{:?}",
            r.details
        );
        // The evidence travels in the JSON report.
        assert_eq!(r.evidence["nodes"][1]["pod_cidr"], "10.244.2.0/24");
        assert_eq!(r.evidence["nodes"][1]["internal_ip"], "192.168.56.11");
        assert_eq!(r.evidence["coredns"][0]["phase"], "Running");
    }

    #[test]
    fn kubernetes_names_not_ready_nat_ip_wrong_cidr_subnet_env_and_coredns() {
        let lab = kube_lab();
        let r = kubernetes(&lab, &kube_evidence(&lab, "kubectl-nodes-notready.json"));
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(
            r.details[2].starts_with("✗ worker2: NotReady ("),
            "{:?}",
            r.details
        );

        let r = kubernetes(&lab, &kube_evidence(&lab, "kubectl-nodes-nat-ip.json"));
        assert!(
            r.details[1].contains(
                "✗ worker1: InternalIP 10.0.2.15 is the NAT NIC, not its lab IP 192.168.56.11"
            ),
            "{:?}",
            r.details
        );

        // The plan the lab was built from says 10.244.1.0/24 for worker1.
        let plain = crate::verify::diagnose::tests::lab3();
        let mut ev = kube_evidence(&lab, "kubectl-nodes-ready.json");
        ev.drift.push(crate::verify::parse::Drift {
            node: "worker2".into(),
            difference: Difference::new(
                ObjectKind::File,
                "file /run/flannel/subnet.env",
                "/run/flannel/subnet.env",
            )
            .expected(Some("FLANNEL_SUBNET=10.244.1.1/24".into()))
            .actual(Some("FLANNEL_SUBNET=10.244.9.1/24".into())),
        });
        let r = kubernetes(&plain, &ev);
        assert!(
            r.details[1].contains(
                "podCIDR 10.244.2.0/24, but its plan (cni0, subnet.env) has 10.244.1.0/24"
            ),
            "{:?}",
            r.details
        );
        assert!(
            r.details[2].contains("subnet.env differs from the plan"),
            "{:?}",
            r.details
        );

        let mut ev = kube_evidence(&lab, "kubectl-nodes-ready.json");
        let k = ev.kubernetes.as_mut().unwrap();
        k.coredns[1].phase = "Pending".into();
        k.coredns[1].reason = Some("ContainerCreating".into());
        let r = kubernetes(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.summary.ends_with("CoreDNS 1/2 running"), "{}", r.summary);
        assert!(
            r.details.iter().any(|d| d.starts_with(
                "✗ CoreDNS coredns-668d6bf9bc-m9q4z on master: Pending (ContainerCreating)"
            )),
            "{:?}",
            r.details
        );
        ev.kubernetes.as_mut().unwrap().coredns.clear();
        assert!(kubernetes(&lab, &ev)
            .details
            .iter()
            .any(|d| d.contains("no CoreDNS pod")));
    }

    #[test]
    fn kubernetes_without_api_answers_fails_with_the_error() {
        let lab = kube_lab();
        let ev = Evidence {
            kubernetes: Some(KubeEvidence {
                errors: vec!["master: `kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json` exited 1: The connection to the server 192.168.56.10:6443 was refused".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = kubernetes(&lab, &ev);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.details.iter().any(|d| d.contains("was refused")));
        assert_eq!(r.details[0], "✗ master: not read from the API server");
    }
}
