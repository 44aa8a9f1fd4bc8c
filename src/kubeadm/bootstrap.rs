//! Running a kubeadm `up` ([`crate::kubeadm::up_steps`]) on an ssh or
//! vagrant lab's nodes, in two parts around the data plane:
//! [`start`] prepares every node, initialises the control plane, joins the
//! workers and reads every node's podCIDR back (the plans are built from
//! those); after the agent applied the plans, [`finish`] waits until every
//! node is Ready and copies the admin kubeconfig to the lab folder.
//!
//! Consecutive steps of one kind are on different nodes and run in
//! parallel (the workers' prepare, validate and join). Init and join
//! decide from the cluster's state whether to skip, run, or `kubeadm reset
//! -f` a half-done attempt and run again, so `up` converges on a cluster
//! that exists and retries one that failed. The bootstrap token lives in
//! the lab folder (0600), is replaced when the cluster no longer takes it,
//! and only ever reaches a node through a command's stdin.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use labctl_lab::Lab;
use labctl_nodeplan::NodePlan;

use crate::kubeadm::retry::{self, Action, Probe};
use crate::kubeadm::{self, Known, Secret, StateCheck, Step, StepKind, TokenState};
use crate::nodes;
use crate::ssh::Session;
use crate::state::{write_private, LabDir, LabState};
use crate::ui::progress::Progress;

/// How long the cluster may take to hand out podCIDRs and turn Ready.
pub const POLL_DEADLINE: Duration = Duration::from_secs(600);
const POLL_PAUSE: Duration = Duration::from_secs(3);

/// The admin kubeconfig in the lab folder.
pub fn admin_conf(dir: &LabDir) -> std::path::PathBuf {
    dir.path.join("admin.conf")
}

/// The lab's bootstrap token in the lab folder (0600).
fn token_path(dir: &LabDir) -> std::path::PathBuf {
    dir.path.join("bootstrap-token")
}

/// The lab's bootstrap token: the one in the lab folder, or a new one
/// stored there (0600).
fn token(dir: &LabDir) -> Result<Secret> {
    let path = token_path(dir);
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
    /// The control plane's Kubernetes release, `1.N.P`.
    release: Option<String>,
    /// A fresh bootstrap token, when the saved one had expired.
    token: Option<Secret>,
    pod_cidrs: Option<BTreeMap<String, ipnet::Ipv4Net>>,
    admin_conf: Option<String>,
}

/// Runs `argv` on `node`; what it did, whatever its exit status.
fn probe(sessions: &Sessions, node: &str, argv: &[String]) -> Result<Probe> {
    sessions.run(node, |session| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = session.run(&argv, None)?;
        Ok(Probe {
            success: out.success(),
            stdout: out.stdout_text(),
            stderr: out.stderr_text(),
        })
    })
}

/// Skip, run, or reset and run an init or join step (see
/// [`crate::kubeadm::retry`]); with the kubeadm state files found.
fn decide(
    lab: &Lab,
    sessions: &Sessions,
    step: &Step,
    check: StateCheck,
) -> Result<(Action, Vec<String>)> {
    let found = retry::leftovers(&probe(sessions, &step.node, &retry::leftovers_argv())?);
    let action = match check {
        StateCheck::ControlPlane => {
            let readyz = probe(sessions, &step.node, &retry::readyz_argv())?;
            retry::init_action(&readyz, &found)
        }
        StateCheck::Worker => {
            let cp = &lab.control_plane().name;
            let registered = probe(sessions, cp, &retry::registered_argv(&step.node))?;
            let kubelet = probe(sessions, &step.node, &retry::kubelet_active_argv())?;
            retry::join_action(&step.node, &registered, &kubelet, &found)?
        }
    };
    Ok((action, found))
}

/// `kubeadm reset -f` of a half-done init or join. After the control
/// plane's, the lab folder's admin kubeconfig (labctl's copy of the
/// cluster's, which reset tells to remove) belongs to a cluster that is
/// gone: removed too; `finish` writes the new one.
fn reset(
    dir: &LabDir,
    sessions: &Sessions,
    step: &Step,
    found: &[String],
    progress: &Progress,
) -> Result<()> {
    progress.line(&format!(
        "{}: {} left by an earlier attempt: kubeadm reset -f",
        step.node,
        found.join(", ")
    ));
    let argv = retry::reset_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    sessions.run(&step.node, |session| Ok(session.run_ok(&argv, None)?))?;
    if step.state_check == Some(StateCheck::ControlPlane) {
        let path = admin_conf(dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing the stale {}", path.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The context a step runs in.
struct Ctx<'a> {
    lab: &'a Lab,
    dir: &'a LabDir,
    sessions: &'a Sessions,
    progress: &'a Progress,
}

/// Runs one step on its node; returns its stdout.
fn run_step(ctx: &Ctx, step: &Step, known: &Known) -> Result<String> {
    let Ctx { lab, sessions, .. } = *ctx;
    if let Some(check) = step.state_check {
        match decide(lab, sessions, step, check)? {
            (Action::Skip, _) => return Ok(String::new()),
            (Action::Run, _) => {}
            (Action::ResetAndRun, found) => reset(ctx.dir, sessions, step, &found, ctx.progress)?,
        }
    }
    sessions.run(&step.node, |session| {
        if let Some(put) = &step.put {
            let contents = put.contents(lab, &step.node, known)?;
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
fn run_steps(ctx: &Ctx, steps: &[Step], token: &Secret, learned: &mut Learned) -> Result<()> {
    let Ctx { lab, progress, .. } = *ctx;
    let mut i = 0;
    while i < steps.len() {
        let kind = steps[i].kind;
        let group: Vec<&Step> = steps[i..].iter().take_while(|s| s.kind == kind).collect();
        i += group.len();
        let known = Known {
            token: known_token(learned, token),
            ca_cert_hash: learned.ca_cert_hash.as_deref(),
            release: learned.release.as_deref(),
        };
        let outputs: Vec<Result<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|step| {
                    let known = &known;
                    scope.spawn(move || {
                        progress.step(Some(&step.node), kind.name(), || run_step(ctx, step, known))
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
        crate::nodes::fail_with_all(errors)?;
        let text = texts.into_iter().next().unwrap_or_default();
        match kind {
            StepKind::ReadRelease => {
                learned.release = Some(kubeadm::parse_release(&text, &lab.kubernetes.version)?);
            }
            StepKind::FetchCaCert => {
                learned.ca_cert_hash = Some(kubeadm::ca_cert_hash(&text)?);
            }
            StepKind::CheckToken => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let state = kubeadm::token_state(&text, known_token(learned, token), now)?;
                if state != TokenState::Valid {
                    learned.token = Some(fresh_token(ctx, state)?);
                }
            }
            StepKind::ReadPodCidrs => learned.pod_cidrs = Some(kubeadm::pod_cidrs(&text)?),
            StepKind::FetchAdminConf => learned.admin_conf = Some(text),
            _ => {}
        }
    }
    Ok(())
}

fn known_token<'a>(learned: &'a Learned, saved: &'a Secret) -> &'a Secret {
    learned.token.as_ref().unwrap_or(saved)
}

/// Has the control plane make a new bootstrap token (24 h) and stores it in
/// the lab folder (0600) instead of the `state` one. Never printed.
fn fresh_token(ctx: &Ctx, state: TokenState) -> Result<Secret> {
    let cp = &ctx.lab.control_plane().name;
    let why = match state {
        TokenState::Expired => "expired (or expires within the hour)",
        _ => "unknown to the cluster",
    };
    ctx.progress.line(&format!(
        "{cp}: the lab's bootstrap token is {why}: kubeadm token create"
    ));
    let argv = kubeadm::steps::create_token_argv(ctx.lab);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ctx.sessions.run(cp, |s| Ok(s.run_ok(&argv, None)?))?;
    let text = out.stdout_text();
    let token = text.trim();
    if !kubeadm::is_bootstrap_token(token) {
        anyhow::bail!(
            "`kubeadm token create` on node {cp} printed no bootstrap token \
             (a line of 6 and 16 lowercase letters or digits joined by a dot)"
        );
    }
    let path = token_path(ctx.dir);
    write_private(&path, token.as_bytes())
        .with_context(|| format!("storing the bootstrap token {}", path.display()))?;
    Ok(Secret::new(token))
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
    let ctx = Ctx {
        lab,
        dir,
        sessions: &sessions,
        progress,
    };
    run_steps(&ctx, steps, &token, &mut learned)?;
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
