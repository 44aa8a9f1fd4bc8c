//! Whether `kubeadm init` / `join` on a node is done, to run, or to run
//! after `kubeadm reset -f` of a half-done attempt, decided from the
//! cluster's real state rather than from files kubeadm writes early
//! (admin.conf exists before the control plane is known up; a failed join
//! leaves pki/ca.crt, and the next join fails preflight on it).
//!
//! The provider runs the probes (argv here) and feeds their outputs to the
//! pure decisions [`init_action`] and [`join_action`].

use anyhow::{bail, Result};

use super::steps::ADMIN_CONF;
use crate::render::CRI_SOCKET;

/// What a probe command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// What to do about a node's init or join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Done before and working: nothing to do.
    Skip,
    /// A clean node: run it.
    Run,
    /// An earlier attempt left kubeadm state: `kubeadm reset -f`, then run.
    ResetAndRun,
}

/// Files kubeadm init/join write; any of them means an earlier attempt.
/// (Directories such as /etc/kubernetes/manifests exist with the packages
/// and survive a reset, so only files inside them count.)
pub const KUBEADM_STATE: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/var/lib/etcd/member",
    "/var/lib/kubelet/config.yaml",
];

/// Control plane: does the API server answer through admin.conf?
pub fn readyz_argv() -> Vec<String> {
    strings(&[
        "kubectl",
        "--kubeconfig",
        ADMIN_CONF,
        "get",
        "--raw",
        "/readyz",
    ])
}

/// Any node: which of [`KUBEADM_STATE`] exist (`ls -d` prints those that
/// do; its exit status only says that some do not).
pub fn leftovers_argv() -> Vec<String> {
    let mut argv = strings(&["ls", "-d"]);
    argv.extend(KUBEADM_STATE.iter().map(|p| p.to_string()));
    argv
}

/// On the control plane: is node `name` registered with the API server?
pub fn registered_argv(name: &str) -> Vec<String> {
    strings(&[
        "kubectl",
        "--kubeconfig",
        ADMIN_CONF,
        "get",
        "node",
        name,
        "-o",
        "name",
    ])
}

/// On a worker: is its kubelet running?
pub fn kubelet_active_argv() -> Vec<String> {
    strings(&["systemctl", "is-active", "kubelet"])
}

/// Undoes a half-done init or join (containerd is the only runtime, named
/// so kubeadm never asks).
pub fn reset_argv() -> Vec<String> {
    strings(&["kubeadm", "reset", "-f", "--cri-socket", CRI_SOCKET])
}

/// The kubeadm state files the [`leftovers_argv`] probe found.
pub fn leftovers(probe: &Probe) -> Vec<String> {
    probe
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| KUBEADM_STATE.contains(l))
        .map(str::to_string)
        .collect()
}

/// Control plane: skip `kubeadm init` when the API server answers `ok` on
/// /readyz; otherwise init, after a reset when an attempt left state.
pub fn init_action(readyz: &Probe, leftovers: &[String]) -> Action {
    if readyz.success && readyz.stdout.trim() == "ok" {
        Action::Skip
    } else if leftovers.is_empty() {
        Action::Run
    } else {
        Action::ResetAndRun
    }
}

/// Worker `name`: skip `kubeadm join` when the API server knows the node
/// and its kubelet runs; otherwise join, after a reset when an attempt left
/// state. An API error other than NotFound is an error: resetting a
/// working node on a passing hiccup would be worse than stopping.
pub fn join_action(
    name: &str,
    registered: &Probe,
    kubelet: &Probe,
    leftovers: &[String],
) -> Result<Action> {
    let is_registered = if registered.success {
        registered.stdout.trim() == format!("node/{name}")
    } else if registered.stderr.contains("(NotFound)") {
        false
    } else {
        bail!(
            "cannot tell whether node {name} is registered with the API server: `{}` on the \
             control plane failed: {}",
            registered_argv(name).join(" "),
            registered.stderr.trim()
        );
    };
    let kubelet_running = kubelet.success && kubelet.stdout.trim() == "active";
    Ok(if is_registered && kubelet_running {
        Action::Skip
    } else if leftovers.is_empty() {
        Action::Run
    } else {
        Action::ResetAndRun
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written after what kubectl, ls and systemctl print in these states.
    const REFUSED: &str = "The connection to the server 192.168.56.10:6443 was refused - \
                           did you specify the right host or port?\n";
    const ETCD_FAILED: &str = "Error from server (InternalError): an error on the server \
                               (\"[+]ping ok\\n[-]etcd failed: reason withheld\\nreadyz check \
                               failed\") has prevented the request from succeeding\n";
    const NO_ADMIN_CONF: &str =
        "error: stat /etc/kubernetes/admin.conf: no such file or directory\n";
    const NOT_FOUND: &str = "Error from server (NotFound): nodes \"worker1\" not found\n";
    const LS_AFTER_FAILED_JOIN: &str =
        "/etc/kubernetes/bootstrap-kubelet.conf\n/etc/kubernetes/pki/ca.crt\n";
    const LS_CLEAN_STDERR: &str =
        "ls: cannot access '/etc/kubernetes/admin.conf': No such file or directory\n";

    fn ok(stdout: &str) -> Probe {
        Probe {
            success: true,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn failed(stdout: &str, stderr: &str) -> Probe {
        Probe {
            success: false,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    fn ls(stdout: &str) -> Vec<String> {
        leftovers(&failed(stdout, LS_CLEAN_STDERR))
    }

    #[test]
    fn leftovers_are_the_state_files_ls_found() {
        assert_eq!(
            ls(LS_AFTER_FAILED_JOIN),
            [
                "/etc/kubernetes/bootstrap-kubelet.conf",
                "/etc/kubernetes/pki/ca.crt"
            ]
        );
        assert!(ls("").is_empty());
        // Only paths labctl asked about count.
        assert!(ls("/etc/kubernetes/manifests\n/tmp/x\n").is_empty());
        let argv = leftovers_argv();
        assert_eq!(argv[..2], ["ls", "-d"]);
        assert_eq!(argv.len(), 2 + KUBEADM_STATE.len());
    }

    #[test]
    fn init_is_skipped_only_when_the_api_server_answers() {
        let state = ls("/etc/kubernetes/admin.conf\n/etc/kubernetes/pki/ca.crt\n");
        assert_eq!(init_action(&ok("ok"), &state), Action::Skip);
        // admin.conf written, control plane never came up: reset, init.
        for readyz in [failed("", REFUSED), failed("", ETCD_FAILED)] {
            assert_eq!(init_action(&readyz, &state), Action::ResetAndRun);
        }
        // A fresh node: no reset.
        assert_eq!(
            init_action(&failed("", NO_ADMIN_CONF), &ls("")),
            Action::Run
        );
        // Exit 0 with something else than `ok` is not an answer.
        assert_eq!(
            init_action(&ok("[-]etcd failed"), &state),
            Action::ResetAndRun
        );
        assert_eq!(
            readyz_argv().join(" "),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz"
        );
    }

    #[test]
    fn join_is_skipped_only_for_a_registered_node_with_its_kubelet_running() {
        let active = ok("active\n");
        let activating = failed("activating\n", "");
        let inactive = failed("inactive\n", "");
        let registered = ok("node/worker1\n");
        let unknown = failed("", NOT_FOUND);
        let state = ls(LS_AFTER_FAILED_JOIN);
        let join = |r: &Probe, k: &Probe, s: &[String]| join_action("worker1", r, k, s).unwrap();
        assert_eq!(join(&registered, &active, &state), Action::Skip);
        // A failed join: pki/ca.crt left, kubelet restarting, not registered.
        assert_eq!(join(&unknown, &activating, &state), Action::ResetAndRun);
        // Registered but the kubelet is down: join again, after a reset.
        assert_eq!(join(&registered, &inactive, &state), Action::ResetAndRun);
        // Registered in an old cluster the control plane no longer has.
        assert_eq!(join(&unknown, &active, &state), Action::ResetAndRun);
        assert_eq!(join(&unknown, &inactive, &ls("")), Action::Run);
        // Another node's name is not this one's.
        assert_eq!(
            join(&ok("node/worker10\n"), &active, &state),
            Action::ResetAndRun
        );
    }

    #[test]
    fn an_api_error_is_not_taken_for_an_unknown_node() {
        let err = join_action("worker1", &failed("", REFUSED), &ok("active"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot tell whether node worker1 is registered")
                && err.contains(
                    "kubectl --kubeconfig /etc/kubernetes/admin.conf get node worker1 -o name"
                )
                && err.contains("was refused"),
            "{err}"
        );
    }

    #[test]
    fn reset_names_the_runtime() {
        assert_eq!(
            reset_argv().join(" "),
            "kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock"
        );
    }
}
