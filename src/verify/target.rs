//! The lab verify looks at: the lab file (for the plans), the lab's state
//! on this host (nodes' SSH endpoints, namespaces, pods), and the SSH
//! sessions for the node-level checks (`nodes`, `dataplane`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use labctl_lab::Lab;
use labctl_nodeplan::report::{self, InspectReport, NamespaceLinks};
use labctl_nodeplan::{Backend, NodePlan};

use super::evidence::{Evidence, NodeReach, PodView};
use super::model::{LabView, NodeView, Outside};
use super::parse;
use super::pool;
use super::probe::fanout::{run_on, Job, JobOutput};
use crate::exit::ExitError;
use crate::ssh::{HostKeyPolicy, Session};
use crate::state::{LabDir, LabState};

/// Where the agent lives on every node (the lifecycle uploads it there).
pub use crate::nodes::AGENT_PATH;

/// How long verify waits for a node's SSH server.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Nodes whose command runs at once when jobs ride along the check.
const ALONG_WORKERS: usize = 200;
/// How long one command on a node (`--version`, `check`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A lab that is up, as verify needs it.
pub struct Target {
    pub view: LabView,
    pub plans: Vec<NodePlan>,
    pub pods: Vec<PodView>,
    /// The DNS pod on the control plane where labctl runs it (netns and
    /// network-only labs): dns asks from it too, through its own service.
    pub dns_pod: Option<PodView>,
    pub dir: LabDir,
    pub state: LabState,
    /// Host keys [`Target::connect_node`] refused, one message per node:
    /// verify then ends with exit 3 ([`Target::refused_host_keys`]).
    refused: Mutex<Vec<String>>,
}

/// Reads the lab file `path` (default ./lab.yaml, else the only lab on this
/// host, through the copy in its state folder).
fn resolve(path: Option<&Path>) -> Result<Lab> {
    if let Some(path) = path {
        return Ok(crate::labfile::load(Some(path))?.lab);
    }
    if Path::new(crate::labfile::DEFAULT_LAB).is_file() {
        return Ok(crate::labfile::load(None)?.lab);
    }
    let labs = crate::state::lab_names();
    match labs.as_slice() {
        [only] => {
            let dir = LabDir::new(only)?;
            Ok(crate::labfile::load(Some(&dir.lab_copy()))?.lab)
        }
        [] => Err(ExitError::environment(anyhow!(
            "no lab named, no ./lab.yaml, and no lab is up on this host; bring one up with `labctl up LAB.yaml`"
        ))),
        many => Err(ExitError::usage(anyhow!(
            "no lab named and this host has several: {}; name one (`labctl verify LAB.yaml`)",
            many.join(", ")
        ))),
    }
}

impl Target {
    /// The plan of node `at` (the view's nodes are the plans, in order).
    pub fn plan(&self, at: usize) -> Option<&NodePlan> {
        self.plans.get(at)
    }

    /// Loads the lab and its state; exit 3 when the lab is not up (or is
    /// another user's), or is a netns lab and verify does not run as root.
    /// vagrant and ssh labs verify as the user who brought them up: every
    /// probe runs on the nodes over SSH.
    pub fn load(path: Option<&Path>) -> Result<Target> {
        let lab = resolve(path)?;
        let dir = LabDir::new(&lab.name)?;
        if !dir.exists() {
            crate::lab_owner::refuse_if_elsewhere(&lab.name, "verify", ExitError::environment)?;
            return Err(ExitError::environment(anyhow!(
                "lab {} is not up on this host (no state in {}); run `labctl up` first",
                lab.name,
                dir.path.display()
            )));
        }
        let state = dir.load()?;
        if state.provider == "netns" && !crate::process::is_root() {
            return Err(ExitError::environment(anyhow!(
                "lab {} is a netns lab: its nodes are namespaces on this host, reached with keys and state only root may read, and verify reads the host's neighbour table; run `sudo labctl verify`",
                lab.name
            )));
        }
        let mut plans = labctl_lab::plan(&lab);
        for plan in &mut plans {
            let Ok(saved) = dir.saved_plan(&plan.node) else {
                continue;
            };
            if state.kubernetes {
                // The cluster hands out podCIDRs in its own order; `up`
                // built and saved the plans from them (plan_with_subnets).
                *plan = saved;
            } else {
                // The DNS service's chains DNAT to the DNS pod, whose
                // address only `up` knew: they are checked as `up` made
                // them (and the agent's stamp, which covers the whole
                // iptables part of the plan, spares the listing).
                plan.iptables.services = saved.iptables.services;
            }
        }
        let view = view(&lab, &plans, &state);
        let pods = pods(&lab, &state);
        let dns_pod = dns_pod(&lab, &state);
        Ok(Target {
            view,
            plans,
            pods,
            dns_pod,
            dir,
            state,
            refused: Mutex::new(Vec::new()),
        })
    }

    /// A node of the lab file must be in the lab's state to be reached.
    fn known(&self, node: &str) -> Result<()> {
        if self.state.nodes.contains_key(node) {
            return Ok(());
        }
        Err(anyhow!(
            "node {node} is in the lab file but not in the lab's state: run `labctl up`"
        ))
    }

    /// Connects to every node (at most [`pool::WORKERS`] at a time). The
    /// sessions stay open so that [`Target::agent_check`] and the probes
    /// reuse them: one SSH connection per node.
    pub fn connect_all(&self) -> (Vec<Option<Session>>, Vec<NodeReach>) {
        let names: Vec<&str> = self.view.nodes.iter().map(|n| n.name.as_str()).collect();
        let results = pool::map(
            names.clone(),
            pool::WORKERS,
            |node| self.reach(node),
            |i| {
                (
                    None,
                    NodeReach {
                        node: names[i].to_string(),
                        reachable: false,
                        agent_version: None,
                        error: Some("probe thread panicked".into()),
                    },
                )
            },
        );
        results.into_iter().unzip()
    }

    /// An SSH session to `node`, as root (VM users reach it by sudo -n),
    /// commands bounded in time so a hung node cannot hang verify.
    pub fn connect_node(&self, node: &str) -> Result<Session> {
        self.known(node)?;
        // The node layer's connect: as root, the sshd log's tail on failure.
        let connected = crate::nodes::connect(
            &self.dir,
            &self.state,
            node,
            &HostKeyPolicy::RequireKnown,
            CONNECT_DEADLINE,
        );
        let mut session = match connected {
            Ok(session) => session,
            Err(e) => {
                if crate::ssh::is_host_key_refusal(&e) {
                    let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
                    refused.push(format!("{e:#}"));
                }
                return Err(e);
            }
        };
        session.set_command_timeout(Some(COMMAND_TIMEOUT));
        Ok(session)
    }

    /// Exit 3 when a node's host key was refused: verify does not vouch
    /// for a lab whose machines it cannot identify.
    pub fn refused_host_keys(&self) -> Result<()> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.is_empty() {
            return Ok(());
        }
        Err(ExitError::environment(anyhow!("{}", refused.join("\n"))))
    }

    fn reach(&self, node: &str) -> (Option<Session>, NodeReach) {
        let mut r = NodeReach {
            node: node.to_string(),
            reachable: false,
            agent_version: None,
            error: None,
        };
        let session = match self.connect_node(node) {
            Ok(s) => s,
            Err(e) => {
                r.error = Some(format!("{e:#}"));
                return (None, r);
            }
        };
        r.reachable = true;
        (Some(session), r)
    }

    /// Asks every reachable node's agent for its version (into
    /// `ev.reach`), the addresses of `pods` (into `ev.pods`, when given)
    /// and, when `check`, to check the node against its plan
    /// (plan on stdin), with the node's `iptables -S`: one command per
    /// node, over the sessions [`Target::connect_all`] opened, which come
    /// back in node order for the probes that follow. Fills `ev.drift`,
    /// `ev.checked_nodes` and `ev.firewall`; returns the check's per-node
    /// errors, and the outputs of `along`: jobs that ride in the same
    /// command as their node's check (side by side with it), in order.
    pub(crate) fn agent_check(
        &self,
        sessions: Vec<Option<Session>>,
        ev: &mut Evidence,
        check: bool,
        pods: Option<&[PodView]>,
        along: &[Job],
    ) -> NodeRound {
        let mut sessions = sessions.into_iter();
        // Each node's pod namespaces, grouped once (1,000 nodes, 1,000 pods).
        let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for pod in pods.unwrap_or_default() {
            if let Some(ns) = &pod.namespace {
                by_node
                    .entry(pod.node.as_str())
                    .or_default()
                    .push(ns.clone());
            }
        }
        type NodeWork<'a> = (
            &'a str,
            Option<Session>,
            Option<&'a NodePlan>,
            Vec<String>,
            Vec<&'a [String]>,
        );
        let work: Vec<NodeWork> = self
            .view
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let node = n.name.as_str();
                let pods = by_node.remove(node).unwrap_or_default();
                let mine = along
                    .iter()
                    .filter(|j| j.at == i)
                    .map(|j| j.argv.as_slice())
                    .collect();
                (node, sessions.next().flatten(), self.plan(i), pods, mine)
            })
            .collect();
        let names: Vec<&str> = work.iter().map(|(n, ..)| *n).collect();
        // Jobs riding along (the mesh's pings) mostly wait on the network:
        // then many nodes' commands run at once, though not all of a very
        // large lab's (each answer is held in memory here and a thread
        // in the session keeper).
        let workers = if along.is_empty() {
            pool::WORKERS
        } else {
            work.len().clamp(1, ALONG_WORKERS)
        };
        let results = pool::map(
            work,
            workers,
            |(node, session, plan, pods, mine)| {
                let found = check_node(node, session.as_ref(), plan, check, &pods, &mine);
                (session, found)
            },
            |_| {
                let why = "probe thread panicked".to_string();
                (None, (NodeAnswer::not_asked(why), Vec::new()))
            },
        );
        let (kept, answered): (Vec<_>, Vec<_>) = results.into_iter().unzip();
        let (answers, mut along_outs): (Vec<NodeAnswer>, Vec<Vec<JobAnswer>>) =
            answered.into_iter().unzip();
        // In `along`'s order: each job's output from its node's list.
        let mut next = vec![0usize; along_outs.len()];
        let along_answers = along
            .iter()
            .map(|job| {
                let k = next.get(job.at).copied().unwrap_or(0);
                if let Some(slot) = next.get_mut(job.at) {
                    *slot += 1;
                }
                along_outs
                    .get_mut(job.at)
                    .and_then(|outs| outs.get_mut(k))
                    .map(|out| std::mem::replace(out, Err(String::new())))
                    .unwrap_or_else(
                        || Err("the node's command printed nothing for this job".into()),
                    )
            })
            .collect();
        let mut errors = Vec::new();
        let mut found: BTreeMap<String, Result<NamespaceLinks, String>> = BTreeMap::new();
        for (node, answer) in names.into_iter().zip(answers) {
            found.extend(answer.pods);
            let reach = ev.reach.iter_mut().find(|r| r.node == node);
            match (answer.version, reach) {
                (Some(Ok(version)), Some(reach)) => reach.agent_version = Some(version),
                (Some(Err(e)), Some(reach)) => reach.error = Some(e),
                _ => {}
            }
            if !check {
                continue;
            }
            match answer.check {
                Ok((drift, rules)) => {
                    ev.checked_nodes.push(node.to_string());
                    ev.drift.extend(drift);
                    if let Some(rules) = rules {
                        let facts = parse::parse_iptables(&rules, self.view.port);
                        ev.firewall.insert(node.to_string(), facts);
                    }
                }
                Err(e) => errors.push((node.to_string(), e)),
            }
        }
        if let Some(pods) = pods {
            ev.pods = pods
                .iter()
                .map(|pod| {
                    let mut pod = pod.clone();
                    let answer = pod.namespace.as_ref().and_then(|ns| found.get(ns));
                    if let Some(Ok(links)) = answer {
                        pod.eth0_mtu = links.link("eth0").map(|l| l.mtu);
                    }
                    let answer = answer.map(|a| a.as_ref().map_err(Clone::clone)?.pod_address());
                    pod.record_address(answer.unwrap_or_else(|| {
                        Err(match &pod.namespace {
                            Some(_) => format!("{} is not reachable over SSH", pod.node),
                            None => format!("{} has no namespace in the lab's state", pod.node),
                        })
                    }));
                    pod
                })
                .collect();
        }
        NodeRound {
            sessions: kept,
            errors,
            along: along_answers,
        }
    }
}

/// What the node checks' round of commands gives back.
pub(crate) struct NodeRound {
    /// The sessions, in node order, for the probes that follow.
    pub sessions: Vec<Option<Session>>,
    /// The check's per-node errors.
    pub errors: Vec<(String, String)>,
    /// The outputs of the jobs that rode along, in their order.
    pub along: Vec<JobAnswer>,
}

/// Closes sessions in parallel (each says goodbye to its sshd).
pub fn disconnect_all(sessions: Vec<Option<Session>>) {
    pool::map(sessions, pool::WORKERS, drop, |_| ());
}

/// A job's output, or why it has none.
pub(crate) type JobAnswer = Result<JobOutput, String>;

/// A pod namespace and its links, or why they could not be read.
type PodLinks = (String, Result<NamespaceLinks, String>);

/// The node's drift, and its iptables rules (`None`: iptables -S failed).
type NodeCheck = (Vec<parse::Drift>, Option<String>);

/// What one node answered.
struct NodeAnswer {
    /// The agent's version, or why there is none; `None` when the node
    /// was not asked (no session, no plan, or the command failed to run).
    version: Option<Result<String, String>>,
    /// The check's result, or why there is none.
    check: Result<NodeCheck, String>,
    /// Each pod namespace asked about, with what was found.
    pods: Vec<PodLinks>,
}

impl NodeAnswer {
    /// A node not asked, for reason `why`.
    fn not_asked(why: String) -> NodeAnswer {
        NodeAnswer {
            version: None,
            check: Err(why),
            pods: Vec::new(),
        }
    }

    /// A node whose agent gave no report: every part fails for `why`.
    fn no_report(why: String, asked: &[String]) -> NodeAnswer {
        NodeAnswer {
            version: Some(Err(why.clone())),
            check: Err(why.clone()),
            pods: asked
                .iter()
                .map(|ns| (ns.clone(), Err(why.clone())))
                .collect(),
        }
    }
}

/// Asks node `node`'s agent, in one command (`labctl-agent inspect`), for
/// its version, the links of the pod namespaces `pods` and, when `check`,
/// to check the node against `plan` (on stdin) with its `iptables -S`.
fn check_node(
    node: &str,
    session: Option<&Session>,
    plan: Option<&NodePlan>,
    check: bool,
    pods: &[String],
    along: &[&[String]],
) -> (NodeAnswer, Vec<JobAnswer>) {
    let not_asked = |why: &str| {
        (
            NodeAnswer::not_asked(why.into()),
            vec![Err(format!("{node}: {why}")); along.len()],
        )
    };
    let Some(session) = session else {
        return not_asked("not reachable over SSH");
    };
    let Some(plan) = plan else {
        return not_asked("no plan for this node");
    };
    let mut argv: Vec<String> = vec![AGENT_PATH.into(), "inspect".into()];
    if check {
        argv.push("--check".into());
    }
    argv.extend(pods.iter().cloned());
    let stdin = check.then(|| plan.to_json());
    let mut jobs = vec![argv.as_slice()];
    jobs.extend_from_slice(along);
    let outs = match run_on(session, node, &jobs, stdin.as_deref().map(str::as_bytes)) {
        Ok(outs) => outs,
        // The command ran, or its session failed: the node answered nothing.
        Err(why) => {
            return (
                NodeAnswer::no_report(why.clone(), pods),
                vec![Err(why); along.len()],
            )
        }
    };
    let mut outs = outs.into_iter();
    let inspected = outs.next().unwrap_or_default();
    let answer = read_inspect(
        node,
        check,
        pods,
        inspected.status.unwrap_or(-1),
        &inspected.stdout,
        &inspected.stderr,
    );
    (answer, outs.map(Ok).collect())
}

/// What `labctl-agent inspect` (exit `status`) said of node `node`,
/// asked about the pod namespaces `asked`.
fn read_inspect(
    node: &str,
    check: bool,
    asked: &[String],
    status: i32,
    stdout: &str,
    stderr: &str,
) -> NodeAnswer {
    if let Some(why) = parse::older_agent("inspect", status, stderr) {
        return NodeAnswer::no_report(why, asked);
    }
    let report: InspectReport = match report::decode(node, stdout) {
        Ok(r) => r,
        Err(e) => {
            let said = if stderr.trim().is_empty() {
                e.to_string()
            } else {
                parse::last_lines(stderr)
            };
            return NodeAnswer::no_report(
                format!("`{AGENT_PATH} inspect` exited {status}: {said}"),
                asked,
            );
        }
    };
    let pods = asked
        .iter()
        .map(|ns| {
            let links = report
                .pods
                .iter()
                .find(|l| &l.netns == ns)
                .cloned()
                .ok_or_else(|| format!("{node}: `labctl-agent inspect` did not report {ns}"));
            (ns.clone(), links)
        })
        .collect();
    let check = match (check, report.check, report.check_error) {
        (false, _, _) => Err("not asked to check".into()),
        (true, Some(c), _) => Ok((parse::drift_of(node, c), report.filter_rules)),
        (true, None, Some(e)) => Err(format!("`labctl-agent check` failed: {e}")),
        (true, None, None) => Err("`labctl-agent inspect` printed no check".into()),
    };
    NodeAnswer {
        version: Some(Ok(report.version)),
        check,
        pods,
    }
}

/// The lab as verify sees it, from the plans and the state.
fn view(lab: &Lab, plans: &[NodePlan], state: &LabState) -> LabView {
    let cp = lab.control_plane().name.clone();
    let first = plans.first();
    let netns = state.netns.as_ref();
    let nodes = plans
        .iter()
        .map(|p| NodeView {
            name: p.node.clone(),
            underlay_ip: p.underlay_ip,
            subnet: p.subnet,
            vtep_mac: p
                .vxlan
                .as_ref()
                .map_or(String::new(), |v| v.mac.to_string()),
            control_plane: p.node == cp,
            namespace: netns.map(|n| {
                n.nodes
                    .get(&p.node)
                    .map(|nn| nn.netns.clone())
                    .unwrap_or_else(|| format!("{}-{}", lab.name, p.node))
            }),
        })
        .collect();
    // VM labs: the opt-in target from the lab file stands for the outside.
    let target = lab.verify.egress_target.map(|ip| Outside {
        ip,
        namespace: None,
    });
    let outside = netns.map(|n| {
        let ns = n.ext_netns.clone();
        let ip = outside_address(&ns).unwrap_or(Ipv4Addr::new(198, 18, 0, 1));
        Outside {
            ip,
            namespace: Some(ns),
        }
    });
    let outside = outside.or(target);
    LabView {
        name: lab.name.clone(),
        provider: state.provider.clone(),
        backend: first.map_or(Backend::Vxlan, |p| p.backend),
        // host-gw: no device (empty name: nothing to read).
        vxlan_device: first.map_or("flannel.1".into(), |p| {
            p.vxlan.as_ref().map_or(String::new(), |v| v.name.clone())
        }),
        vni: match lab.network.backend {
            labctl_lab::Backend::Vxlan { vni, .. } => vni,
            labctl_lab::Backend::HostGw => 0,
        },
        port: match lab.network.backend {
            labctl_lab::Backend::Vxlan { port, .. } => port,
            labctl_lab::Backend::HostGw => 0,
        },
        underlay_mtu: lab.network.underlay_mtu,
        pod_mtu: first.map_or(
            lab.network
                .underlay_mtu
                .saturating_sub(lab.network.backend.overhead()),
            |p| p.bridge.mtu,
        ),
        network: lab.network.pod_network,
        dns_service_ip: lab.dns_service_ip(),
        api_service_ip: lab.api_service_ip(),
        dns_domain: lab.network.dns_domain.clone(),
        nodes,
        outside,
    }
}

/// The outside namespace's address in 198.18.0.0/15 (`ip -n NS addr`).
fn outside_address(ns: &str) -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-4", "-o", "addr", "show"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('/')?.0.parse::<Ipv4Addr>().ok())
        .find(|ip| ip.octets()[0] == 198 && (ip.octets()[1] & 0xfe) == 18)
}

/// The DNS pod labctl runs on the control plane, when the state records it.
fn dns_pod(lab: &Lab, state: &LabState) -> Option<PodView> {
    let cp = &lab.control_plane().name;
    let ip = *state.nodes.get(cp)?.pods.get(crate::nodes::DNS_POD)?;
    Some(PodView {
        eth0_mtu: None,
        node: cp.clone(),
        name: crate::nodes::DNS_POD.to_string(),
        ip: Some(ip),
        namespace: Some(format!("{}-{cp}-{}", lab.name, crate::nodes::DNS_POD)),
        problem: None,
    })
}

/// One busybox pod per node, as the state records it (name → IP); a node
/// without a record gets the conventional `<lab>-<node>-busybox`.
fn pods(lab: &Lab, state: &LabState) -> Vec<PodView> {
    lab.nodes
        .iter()
        .map(|n| {
            let recorded = state.nodes.get(&n.name).map(|s| &s.pods);
            let (name, ip) = recorded
                .and_then(|pods| {
                    pods.iter()
                        .find(|(name, _)| name.as_str() == "busybox")
                        .or_else(|| pods.iter().find(|(name, _)| !name.contains("dns")))
                        .map(|(name, ip)| (name.clone(), Some(*ip)))
                })
                .unwrap_or_else(|| ("busybox".to_string(), None));
            PodView {
                eth0_mtu: None,
                node: n.name.clone(),
                namespace: Some(format!("{}-{}-{}", lab.name, n.name, name)),
                name,
                ip,
                problem: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspect_report_gives_version_pods_and_check() {
        let asked = [
            "lab-w1-busybox",
            "lab-w1-dns",
            "lab-w1-empty",
            "lab-w1-unsaid",
        ]
        .map(String::from);
        let text = concat!(
            "{\"reportVersion\":1,\"command\":\"inspect\",\"node\":\"w1\",",
            "\"version\":\"labctl-agent 0.1.0 sha256:00\",\"pods\":[",
            "{\"netns\":\"lab-w1-busybox\",\"links\":[",
            "{\"name\":\"lo\",\"mtu\":65536,\"up\":true,\"addresses\":[\"127.0.0.1/8\"]},",
            "{\"name\":\"eth0\",\"mtu\":1450,\"up\":true,\"addresses\":[\"10.244.1.2/24\"]}]},",
            "{\"netns\":\"lab-w1-dns\",\"links\":[],\"error\":\"network namespace lab-w1-dns does not exist\"},",
            "{\"netns\":\"lab-w1-empty\",\"links\":[{\"name\":\"lo\",\"mtu\":65536,\"up\":false,\"addresses\":[]}]}",
            "],\"check\":{\"reportVersion\":1,\"command\":\"check\",\"node\":\"w1\",\"inSync\":true,\"differences\":[]},",
            "\"filterRules\":\"-P FORWARD ACCEPT\\n\"}\n",
        );
        let answer = read_inspect("w1", true, &asked, 0, text, "");
        assert_eq!(
            answer.version,
            Some(Ok("labctl-agent 0.1.0 sha256:00".to_string()))
        );
        let found: Vec<(&str, Result<Option<Ipv4Addr>, String>)> = answer
            .pods
            .iter()
            .map(|(ns, l)| (ns.as_str(), l.clone().and_then(|l| l.pod_address())))
            .collect();
        assert_eq!(
            found,
            [
                ("lab-w1-busybox", Ok(Some(Ipv4Addr::new(10, 244, 1, 2)))),
                (
                    "lab-w1-dns",
                    Err("network namespace lab-w1-dns does not exist".into())
                ),
                ("lab-w1-empty", Ok(None)),
                (
                    "lab-w1-unsaid",
                    Err("w1: `labctl-agent inspect` did not report lab-w1-unsaid".into())
                ),
            ]
        );
        let eth0 = answer.pods[0].1.as_ref().ok().and_then(|l| l.link("eth0"));
        assert_eq!(eth0.map(|l| l.mtu), Some(1450));
        let (drift, rules) = answer.check.unwrap();
        assert!(drift.is_empty());
        assert_eq!(rules.as_deref(), Some("-P FORWARD ACCEPT\n"));
        // Not asked to check: the check part says so, the rest stands.
        let answer = read_inspect("w1", false, &asked, 0, text, "");
        assert_eq!(answer.check, Err("not asked to check".into()));
    }

    #[test]
    fn an_agent_that_cannot_inspect_is_named() {
        let asked = ["lab-w1-busybox".to_string()];
        let old = read_inspect(
            "w1",
            true,
            &asked,
            2,
            "",
            "labctl-agent: unknown command \"inspect --check lab-w1-busybox\"\n",
        );
        let why = old.version.clone().unwrap().unwrap_err();
        assert!(
            why.contains("older than this labctl") && why.contains("labctl up"),
            "{why}"
        );
        assert_eq!(old.check, Err(why.clone()));
        assert_eq!(old.pods, [("lab-w1-busybox".to_string(), Err(why))]);
        let missing = read_inspect(
            "w1",
            false,
            &[],
            127,
            "",
            "bash: line 1: /usr/local/bin/labctl-agent: No such file or directory\n",
        );
        let why = missing.version.unwrap().unwrap_err();
        assert!(
            why.contains("inspect` exited 127") && why.contains("No such file"),
            "{why}"
        );
    }
}
