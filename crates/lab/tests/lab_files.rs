//! The lab-file fixture table: every invalid file with the exact
//! diagnostics expected (position, field path, message, hint), every valid
//! file with its exact warnings, and every lab shipped in the repository's
//! labs/ folder.

use std::path::{Path, PathBuf};

use labctl_lab::{parse, Diagnostic, LabError, ProviderType, Role, Severity, VagrantProvider};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Parses `tests/fixtures/<dir>/<file>`, naming it by that relative path.
fn parse_fixture(dir: &str, file: &str) -> (String, Result<labctl_lab::Lab, LabError>) {
    let name = format!("tests/fixtures/{dir}/{file}");
    let text = std::fs::read_to_string(fixtures().join(dir).join(file))
        .unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let result = parse(&name, &text);
    (name, result)
}

/// Invalid files and their diagnostics, in order. Each expected line is the
/// full Display text after `tests/fixtures/invalid/<file>:`.
const INVALID: &[(&str, &[&str])] = &[
    (
        "sizes-and-long-name.yaml",
        &[
            "3:7: error: name: `a-lab-name-longer-than-twenty` is not a valid lab name (hint: use at most 20 lowercase letters, digits and '-', starting and ending with a letter or digit)",
            "9:11: error: nodes[0].cpus: 0 CPUs is not a usable count (hint: use 1 to 1024 (2 is usual))",
            "10:13: error: nodes[0].memory: 0 MiB is not a usable memory size (hint: give MiB, e.g. 2048)",
            "13:10: error: nodes[1].ssh: ssh is only for provider type ssh (hint: remove it, or set `provider.type: ssh`)",
        ],
    ),
    (
        "nodes-not-a-list.yaml",
        &["5:3: error: nodes: expected a list (`- item` lines or `[...]`), found a mapping"],
    ),
    (
        "backend-zero.yaml",
        &[
            "5:16: error: network.underlayMTU: 9216 is larger than 9000 (jumbo frames) (hint: use the MTU of the network the nodes share, usually 1500)",
            "6:18: error: network.backend.vni: VNI 0 is outside 1..16777215 (VXLAN IDs have 24 bits) (hint: flannel uses 1)",
            "6:27: error: network.backend.port: port 0 is outside 1..65535 (hint: flannel and Linux use 8472)",
        ],
    ),
    (
        "backend.yaml",
        &[
            "5:16: error: network.underlayMTU: 1300 is too small: VXLAN takes 50 bytes and pods need at least 1280 (hint: use 1330 or more (1500 on most networks))",
            "7:11: error: network.backend.type: `udp` is not one of: vxlan, host-gw (flannel's backends labctl builds) (hint: use `type: vxlan` (works across routed networks) or `type: host-gw` (every node on one L2 segment))",
            "8:10: error: network.backend.vni: VNI 16777216 is outside 1..16777215 (VXLAN IDs have 24 bits) (hint: flannel uses 1)",
            "9:11: error: network.backend.port: port 70000 is outside 1..65535 (hint: flannel and Linux use 8472)",
        ],
    ),
    (
        "host-gw-vxlan-settings.yaml",
        &[
            "6:33: error: network.backend.vni: `vni` is a VXLAN setting; the host-gw backend has no tunnel (hint: remove `vni`, or use `type: vxlan`)",
            "6:42: error: network.backend.port: `port` is a VXLAN setting; the host-gw backend has no tunnel (hint: remove `port`, or use `type: vxlan`)",
        ],
    ),
    (
        "host-gw-two-prefixes.yaml",
        &[
            "11:9: error: nodes[1].ip: 192.168.96.11 is outside the underlay 192.168.95.0/24: the host-gw backend needs every node on that one L2 segment (its routes go via the peers' node IPs), or use backend vxlan (hint: use a free address from 192.168.95.2 to 192.168.95.254)",
        ],
    ),
    (
        "bad-provider.yaml",
        &[
            "5:9: error: provider.type: `docker` is not one of: netns, vagrant, ssh",
        ],
    ),
    (
        "bad-role.yaml",
        &[
            "6:11: error: nodes[0].role: `controlplane` is not one of: control-plane, worker (hint: did you mean `control-plane`?)",
        ],
    ),
    (
        "default-ip-outside.yaml",
        &[
            "12:5: error: nodes[5].ip: default address 10.1.1.15 is the underlay's broadcast address (hint: this is the default (underlay .10 + position 5); set `ip`, or use a larger underlay)",
            "13:5: error: nodes[6].ip: default address 10.1.1.16 is outside the underlay 10.1.1.0/28 (hint: this is the default (underlay .10 + position 6); set `ip`, or use a larger underlay)",
        ],
    ),
    (
        "duplicate-key.yaml",
        &[
            "7:3: error: network.underlayMTU: duplicate key `underlayMTU` (first given at line 5, column 3) (hint: keep only one of them)",
            "11:5: error: nodes[0].role: duplicate key `role` (first given at line 10, column 5) (hint: keep only one of them)",
        ],
    ),
    (
        "empty.yaml",
        &[
            " error: the file is empty (hint: a lab needs at least apiVersion, kind, name and nodes)",
        ],
    ),
    (
        "header.yaml",
        &[
            "1:13: error: apiVersion: `labctl/v1` is not a supported apiVersion (hint: use `apiVersion: labctl/v1alpha1`)",
            "2:7: error: kind: `lab` is not a kind this file can hold (hint: use `kind: Lab`)",
            "3:7: error: name: `My_Lab` is not a valid lab name (hint: use at most 20 lowercase letters, digits and '-', starting and ending with a letter or digit)",
        ],
    ),
    (
        "kubernetes-on-netns.yaml",
        &["5:12: error: kubernetes.enabled: netns labs never install Kubernetes (hint: remove it (or set it to false), or use `provider.type: vagrant` or `ssh` for a kubeadm cluster)"],
    ),
    (
        "isolated-not-libvirt.yaml",
        &["7:13: error: provider.isolated: isolated networks exist only for vagrant labs with `vagrantProvider: libvirt` (hint: remove it, or set `provider.type: vagrant` and `vagrantProvider: libvirt`)"],
    ),
    (
        "libvirt-driver.yaml",
        &["7:18: error: provider.libvirtDriver: `tcg` is not one of: kvm, qemu"],
    ),
    (
        "kubernetes-version.yaml",
        &[
            r#"5:12: error: kubernetes.version: `v1.37.2` is not a Kubernetes minor version of the form 1.N (hint: write the minor version only, quoted, e.g. "1.37")"#,
        ],
    ),
    (
        "many-problems.yaml",
        &[
            "4:7: error: name: `Flannel-Lab` is not a valid lab name (hint: use at most 20 lowercase letters, digits and '-', starting and ending with a letter or digit)",
            "7:16: error: network.underlayMTU: 1000 is too small: VXLAN takes 50 bytes and pods need at least 1280 (hint: use 1330 or more (1500 on most networks))",
            "8:15: error: network.podNetwork: 192.168.0.0/16 overlaps the underlay 192.168.56.0/24 (hint: the underlay, pod network and service network must not share addresses)",
            "9:18: error: network.backend.vni: VNI 0 is outside 1..16777215 (VXLAN IDs have 24 bits) (hint: flannel uses 1)",
            r#"11:12: error: kubernetes.version: `1.37.0` is not a Kubernetes minor version of the form 1.N (hint: write the minor version only, quoted, e.g. "1.37")"#,
            "13:3: error: nodes: no node has role control-plane (hint: mark exactly one node with `role: control-plane`)",
            "14:9: error: nodes[0].ip: 192.168.56.1 is reserved: the underlay's .1 is the host's side of the lab network (hint: use a free address from 192.168.56.2 to 192.168.56.254)",
            "17:11: error: nodes[2].name: `worker1` is already the name of nodes[1] (hint: give every node its own name)",
            "18:9: error: nodes[2].ip: 192.168.56.11 is already the address of nodes[1] (hint: give every node its own address)",
            "20:10: error: verify.image: empty (hint: name the image that verify runs, e.g. busybox:1.28)",
        ],
    ),
    (
        "missing-required.yaml",
        &[
            "1:1: error: apiVersion: missing (hint: start the file with `apiVersion: labctl/v1alpha1`)",
            "1:1: error: kind: missing (hint: add `kind: Lab`)",
            "1:1: error: name: missing: every lab needs a name (hint: add `name: ...`, a lowercase DNS label of at most 20 characters)",
            "1:1: error: nodes: the lab has no nodes (hint: add a `nodes:` list with one `role: control-plane` node and any number of workers)",
        ],
    ),
    (
        "network-forms.yaml",
        &[
            "5:13: error: network.underlay: `192.168.56.1/24` has host bits set (hint: write the network address: 192.168.56.0/24)",
            "6:15: error: network.podNetwork: `10.244.0.0` is an address, not a network (hint: add the prefix length, e.g. 10.244.0.0/24)",
            "7:19: error: network.serviceNetwork: `fd00::/108` is an IPv6 network; labctl supports IPv4 only (hint: use an IPv4 network, e.g. 10.96.0.0/12)",
        ],
    ),
    (
        "network-garbage.yaml",
        &[
            "5:13: error: network.underlay: `the lab network` is not an IPv4 network in CIDR form (hint: write it like 192.168.56.0/24)",
            "6:19: error: network.serviceNetwork: 10.96.0.0/29 is too small: it must hold the API service IP (+1) and the DNS service IP (+10) (hint: use a /28 or larger, e.g. 10.96.0.0/12)",
            "7:14: error: network.dnsDomain: `Cluster_Local` is not a DNS domain (hint: use lowercase labels separated by dots, e.g. cluster.local)",
        ],
    ),
    (
        "networks.yaml",
        &[
            "6:15: error: network.podNetwork: 10.244.0.0/16 overlaps the underlay 10.244.3.0/24 (hint: the underlay, pod network and service network must not share addresses)",
            "7:19: error: network.serviceNetwork: 10.0.0.0/8 overlaps the underlay 10.244.3.0/24 (hint: the underlay, pod network and service network must not share addresses)",
            "7:19: error: network.serviceNetwork: 10.0.0.0/8 overlaps the pod network 10.244.0.0/16 (hint: the underlay, pod network and service network must not share addresses)",
        ],
    ),
    (
        "no-control-plane.yaml",
        &[
            "5:3: error: nodes: no node has role control-plane (hint: mark exactly one node with `role: control-plane`)",
        ],
    ),
    (
        "no-nodes.yaml",
        &[
            "4:8: error: nodes: the lab has no nodes (hint: add a `nodes:` list with one `role: control-plane` node and any number of workers)",
        ],
    ),
    (
        "node-ips.yaml",
        &[
            "11:9: error: nodes[1].ip: 192.168.56.10 is already the address of nodes[0] (hint: give every node its own address)",
            "13:9: error: nodes[2].ip: 192.168.57.10 is outside the underlay 192.168.56.0/24 (hint: use a free address from 192.168.56.2 to 192.168.56.254)",
            "15:9: error: nodes[3].ip: 192.168.56.0 is the underlay's network address (hint: use a free address from 192.168.56.2 to 192.168.56.254)",
            "17:9: error: nodes[4].ip: 192.168.56.255 is the underlay's broadcast address (hint: use a free address from 192.168.56.2 to 192.168.56.254)",
            "19:9: error: nodes[5].ip: 192.168.56.1 is reserved: the underlay's .1 is the host's side of the lab network (hint: use a free address from 192.168.56.2 to 192.168.56.254)",
            "21:9: error: nodes[6].ip: `192.168.56.300` is not an IPv4 address (hint: write it like 192.168.56.10)",
        ],
    ),
    (
        "node-names.yaml",
        &[
            "7:11: error: nodes[1].name: `Worker1` is not a valid node name (hint: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)",
            "8:11: error: nodes[2].name: `worker-` is not a valid node name (hint: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)",
            "9:11: error: nodes[3].name: `master` is already the name of nodes[0] (hint: give every node its own name)",
            "10:5: error: nodes[4].name: missing: every node needs a name (hint: add `name: ...`, e.g. worker1)",
            "11:11: error: nodes[5].name: `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa` is not a valid node name (hint: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)",
        ],
    ),
    (
        "ssh-missing.yaml",
        &[
            "9:5: error: nodes[0].ssh: missing: the ssh provider needs an ssh block for every node (hint: add `ssh: {host: ..., user: ..., key: ...}`)",
            "12:10: error: nodes[1].ssh.user: missing: the ssh provider needs the user to log in as (hint: add `user: ...` to this node's ssh block)",
            "12:10: error: nodes[1].ssh.key: missing: the ssh provider needs the path of the private key to log in with (hint: add `key: ...` to this node's ssh block)",
            "16:13: error: nodes[2].ssh.port: port 0 is outside 1..65535 (hint: SSH listens on 22 unless configured otherwise)",
            "18:12: error: nodes[2].ssh.key: missing: the ssh provider needs the path of the private key to log in with (hint: add `key: ...` to this node's ssh block)",
        ],
    ),
    (
        "ssh-on-netns.yaml",
        &[
            "7:10: error: nodes[0].ssh: ssh is only for provider type ssh (hint: remove it, or set `provider.type: ssh`)",
        ],
    ),
    (
        "subnet-len-long.yaml",
        &[
            "5:14: error: network.subnetLen: /31 is too long: a node subnet must hold the bridge gateway and pods (hint: use at most 30 (24 is usual))",
        ],
    ),
    (
        "subnet-len-short.yaml",
        &[
            "6:14: error: network.subnetLen: /16 is not longer than the pod network's /16: every node needs its own part of 10.244.0.0/16 (hint: use a value from 17 to 30)",
        ],
    ),
    (
        "syntax.yaml",
        &[
            "4:6: error: invalid YAML: illegal placement of ':' indicator (hint: check quoting, brackets and indentation here and on the lines above)",
        ],
    ),
    (
        "too-few-subnets.yaml",
        &[
            "6:14: error: network.subnetLen: 10.244.0.0/23 has only 2 subnets of /24, but the lab has 3 nodes (hint: use a larger podNetwork or a longer subnetLen)",
        ],
    ),
    (
        "two-control-planes.yaml",
        &[
            "8:11: error: nodes[1].role: a second control-plane (nodes[0] is one already) (hint: a lab has exactly one control-plane; make the others workers)",
            "10:11: error: nodes[2].role: a second control-plane (nodes[0] is one already) (hint: a lab has exactly one control-plane; make the others workers)",
        ],
    ),
    (
        "unknown-key-no-suggestion.yaml",
        &[
            "4:1: error: colour: unknown key `colour` (hint: known keys here: apiVersion, kind, name, provider, network, kubernetes, nodes, verify)",
        ],
    ),
    (
        "unknown-key.yaml",
        &[
            "6:3: error: network.underlayMtu: unknown key `underlayMtu` (hint: did you mean `underlayMTU`?)",
        ],
    ),
    (
        "unknown-node-key.yaml",
        &[
            "7:5: error: nodes[0].cpu: unknown key `cpu` (hint: did you mean `cpus`?)",
        ],
    ),
    (
        "wrong-type-bool.yaml",
        &[
            "5:11: error: network.ipMasq: `sometimes` is not a boolean (true or false)",
        ],
    ),
    (
        "wrong-type-mapping.yaml",
        &[
            "4:10: error: network: expected a mapping (`key: value` lines or `{...}`), found `10.244.0.0/16`",
        ],
    ),
    (
        "wrong-type.yaml",
        &[
            "7:13: error: nodes[0].memory: `lots` is not a whole number (0 or more)",
        ],
    ),
];

#[test]
fn every_invalid_fixture_reports_exactly_the_expected_diagnostics() {
    let mut failures = Vec::new();
    for (file, expected) in INVALID {
        let (name, result) = parse_fixture("invalid", file);
        let expected: Vec<String> = expected.iter().map(|l| format!("{name}:{l}")).collect();
        match result {
            Ok(_) => failures.push(format!(
                "{name}: parsed, expected errors:\n{}",
                expected.join("\n")
            )),
            Err(err) => {
                let got: Vec<String> = err.diagnostics.iter().map(Diagnostic::to_string).collect();
                if got != expected {
                    failures.push(format!(
                        "{name}:\n  expected:\n    {}\n  got:\n    {}",
                        expected.join("\n    "),
                        got.join("\n    ")
                    ));
                }
                // The error's Display is the same, one diagnostic per line.
                assert_eq!(err.to_string(), got.join("\n"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_fixture_table_covers_every_invalid_file() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = INVALID.iter().map(|(f, _)| f.to_string()).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
}

/// Valid files and their exact warnings.
const VALID: &[(&str, &[&str])] = &[
    ("custom.yaml", &[]),
    ("full.yaml", &[]),
    (
        "libvirt-driver-ignored.yaml",
        &["7:18: warning: provider.libvirtDriver: only vagrant labs with `vagrantProvider: libvirt` use libvirtDriver; it is ignored here (hint: remove it, or set `provider.type: vagrant` and `vagrantProvider: libvirt`)"],
    ),
    ("minimal.yaml", &[]),
    (
        "netns-box.yaml",
        &["6:8: warning: provider.box: only the vagrant provider uses box; it is ignored here (hint: remove it, or set `provider.type: vagrant`)"],
    ),
    ("vagrant-libvirt-isolated.yaml", &[]),
    ("vagrant-libvirt.yaml", &[]),
    (
        "warnings.yaml",
        &[
            "12:5: warning: nodes[0].ip: 192.168.48.10 is outside 192.168.56.0/21, the only host-only range VirtualBox allows by default (hint: allow the range in /etc/vbox/networks.conf, or use an underlay inside 192.168.56.0/21)",
            "17:9: warning: nodes[2].ip: 192.168.50.10 is outside 192.168.56.0/21, the only host-only range VirtualBox allows by default (hint: allow the range in /etc/vbox/networks.conf, or use an underlay inside 192.168.56.0/21)",
        ],
    ),
];

#[test]
fn every_valid_fixture_parses_with_exactly_the_expected_warnings() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures().join("valid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let in_table: Vec<String> = VALID.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(on_disk, in_table, "every valid fixture is in the table");

    for (file, expected) in VALID {
        let (name, result) = parse_fixture("valid", file);
        let lab = result.unwrap_or_else(|e| panic!("{name} should be valid:\n{e}"));
        let got: Vec<String> = lab.warnings.iter().map(Diagnostic::to_string).collect();
        let expected: Vec<String> = expected.iter().map(|l| format!("{name}:{l}")).collect();
        assert_eq!(got, expected, "{name}");
        assert!(lab.warnings.iter().all(|w| w.severity == Severity::Warning));
    }
}

#[test]
fn defaults_fill_every_field() {
    let (_, result) = parse_fixture("valid", "minimal.yaml");
    let lab = result.unwrap();
    let json = serde_json::to_value(&lab).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "mini",
            "provider": {"type": "netns", "boxName": "bento/ubuntu-24.04", "vagrantProvider": "virtualbox", "libvirtDriver": "kvm", "isolated": false},
            "network": {
                "underlay": "192.168.56.0/24",
                "underlayMTU": 1500,
                "podNetwork": "10.244.0.0/16",
                "subnetLen": 24,
                "serviceNetwork": "10.96.0.0/12",
                "dnsDomain": "cluster.local",
                "backend": {"type": "vxlan", "vni": 1, "port": 8472},
                "ipMasq": true
            },
            "kubernetes": {"enabled": false, "version": "1.37"},
            "nodes": [{"name": "solo", "role": "control-plane", "ip": "192.168.56.10", "cpus": 2, "memory": 2048, "ssh": null}],
            "verify": {"image": "busybox:1.28"}
        })
    );
    assert_eq!(lab.dns_service_ip().to_string(), "10.96.0.10");
    assert_eq!(lab.api_service_ip().to_string(), "10.96.0.1");
    assert_eq!(lab.control_plane().name, "solo");
}

#[test]
fn spelled_out_defaults_equal_the_defaults() {
    let (_, full) = parse_fixture("valid", "full.yaml");
    let full = full.unwrap();
    let minimal = parse(
        "inline",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: flannel\nnodes:\n- {name: master, role: control-plane}\n- {name: worker1}\n",
    )
    .unwrap();
    assert_eq!(full, minimal);
}

#[test]
fn node_ips_default_by_position_and_custom_values_are_kept() {
    let (_, result) = parse_fixture("valid", "custom.yaml");
    let lab = result.unwrap();
    let ips: Vec<String> = lab.nodes.iter().map(|n| n.ip.to_string()).collect();
    assert_eq!(ips, ["172.30.0.10", "172.30.5.5", "172.30.0.12"]);
    assert_eq!(lab.control_plane().name, "cp");
    assert_eq!(
        lab.workers().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["w0", "w2"]
    );
    // An unquoted 1.30 stays "1.30" (not the float 1.3).
    assert_eq!(lab.kubernetes.version, "1.30");
    assert_eq!(lab.network.dns_domain, "lab.example");
    assert_eq!(
        lab.network.backend,
        labctl_lab::Backend::Vxlan {
            vni: 42,
            port: 4789
        }
    );
    assert!(!lab.network.ip_masq);
    assert_eq!(lab.dns_service_ip().to_string(), "10.9.0.10");
}

fn repo_lab(file: &str) -> labctl_lab::Lab {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../labs")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&format!("labs/{file}"), &text)
        .unwrap_or_else(|e| panic!("labs/{file} must be valid:\n{e}"))
}

#[test]
fn every_lab_in_the_repository_validates_without_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect();
    files.sort();
    for wanted in ["netns.yaml", "ssh.yaml", "vagrant.yaml"] {
        assert!(
            files.iter().any(|f| f == wanted),
            "labs/{wanted} is missing"
        );
    }
    for file in files {
        let lab = repo_lab(&file);
        assert!(lab.warnings.is_empty(), "labs/{file}: {:?}", lab.warnings);
    }
}

#[test]
fn repository_labs_mean_what_they_say() {
    let netns = repo_lab("netns.yaml");
    assert_eq!(netns.provider.kind, ProviderType::Netns);
    let summary: Vec<(String, Role, String)> = netns
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.role, n.ip.to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "master".to_string(),
                Role::ControlPlane,
                "192.168.56.10".to_string()
            ),
            (
                "worker1".to_string(),
                Role::Worker,
                "192.168.56.11".to_string()
            ),
            (
                "worker2".to_string(),
                Role::Worker,
                "192.168.56.12".to_string()
            ),
        ]
    );

    let vagrant = repo_lab("vagrant.yaml");
    assert_eq!(vagrant.provider.kind, ProviderType::Vagrant);
    assert_eq!(
        vagrant.provider.vagrant_provider,
        VagrantProvider::Virtualbox
    );
    assert_eq!(vagrant.provider.box_name, "bento/ubuntu-24.04");
    assert_eq!(vagrant.kubernetes.version, "1.37");
    assert!(
        vagrant.kubernetes.enabled,
        "vagrant labs run kubeadm by default"
    );
    assert!(!netns.kubernetes.enabled, "netns labs never run Kubernetes");
    assert_eq!(
        vagrant
            .nodes
            .iter()
            .map(|n| n.ip.to_string())
            .collect::<Vec<_>>(),
        ["192.168.56.10", "192.168.56.11", "192.168.56.12"]
    );

    let ssh = repo_lab("ssh.yaml");
    assert_eq!(ssh.provider.kind, ProviderType::Ssh);
    for node in &ssh.nodes {
        let target = node
            .ssh
            .as_ref()
            .expect("ssh provider nodes have ssh targets");
        assert_eq!((target.port, target.user.as_str()), (22, "ubuntu"));
        assert_eq!(target.host, node.ip.to_string());
    }
}

#[test]
fn more_than_one_document_is_refused() {
    let text = "apiVersion: labctl/v1alpha1\nkind: Lab\nname: a\nnodes: [{name: m, role: control-plane}]\n---\nname: b\n";
    let err = parse("two.yaml", text).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    let d = &err.diagnostics[0];
    assert!(d.message.contains("more than one YAML document"), "{d}");
}

#[test]
fn a_non_mapping_document_is_refused_with_its_position() {
    let err = parse("list.yaml", "- a\n- b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "list.yaml:1:1: error: expected a mapping (`key: value` lines or `{...}`), found a list"
    );
}

#[test]
fn diagnostic_display_omits_what_is_unknown() {
    let mut d = Diagnostic {
        severity: Severity::Error,
        file: "lab.yaml".into(),
        path: "nodes[2].ip".into(),
        line: Some(12),
        column: Some(9),
        message: "bad".into(),
        hint: Some("fix it".into()),
    };
    assert_eq!(
        d.to_string(),
        "lab.yaml:12:9: error: nodes[2].ip: bad (hint: fix it)"
    );
    d.column = None;
    assert_eq!(
        d.to_string(),
        "lab.yaml:12: error: nodes[2].ip: bad (hint: fix it)"
    );
    d.line = None;
    d.hint = None;
    d.path.clear();
    assert_eq!(d.to_string(), "lab.yaml: error: bad");
    d.severity = Severity::Warning;
    d.file.clear();
    assert_eq!(d.to_string(), "warning: bad");
}
