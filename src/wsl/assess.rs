//! What stops a vagrant lab on this WSL host, as findings with their fix,
//! from [`Inputs`] alone (no I/O).

use labctl_lab::VagrantProvider;

use super::detect::{self, NetworkingMode, WslKind};
use super::Inputs;

/// The Vagrant plugin that points Vagrant's SSH at Windows from WSL2.
pub const VIRTUALBOX_WSL2_PLUGIN: &str = "virtualbox_WSL2";
/// The variable without which Vagrant in WSL drives no Windows program.
pub const WINDOWS_ACCESS_VAR: &str = "VAGRANT_WSL_ENABLE_WINDOWS_ACCESS";
/// The fix for running under sudo (README says the same).
pub const NO_SUDO: &str = "run labctl as yourself, not with sudo: vagrant labs need no root";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `up` stops before `vagrant up` (exit 3).
    Refuse,
    /// Printed; `up` goes on.
    Warn,
}

/// One problem, why it matters, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, message: String, fix: String) -> Finding {
        Finding {
            id,
            severity,
            message,
            fix,
        }
    }
}

/// Every finding for a vagrant lab with `provider` on this host; none off
/// WSL.
pub fn assess(inputs: &Inputs, provider: VagrantProvider) -> Vec<Finding> {
    let kind = inputs.kind();
    if kind == WslKind::NotWsl {
        return Vec::new();
    }
    let virtualbox = provider == VagrantProvider::Virtualbox;
    let mut findings = Vec::new();
    let under_sudo = inputs.euid == 0 && inputs.sudo_user.as_deref().is_some_and(|u| !u.is_empty());
    if under_sudo {
        let severity = if virtualbox {
            Severity::Refuse
        } else {
            Severity::Warn
        };
        findings.push(Finding::new(
            "wsl-sudo",
            severity,
            format!(
                "labctl runs under sudo (root, for {}): sudo drops {WINDOWS_ACCESS_VAR} and \
                 WSL_DISTRO_NAME, and root's Vagrant has its own boxes, plugins and machines",
                inputs.sudo_user.as_deref().unwrap_or_default()
            ),
            NO_SUDO.to_string(),
        ));
    }
    if virtualbox {
        match inputs.windows_access.as_deref() {
            None => findings.push(Finding::new(
                "wsl-windows-access",
                Severity::Refuse,
                format!(
                    "{WINDOWS_ACCESS_VAR} is not set: Vagrant in WSL does not drive VirtualBox \
                     (a Windows program) without it"
                ),
                format!("`export {WINDOWS_ACCESS_VAR}=1` (once: in ~/.profile or ~/.bashrc)"),
            )),
            Some("1") => {}
            Some(other) => findings.push(Finding::new(
                "wsl-windows-access-value",
                Severity::Warn,
                format!(
                    "{WINDOWS_ACCESS_VAR} is {other:?}: Vagrant treats any value, even 0 or \
                     an empty one, as 1"
                ),
                format!("`export {WINDOWS_ACCESS_VAR}=1`"),
            )),
        }
    }
    if virtualbox && kind == WslKind::Wsl2 {
        let (mode, source) = inputs.networking_mode();
        let plugin = inputs
            .vagrant_plugins
            .as_deref()
            .is_some_and(|list| detect::plugin_listed(list, VIRTUALBOX_WSL2_PLUGIN));
        if mode != NetworkingMode::Mirrored && !plugin {
            findings.push(Finding::new(
                "wsl2-nat-port-forward",
                Severity::Refuse,
                format!(
                    "WSL2 networking is {} ({}) and the `{VIRTUALBOX_WSL2_PLUGIN}` Vagrant plugin \
                     is not installed: VirtualBox binds each VM's SSH port forward to Windows' \
                     127.0.0.1, which WSL2 reaches only in mirrored mode, so `vagrant up` would \
                     wait its whole boot timeout (15 minutes) and fail (hashicorp/vagrant \
                     #11716, #12164)",
                    mode.name(),
                    source.describe()
                ),
                format!(
                    "either set `networkingMode=mirrored` under `[wsl2]` in \
                     %UserProfile%\\.wslconfig on Windows and run `wsl --shutdown`, or run \
                     `vagrant plugin install {VIRTUALBOX_WSL2_PLUGIN}`"
                ),
            ));
        }
    }
    if let Some(mount) = detect::windows_mount(&inputs.lab_folder, inputs.mounts.as_deref()) {
        if !mount.private_files {
            findings.push(Finding::new(
                "wsl-lab-folder-on-windows-drive",
                Severity::Refuse,
                format!(
                    "the lab folder {} is on the Windows drive at {}, mounted without \
                     `metadata`: every file there shows mode 0777, and OpenSSH refuses the \
                     lab's private key, which labctl keeps in that folder",
                    inputs.lab_folder.display(),
                    mount.mount_point.display()
                ),
                "keep labctl's state on the Linux side (unset XDG_STATE_HOME, or point it \
                 under your Linux home: the lab's Vagrantfile shares no folder with the VMs, \
                 so VirtualBox never reads the lab folder), or mount Windows drives with \
                 `options = \"metadata\"` under `[automount]` in /etc/wsl.conf and run \
                 `wsl --shutdown`"
                    .to_string(),
            ));
        }
    }
    findings
}

#[cfg(test)]
#[path = "assess_tests.rs"]
mod tests;
