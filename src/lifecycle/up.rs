//! `labctl up [LAB]`: bring a lab up, or converge an existing one.
//!
//! Order: preflight (nothing created on failure), lock, provider `create`
//! (machines answer SSH), then per node (an adaptive number at once):
//! connect, and one command that runs the agent's `apply` of the node's
//! plan (the data plane and, where labctl runs the pods, the DNS service's
//! chains) and adds the busybox pod (and on the control plane the DNS pod;
//! the agent is uploaded first only when the node lacks it); then the DNS
//! server. A converged node costs one SSH command; a lab's first `up`
//! converges the control plane before the others (the service chains
//! need its DNS pod's address).
//! Everything is idempotent: a second run reports no changes. The run ends
//! with the wall time of each phase (text: a table; JSON: `phases`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use labctl_lab::Lab;
use labctl_nodeplan::NodePlan;

use super::UpArgs;
use crate::exit::ExitError;
use crate::nodes;
use crate::output::{GlobalOpts, OutputFormat};
use crate::provider::{self, DnsRecords, Provider};
use crate::ssh::HostKeyPolicy;
use crate::state::{LabDir, LabState};
use crate::ui::interrupt;
use crate::ui::phases::{Phase, PhaseClock};
use crate::ui::progress::{Interrupted, Progress};

use crate::nodes::converge::Answer;
use crate::nodes::{BUSYBOX_POD, DNS_POD};

/// What one node reported.
struct NodeResult {
    changes: u64,
    pods: BTreeMap<String, Ipv4Addr>,
}

pub fn up(args: &UpArgs, global: &GlobalOpts) -> Result<ExitCode> {
    interrupt::install();
    let loaded = crate::labfile::load(args.lab.as_deref())?;
    let lab = &loaded.lab;
    let provider = provider::for_lab(lab)?;
    let dir = LabDir::new(&lab.name)?;
    if !dir.exists() {
        crate::lab_owner::refuse_if_elsewhere(&lab.name, "up", ExitError::usage)?;
    }
    provider.preflight(lab, &dir, args.install_deps)?;
    let _lock = dir.lock("up")?;

    let mut state = if dir.exists() {
        dir.load()?
    } else {
        LabState {
            name: lab.name.clone(),
            provider: provider.kind().into(),
            ..Default::default()
        }
    };
    if state.provider != provider.kind() {
        return Err(ExitError::usage(anyhow!(
            "lab {} exists with the {} provider; destroy it first (`labctl destroy --name {}`)",
            lab.name,
            state.provider,
            lab.name
        )));
    }
    state.lab_file = std::fs::canonicalize(&loaded.path).ok();
    state.underlay = Some(lab.network.underlay);
    state.pod_network = Some(lab.network.pod_network);
    state.service_network = Some(lab.network.service_network);
    let text = std::fs::read(&loaded.path)
        .with_context(|| format!("cannot read {}", loaded.path.display()))?;
    crate::state::write_private(&dir.lab_copy(), &text)?;
    dir.save(&state)?;

    let progress = Progress::new(global.quiet);
    let clock = PhaseClock::new();
    let started = Instant::now();
    let before: Vec<String> = state.nodes.keys().cloned().collect();
    match converge(lab, provider, &dir, &mut state, &progress, &clock) {
        Ok(changes) => {
            let added = lab.nodes.iter().filter(|n| !before.contains(&n.name)).count() as u64;
            let removed = before.iter().filter(|b| !lab.nodes.iter().any(|n| &n.name == *b)).count() as u64;
            let total = changes + added + removed;
            drop(progress);
            report(lab, total, &clock.totals(), started.elapsed(), global);
            if args.verify {
                let verify = crate::verify::VerifyArgs {
                    lab: Some(loaded.path.clone()),
                    ..Default::default()
                };
                return crate::verify::run(&verify, global);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is::<Interrupted>() || interrupt::requested() => Err(ExitError::failed(anyhow!(
            "interrupted: lab {name} is partly built; `labctl up` resumes it, `labctl destroy --name {name}` removes it",
            name = lab.name
        ))),
        Err(e) => {
            // A missing tool on a node stays an environment error (exit 3),
            // a lab the nodes cannot carry (host-gw across a router) a
            // lab-file error (exit 2).
            let code = crate::exit::exit_code_for(&e);
            if code == crate::exit::USAGE {
                return Err(e);
            }
            let environment = code == crate::exit::ENVIRONMENT;
            let e = e.context(format!(
                "lab {name} is not fully up; it stays for inspection (`labctl status`); remove it with `labctl destroy --name {name}`",
                name = lab.name
            ));
            Err(if environment {
                ExitError::environment(e)
            } else {
                ExitError::failed(e)
            })
        }
    }
}

fn report(
    lab: &Lab,
    changes: u64,
    phases: &[(Phase, Duration)],
    total: Duration,
    global: &GlobalOpts,
) {
    if global.output == OutputFormat::Json {
        let nodes: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
        let phases: Vec<serde_json::Value> = phases
            .iter()
            .map(|(phase, took)| {
                serde_json::json!({"phase": phase.name(), "seconds": took.as_secs_f64()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "lab": lab.name,
                "nodes": nodes,
                "changes": changes,
                "phases": phases,
                "seconds": total.as_secs_f64(),
            })
        );
    } else if !global.quiet {
        let what = if changes == 0 {
            "no changes".to_string()
        } else if changes == 1 {
            "1 change".to_string()
        } else {
            format!("{changes} changes")
        };
        println!("Lab {} is up: {} nodes, {what}.", lab.name, lab.nodes.len());
        print!("{}", phase_table(phases, total));
    }
}

/// The per-phase wall times, then the whole run (phases overlap when nodes
/// work in parallel, so the rows need not add up to the total).
fn phase_table(phases: &[(Phase, Duration)], total: Duration) -> String {
    let mut rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(phase, took)| vec![phase.name().to_string(), seconds(*took)])
        .collect();
    rows.push(vec!["total".to_string(), seconds(total)]);
    crate::output::table(&["phase", "time"], &rows)
}

/// `0.004s` / `0.42s` / `12.3s`: finer than the step lines, short phases
/// are common (staging a netns lab's agent is a few hard links).
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.1 {
        format!("{s:.3}s")
    } else if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Everything after the preflight; returns the number of changes made.
fn converge(
    lab: &Lab,
    provider: &dyn Provider,
    dir: &LabDir,
    state: &mut LabState,
    progress: &Progress,
    clock: &PhaseClock,
) -> Result<u64> {
    let repaired = clock.time(Phase::Nodes, || provider.create(lab, dir, state, progress))?;
    // host-gw: every node must reach every other without a router.
    super::one_segment::check(lab, dir, state)?;
    // kubeadm labs: the cluster hands out the node subnets (podCIDRs).
    let kubernetes = lab.kubernetes.enabled;
    let plans = if kubernetes {
        clock.time(Phase::Kubeadm, || {
            crate::kubeadm::bootstrap::start(lab, dir, state, progress)
        })?
    } else {
        labctl_lab::plan(lab)
    };
    let mut plans: BTreeMap<String, NodePlan> =
        plans.into_iter().map(|p| (p.node.clone(), p)).collect();
    if state.netns.is_some() {
        clock.time(Phase::Agent, || {
            progress.step(None, "Staging the agent", || {
                let folders: Vec<std::path::PathBuf> = lab
                    .nodes
                    .iter()
                    .map(|n| crate::provider::netns::sshd::node_folder(dir, &n.name, "agent"))
                    .collect();
                nodes::stage_agent(dir, folders.iter().map(|f| f.as_path()))
            })
        })?;
    }
    let cp = lab.control_plane().name.clone();
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let mut changes = repaired;
    if kubernetes {
        save_plans(dir, &plans)?;
        changes += converge_nodes(lab, dir, state, &names, &plans, progress, clock)?;
        clock.time(Phase::Kubeadm, || {
            crate::kubeadm::bootstrap::finish(lab, dir, state, progress)
        })?;
        return Ok(changes);
    }
    // Every node's plan carries the DNS service's chains, which DNAT to the
    // DNS pod on the control plane: its address is known once that pod
    // exists, so a lab's first `up` converges the control plane alone
    // first. Should the pod come back with another address, the nodes
    // converge once more with it.
    let mut dns_pod = dns_pod_ip(lab, state);
    if dns_pod.is_none() {
        save_plans(dir, &plans)?;
        changes += converge_nodes(
            lab,
            dir,
            state,
            std::slice::from_ref(&cp),
            &plans,
            progress,
            clock,
        )?;
        dns_pod = dns_pod_ip(lab, state);
    }
    for round in 0.. {
        let target = dns_pod.ok_or_else(|| anyhow!("the DNS pod on {cp} has no address"))?;
        let services = labctl_lab::services::dns_service(lab.dns_service_ip(), target);
        for plan in plans.values_mut() {
            plan.iptables.services = Some(services.clone());
        }
        save_plans(dir, &plans)?;
        changes += converge_nodes(lab, dir, state, &names, &plans, progress, clock)?;
        dns_pod = dns_pod_ip(lab, state);
        match dns_pod {
            Some(now) if now == target => break,
            Some(now) if round == 0 => {
                progress.line(&format!(
                    "  the DNS pod on {cp} is now {now} (was {target}): converging the nodes again"
                ));
            }
            now => anyhow::bail!(
                "the DNS pod on {cp} changed its address during `up` ({target}, then {}); run `labctl up` again",
                now.map_or("none".to_string(), |a| a.to_string())
            ),
        }
    }

    // The DNS server starts in its pod's namespace, by name.
    changes += provider.link_pods(dir, state)?;
    let dns = dns_records(lab, state)?;
    if clock.time(Phase::Dns, || {
        progress.step(Some(&cp), "Serving cluster DNS", || {
            provider.serve_dns(dir, state, &dns)
        })
    })? {
        changes += 1;
    }
    Ok(changes)
}

/// Kept for destroy (agent teardown), status and verify.
/// Several at once: each is written and synced (or compared, when the
/// file holds it already; a 1,000-node lab's plans are 1,000 files of
/// about 160 KB). Every failure is reported.
fn save_plans(dir: &LabDir, plans: &BTreeMap<String, NodePlan>) -> Result<()> {
    let plans: Vec<&NodePlan> = plans.values().collect();
    let failed: Vec<String> = nodes::pool::map(
        plans,
        nodes::pool::WORKERS,
        |plan| dir.save_plan(plan).err().map(|e| format!("{e:#}")),
        |i| Some(format!("saving plan {i} panicked")),
    )
    .into_iter()
    .flatten()
    .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "cannot save the nodes' plans: {}",
            failed.join("; ")
        ))
    }
}

/// The DNS pod's address as the state records it (labs where labctl runs
/// the pods).
fn dns_pod_ip(lab: &Lab, state: &LabState) -> Option<Ipv4Addr> {
    let cp = &lab.control_plane().name;
    state.nodes.get(cp)?.pods.get(DNS_POD).copied()
}

/// Connects to each of `names` and converges it to its plan, an adaptive
/// number at once; records the pods' addresses in `state` (saved) and
/// returns the changes, or every node's error.
fn converge_nodes(
    lab: &Lab,
    dir: &LabDir,
    state: &mut LabState,
    names: &[String],
    plans: &BTreeMap<String, NodePlan>,
    progress: &Progress,
    clock: &PhaseClock,
) -> Result<u64> {
    let cp = &lab.control_plane().name;
    let kubernetes = lab.kubernetes.enabled;
    let snapshot = state.clone();
    let results = nodes::parallel(names, |node| {
        let plan = plans
            .get(node)
            .ok_or_else(|| anyhow!("no plan for node {node}"))?;
        // kubeadm labs get real pods and CoreDNS from the cluster.
        let pods: &[&str] = match (kubernetes, node == cp) {
            (true, _) => &[],
            (false, true) => &[BUSYBOX_POD, DNS_POD],
            (false, false) => &[BUSYBOX_POD],
        };
        let r = node_up(dir, &snapshot, node, plan, pods, progress, clock);
        progress.node_done(node);
        r
    });
    let mut changes = 0;
    let mut errors = Vec::new();
    for (node, result) in names.iter().zip(results) {
        match result {
            Ok(r) => {
                changes += r.changes;
                if let Some(n) = state.nodes.get_mut(node) {
                    for (pod, ip) in &r.pods {
                        if n.pods.insert(pod.clone(), *ip) != Some(*ip) {
                            changes += 1;
                        }
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    dir.save(state)?;
    nodes::fail_with_all(errors)?;
    Ok(changes)
}

fn node_up(
    dir: &LabDir,
    state: &LabState,
    node: &str,
    plan: &NodePlan,
    wanted: &[&str],
    progress: &Progress,
    clock: &PhaseClock,
) -> Result<NodeResult> {
    let session = clock.time(Phase::Ssh, || {
        progress.step(Some(node), "Connecting over SSH", || {
            // Every provider has pinned its nodes' keys by now (netns before
            // starting sshd, ssh and vagrant when `create` first reached them).
            nodes::connect(
                dir,
                state,
                node,
                &HostKeyPolicy::RequireKnown,
                nodes::CONNECT_DEADLINE,
            )
        })
    })?;
    // One command does the node's whole part when it has this agent: on a
    // converged lab that is the node's only round trip.
    let converge = || {
        clock.time(Phase::DataPlane, || {
            progress.step(Some(node), "Converging data plane and pods", || {
                nodes::converge::converge(&session, plan, wanted)
            })
        })
    };
    let mut changes = 0;
    let converged = match converge()? {
        Answer::Converged(c) => c,
        Answer::NotThisAgent(_) => {
            clock.time(Phase::Agent, || {
                progress.step(Some(node), "Installing the agent", || {
                    nodes::ensure_agent(&session)
                })
            })?;
            changes += 1;
            match converge()? {
                Answer::Converged(c) => c,
                Answer::NotThisAgent(said) => anyhow::bail!(
                    "node {node}: `{} converge` did not run as the agent labctl just put there ({said})",
                    nodes::AGENT_PATH
                ),
            }
        }
    };
    changes += converged.apply.changes() as u64;
    let mut pods = BTreeMap::new();
    for (pod, report) in &converged.pods {
        if !plan.subnet.contains(&report.ip) {
            anyhow::bail!(
                "`labctl-agent pod add {pod}` on node {node} gave the pod {}, outside the node's subnet {}",
                report.ip,
                plan.subnet
            );
        }
        pods.insert(pod.clone(), report.ip);
    }
    Ok(NodeResult { changes, pods })
}

/// The cluster DNS records: the API and DNS services (also as
/// `kubernetes.default` / `kube-dns.kube-system`), and every pod by its IP
/// (`10-244-1-2.default.pod.<domain>`, the DNS pod in `kube-system`) and by
/// a per-node service name (`busybox-<node>.default.svc.<domain>`).
fn dns_records(lab: &Lab, state: &LabState) -> Result<DnsRecords> {
    let domain = &lab.network.dns_domain;
    let cp = &lab.control_plane().name;
    let server_ip = state
        .nodes
        .get(cp)
        .and_then(|n| n.pods.get(DNS_POD))
        .copied()
        .ok_or_else(|| anyhow!("the DNS pod on {cp} has no address"))?;
    let mut records = vec![
        (
            format!("kubernetes.default.svc.{domain}"),
            lab.api_service_ip(),
        ),
        (
            format!("kube-dns.kube-system.svc.{domain}"),
            lab.dns_service_ip(),
        ),
        // busybox's nslookup sends the name as typed (it ignores resolv.conf's
        // search list, unlike libc's resolver), so the walkthrough's
        // `nslookup kubernetes.default` needs these short forms.
        ("kubernetes.default".to_string(), lab.api_service_ip()),
        ("kube-dns.kube-system".to_string(), lab.dns_service_ip()),
    ];
    for node in &lab.nodes {
        let Some(n) = state.nodes.get(&node.name) else {
            continue;
        };
        for (pod, ip) in &n.pods {
            let ns = if pod == DNS_POD {
                "kube-system"
            } else {
                "default"
            };
            let dashed = ip.to_string().replace('.', "-");
            records.push((format!("{dashed}.{ns}.pod.{domain}"), *ip));
            if pod != DNS_POD {
                records.push((format!("{pod}-{}.{ns}.svc.{domain}", node.name), *ip));
            }
        }
    }
    Ok(DnsRecords {
        server_netns: format!("{}-{cp}-{DNS_POD}", lab.name),
        server_ip,
        domain: domain.clone(),
        records,
    })
}
