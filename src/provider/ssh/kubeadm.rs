//! Running a kubeadm `up` ([`crate::kubeadm::up_steps`]) on an ssh or
//! vagrant lab's nodes, in two parts around the data plane:
//! [`start`] prepares every node, initialises the control plane, joins the
//! workers and reads every node's podCIDR back (the plans are built from
//! those); after the agent applied the plans, [`finish`] waits until every
//! node is Ready and copies the admin kubeconfig to the lab folder.
//!
//! Consecutive steps of one kind are on different nodes and run in
//! parallel (prepare everywhere, the workers' validate and join). Steps
//! with a `done_if` check are skipped when it succeeds, so `up` converges
//! on a cluster that exists. The bootstrap token lives in the lab folder
//! (0600) and only ever reaches a node through a command's stdin.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use labctl_lab::Lab;
use labctl_nodeplan::NodePlan;

use crate::kubeadm::{self, Secret, Step, StepKind};
use crate::lifecycle::nodes;
use crate::provider::progress::Progress;
use crate::ssh::Session;
use crate::state::{write_private, LabDir, LabState};

/// How long the cluster may take to hand out podCIDRs and turn Ready.
pub const POLL_DEADLINE: Duration = Duration::from_secs(600);
const POLL_PAUSE: Duration = Duration::from_secs(3);

/// The admin kubeconfig in the lab folder.
pub fn admin_conf(dir: &LabDir) -> std::path::PathBuf {
    dir.path.join("admin.conf")
}

/// The lab's bootstrap token: the one in the lab folder, or a new one
/// stored there (0600).
fn token(dir: &LabDir) -> Result<Secret> {
    let path = dir.path.join("bootstrap-token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if kubeadm::is_bootstrap_token(text.trim()) {
            return Ok(Secret::new(text.trim()));
        }
    }
    let token = kubeadm::generate_bootstrap_token()?;
    write_private(&path, token.expose().as_bytes())?;
    Ok(token)
}

/// One SSH session per node, each used by one thread at a time.
struct Sessions(BTreeMap<String, Mutex<Session>>);

impl Sessions {
    fn open(dir: &LabDir, state: &LabState, lab: &Lab) -> Result<Sessions> {
        let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
        let opened = nodes::parallel(&names, |n| {
            nodes::connect(
                dir,
                state,
                n,
                &crate::ssh::HostKeyPolicy::RequireKnown,
                nodes::CONNECT_DEADLINE,
            )
        });
        let mut map = BTreeMap::new();
        for (name, session) in names.into_iter().zip(opened) {
            map.insert(name, Mutex::new(session?));
        }
        Ok(Sessions(map))
    }

    fn run<T>(&self, node: &str, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let session = self
            .0
            .get(node)
            .ok_or_else(|| anyhow!("no SSH session to node {node}"))?;
        let guard = session
            .lock()
            .map_err(|_| anyhow!("node {node}: a step panicked"))?;
        f(&guard)
    }
}

/// What the steps learned so far.
#[derive(Default)]
struct Learned {
    ca_cert_hash: Option<String>,
    pod_cidrs: Option<BTreeMap<String, ipnet::Ipv4Net>>,
    admin_conf: Option<String>,
}

/// Runs one step on its node; returns its stdout.
fn run_step(
    lab: &Lab,
    sessions: &Sessions,
    step: &Step,
    token: &Secret,
    ca_hash: Option<&str>,
) -> Result<String> {
    sessions.run(&step.node, |session| {
        if let Some(check) = &step.done_if {
            let argv: Vec<&str> = check.iter().map(String::as_str).collect();
            if session.run(&argv, None)?.success() {
                return Ok(String::new());
            }
        }
        if let Some(put) = &step.put {
            let contents = put.contents(lab, &step.node, token, ca_hash)?;
            let argv = put.argv();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            session.run_ok(&argv, Some(contents.as_bytes()))?;
        }
        let argv: Vec<&str> = step.argv.iter().map(String::as_str).collect();
        if !step.kind.polls() {
            return Ok(session.run_ok(&argv, None)?.stdout_text());
        }
        let expected: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
        let started = Instant::now();
        loop {
            let out = session.run(&argv, None)?;
            let json = out.stdout_text();
            let waiting = if !out.success() {
                format!(
                    "`{}` failed: {}",
                    step.argv.join(" "),
                    out.stderr_text().trim()
                )
            } else {
                match step.kind {
                    StepKind::ReadPodCidrs => match kubeadm::pod_cidrs(&json) {
                        Ok(c) if expected.iter().all(|n| c.contains_key(*n)) => return Ok(json),
                        Ok(_) => "not every node is registered yet".to_string(),
                        Err(e) => format!("{e:#}"),
                    },
                    _ => match kubeadm::pending_nodes(&json, &expected) {
                        Ok(p) if p.is_empty() => return Ok(json),
                        Ok(p) => format!("not Ready: {}", p.join(", ")),
                        Err(e) => format!("{e:#}"),
                    },
                }
            };
            if started.elapsed() > POLL_DEADLINE {
                anyhow::bail!(
                    "{} on node {}: still waiting after {} s: {waiting}",
                    step.kind.name(),
                    step.node,
                    POLL_DEADLINE.as_secs()
                );
            }
            std::thread::sleep(POLL_PAUSE);
        }
    })
}

/// Runs `steps` in order, consecutive steps of one kind in parallel.
fn run_steps(
    lab: &Lab,
    sessions: &Sessions,
    steps: &[Step],
    token: &Secret,
    progress: &Progress,
    learned: &mut Learned,
) -> Result<()> {
    let mut i = 0;
    while i < steps.len() {
        let kind = steps[i].kind;
        let group: Vec<&Step> = steps[i..].iter().take_while(|s| s.kind == kind).collect();
        i += group.len();
        let ca_hash = learned.ca_cert_hash.clone();
        let outputs: Vec<Result<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|step| {
                    let ca_hash = ca_hash.as_deref();
                    scope.spawn(move || {
                        progress.step(Some(&step.node), kind.name(), || {
                            run_step(lab, sessions, step, token, ca_hash)
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a step panicked"))))
                .collect()
        });
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for out in outputs {
            match out {
                Ok(t) => texts.push(t),
                Err(e) => errors.push(e),
            }
        }
        crate::lifecycle::up::fail_with_all(errors)?;
        let text = texts.into_iter().next().unwrap_or_default();
        match kind {
            StepKind::FetchCaCert => {
                learned.ca_cert_hash = Some(kubeadm::ca_cert_hash(&text)?);
            }
            StepKind::ReadPodCidrs => learned.pod_cidrs = Some(kubeadm::pod_cidrs(&text)?),
            StepKind::FetchAdminConf => learned.admin_conf = Some(text),
            _ => {}
        }
    }
    Ok(())
}

/// Which part of the steps to run: up to the podCIDRs, or the rest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    UntilPodCidrs,
    FromWaitReady,
}

/// Runs one part of the lab's kubeadm steps; returns what they learned.
fn run_part(
    lab: &Lab,
    dir: &LabDir,
    state: &LabState,
    progress: &Progress,
    part: Part,
) -> Result<Learned> {
    let steps = kubeadm::up_steps(lab);
    let split = steps
        .iter()
        .position(|s| s.kind == StepKind::WaitReady)
        .unwrap_or(steps.len());
    let steps = match part {
        Part::UntilPodCidrs => &steps[..split],
        Part::FromWaitReady => &steps[split..],
    };
    let sessions = Sessions::open(dir, state, lab)?;
    let token = token(dir)?;
    let mut learned = Learned::default();
    run_steps(lab, &sessions, steps, &token, progress, &mut learned)?;
    Ok(learned)
}

/// Everything up to the podCIDRs; returns the plans built from them.
pub fn start(
    lab: &Lab,
    dir: &LabDir,
    state: &LabState,
    progress: &Progress,
) -> Result<Vec<NodePlan>> {
    let learned = run_part(lab, dir, state, progress, Part::UntilPodCidrs)?;
    let cidrs = learned
        .pod_cidrs
        .ok_or_else(|| anyhow!("the kubeadm steps read no podCIDRs"))?;
    labctl_lab::plan_with_subnets(lab, &cidrs)
        .map_err(|e| anyhow!("the cluster's podCIDRs do not fit the lab: {e}"))
}

/// Waits until every node is Ready, then stores the admin kubeconfig
/// (API address: the control plane's lab IP) in the lab folder, 0600.
pub fn finish(lab: &Lab, dir: &LabDir, state: &LabState, progress: &Progress) -> Result<()> {
    let learned = run_part(lab, dir, state, progress, Part::FromWaitReady)?;
    let conf = learned
        .admin_conf
        .ok_or_else(|| anyhow!("the kubeadm steps fetched no admin.conf"))?;
    let url = kubeadm::api_server_url(lab.control_plane().ip);
    let conf = kubeadm::rewrite_server(&conf, &url)?;
    let path = admin_conf(dir);
    write_private(&path, conf.as_bytes())
        .with_context(|| format!("storing the admin kubeconfig {}", path.display()))
}
