//! A kubeadm `up` as data: the ordered steps, each a command (argv) to run
//! as root on one node, with the file it needs put in place first.
//!
//! The provider runs them in order; consecutive steps of the same kind are
//! on different nodes and may run in parallel (the workers' prepare, then
//! each worker's validate-join and join). The control plane is prepared
//! first: it picks the Kubernetes release the workers then install.
//! Between `read-pod-cidrs` and `wait-ready` the lifecycle builds the data
//! plane with the agent: the kubelets stay NotReady until labctl's CNI
//! config exists on their node.
//!
//! Files reach the node through the command's stdin (`install -D -m MODE
//! /dev/stdin PATH`), so secrets never appear in an argv. Argv vectors are
//! for [`crate::ssh::Session::run`] (which quotes every element); wrap them
//! with [`as_root`] when the SSH user is not root.

use anyhow::Result;
use labctl_lab::{Lab, Role};

use super::token::Secret;
use crate::render::{self, JoinSecrets};

/// labctl's folder on a node for generated files.
pub const REMOTE_DIR: &str = "/etc/labctl";
pub const PREPARE_SCRIPT_PATH: &str = "/etc/labctl/prepare-node.sh";
pub const INIT_CONFIG_PATH: &str = "/etc/labctl/kubeadm-init.yaml";
pub const JOIN_CONFIG_PATH: &str = "/etc/labctl/kubeadm-join.yaml";
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Run the node preparation script (every node; the control plane
    /// first, it picks the Kubernetes release).
    Prepare,
    /// `kubeadm version -o short` on the control plane: the release the
    /// workers and `kubernetesVersion` get (`release::parse_release`).
    ReadRelease,
    /// `kubeadm config validate` on the init config (control plane).
    ValidateInit,
    /// `kubeadm init` (control plane); its output never shows the token.
    Init,
    /// Print the cluster CA certificate: feed it to `ca_cert_hash`.
    FetchCaCert,
    /// `kubeadm token list -o json` on the control plane: when the lab's
    /// token is expired or unknown there (`token_state`), the provider has
    /// `kubeadm token create` a fresh one before any join config is
    /// written.
    CheckToken,
    /// `kubeadm config validate` on a worker's join config.
    ValidateJoin,
    /// `kubeadm join` (worker).
    Join,
    /// `kubectl get nodes -o json`: repeat until `pod_cidrs` succeeds for
    /// every node, then build the plans (`plan_with_subnets`).
    ReadPodCidrs,
    /// `kubectl get nodes -o json`: repeat until `pending_nodes` is empty.
    WaitReady,
    /// Print admin.conf: `rewrite_server` it and store it 0600.
    FetchAdminConf,
}

impl StepKind {
    /// Short name for progress lines and errors.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Prepare => "prepare",
            StepKind::ReadRelease => "read-kubernetes-release",
            StepKind::ValidateInit => "validate-init-config",
            StepKind::Init => "kubeadm-init",
            StepKind::FetchCaCert => "fetch-ca-cert",
            StepKind::CheckToken => "check-bootstrap-token",
            StepKind::ValidateJoin => "validate-join-config",
            StepKind::Join => "kubeadm-join",
            StepKind::ReadPodCidrs => "read-pod-cidrs",
            StepKind::WaitReady => "wait-ready",
            StepKind::FetchAdminConf => "fetch-admin-conf",
        }
    }

    /// Steps whose command is repeated until its output shows the cluster
    /// got there (with a deadline the provider picks).
    pub fn polls(self) -> bool {
        matches!(self, StepKind::ReadPodCidrs | StepKind::WaitReady)
    }
}

/// The content of a file a step puts on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    PrepareScript,
    /// Holds the bootstrap token.
    InitConfig,
    /// Holds the bootstrap token and the CA hash.
    JoinConfig,
}

/// What earlier steps learned that the files need.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub token: &'a Secret,
    /// `sha256:<hex>`, after `fetch-ca-cert` (join configs).
    pub ca_cert_hash: Option<&'a str>,
    /// The control plane's release `1.N.P`, after `read-kubernetes-release`
    /// (workers' preparation and the init config).
    pub release: Option<&'a str>,
}

/// A file to put on the node before the step's command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub input: Input,
    pub path: &'static str,
    pub mode: u32,
}

impl Put {
    /// The command that writes its stdin to the file (as root).
    pub fn argv(&self) -> Vec<String> {
        let mode = format!("{:04o}", self.mode);
        strings(&["install", "-D", "-m", &mode, "/dev/stdin", self.path])
    }

    /// The file's content for node `node` of `lab`.
    pub fn contents(&self, lab: &Lab, node: &str, known: &Known) -> Result<String> {
        let node = lab
            .nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| anyhow::anyhow!("node {node} is not in lab {}", lab.name))?;
        let secrets = JoinSecrets {
            token: Some(known.token.expose().to_string()),
            ca_cert_hash: known.ca_cert_hash.map(str::to_string),
        };
        let release = || {
            known.release.ok_or_else(|| {
                anyhow::anyhow!("the control plane's Kubernetes release is not known yet")
            })
        };
        match self.input {
            Input::PrepareScript if node.role == Role::ControlPlane => {
                Ok(super::prepare::node_prepare_script(lab, node, None))
            }
            Input::PrepareScript => Ok(super::prepare::node_prepare_script(
                lab,
                node,
                Some(release()?),
            )),
            Input::InitConfig => {
                render::kubeadm_init_release(lab, &secrets, &format!("v{}", release()?))
            }
            Input::JoinConfig => render::kubeadm_join(lab, node, &secrets),
        }
    }
}

/// How the provider decides whether an init or join step runs
/// ([`super::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateCheck {
    /// [`super::retry::init_action`]: is the API server answering?
    ControlPlane,
    /// [`super::retry::join_action`]: is the node registered, its kubelet
    /// running?
    Worker,
}

/// One step on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    pub node: String,
    /// Put this file in place first (its own command, content on stdin).
    pub put: Option<Put>,
    pub argv: Vec<String>,
    /// Decide from the cluster's state whether the step was done before
    /// (skip it), never started (run it) or half done (`kubeadm reset -f`,
    /// then run it): a second `up` converges, and retries a failed one.
    pub state_check: Option<StateCheck>,
}

/// Makes a fresh bootstrap token on the control plane and prints it (only
/// to labctl, which stores it 0600).
pub fn create_token_argv(lab: &Lab) -> Vec<String> {
    let description = format!("labctl lab {}", lab.name);
    strings(&[
        "kubeadm",
        "token",
        "create",
        "--ttl",
        "24h0m0s",
        "--description",
        &description,
    ])
}

/// The steps of bringing up the lab's cluster, in order.
pub fn up_steps(lab: &Lab) -> Vec<Step> {
    let cp = lab.control_plane().name.clone();
    let kubectl_nodes = strings(&[
        "kubectl",
        "--kubeconfig",
        ADMIN_CONF,
        "get",
        "nodes",
        "-o",
        "json",
    ]);
    let step = |kind, node: &str, put, argv: Vec<String>, state_check| Step {
        kind,
        node: node.to_string(),
        put,
        argv,
        state_check,
    };
    let prepare = |node: &str| {
        let put = Put {
            input: Input::PrepareScript,
            path: PREPARE_SCRIPT_PATH,
            mode: 0o700,
        };
        step(
            StepKind::Prepare,
            node,
            Some(put),
            strings(&["bash", PREPARE_SCRIPT_PATH]),
            None,
        )
    };
    let mut steps = vec![
        prepare(&cp),
        step(
            StepKind::ReadRelease,
            &cp,
            None,
            strings(&["kubeadm", "version", "-o", "short"]),
            None,
        ),
    ];
    steps.extend(lab.workers().map(|w| prepare(&w.name)));
    let init_put = Put {
        input: Input::InitConfig,
        path: INIT_CONFIG_PATH,
        mode: 0o600,
    };
    steps.push(step(
        StepKind::ValidateInit,
        &cp,
        Some(init_put),
        strings(&[
            "kubeadm",
            "config",
            "validate",
            "--config",
            INIT_CONFIG_PATH,
        ]),
        None,
    ));
    steps.push(step(
        StepKind::Init,
        &cp,
        None,
        strings(&[
            "kubeadm",
            "init",
            "--config",
            INIT_CONFIG_PATH,
            "--skip-token-print",
        ]),
        Some(StateCheck::ControlPlane),
    ));
    steps.push(step(
        StepKind::FetchCaCert,
        &cp,
        None,
        strings(&["cat", CA_CERT_PATH]),
        None,
    ));
    steps.push(step(
        StepKind::CheckToken,
        &cp,
        None,
        strings(&["kubeadm", "token", "list", "-o", "json"]),
        None,
    ));
    for worker in lab.workers() {
        let put = Put {
            input: Input::JoinConfig,
            path: JOIN_CONFIG_PATH,
            mode: 0o600,
        };
        steps.push(step(
            StepKind::ValidateJoin,
            &worker.name,
            Some(put),
            strings(&[
                "kubeadm",
                "config",
                "validate",
                "--config",
                JOIN_CONFIG_PATH,
            ]),
            None,
        ));
    }
    for worker in lab.workers() {
        steps.push(step(
            StepKind::Join,
            &worker.name,
            None,
            strings(&["kubeadm", "join", "--config", JOIN_CONFIG_PATH]),
            Some(StateCheck::Worker),
        ));
    }
    steps.push(step(
        StepKind::ReadPodCidrs,
        &cp,
        None,
        kubectl_nodes.clone(),
        None,
    ));
    steps.push(step(StepKind::WaitReady, &cp, None, kubectl_nodes, None));
    steps.push(step(
        StepKind::FetchAdminConf,
        &cp,
        None,
        strings(&["cat", ADMIN_CONF]),
        None,
    ));
    steps
}

/// `argv` run as root: unchanged for root, else through `sudo -n` (never
/// prompting: Vagrant boxes and cloud images give passwordless sudo).
pub fn as_root(user: &str, argv: &[String]) -> Vec<String> {
    if user == "root" {
        return argv.to_vec();
    }
    let mut out = strings(&["sudo", "-n", "--"]);
    out.extend(argv.iter().cloned());
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
