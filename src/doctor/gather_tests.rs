//! [`gather`] on a prepared host: /proc and /sys files in a temp dir and
//! stand-ins for `ip`, `iptables`, the two `*-save`, `modprobe`,
//! `vagrant` and `VBoxManage` that print recorded output and log calls.

use std::path::Path;

use super::*;
use crate::wsl::tests::Host as Files;

/// A Linux host (not WSL) with vxlan in /proc/modules, bridge in
/// /sys/module, a legacy filter table, and the programs doctor asks.
struct Host(Files);

impl Host {
    fn new() -> Host {
        let host = Host(Files::empty());
        let files = &host.0;
        files.write(
            "proc/modules",
            "vxlan 45056 0 - Live 0x0\nip6_udp_tunnel 16384 1 vxlan, Live 0x0\n",
        );
        std::fs::create_dir_all(files.path("sys/module/bridge")).unwrap();
        files.write("osrelease", "6.1.0-57-amd64\n");
        files.write("proc/net/ip_tables_names", "filter\n");
        files.write(
            "proc/meminfo",
            "MemTotal: 16384000 kB\nMemAvailable: 4096000 kB\n",
        );
        files.program("iptables", "echo 'iptables v1.8.9 (nf_tables)'");
        files.program(
            "iptables-legacy-save",
            "printf '*filter\\n-A INPUT -j ACCEPT\\nCOMMIT\\n'",
        );
        files.program(
            "iptables-nft-save",
            "printf '*filter\\n-A FORWARD -j DROP\\n-A FORWARD -j ACCEPT\\nCOMMIT\\n'",
        );
        files.program("modprobe", "exit 1");
        files.program("ip", r#"echo '[{"dst":"10.9.0.0/16","dev":"tun0"}]'"#);
        files.program("vagrant", "case $1 in --version) echo 'Vagrant 2.4.9';; plugin) echo 'vagrant-libvirt (0.12.2, global)';; esac");
        files.program("VBoxManage", "echo 7.0.20r163906");
        host
    }

    fn write(&self, name: &str, text: &str) {
        self.0.write(name, text);
    }

    /// Every stand-in's calls, `program args` a line, in program order.
    fn calls(&self) -> String {
        let programs = [
            "modprobe",
            "iptables",
            "iptables-legacy-save",
            "iptables-nft-save",
            "vagrant",
            "VBoxManage",
            "ip",
        ];
        programs
            .iter()
            .flat_map(|p| {
                self.0
                    .calls(p)
                    .lines()
                    .map(|l| format!("{p} {l}\n"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn sources(&self) -> Sources {
        let at = |name: &str| self.0.path(name);
        Sources {
            proc: at("proc"),
            sys: at("sys"),
            vbox_networks: at("etc/vbox/networks.conf"),
            ip: at("ip"),
            iptables: at("iptables"),
            iptables_legacy_save: at("iptables-legacy-save"),
            iptables_nft_save: at("iptables-nft-save"),
            modprobe: at("modprobe"),
            vagrant: at("vagrant"),
            vboxmanage: at("VBoxManage"),
            wsl: self.0.sources(),
        }
    }

    fn gather(&self, lab: Option<&labctl_lab::Lab>) -> Inputs {
        gather(
            &self.sources(),
            &|_| None,
            0,
            lab,
            Path::new("/var/lib/labctl/labs/x"),
        )
    }
}

fn lab(provider: &str) -> labctl_lab::Lab {
    let text = format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: dg\nprovider:\n  type: {provider}\n\
         network:\n  underlay: 192.168.56.0/24\nnodes:\n  - name: master\n    role: control-plane\n"
    );
    labctl_lab::parse("lab.yaml", &text).unwrap()
}

#[test]
fn a_netns_lab_reads_modules_iptables_and_routes_and_loads_nothing() {
    let host = Host::new();
    let inputs = host.gather(Some(&lab("netns")));
    let modules: Vec<(&str, bool, bool)> = inputs
        .modules
        .iter()
        .map(|m| (m.name, m.present, m.loadable))
        .collect();
    // vxlan from /proc/modules, bridge from /sys/module; br_netfilter:
    // neither, and the dry-run modprobe does not find it.
    assert_eq!(
        modules,
        [
            ("vxlan", true, false),
            ("bridge", true, false),
            ("br_netfilter", false, false)
        ]
    );
    assert_eq!(
        inputs.iptables_version.as_deref(),
        Some("iptables v1.8.9 (nf_tables)\n")
    );
    assert_eq!((inputs.legacy_rules, inputs.nft_rules), (Some(1), Some(2)));
    let routes = inputs.routes.as_ref().unwrap();
    assert_eq!(routes[0].shown, "10.9.0.0/16 dev tun0");
    assert_eq!(inputs.vagrant_version, None, "a netns lab asks no Vagrant");
    assert_eq!(
        host.calls(),
        "modprobe -n -q br_netfilter\niptables -V\niptables-legacy-save \niptables-nft-save \n\
         ip -4 -j route show table all\n"
    );
    // Findings from what was read: the mixed backends and br_netfilter.
    let f = assess(&inputs, Some(&lab("netns")));
    assert!(f
        .iter()
        .any(|f| f.id == "iptables-backend" && f.severity == Severity::Warn));
    assert!(f
        .iter()
        .any(|f| f.id == "kernel-module-br_netfilter" && f.severity == Severity::Warn));
}

/// A host-gw lab makes no VXLAN device: doctor does not ask for vxlan.
#[test]
fn a_host_gw_lab_does_not_need_the_vxlan_module() {
    let host = Host::new();
    let text = "apiVersion: labctl/v1alpha1\nkind: Lab\nname: dg\n\
         network:\n  underlay: 192.168.56.0/24\n  backend: {type: host-gw}\n\
         nodes:\n  - name: master\n    role: control-plane\n";
    let lab = labctl_lab::parse("lab.yaml", text).unwrap();
    let names: Vec<&str> = host
        .gather(Some(&lab))
        .modules
        .iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["bridge", "br_netfilter"]);
}

#[test]
fn an_empty_legacy_table_list_runs_no_legacy_save() {
    let host = Host::new();
    host.write("proc/net/ip_tables_names", "");
    host.write("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
    let inputs = host.gather(Some(&lab("netns")));
    assert_eq!(inputs.legacy_rules, Some(0));
    assert!(
        inputs.modules.iter().all(|m| m.present),
        "{:?}",
        inputs.modules
    );
    assert!(!host.calls().contains("legacy-save"), "{}", host.calls());
    assert!(!host.calls().contains("modprobe"), "{}", host.calls());
}

#[test]
fn a_virtualbox_lab_reads_vagrant_virtualbox_networks_conf_and_memory() {
    let host = Host::new();
    host.write("etc/vbox/networks.conf", "* 10.0.0.0/8\n");
    let inputs = host.gather(Some(&lab("vagrant")));
    assert_eq!(inputs.vagrant_version.as_deref(), Some("Vagrant 2.4.9\n"));
    assert_eq!(
        inputs.virtualbox_version.as_deref(),
        Some("7.0.20r163906\n")
    );
    assert_eq!(inputs.vbox_networks.as_deref(), Some("* 10.0.0.0/8\n"));
    assert_eq!(inputs.vagrant_plugins, None, "VirtualBox needs no plugin");
    assert!(inputs
        .meminfo
        .as_deref()
        .unwrap()
        .contains("MemAvailable: 4096000 kB"));
    assert!(inputs.modules.is_empty() && inputs.iptables_version.is_none());
    assert_eq!(
        host.calls(),
        "vagrant --version\nVBoxManage --version\nip -4 -j route show table all\n"
    );
    let f = assess(&inputs, Some(&lab("vagrant")));
    let vbox = f.iter().find(|f| f.id == "vbox-host-only").unwrap();
    assert_eq!(
        vbox.severity,
        Severity::Fail,
        "192.168.56.0/24 is not in 10.0.0.0/8"
    );
}

#[test]
fn host_wide_reads_every_provider_but_no_routes() {
    let host = Host::new();
    let inputs = host.gather(None);
    assert!(inputs.routes.is_none());
    assert!(inputs
        .vagrant_plugins
        .as_deref()
        .unwrap()
        .contains("vagrant-libvirt"));
    assert_eq!(inputs.modules.len(), MODULES.len());
    assert_eq!(inputs.vbox_networks, None);
}

#[test]
fn parsers_read_recorded_output() {
    assert_eq!(
        parse::meminfo_mib(
            "MemTotal:       24683772 kB\nMemAvailable:   22920468 kB\n",
            "MemAvailable"
        ),
        Some(22383)
    );
    assert_eq!(
        parse::iptables_backend("iptables v1.8.7 (legacy)"),
        Some("legacy")
    );
    assert_eq!(parse::version_triple("6.1.26r145957"), Some((6, 1, 26)));
    assert_eq!(parse::vagrant_version("Vagrant 2.4.9\n"), Some("2.4.9"));
    let routes = parse::routes(
        r#"[{"type":"multicast","dst":"224.0.0.0/4","dev":"eth0"},
        {"type":"local","dst":"192.0.2.2","table":"local","dev":"eth0"}]"#,
    )
    .unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].shown, "local 192.0.2.2 dev eth0 table local");
    assert!(parse::routes("not json").is_none());
}
