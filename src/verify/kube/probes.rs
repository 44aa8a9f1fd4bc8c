//! The pod probes of kubeadm labs: every one a single `kubectl exec`
//! fan-out on the control plane ([`super::kubectl`]), all pods at once;
//! vxlan and mtu also run on the nodes over their own sessions, as in
//! network-only labs ([`crate::verify::remote`], whose evidence builders
//! they share).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use labctl_nodeplan::NodePlan;

use super::kubectl::{self, ExecAnswer, Kubectl};
use crate::ssh::Session;
use crate::verify::evidence::{DnsProbe, EgressProbe, LinkMtu, MtuProbe, PingMatrix, VxlanPair};
use crate::verify::model::{LabView, PodView};
use crate::verify::parse::BadChecksum;
use crate::verify::remote::egress::{egress_probe, parse_egress_output, EGRESS_SCRIPT};
use crate::verify::remote::probes::MtuSource;
use crate::verify::remote::scripts::VXLAN_SCRIPT;
use crate::verify::remote::{
    self, on_nodes, parse_tagged, ping_cell, ping_result, ring, ring_pairs, script, Usable,
};
use crate::verify::target::AGENT_PATH;

/// The agents capture this long; the `kubectl exec` pings start
/// [`PING_DELAY`] in (kubectl exec itself takes a moment to start).
const CAPTURE_SECONDS: &str = "7";
const PING_DELAY: Duration = Duration::from_millis(1500);

/// The usable pods, each reached by its name.
pub fn usable(pods: &[PodView]) -> Vec<Usable> {
    pods.iter()
        .enumerate()
        .filter(|(_, p)| p.problem.is_none())
        .filter_map(|(i, p)| Some((i, p.name.clone(), p.ip?)))
        .collect()
}

/// What one `kubectl exec` fan-out answered, pod by pod, or why it failed.
type ExecAnswers = Result<BTreeMap<String, ExecAnswer>, String>;

/// The output of `pod` in `answers`, or why there is none.
fn answer_of(answers: &ExecAnswers, cp: &str, pod: &str) -> Result<String, String> {
    match answers {
        Ok(a) => a.get(pod).cloned().unwrap_or_default().into_result(cp, pod),
        Err(e) => Err(e.clone()),
    }
}

/// `pod-mesh`: every pod pings every other pod, all pods at once.
pub fn mesh(k: &Kubectl, pods: &[PodView], ok: &[Usable]) -> PingMatrix {
    let jobs: Vec<(String, Vec<String>)> = ok
        .iter()
        .map(|(i, name, _)| {
            let mut args = vec!["2".to_string()];
            args.extend(
                ok.iter()
                    .filter(|(j, _, _)| j != i)
                    .map(|(_, _, ip)| ip.to_string()),
            );
            (name.clone(), args)
        })
        .collect();
    let answers = k.exec_all(kubectl::POD_PING_SCRIPT, &jobs);
    let mut matrix = PingMatrix {
        nodes: ok.iter().map(|(i, _, _)| pods[*i].node.clone()).collect(),
        cells: Vec::new(),
    };
    for (i, name, _) in ok {
        let answer = answer_of(&answers, k.node, name);
        let lines = answer
            .as_ref()
            .map(|t| parse_tagged(t, 1))
            .unwrap_or_default();
        for (j, _, ip) in ok.iter().filter(|(j, _, _)| j != i) {
            let line = lines.iter().find(|(key, _)| key[0] == ip.to_string());
            let (summary, error) = match (line, &answer) {
                (Some((_, out)), _) => ping_result(out),
                (None, Err(e)) => (None, Some(e.clone())),
                (None, Ok(_)) => (None, Some("no output for this target".into())),
            };
            let cell = ping_cell(&pods[*i].node, &pods[*j].node, *ip, (summary, error));
            matrix.cells.push(cell);
        }
    }
    matrix
}

/// What every node's agent printed (`None` without a session or a plan)
/// and the `kubectl exec` answers, when each node runs `node_script` (the
/// agent, no pod namespace, [`CAPTURE_SECONDS`], `target`; its plan on
/// stdin) while, [`PING_DELAY`] in, the `jobs` ping through kubectl.
fn capture_while_kubectl_pings(
    k: &Kubectl,
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    node_script: &str,
    target: &str,
    jobs: &[(String, Vec<String>)],
) -> (Vec<Option<Result<String, String>>>, ExecAnswers) {
    std::thread::scope(|s| {
        let captures = s.spawn(|| {
            on_nodes(sessions, |i, s| {
                let node = &view.nodes.get(i)?.name;
                let plan = plans.iter().find(|p| &p.node == node)?;
                // No pod namespace: the pings come from kubectl.
                let args = [AGENT_PATH, "", CAPTURE_SECONDS, target];
                Some(script(
                    s,
                    node_script,
                    &args,
                    Some(plan.to_json().as_bytes()),
                ))
            })
        });
        std::thread::sleep(PING_DELAY);
        let answers = k.exec_all(kubectl::POD_PING_SCRIPT, jobs);
        let outputs: Vec<_> = captures
            .join()
            .unwrap_or_default()
            .into_iter()
            .map(Option::flatten)
            .collect();
        (outputs, answers)
    })
}

/// A pod's ping output out of its tagged `kubectl exec` answer (the
/// whole answer when it carries no tag).
fn ping_output(answer: String) -> String {
    parse_tagged(&answer, 1)
        .into_iter()
        .next()
        .map(|(_, out)| out)
        .unwrap_or(answer)
}

/// `vxlan`: every node's agent captures on its underlay while a ring of
/// cross-node `kubectl exec` pings runs (pod i → pod i+1).
pub fn vxlan(
    k: &Kubectl,
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
    ok: &[Usable],
) -> (Vec<VxlanPair>, Vec<(String, BadChecksum)>) {
    let pairs = ring(ok.len());
    let jobs: Vec<(String, Vec<String>)> = pairs
        .iter()
        .map(|(a, b)| (ok[*a].1.clone(), vec!["3".into(), ok[*b].2.to_string()]))
        .collect();
    // No target: the VXLAN capture watches the underlay.
    let (outputs, answers) =
        capture_while_kubectl_pings(k, sessions, view, plans, VXLAN_SCRIPT, "", &jobs);
    let mut outputs: Vec<_> = outputs
        .into_iter()
        .zip(&view.nodes)
        .map(|(o, n)| o.map(|r| r.map(|t| remote::parse_vxlan_output(&n.name, &t))))
        .collect();
    let four = ring_pairs(&pairs, pods, ok);
    let mut ping_errors = Vec::new();
    for ((a, _), (from, _, _, _)) in pairs.iter().zip(&four) {
        let ping = answer_of(&answers, k.node, &ok[*a].1).map(ping_output);
        let ping = ping.unwrap_or_else(|e| {
            ping_errors.push((from.clone(), e.clone()));
            e
        });
        if let Some(Some(Ok(o))) = view
            .nodes
            .iter()
            .position(|n| &n.name == from)
            .and_then(|i| outputs.get_mut(i))
        {
            o.ping = Some(ping);
        }
    }
    let (mut found, bad) = remote::vxlan_evidence(
        view,
        &four,
        &outputs,
        "labctl-agent capture on the underlay interface (AF_PACKET) over SSH, pings by kubectl exec",
    );
    // A ping that never ran says why in its pair's line.
    for (from, e) in ping_errors {
        if let Some(p) = found.iter_mut().find(|p| p.from == from) {
            p.method = format!("{}; ping: {e}", p.method);
        }
    }
    (found, bad)
}

/// `mtu`: the agent's DF pings of pod MTU − 28 and one byte more from
/// each node to the pods on the next node (both ways round the ring), the
/// node MTUs, and each pod's eth0 MTU through `kubectl exec`.
pub fn mtu(
    k: &Kubectl,
    sessions: &mut [Option<Session>],
    view: &LabView,
    pods: &[PodView],
    ok: &[Usable],
) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let (probes, mut links) = remote::probes::mtu(sessions, view, pods, ok, MtuSource::Node);
    let jobs: Vec<(String, Vec<String>)> = ok.iter().map(|(_, n, _)| (n.clone(), vec![])).collect();
    let answers = k.exec_all(kubectl::POD_MTU_SCRIPT, &jobs);
    for (i, name, _) in ok {
        let text = answer_of(&answers, k.node, name).unwrap_or_default();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("@mtu eth0 "))
            .and_then(|v| v.trim().parse().ok());
        if let Some(mtu) = value {
            links.push(LinkMtu {
                node: pods[*i].node.clone(),
                device: format!("pod {name} eth0"),
                mtu,
            });
        }
    }
    (probes, links)
}

/// `dns`: `nslookup kubernetes.default` in every pod at once.
pub fn dns(k: &Kubectl, view: &LabView, pods: &[PodView], ok: &[Usable]) -> Vec<DnsProbe> {
    let jobs: Vec<(String, Vec<String>)> = ok.iter().map(|(_, n, _)| (n.clone(), vec![])).collect();
    let answers = k.exec_all(kubectl::POD_DNS_SCRIPT, &jobs);
    ok.iter()
        .map(|(i, name, _)| {
            // nslookup exits 1 on NXDOMAIN: its output is the evidence.
            let text = match &answers {
                Ok(a) => a.get(name).map(|a| a.output.clone()).unwrap_or_default(),
                Err(e) => e.clone(),
            };
            remote::dns_probe(&pods[*i].node, &pods[*i].name, &text, view)
        })
        .collect()
}

/// `egress`: every node's agent captures the echo requests to `target`
/// leaving the node while every pod pings `target` by `kubectl exec`.
/// One probe per usable pod, and a line per node whose probe failed.
pub fn egress(
    k: &Kubectl,
    sessions: &mut [Option<Session>],
    view: &LabView,
    plans: &[NodePlan],
    pods: &[PodView],
    ok: &[Usable],
    target: Ipv4Addr,
) -> (Vec<EgressProbe>, Vec<String>) {
    let to = target.to_string();
    let jobs: Vec<(String, Vec<String>)> = ok
        .iter()
        .map(|(_, name, _)| (name.clone(), vec!["3".into(), to.clone()]))
        .collect();
    let (outputs, answers) =
        capture_while_kubectl_pings(k, sessions, view, plans, EGRESS_SCRIPT, &to, &jobs);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (i, name, pod_ip) in ok {
        let node_name = &pods[*i].node;
        let Some((at, node)) = view
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| &n.name == node_name)
        else {
            continue;
        };
        let mut out = match outputs.get(at).cloned().flatten() {
            Some(Ok(text)) => parse_egress_output(node_name, &text),
            Some(Err(e)) => {
                errors.push(format!("✗ {node_name}: {e}"));
                continue;
            }
            None => {
                errors.push(format!("✗ {node_name}: not reachable over SSH"));
                continue;
            }
        };
        if let Err(e) = &out.departures {
            errors.push(format!("✗ {node_name}: {e}"));
        }
        match answer_of(&answers, k.node, name) {
            Ok(t) => out.ping = Some(ping_output(t)),
            Err(e) => errors.push(format!("✗ {node_name}: ping by kubectl exec: {e}")),
        }
        found.push(egress_probe(
            node_name,
            *pod_ip,
            node.underlay_ip,
            target,
            &out,
        ));
    }
    (found, errors)
}
