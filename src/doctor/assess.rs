//! The findings for a lab (or for every provider) from [`Inputs`] alone:
//! no I/O, so each finding is tested with a prepared host state.

use ipnet::Ipv4Net;
use labctl_lab::{Lab, ProviderType, VagrantProvider};

use super::parse::{self, overlaps};
use super::{Finding, HostRoute, Inputs, Scope, Severity, NETNS_TOOLS, SSH_TOOLS};

/// VirtualBox's default host-only range (>= 6.1.28, without networks.conf).
const VBOX_DEFAULT_RANGE: &str = "192.168.56.0/21";
/// The Vagrant plugin the libvirt provider needs.
const LIBVIRT_PLUGIN: &str = "vagrant-libvirt";

/// Every finding for `lab` on the host `inputs` describes; without a lab,
/// every provider's host-wide checks (failures become warnings).
pub fn assess(inputs: &Inputs, lab: Option<&Lab>) -> Vec<Finding> {
    let scope = Scope::of(lab);
    let mut out = Vec::new();
    if scope.netns() {
        privileges(inputs, scope, &mut out);
    }
    tools(inputs, scope, &mut out);
    if scope.netns() {
        modules(inputs, scope, &mut out);
        iptables(inputs, &mut out);
    }
    if let Some(provider) = scope.vagrant() {
        vagrant(inputs, scope, provider, &mut out);
        wsl(inputs, scope, provider, &mut out);
        if inputs.wsl.kind() == crate::wsl::WslKind::NotWsl {
            if provider == VagrantProvider::Virtualbox {
                host_only_ranges(inputs, lab, &mut out);
            }
            resources(inputs, lab, &mut out);
        }
    }
    if let Some(lab) = lab {
        routes(inputs, lab, &mut out);
    }
    out
}

fn privileges(inputs: &Inputs, scope: Scope, out: &mut Vec<Finding>) {
    out.push(if inputs.euid == 0 {
        Finding::ok("privileges", "running as root (netns labs need it)")
    } else {
        Finding::new(
            "privileges",
            scope.needed(),
            "not root: netns labs create network namespaces, which needs root",
            "run it with sudo",
        )
    });
}

fn tools(inputs: &Inputs, scope: Scope, out: &mut Vec<Finding>) {
    if inputs.missing_programs.is_empty() {
        out.push(Finding::ok(
            "host-tools",
            "every host tool labs run is installed",
        ));
        return;
    }
    for program in &inputs.missing_programs {
        let tool = NETNS_TOOLS
            .iter()
            .chain(SSH_TOOLS)
            .find(|t| t.program == program);
        let (apt, dnf) = tool.map_or(("?", "?"), |t| (t.apt, t.dnf));
        let name = program.rsplit('/').next().unwrap_or(program);
        let hint = if scope.netns() {
            " (or `labctl up --install-deps` for a netns lab)"
        } else {
            ""
        };
        out.push(Finding::new(
            format!("host-tool-{name}"),
            scope.needed(),
            format!("{program} is not installed (package {apt} on apt, {dnf} on dnf)"),
            format!("`apt-get install {apt}` or `dnf install {dnf}`{hint}"),
        ));
    }
}

fn modules(inputs: &Inputs, scope: Scope, out: &mut Vec<Finding>) {
    for module in &inputs.modules {
        let id = format!("kernel-module-{}", module.name);
        out.push(if module.present {
            Finding::ok(id, format!("kernel module {} is loaded or built in", module.name))
        } else if module.loadable {
            Finding::ok(
                id,
                format!("kernel module {} is available and loads on first use", module.name),
            )
        } else {
            // Without br_netfilter pods on a bridge skip iptables: only
            // service DNAT between pods of one node suffers.
            let severity = if module.name == "br_netfilter" {
                Severity::Warn
            } else {
                scope.needed()
            };
            Finding::new(
                id,
                severity,
                format!(
                    "kernel module {} is neither loaded nor found by `modprobe -n` for this kernel",
                    module.name
                ),
                format!(
                    "install this kernel's modules (e.g. `apt-get install linux-modules-extra-$(uname -r)` \
                     or `linux-image-$(uname -r)`), or boot a kernel with CONFIG_{}",
                    module.name.to_uppercase()
                ),
            )
        });
    }
}

fn iptables(inputs: &Inputs, out: &mut Vec<Finding>) {
    let Some(version) = inputs.iptables_version.as_deref() else {
        return; // host-tools names it missing
    };
    let version = version.trim();
    let backend = parse::iptables_backend(version);
    let mixed = inputs.legacy_rules.unwrap_or(0) > 0 && inputs.nft_rules.unwrap_or(0) > 0;
    out.push(if mixed {
        let other = if backend == Some("legacy") { "nft" } else { "legacy" };
        Finding::new(
            "iptables-backend",
            Severity::Warn,
            format!(
                "`{version}`, and the host has rules in both backends ({} legacy, {} nf_tables): \
                 both apply, and a tool using the other one sees only half of them",
                inputs.legacy_rules.unwrap_or(0),
                inputs.nft_rules.unwrap_or(0)
            ),
            format!(
                "move the {other} rules to one backend (`iptables-{other}-save` shows them) and pick it \
                 with `update-alternatives --config iptables`"
            ),
        )
    } else {
        let count = |n: Option<usize>| n.map_or("?".to_string(), |n| n.to_string());
        Finding::ok(
            "iptables-backend",
            format!(
                "`{version}`, no mix of backends ({} legacy rules, {} nf_tables rules)",
                count(inputs.legacy_rules),
                count(inputs.nft_rules)
            ),
        )
    });
}

fn vagrant(inputs: &Inputs, scope: Scope, provider: VagrantProvider, out: &mut Vec<Finding>) {
    match inputs.vagrant_version.as_deref() {
        None => out.push(Finding::new(
            "vagrant",
            scope.needed(),
            "Vagrant is not installed (or `vagrant --version` fails): vagrant labs need it",
            "install Vagrant from https://developer.hashicorp.com/vagrant/install (the `vagrant` package)",
        )),
        Some(version) => {
            let version = parse::vagrant_version(version).unwrap_or(version.trim());
            out.push(Finding::ok("vagrant", format!("Vagrant {version}")));
            if provider == VagrantProvider::Libvirt || scope == Scope::Host {
                libvirt_plugin(inputs, scope, out);
            }
        }
    }
    let on_wsl = inputs.wsl.kind() != crate::wsl::WslKind::NotWsl;
    if provider == VagrantProvider::Virtualbox && !on_wsl {
        out.push(match inputs.virtualbox_version.as_deref() {
            Some(v) => Finding::ok("virtualbox", format!("VirtualBox {}", v.trim())),
            None => Finding::new(
                "virtualbox",
                scope.needed(),
                "VirtualBox is not installed (`VBoxManage --version` fails): virtualbox labs need it",
                "install VirtualBox (https://www.virtualbox.org/wiki/Linux_Downloads), or use \
                 `vagrantProvider: libvirt`",
            ),
        });
    }
}

fn libvirt_plugin(inputs: &Inputs, scope: Scope, out: &mut Vec<Finding>) {
    out.push(match inputs.vagrant_plugins.as_deref() {
        Some(list) if crate::wsl::detect::plugin_listed(list, LIBVIRT_PLUGIN) => Finding::ok(
            "vagrant-libvirt",
            format!("the {LIBVIRT_PLUGIN} plugin is installed"),
        ),
        Some(_) => Finding::new(
            "vagrant-libvirt",
            scope.needed(),
            format!("the {LIBVIRT_PLUGIN} plugin is not installed: libvirt labs need it"),
            format!("`vagrant plugin install {LIBVIRT_PLUGIN}`"),
        ),
        None => Finding::new(
            "vagrant-libvirt",
            Severity::Warn,
            "`vagrant plugin list` failed: cannot tell whether vagrant-libvirt is installed",
            "run `vagrant plugin list` and repair what it reports",
        ),
    });
}

/// WSL's traps ([`crate::wsl::assess`]), as doctor findings.
fn wsl(inputs: &Inputs, scope: Scope, provider: VagrantProvider, out: &mut Vec<Finding>) {
    let kind = inputs.wsl.kind();
    if kind == crate::wsl::WslKind::NotWsl {
        return;
    }
    let name = if kind == crate::wsl::WslKind::Wsl1 {
        "WSL1"
    } else {
        "WSL2"
    };
    out.push(Finding::ok("wsl", format!("this host is {name}")));
    for f in crate::wsl::assess(&inputs.wsl, provider) {
        let severity = match f.severity {
            crate::wsl::Severity::Refuse => scope.needed(),
            crate::wsl::Severity::Warn => Severity::Warn,
        };
        out.push(Finding::new(f.id, severity, f.message, f.fix));
    }
}

/// The lab's underlay against the host-only ranges VirtualBox allows.
fn host_only_ranges(inputs: &Inputs, lab: Option<&Lab>, out: &mut Vec<Finding>) {
    let ranges = match inputs.vbox_networks.as_deref() {
        Some(conf) => parse::vbox_ranges(conf),
        None => vec![VBOX_DEFAULT_RANGE.parse().expect("a network")],
    };
    let shown: Vec<String> = ranges.iter().map(Ipv4Net::to_string).collect();
    let from = if inputs.vbox_networks.is_some() {
        "/etc/vbox/networks.conf"
    } else {
        "VirtualBox's default, no /etc/vbox/networks.conf"
    };
    // VirtualBox before 6.1.28 allows any range.
    let old = inputs
        .virtualbox_version
        .as_deref()
        .and_then(parse::version_triple)
        .is_some_and(|v| v < (6, 1, 28));
    let Some(lab) = lab else {
        out.push(Finding::ok(
            "vbox-host-only",
            format!(
                "VirtualBox allows host-only networks in {} ({from})",
                shown.join(" ")
            ),
        ));
        return;
    };
    let underlay = lab.network.underlay;
    let inside = ranges.iter().any(|r| r.contains(&underlay));
    out.push(if inside || old {
        Finding::ok(
            "vbox-host-only",
            format!("the underlay {underlay} is a host-only range VirtualBox allows"),
        )
    } else {
        Finding::new(
            "vbox-host-only",
            Severity::Fail,
            format!(
                "the underlay {underlay} is outside the host-only ranges VirtualBox allows ({}: {}): \
                 `vagrant up` would fail creating its network",
                from,
                if shown.is_empty() { "none".to_string() } else { shown.join(" ") }
            ),
            format!(
                "add the line `* {underlay}` to /etc/vbox/networks.conf (as root), or choose an \
                 underlay inside {}",
                shown.first().map_or(VBOX_DEFAULT_RANGE, String::as_str)
            ),
        )
    });
}

/// What the VMs ask for against what the host has.
fn resources(inputs: &Inputs, lab: Option<&Lab>, out: &mut Vec<Finding>) {
    let available = inputs
        .meminfo
        .as_deref()
        .and_then(|m| parse::meminfo_mib(m, "MemAvailable"));
    let cpus = inputs.cpus;
    let Some(lab) = lab else {
        if let (Some(mib), Some(cpus)) = (available, cpus) {
            out.push(Finding::ok(
                "resources",
                format!("{mib} MiB available, {cpus} CPUs for VMs"),
            ));
        }
        return;
    };
    let wanted: u64 = lab.nodes.iter().map(|n| u64::from(n.memory)).sum();
    let n = lab.nodes.len();
    if let Some(mib) = available {
        out.push(if wanted <= mib {
            Finding::ok(
                "memory",
                format!("the {n} VMs ask {wanted} MiB, {mib} MiB available"),
            )
        } else {
            Finding::new(
                "memory",
                Severity::Warn,
                format!(
                    "the {n} VMs ask {wanted} MiB and only {mib} MiB is available: the host \
                     will swap, or the hypervisor refuses the last VMs"
                ),
                "give nodes less `memory:` in the lab file, or stop other VMs and programs",
            )
        });
    }
    if let Some(cpus) = cpus {
        let biggest = lab.nodes.iter().map(|n| n.cpus).max().unwrap_or(0) as usize;
        let total: usize = lab.nodes.iter().map(|n| n.cpus as usize).sum();
        out.push(if biggest > cpus {
            Finding::new(
                "cpus",
                Severity::Fail,
                format!("a node asks {biggest} CPUs and this host has {cpus}: its VM cannot start"),
                format!("give every node at most `cpus: {cpus}` in the lab file"),
            )
        } else if total > cpus {
            Finding::new(
                "cpus",
                Severity::Warn,
                format!("the {n} VMs ask {total} CPUs in all and this host has {cpus}: they share them, slowly"),
                "give nodes fewer `cpus:` in the lab file if the lab is too slow",
            )
        } else {
            Finding::ok("cpus", format!("the {n} VMs ask {total} CPUs, this host has {cpus}"))
        });
    }
}

/// The lab's networks against the host's routes.
fn routes(inputs: &Inputs, lab: &Lab, out: &mut Vec<Finding>) {
    let Some(routes) = inputs.routes.as_deref() else {
        out.push(Finding::new(
            "routes",
            Severity::Warn,
            "cannot read the host's routes (`ip -4 -j route show table all` failed)",
            "install iproute2",
        ));
        return;
    };
    let kind = lab.provider.kind;
    let networks = [
        ("underlay", lab.network.underlay),
        ("pod network", lab.network.pod_network),
        ("service network", lab.network.service_network),
    ];
    let mut clashes = 0;
    for (what, net) in networks {
        // An ssh lab's nodes are on the underlay, and so may this host be.
        if what == "underlay" && kind == ProviderType::Ssh {
            continue;
        }
        // The lab's own bridge routes its underlay once it is up.
        let clashing: Vec<&HostRoute> = routes
            .iter()
            .filter(|r| overlaps(net, r.dst) && !inputs.own_links.contains(&r.dev))
            .collect();
        // One line per clash: an address inside a listed route (the host's
        // own, in the local table) adds nothing.
        let widest = clashing.iter().filter(|r| {
            !clashing
                .iter()
                .any(|w| w.dst != r.dst && w.dst.contains(&r.dst))
        });
        for route in widest {
            clashes += 1;
            // A vagrant lab's underlay is routed by its own host-only
            // network once its VMs exist: only then is that route fine.
            let severity = if what == "underlay" && kind == ProviderType::Vagrant {
                Severity::Warn
            } else {
                Severity::Fail
            };
            let unless = if severity == Severity::Warn {
                " (fine if it is this lab's own host-only network)"
            } else {
                ""
            };
            out.push(Finding::new(
                super::ROUTE_OVERLAP,
                severity,
                format!(
                    "the lab's {what} {net} overlaps the host route `{}`{unless}",
                    route.shown
                ),
                "choose another network for the lab in the lab file",
            ));
        }
    }
    if clashes == 0 {
        out.push(Finding::ok(
            super::ROUTE_OVERLAP,
            "the lab's networks overlap none of the host's routes",
        ));
    }
}
