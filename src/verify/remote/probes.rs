//! The pod probes of network-only VM labs, each one constant script
//! ([`super::scripts`]) run on every node's session at once
//! ([`super::on_nodes`]); the pods are namespaces on the nodes.

use std::net::Ipv4Addr;

use labctl_nodeplan::NodePlan;

use super::egress::{egress_probe, parse_egress_output, EGRESS_CAPTURE_SECONDS};

use super::agent_ping;
use super::output::{
    dns_probe, link_mtus, mtu_pairs, parse_ip_addr_json, parse_tagged, parse_vxlan_output, ring,
    ring_pairs, vxlan_evidence, Usable,
};
use super::scripts::{
    CAPTURE_SECONDS, DNS_SCRIPT, EGRESS_PING_SCRIPT, MTU_SCRIPT, VXLAN_ARM_SCRIPT, VXLAN_PACKETS,
    VXLAN_PING_SCRIPT,
};
use super::{on_nodes, script};
use crate::ssh::Session;
use crate::verify::evidence::{DnsProbe, EgressProbe, LinkMtu, MtuProbe, PingMatrix, VxlanPair};
use crate::verify::model::{LabView, PodView};
use crate::verify::parse;
use crate::verify::target::AGENT_PATH;

/// The pod's first non-loopback IPv4 address, from `ip -j -n NS -4 addr`.
pub(super) fn inspect_pod(s: &Session, mut pod: PodView) -> PodView {
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

/// The usable pods, each reached by its namespace.
pub(super) fn usable(pods: &[PodView]) -> Vec<Usable> {
    pods.iter()
        .enumerate()
        .filter(|(_, p)| p.problem.is_none())
        .filter_map(|(i, p)| Some((i, p.namespace.clone()?, p.ip?)))
        .collect()
}

/// The pod of the node at `i` in the view, if usable.
fn pod_at<'a>(
    view: &LabView,
    usable: &'a [Usable],
    pods: &[PodView],
    i: usize,
) -> Option<&'a Usable> {
    let node = &view.nodes.get(i)?.name;
    usable.iter().find(|(j, _, _)| &pods[*j].node == node)
}

/// `pod-mesh`: on every node at once, its agent pings every other pod
/// from the node's pod.
pub(super) fn mesh(
    sessions: &mut [Option<Session>],
    view: &LabView,
    pods: &[PodView],
) -> PingMatrix {
    let ok = usable(pods);
    let answers = on_nodes(sessions, |i, s| {
        let (j, ns, _) = pod_at(view, &ok, pods, i)?;
        let targets: Vec<String> = ok
            .iter()
            .filter(|(k, _, _)| k != j)
            .map(|(_, _, ip)| ip.to_string())
            .collect();
        Some(agent_ping::MESH.run(s, ns, &targets))
    });
    let mut matrix = PingMatrix {
        nodes: ok.iter().map(|(j, _, _)| pods[*j].node.clone()).collect(),
        cells: Vec::new(),
    };
    for (i, answer) in answers.into_iter().enumerate() {
        let Some((j, _, _)) = pod_at(view, &ok, pods, i) else {
            continue;
        };
        let from = &pods[*j].node;
        let report = answer
            .flatten()
            .unwrap_or_else(|| Err(format!("{from} is not reachable over SSH")));
        for (k, _, ip) in ok.iter().filter(|(k, _, _)| k != j) {
            matrix
                .cells
                .push(agent_ping::cell(from, &pods[*k].node, *ip, &report));
        }
    }
    matrix
}

/// `vxlan`: every node's agent captures on its underlay (all captures
/// open first), then a ring of cross-node pings runs; the kernel logs are
/// read for bad checksums.
pub(super) fn vxlan(
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
) -> (Vec<VxlanPair>, Vec<(String, parse::BadChecksum)>) {
    let ok = usable(pods);
    let pairs = ring(ok.len());
    let armed = on_nodes(sessions, |i, s| {
        let node = &view.nodes.get(i)?.name;
        let plan = plans.iter().find(|p| &p.node == node)?;
        let args = [AGENT_PATH, CAPTURE_SECONDS, VXLAN_PACKETS];
        Some(
            script(s, VXLAN_ARM_SCRIPT, &args, Some(plan.to_json().as_bytes())).and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("@dir "))
                    .map(str::to_string)
                    .ok_or_else(|| format!("{node}: the capture did not start: {t}"))
            }),
        )
    });
    let outputs = on_nodes(sessions, |i, s| {
        let node = &view.nodes.get(i)?.name;
        let dir = match armed.get(i)?.as_ref()?.as_ref()? {
            Ok(dir) => dir,
            Err(e) => return Some(Err(e.clone())),
        };
        let me = ok.iter().position(|(j, _, _)| &pods[*j].node == node);
        let (ns, target) = match me {
            Some(a) => {
                let to = pairs
                    .iter()
                    .find(|(x, _)| *x == a)
                    .map(|(_, b)| ok[*b].2.to_string());
                (ok[a].1.clone(), to.unwrap_or_default())
            }
            None => (String::new(), String::new()),
        };
        // netns nodes share this host's kernel: one node reads its log.
        let log = if view.provider != "netns" || i == 0 {
            "log"
        } else {
            ""
        };
        let args = [AGENT_PATH, dir.as_str(), ns.as_str(), target.as_str(), log];
        Some(script(s, VXLAN_PING_SCRIPT, &args, None).map(|t| parse_vxlan_output(node, &t)))
    });
    let outputs: Vec<_> = outputs.into_iter().map(Option::flatten).collect();
    vxlan_evidence(
        view,
        &ring_pairs(&pairs, pods, &ok),
        &outputs,
        "labctl-agent capture on the underlay interface (AF_PACKET), over SSH",
    )
}

/// Where the `mtu` check's DF pings start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MtuSource {
    /// Inside the node's pod (its namespace on the node): the pod's eth0
    /// MTU is read too.
    Pod,
    /// On the node itself, across the VXLAN device to the other node's pod
    /// (kubeadm labs: the agent cannot enter a Kubernetes pod's namespace).
    Node,
}

/// `mtu`: the agent's DF pings of pod MTU − 28 and one byte more both
/// ways round the ring of the usable pods `ok`, from `source`, and the
/// interface MTUs.
pub(crate) fn mtu(
    sessions: &mut [Option<Session>],
    view: &LabView,
    pods: &[PodView],
    ok: &[Usable],
    source: MtuSource,
) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let pairs = mtu_pairs(ok.len());
    let fits = view.pod_mtu.saturating_sub(28);
    let size = fits.to_string();
    let outputs = on_nodes(sessions, |i, s| {
        let (_, name, _) = pod_at(view, ok, pods, i)?;
        let a = ok.iter().position(|(_, n, _)| n == name)?;
        let ns = if source == MtuSource::Pod {
            name.as_str()
        } else {
            ""
        };
        let targets: Vec<String> = pairs
            .iter()
            .filter(|(x, _)| *x == a)
            .map(|(_, b)| ok[*b].2.to_string())
            .collect();
        let mut args = vec![ns, size.as_str(), view.vxlan_device.as_str(), AGENT_PATH];
        args.extend(targets.iter().map(String::as_str));
        Some(script(s, MTU_SCRIPT, &args, None))
    });
    let texts: Vec<Result<String, String>> = outputs
        .into_iter()
        .zip(&view.nodes)
        .map(|(o, n)| {
            o.flatten()
                .unwrap_or_else(|| Err(format!("{} is not reachable over SSH", n.name)))
        })
        .collect();
    let mut links = Vec::new();
    let mut probes = Vec::new();
    for (from, to, _, target) in ring_pairs(&pairs, pods, ok) {
        let Some(i) = view.nodes.iter().position(|n| n.name == from) else {
            continue;
        };
        let report = |bytes: u32| match &texts[i] {
            Ok(text) => parse_tagged(text, 2)
                .into_iter()
                .find(|(k, _)| k[0] == bytes.to_string())
                .map_or_else(
                    || Err(format!("{from}: no output for {bytes} bytes")),
                    |(k, out)| {
                        agent_ping::read_report(&from, k[1].parse().unwrap_or(-1), &out, &out)
                    },
                ),
            Err(e) => Err(e.clone()),
        };
        probes.push(agent_ping::mtu_probe(
            (&from, &to, target),
            fits,
            &report(fits),
            &report(fits + 1),
        ));
    }
    for (node, text) in view.nodes.iter().zip(&texts) {
        links.extend(link_mtus(&node.name, text.as_deref().unwrap_or("")));
    }
    (probes, links)
}

/// `dns`: `busybox nslookup kubernetes.default` in the node's pod.
pub(super) fn dns(s: &Session, pod: &PodView, view: &LabView) -> Option<DnsProbe> {
    let ns = pod.namespace.as_deref().filter(|_| pod.problem.is_none())?;
    // A failed lookup exits non-zero: its output (and the resolv.conf's
    // `@nameserver` lines before it) are the evidence all the same.
    let text = match s.run(&["sh", "-c", DNS_SCRIPT, "sh", ns], None) {
        Ok(out) => out.stdout_text() + &out.stderr_text(),
        Err(e) => e.to_string(),
    };
    Some(dns_probe(&pod.node, &pod.name, &text, view))
}

/// `egress`: on every node at once, the agent captures the echo requests
/// to `target` leaving the node while the node's pod pings `target`.
/// Returns one probe per usable pod, and a line per node whose probe
/// could not run.
pub(super) fn egress(
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
    target: Ipv4Addr,
) -> (Vec<EgressProbe>, Vec<String>) {
    let ok = usable(pods);
    let to = target.to_string();
    let outputs = on_nodes(sessions, |i, s| {
        let node = &view.nodes.get(i)?.name;
        let plan = plans.iter().find(|p| &p.node == node)?;
        let (_, ns, _) = pod_at(view, &ok, pods, i)?;
        let args = [AGENT_PATH, ns.as_str(), EGRESS_CAPTURE_SECONDS, to.as_str()];
        Some(script(
            s,
            EGRESS_PING_SCRIPT,
            &args,
            Some(plan.to_json().as_bytes()),
        ))
    });
    let mut probes = Vec::new();
    let mut errors = Vec::new();
    for (i, output) in outputs.into_iter().enumerate() {
        let Some(node) = view.nodes.get(i) else {
            continue;
        };
        let Some((_, _, pod_ip)) = pod_at(view, &ok, pods, i) else {
            continue;
        };
        let out = match output.flatten() {
            Some(Ok(text)) => parse_egress_output(&node.name, &text),
            Some(Err(e)) => {
                errors.push(format!("✗ {}: {e}", node.name));
                continue;
            }
            None => {
                errors.push(format!("✗ {}: not reachable over SSH", node.name));
                continue;
            }
        };
        if let Err(e) = &out.departures {
            errors.push(format!("✗ {}: {e}", node.name));
        }
        probes.push(egress_probe(
            &node.name,
            *pod_ip,
            node.underlay_ip,
            target,
            &out,
        ));
    }
    (probes, errors)
}
