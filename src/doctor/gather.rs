//! Everything doctor reads from the host, once, from [`Sources`] a test
//! can point at prepared files and stand-in programs. Reads only: no
//! module is loaded, no rule or route changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::hostcmd::stdout_if_ok;
use labctl_lab::{Lab, VagrantProvider};

use super::{Inputs, Module, Scope, MODULES, NETNS_TOOLS, SSH_TOOLS};
use crate::hostcmd;

/// Where [`gather`] reads: this host's files and programs, or a test's.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `/proc`: meminfo, modules, net/ip_tables_names, sys/net/bridge.
    pub proc: PathBuf,
    /// `/sys`: module/NAME for loaded and built-in modules.
    pub sys: PathBuf,
    pub vbox_networks: PathBuf,
    pub ip: PathBuf,
    pub iptables: PathBuf,
    pub iptables_legacy_save: PathBuf,
    pub iptables_nft_save: PathBuf,
    pub modprobe: PathBuf,
    pub vagrant: PathBuf,
    pub vboxmanage: PathBuf,
    pub wsl: crate::wsl::Sources,
}

impl Sources {
    pub fn host() -> Sources {
        Sources {
            proc: "/proc".into(),
            sys: "/sys".into(),
            vbox_networks: "/etc/vbox/networks.conf".into(),
            ip: "ip".into(),
            iptables: "iptables".into(),
            iptables_legacy_save: "iptables-legacy-save".into(),
            iptables_nft_save: "iptables-nft-save".into(),
            modprobe: "modprobe".into(),
            vagrant: "vagrant".into(),
            vboxmanage: "VBoxManage".into(),
            wsl: crate::wsl::Sources::host(),
        }
    }
}

/// Reads what [`super::assess`] needs for `lab` (every provider's checks
/// without one); `lab_folder` is where the lab's state lives.
pub fn gather(
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
    euid: u32,
    lab: Option<&Lab>,
    lab_folder: &Path,
) -> Inputs {
    let scope = Scope::of(lab);
    let mut inputs = Inputs {
        euid,
        ..Inputs::default()
    };
    let mut tools: Vec<&str> = Vec::new();
    if scope.netns() {
        tools.extend(NETNS_TOOLS.iter().map(|t| t.program));
    }
    if scope != Scope::Netns {
        tools.extend(SSH_TOOLS.iter().map(|t| t.program));
    }
    tools.sort();
    tools.dedup();
    inputs.missing_programs = tools
        .into_iter()
        .filter(|p| !hostcmd::have_program(p))
        .map(String::from)
        .collect();

    if scope.netns() {
        inputs.modules = modules(sources, lab);
        inputs.iptables_version = stdout_if_ok(&sources.iptables, &["-V"]);
        let tables = std::fs::read_to_string(sources.proc.join("net/ip_tables_names"));
        // Only a loaded ip_tables has tables to save: nothing is loaded here.
        inputs.legacy_rules = match tables {
            Ok(names) if names.trim().is_empty() => Some(0),
            Ok(_) => stdout_if_ok(&sources.iptables_legacy_save, &[])
                .map(|s| super::parse::rule_count(&s)),
            Err(_) => None,
        };
        let nft_in_use = inputs
            .iptables_version
            .as_deref()
            .and_then(super::parse::iptables_backend)
            == Some("nf_tables")
            || module_present(sources, "nf_tables");
        if nft_in_use {
            inputs.nft_rules =
                stdout_if_ok(&sources.iptables_nft_save, &[]).map(|s| super::parse::rule_count(&s));
        }
    }
    if let Some(provider) = scope.vagrant() {
        inputs.vagrant_version = stdout_if_ok(&sources.vagrant, &["--version"]);
        inputs.wsl = crate::wsl::gather(&sources.wsl, env, euid, lab_folder, provider);
        let on_wsl = inputs.wsl.kind() != crate::wsl::WslKind::NotWsl;
        let plugins_matter = scope == Scope::Host || provider == VagrantProvider::Libvirt;
        if inputs.vagrant_version.is_some() && plugins_matter {
            inputs.vagrant_plugins = inputs
                .wsl
                .vagrant_plugins
                .clone()
                .or_else(|| stdout_if_ok(&sources.vagrant, &["plugin", "list"]));
        }
        if provider == VagrantProvider::Virtualbox && !on_wsl {
            inputs.virtualbox_version = stdout_if_ok(&sources.vboxmanage, &["--version"]);
            inputs.vbox_networks = std::fs::read_to_string(&sources.vbox_networks).ok();
        }
        if !on_wsl {
            inputs.meminfo = std::fs::read_to_string(sources.proc.join("meminfo")).ok();
            inputs.cpus = std::thread::available_parallelism().ok().map(|n| n.get());
        }
    }
    if lab.is_some() {
        inputs.routes = stdout_if_ok(&sources.ip, &["-4", "-j", "route", "show", "table", "all"])
            .and_then(|json| super::parse::routes(&json));
    }
    inputs
}

/// Each of [`MODULES`] the lab uses (a host-gw lab has no VXLAN device):
/// loaded or built in, else whether `modprobe -n` (a dry run: it loads
/// nothing) finds it.
fn modules(sources: &Sources, lab: Option<&Lab>) -> Vec<Module> {
    let host_gw = lab.is_some_and(|l| l.network.backend == labctl_lab::Backend::HostGw);
    MODULES
        .iter()
        .filter(|&&name| !(host_gw && name == "vxlan"))
        .map(|&name| {
            let present = module_present(sources, name);
            let loadable = !present && run_ok(&sources.modprobe, &["-n", "-q", name]);
            Module {
                name,
                present,
                loadable,
            }
        })
        .collect()
}

/// Listed in /proc/modules, or a /sys/module entry (built-in modules with
/// parameters), or for br_netfilter its sysctls (it has no parameters).
fn module_present(sources: &Sources, name: &str) -> bool {
    let listed = std::fs::read_to_string(sources.proc.join("modules"))
        .is_ok_and(|text| text.lines().any(|l| l.split(' ').next() == Some(name)));
    listed
        || sources.sys.join("module").join(name).is_dir()
        || (name == "br_netfilter" && sources.proc.join("sys/net/bridge").is_dir())
}

fn command(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn run_ok(program: &Path, args: &[&str]) -> bool {
    command(program, args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
