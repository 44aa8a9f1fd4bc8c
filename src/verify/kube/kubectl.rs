//! kubectl on the control plane, over its SSH session, as root with the
//! admin kubeconfig (as `up` runs it: `kubectl --kubeconfig
//! /etc/kubernetes/admin.conf`): creating verify's pods and reading the
//! API server. Commands inside pods are the probes' (`kubectl exec`, see
//! `crate::verify::probe`).

use crate::kubeadm::steps::ADMIN_CONF;
use crate::ssh::{command_line, Session};
use crate::verify::parse::last_lines;

/// The control plane's session and name, for kubectl.
pub struct Kubectl<'a> {
    pub session: &'a Session,
    pub node: &'a str,
}

impl Kubectl<'_> {
    /// `kubectl --kubeconfig ADMIN_CONF ARGS…` (stdin optional); stdout,
    /// or a sentence naming the node, the command and its stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
        let mut argv = vec!["kubectl", "--kubeconfig", ADMIN_CONF];
        argv.extend_from_slice(args);
        let shown = command_line(&argv);
        match self.session.run(&argv, stdin) {
            Ok(out) if out.success() => Ok(out.stdout_text()),
            Ok(out) => Err(format!(
                "{}: `{shown}` exited {}: {}",
                self.node,
                out.status,
                last_lines(&out.stderr_text())
            )),
            Err(e) => Err(format!("{}: `{shown}`: {e}", self.node)),
        }
    }
}
