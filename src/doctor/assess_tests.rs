//! Every finding from a prepared host state ([`Inputs`] written out).

use labctl_lab::Lab;

use super::*;

const NETNS: &str = "apiVersion: labctl/v1alpha1\nkind: Lab\nname: dr\nnetwork:\n  \
    underlay: 192.168.61.0/24\n  podNetwork: 10.61.0.0/16\nnodes:\n  - name: master\n    \
    role: control-plane\n  - name: worker1\n";

fn lab(text: &str) -> Lab {
    labctl_lab::parse("lab.yaml", text).expect("a valid lab")
}

fn vagrant_lab(provider: &str, underlay: &str, cpus: u32) -> Lab {
    lab(&format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: dv\nprovider:\n  type: vagrant\n  \
         vagrantProvider: {provider}\nnetwork:\n  underlay: {underlay}\n  podNetwork: 10.62.0.0/16\n\
         nodes:\n  - name: master\n    role: control-plane\n    cpus: {cpus}\n    memory: 2048\n  \
         - name: worker1\n    cpus: {cpus}\n    memory: 2048\n"
    ))
}

/// A host where a netns lab has everything, and a vagrant lab too.
fn healthy() -> Inputs {
    Inputs {
        euid: 0,
        modules: MODULES
            .iter()
            .map(|&name| Module {
                name,
                present: true,
                loadable: false,
            })
            .collect(),
        iptables_version: Some("iptables v1.8.9 (nf_tables)\n".into()),
        legacy_rules: Some(0),
        nft_rules: Some(12),
        vagrant_version: Some("Vagrant 2.4.9\n".into()),
        vagrant_plugins: Some("vagrant-libvirt (0.12.2, global)\n".into()),
        virtualbox_version: Some("7.0.20r163906\n".into()),
        routes: Some(parse::routes(ROUTES).unwrap()),
        meminfo: Some("MemTotal: 16384000 kB\nMemAvailable: 8192000 kB\n".into()),
        cpus: Some(8),
        ..Inputs::default()
    }
}

const ROUTES: &str = r#"[
 {"type":"unicast","dst":"default","gateway":"192.0.2.1","dev":"eth0"},
 {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link"},
 {"type":"local","dst":"192.0.2.2","table":"local","dev":"eth0"},
 {"type":"broadcast","dst":"192.0.2.255","table":"local","dev":"eth0"}
]"#;

fn find<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no finding {id}: {findings:#?}"))
}

fn fails(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| f.id.as_str())
        .collect()
}

#[test]
fn a_healthy_host_fails_nothing() {
    for lab in [
        lab(NETNS),
        vagrant_lab("virtualbox", "192.168.56.0/24", 2),
        vagrant_lab("libvirt", "192.168.63.0/24", 2),
    ] {
        let findings = assess(&healthy(), Some(&lab));
        assert!(
            findings.iter().all(|f| f.severity == Severity::Ok),
            "{findings:#?}"
        );
    }
    let findings = assess(&healthy(), None);
    assert!(
        findings.iter().all(|f| f.severity == Severity::Ok),
        "{findings:#?}"
    );
    assert_eq!(find(&findings, "vbox-host-only").message,
        "VirtualBox allows host-only networks in 192.168.56.0/21 (VirtualBox's default, no /etc/vbox/networks.conf)");
}

#[test]
fn privileges_fail_a_netns_lab_and_warn_host_wide() {
    let inputs = Inputs {
        euid: 1000,
        ..healthy()
    };
    let f = assess(&inputs, Some(&lab(NETNS)));
    assert_eq!(fails(&f), ["privileges"]);
    assert_eq!(find(&f, "privileges").fix, "run it with sudo");
    assert_eq!(
        find(&assess(&inputs, None), "privileges").severity,
        Severity::Warn
    );
    // A vagrant lab needs no root.
    let f = assess(&inputs, Some(&vagrant_lab("libvirt", "192.168.63.0/24", 2)));
    assert!(f.iter().all(|f| f.id != "privileges"));
}

#[test]
fn a_missing_tool_names_its_packages() {
    let inputs = Inputs {
        missing_programs: vec!["dnsmasq".into(), "/usr/sbin/sshd".into()],
        ..healthy()
    };
    let f = assess(&inputs, Some(&lab(NETNS)));
    assert_eq!(fails(&f), ["host-tool-dnsmasq", "host-tool-sshd"]);
    let dnsmasq = find(&f, "host-tool-dnsmasq");
    assert_eq!(
        dnsmasq.message,
        "dnsmasq is not installed (package dnsmasq-base on apt, dnsmasq on dnf)"
    );
    assert!(
        dnsmasq.fix.contains("`apt-get install dnsmasq-base`"),
        "{}",
        dnsmasq.fix
    );
    assert!(dnsmasq.fix.contains("--install-deps"), "{}", dnsmasq.fix);
}

#[test]
fn kernel_modules_missing_loadable_and_br_netfilter() {
    let mut inputs = healthy();
    inputs.modules = vec![
        Module {
            name: "vxlan",
            present: false,
            loadable: false,
        },
        Module {
            name: "bridge",
            present: false,
            loadable: true,
        },
        Module {
            name: "br_netfilter",
            present: false,
            loadable: false,
        },
    ];
    let f = assess(&inputs, Some(&lab(NETNS)));
    assert_eq!(fails(&f), ["kernel-module-vxlan"]);
    assert!(find(&f, "kernel-module-vxlan").fix.contains("CONFIG_VXLAN"));
    assert_eq!(find(&f, "kernel-module-bridge").severity, Severity::Ok);
    assert!(find(&f, "kernel-module-bridge")
        .message
        .contains("loads on first use"));
    assert_eq!(
        find(&f, "kernel-module-br_netfilter").severity,
        Severity::Warn
    );
}

#[test]
fn rules_in_both_iptables_backends_warn() {
    let inputs = Inputs {
        legacy_rules: Some(3),
        ..healthy()
    };
    let f = assess(&inputs, Some(&lab(NETNS)));
    let backend = find(&f, "iptables-backend");
    assert_eq!(backend.severity, Severity::Warn);
    assert!(
        backend.message.contains("3 legacy, 12 nf_tables"),
        "{}",
        backend.message
    );
    assert!(
        backend.fix.contains("iptables-legacy-save"),
        "{}",
        backend.fix
    );
    let f = assess(&healthy(), Some(&lab(NETNS)));
    assert_eq!(
        find(&f, "iptables-backend").message,
        "`iptables v1.8.9 (nf_tables)`, no mix of backends (0 legacy rules, 12 nf_tables rules)"
    );
}

#[test]
fn vagrant_and_its_provider_missing() {
    let lab = vagrant_lab("virtualbox", "192.168.56.0/24", 2);
    let inputs = Inputs {
        vagrant_version: None,
        virtualbox_version: None,
        ..healthy()
    };
    assert_eq!(
        fails(&assess(&inputs, Some(&lab))),
        ["vagrant", "virtualbox"]
    );
    let host = assess(&inputs, None);
    assert!(fails(&host).is_empty(), "{host:#?}");
    assert_eq!(find(&host, "vagrant").severity, Severity::Warn);

    let libvirt = vagrant_lab("libvirt", "192.168.63.0/24", 2);
    let inputs = Inputs {
        vagrant_plugins: Some("vagrant-vbguest (0.32.0, global)\n".into()),
        ..healthy()
    };
    let f = assess(&inputs, Some(&libvirt));
    assert_eq!(fails(&f), ["vagrant-libvirt"]);
    assert_eq!(
        find(&f, "vagrant-libvirt").fix,
        "`vagrant plugin install vagrant-libvirt`"
    );
    let inputs = Inputs {
        vagrant_plugins: None,
        ..healthy()
    };
    let f = assess(&inputs, Some(&libvirt));
    assert_eq!(find(&f, "vagrant-libvirt").severity, Severity::Warn);
}

#[test]
fn the_underlay_against_virtualbox_host_only_ranges() {
    let outside = vagrant_lab("virtualbox", "192.168.99.0/24", 2);
    let f = assess(&healthy(), Some(&outside));
    assert_eq!(fails(&f), ["vbox-host-only"]);
    let finding = find(&f, "vbox-host-only");
    assert!(
        finding.message.contains("192.168.56.0/21"),
        "{}",
        finding.message
    );
    assert!(
        finding
            .fix
            .contains("`* 192.168.99.0/24` to /etc/vbox/networks.conf"),
        "{}",
        finding.fix
    );

    let conf = Inputs {
        vbox_networks: Some("# lab ranges\n* 10.0.0.0/8 192.168.96.0/19\n* 2001::/64\n".into()),
        ..healthy()
    };
    assert!(fails(&assess(&conf, Some(&outside))).is_empty());
    let default_range = vagrant_lab("virtualbox", "192.168.56.0/24", 2);
    assert_eq!(
        fails(&assess(&conf, Some(&default_range))),
        ["vbox-host-only"]
    );
    // VirtualBox before 6.1.28 has no such limit.
    let old = Inputs {
        virtualbox_version: Some("6.1.26r145957".into()),
        ..healthy()
    };
    assert!(fails(&assess(&old, Some(&outside))).is_empty());
}

#[test]
fn memory_and_cpus_against_what_the_vms_ask() {
    let inputs = Inputs {
        meminfo: Some("MemAvailable: 3072000 kB\n".into()),
        cpus: Some(3),
        ..healthy()
    };
    let f = assess(&inputs, Some(&vagrant_lab("libvirt", "192.168.63.0/24", 2)));
    let memory = find(&f, "memory");
    assert_eq!(memory.severity, Severity::Warn);
    assert!(
        memory.message.contains("ask 4096 MiB and only 3000 MiB"),
        "{}",
        memory.message
    );
    assert_eq!(find(&f, "cpus").severity, Severity::Warn);
    let f = assess(&inputs, Some(&vagrant_lab("libvirt", "192.168.63.0/24", 4)));
    assert_eq!(fails(&f), ["cpus"]);
    assert_eq!(
        find(&f, "cpus").fix,
        "give every node at most `cpus: 3` in the lab file"
    );
}

#[test]
fn a_lab_network_on_a_host_route_fails_naming_the_route() {
    let routes = r#"[{"dst":"10.61.0.0/20","dev":"docker0"},
        {"dst":"192.168.61.0/24","dev":"lcbown"},
        {"type":"local","dst":"192.168.61.1","table":"local","dev":"lcbown"},
        {"type":"local","dst":"10.61.0.1","table":"local","dev":"docker0"},
        {"dst":"192.168.63.0/24","dev":"virbr1"}]"#;
    let mut inputs = Inputs {
        routes: parse::routes(routes),
        ..healthy()
    };
    let f = assess(&inputs, Some(&lab(NETNS)));
    assert_eq!(fails(&f), ["route-overlap", "route-overlap"]);
    let messages: Vec<&str> = f
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(messages, [
        "the lab's underlay 192.168.61.0/24 overlaps the host route `192.168.61.0/24 dev lcbown`",
        "the lab's pod network 10.61.0.0/16 overlaps the host route `10.61.0.0/20 dev docker0`",
    ]);
    // The lab's own bridge routes its underlay once it is up (the local
    // addresses inside the listed routes add no line of their own).
    inputs.own_links = vec!["lcbown".into()];
    assert_eq!(fails(&assess(&inputs, Some(&lab(NETNS)))).len(), 1);
    // A vagrant lab's underlay may be its own host-only network: a warning.
    let f = assess(&inputs, Some(&vagrant_lab("libvirt", "192.168.63.0/24", 2)));
    assert!(fails(&f).is_empty(), "{f:#?}");
    assert!(find(&f, "route-overlap").message.contains("dev virbr1"));
    assert_eq!(find(&f, "route-overlap").severity, Severity::Warn);
}

#[test]
fn wsl_traps_come_from_the_wsl_assessment() {
    let mut inputs = healthy();
    inputs.wsl = crate::wsl::Inputs {
        osrelease: Some("5.15.167.4-microsoft-standard-WSL2\n".into()),
        sudo_user: Some("ana".into()),
        euid: 0,
        ..crate::wsl::Inputs::default()
    };
    inputs.meminfo = Some("MemAvailable: 100 kB\n".into());
    let f = assess(
        &inputs,
        Some(&vagrant_lab("virtualbox", "192.168.99.0/24", 2)),
    );
    assert_eq!(
        fails(&f),
        ["wsl-sudo", "wsl-windows-access", "wsl2-nat-port-forward"]
    );
    assert_eq!(find(&f, "wsl").message, "this host is WSL2");
    // The VMs run under Windows: this Linux's memory, CPUs, VirtualBox
    // and networks.conf are not theirs.
    for id in ["memory", "cpus", "virtualbox", "vbox-host-only"] {
        assert!(f.iter().all(|f| f.id != id), "{id}: {f:#?}");
    }
}

#[test]
fn one_line_per_finding() {
    let fail = Finding::new(
        "route-overlap",
        Severity::Fail,
        "the lab's underlay overlaps",
        "choose another",
    );
    assert_eq!(
        fail.line(false),
        "✗ [route-overlap] the lab's underlay overlaps — fix: choose another"
    );
    assert_eq!(
        fail.line(true),
        "\x1b[1;31m✗\x1b[0m [route-overlap] the lab's underlay overlaps — fix: choose another"
    );
    assert_eq!(
        Finding::ok("vagrant", "Vagrant 2.4.9").line(false),
        "✓ [vagrant] Vagrant 2.4.9"
    );
    let warn = Finding::new("memory", Severity::Warn, "low", "less");
    assert_eq!(warn.line(false), "! [memory] low — fix: less");
}
