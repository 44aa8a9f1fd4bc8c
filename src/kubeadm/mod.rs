//! Building blocks of the kubeadm path (vagrant and ssh providers), all
//! pure: no SSH and no I/O beyond reading /dev/urandom for tokens.
//!
//! - [`node_prepare_script`]: the idempotent bash script preparing a node.
//! - [`generate_bootstrap_token`] and [`Secret`] (never printed).
//! - [`ca_cert_hash`]: the discovery hash of the cluster CA.
//! - [`pod_cidrs`], [`nodes_ready`], [`pending_nodes`], [`internal_ips`]:
//!   `kubectl get nodes -o json` read back.
//! - [`list`]: the envelope of `kubectl get … -o json` lists.
//! - [`parse_release`]: the one Kubernetes release of the lab.
//! - [`up_steps`]: the ordered steps of a kubeadm `up` as data.
//! - [`init_action`], [`join_action`]: init or join, skip, or reset first.
//! - [`rewrite_server`]: the admin kubeconfig made reachable from the host.

pub mod bootstrap;
pub mod ca_hash;
pub mod cluster_nodes;
pub mod kubeconfig;
pub mod list;
pub mod prepare;
pub mod release;
pub mod retry;
pub mod steps;
pub mod token;

pub use ca_hash::ca_cert_hash;
pub use cluster_nodes::{internal_ips, nodes_ready, pending_nodes, pod_cidrs, Readiness};
pub use kubeconfig::{api_server_url, rewrite_server, API_PORT};
pub use prepare::node_prepare_script;
pub use release::parse_release;
pub use retry::{init_action, join_action, Action, Probe};
pub use steps::{as_root, up_steps, Input, Known, Put, StateCheck, Step, StepKind};
pub use token::{generate_bootstrap_token, is_bootstrap_token, token_state, Secret, TokenState};
