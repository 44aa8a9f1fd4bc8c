//! The plan: golden JSON for labs/netns.yaml (and a custom lab), the exact
//! flannel objects the reference describes, and plan_with_subnets.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test -p labctl-lab`;
//! without it a stale golden file fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use labctl_lab::{parse, plan, plan_with_subnets, vtep_mac, Lab};
use labctl_nodeplan::{NodePlan, PLAN_SCHEMA};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_from(path: &Path, name: &str) -> Lab {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn netns_lab() -> Lab {
    lab_from(
        &manifest_dir().join("../../labs/netns.yaml"),
        "labs/netns.yaml",
    )
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// Compares each node's plan JSON with `tests/golden/<set>/<node>.json`,
/// or rewrites them under UPDATE_GOLDEN=1 (refused under CI).
fn check_golden(set: &str, plans: &[NodePlan]) {
    let dir = manifest_dir().join("tests/golden").join(set);
    let update = labctl_testenv::update_golden();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for plan in plans {
        let path = dir.join(format!("{}.json", plan.node));
        let json = plan.to_json();
        if update {
            std::fs::write(&path, &json).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(golden) if golden == json => {}
            Ok(_) => stale.push(format!("{} differs from the plan", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
        // The golden file is also a plan the agent accepts.
        if let Ok(golden) = std::fs::read_to_string(&path) {
            if let Err(e) = NodePlan::from_json(&golden) {
                stale.push(format!("{}: {e}", path.display()));
            }
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    on_disk.sort();
    let mut expected: Vec<String> = plans.iter().map(|p| format!("{}.json", p.node)).collect();
    expected.sort();
    if !update && on_disk != expected {
        stale.push(format!(
            "{} holds {on_disk:?}, expected {expected:?}",
            dir.display()
        ));
    }
    assert!(
        stale.is_empty(),
        "golden plans are stale (rerun with UPDATE_GOLDEN=1 and review the diff):\n{}",
        stale.join("\n")
    );
}

#[test]
fn netns_lab_plans_match_the_golden_files() {
    check_golden("netns", &plan(&netns_lab()));
}

#[test]
fn custom_lab_plans_match_the_golden_files() {
    let lab = lab_from(
        &manifest_dir().join("tests/fixtures/valid/custom.yaml"),
        "custom.yaml",
    );
    let plans = plan(&lab);
    assert!(
        plans.iter().all(|p| p.iptables.nat.is_none()),
        "ipMasq false: no nat chain"
    );
    check_golden("custom", &plans);
}

#[test]
fn netns_lab_plan_is_the_reference_node() {
    let plans = plan(&netns_lab());
    assert_eq!(plans.len(), 3);
    let master = &plans[0];
    assert_eq!(master.schema, PLAN_SCHEMA);
    assert_eq!(
        (master.lab.as_str(), master.node.as_str()),
        ("flannel", "master")
    );
    assert_eq!(master.underlay_ip.to_string(), "192.168.56.10");
    assert_eq!(master.underlay_mtu, 1500);
    assert_eq!(master.network, net("10.244.0.0/16"));
    assert_eq!(master.subnet, net("10.244.0.0/24"));
    assert_eq!(master.backend, labctl_nodeplan::Backend::Vxlan);
    let vxlan = master.vxlan.as_ref().expect("a vxlan plan has the device");
    assert_eq!(vxlan.name, "flannel.1");
    assert_eq!((vxlan.vni, vxlan.port, vxlan.mtu), (1, 8472, 1450));
    assert_eq!(vxlan.mac.to_string(), "0e:fa:0a:f4:00:00");
    assert_eq!(vxlan.address, net("10.244.0.0/32"));
    assert_eq!(master.bridge.name, "cni0");
    assert_eq!(master.bridge.address.to_string(), "10.244.0.1/24");
    assert_eq!(master.bridge.mtu, 1450);
    assert!(master.ip_masq);
    assert_eq!(master.dns_service_ip.to_string(), "10.96.0.10");
    assert_eq!(master.api_service_ip.to_string(), "10.96.0.1");
    assert_eq!(master.dns_domain, "cluster.local");
    assert_eq!(master.state_dir, "/run/labctl-agent");

    let peers: Vec<(String, String, String, String)> = master
        .peers
        .iter()
        .map(|p| {
            (
                p.node.clone(),
                p.underlay_ip.to_string(),
                p.subnet.to_string(),
                p.vtep_mac.to_string(),
            )
        })
        .collect();
    assert_eq!(
        peers,
        [
            (
                "worker1".into(),
                "192.168.56.11".into(),
                "10.244.1.0/24".into(),
                "0e:fa:0a:f4:01:00".into()
            ),
            (
                "worker2".into(),
                "192.168.56.12".into(),
                "10.244.2.0/24".into(),
                "0e:fa:0a:f4:02:00".into()
            ),
        ]
    );
    let worker2_peers: Vec<&str> = plans[2].peers.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(worker2_peers, ["master", "worker1"]);

    let files: Vec<(&str, u32)> = master
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode))
        .collect();
    assert_eq!(
        files,
        [
            ("/run/flannel/subnet.env", 0o644),
            ("/etc/cni/net.d/10-flannel.conflist", 0o644)
        ]
    );
    assert_eq!(
        plans[1].files[0].contents,
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    );
}

/// The reference's text blocks (indented four spaces) under `# table nat` and
/// `# table filter`, as `iptables -S` lines.
fn reference_tables(markdown: &str) -> (Vec<String>, Vec<String>) {
    let mut nat = Vec::new();
    let mut filter = Vec::new();
    let mut current: Option<&mut Vec<String>> = None;
    for line in markdown.lines() {
        let Some(code) = line.strip_prefix("    ") else {
            if !line.trim().is_empty() {
                current = None;
            }
            continue;
        };
        match code.trim() {
            "# table nat" => current = Some(&mut nat),
            "# table filter" => current = Some(&mut filter),
            rule if rule.starts_with('-') => {
                if let Some(table) = current.as_deref_mut() {
                    table.push(rule.to_string());
                }
            }
            _ => {}
        }
    }
    (nat, filter)
}

fn as_iptables_s(chain: &labctl_nodeplan::ChainPlan) -> Vec<String> {
    let mut lines = vec![chain.jump.clone(), format!("-N {}", chain.chain)];
    lines.extend(chain.rules.iter().cloned());
    lines
}

/// shared/reference/flannel-node.md, beside the repository (as in CI).
#[test]
fn iptables_rules_equal_the_reference_document() {
    let reference = manifest_dir().join("../../../shared/reference/flannel-node.md");
    let Ok(markdown) = std::fs::read_to_string(&reference) else {
        labctl_testenv::skip(
            "iptables_rules_equal_the_reference_document",
            &format!(
                "{} is not there (the repository is not beside shared/); flannel.rs's unit test holds the same text",
                reference.display()
            ),
        );
        return;
    };
    let (nat, filter) = reference_tables(&markdown);
    assert_eq!(nat.len(), 8, "reference nat block: {nat:?}");
    assert_eq!(filter.len(), 4, "reference filter block: {filter:?}");
    let master = &plan(&netns_lab())[0];
    assert_eq!(as_iptables_s(master.iptables.nat.as_ref().unwrap()), nat);
    assert_eq!(as_iptables_s(&master.iptables.filter), filter);
}

#[test]
fn plan_with_subnets_uses_the_assigned_subnets() {
    let lab = netns_lab();
    // kubeadm hands podCIDRs out in the order it sees nodes.
    let subnets: BTreeMap<String, Ipv4Net> = [
        ("master", "10.244.2.0/24"),
        ("worker1", "10.244.0.0/24"),
        ("worker2", "10.244.1.0/24"),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), net(s)))
    .collect();
    let plans = plan_with_subnets(&lab, &subnets).unwrap();
    assert_eq!(plans[0].subnet, net("10.244.2.0/24"));
    assert_eq!(plans[0].bridge.address.to_string(), "10.244.2.1/24");
    assert_eq!(
        plans[0].vxlan.as_ref().map(|v| v.mac),
        Some(vtep_mac(net("10.244.2.0/24")))
    );
    assert_eq!(plans[1].peers[0].subnet, net("10.244.2.0/24"));
    assert_eq!(plans[1].peers[0].vtep_mac.to_string(), "0e:fa:0a:f4:02:00");
    // Same subnets as the default assignment give the default plan.
    let default: BTreeMap<String, Ipv4Net> =
        plan(&lab).into_iter().map(|p| (p.node, p.subnet)).collect();
    assert_eq!(plan_with_subnets(&lab, &default).unwrap(), plan(&lab));
}

#[test]
fn plan_with_subnets_names_the_node_it_cannot_place() {
    let lab = netns_lab();
    let mut subnets: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    subnets.insert("master".into(), net("10.244.0.0/24"));
    subnets.insert("worker1".into(), net("10.244.1.0/24"));
    assert_eq!(
        plan_with_subnets(&lab, &subnets).unwrap_err(),
        "node worker2 has no pod subnet assigned"
    );
    subnets.insert("worker2".into(), net("10.245.0.0/24"));
    assert_eq!(
        plan_with_subnets(&lab, &subnets).unwrap_err(),
        "node worker2's pod subnet 10.245.0.0/24 is outside the pod network 10.244.0.0/16"
    );
    subnets.insert("worker2".into(), net("10.244.1.0/25"));
    assert_eq!(
        plan_with_subnets(&lab, &subnets).unwrap_err(),
        "node worker2's pod subnet 10.244.1.0/25 overlaps node worker1's 10.244.1.0/24"
    );
}

#[test]
fn bridge_netfilter_is_wanted_on_machines_of_their_own_only() {
    let labs = manifest_dir().join("../../labs");
    for (file, wanted) in [
        ("netns.yaml", false),
        ("vagrant.yaml", true),
        ("ssh.yaml", true),
    ] {
        let plans = plan(&lab_from(&labs.join(file), file));
        assert!(!plans.is_empty(), "{file}");
        for p in &plans {
            assert_eq!(p.bridge_netfilter, wanted, "{file} node {}", p.node);
        }
    }
}

/// labs/netns-host-gw.yaml: labs/netns.yaml with flannel's host-gw backend.
fn host_gw_lab() -> Lab {
    lab_from(
        &manifest_dir().join("../../labs/netns-host-gw.yaml"),
        "labs/netns-host-gw.yaml",
    )
}

#[test]
fn host_gw_lab_plans_match_the_golden_files() {
    check_golden("netns-host-gw", &plan(&host_gw_lab()));
}

#[test]
fn host_gw_plans_have_no_vxlan_device_and_the_underlay_mtu() {
    let lab = host_gw_lab();
    let netns = netns_lab();
    assert_eq!(lab.nodes.len(), netns.nodes.len());
    for p in plan(&lab) {
        assert_eq!(p.backend, labctl_nodeplan::Backend::HostGw, "{}", p.node);
        assert!(p.vxlan.is_none(), "{}: {:?}", p.node, p.vxlan);
        // No VXLAN overhead: cni0, pods and subnet.env use the underlay MTU.
        assert_eq!((p.underlay_mtu, p.bridge.mtu), (1500, 1500), "{}", p.node);
        let env = &p.files[0];
        assert_eq!(env.path, "/run/flannel/subnet.env");
        assert!(
            env.contents.contains("\nFLANNEL_MTU=1500\n"),
            "{}",
            env.contents
        );
        let conflist = &p.files[1].contents;
        assert!(conflist.contains("\"mtu\": 1500"), "{conflist}");
        // FLANNEL-POSTRTG / FLANNEL-FWD do not depend on the backend.
        assert!(p.iptables.nat.is_some());
        assert_eq!(p.peers.len(), 2);
    }
    let master = &plan(&lab)[0];
    assert!(master.to_json().contains("\"backend\": \"host-gw\""));
    assert_eq!(master.files[0].contents,
        "FLANNEL_NETWORK=10.248.0.0/16\nFLANNEL_SUBNET=10.248.0.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n");
}
