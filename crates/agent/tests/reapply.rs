//! What makes a no-op re-apply cheap, checked for correctness: the compact
//! apply report (unchanged objects counted per kind, listed only with
//! `--verbose`) and the iptables ruleset stamp, which must never hide a
//! change (made with iptables, with nft, or by a new plan), and the plan's
//! service chains converged, checked and removed with flannel's. Needs root
//! (network namespaces, iptables).

mod common;

use common::*;
use labctl_nodeplan::report::{Action, ObjectKind};

fn lab(test: &str) -> (Netns, TempDir, labctl_nodeplan::NodePlan) {
    let p = prefix(test);
    let ns = node_ns(&p, "192.168.56.10".parse().unwrap());
    let dir = TempDir::new(&p);
    let nodes = nodes_up_to(2);
    let plan = plan(&p, &nodes[0], &nodes, &dir.path());
    (ns, dir, plan)
}

#[test]
fn reapply_counts_unchanged_objects_and_verbose_lists_them() {
    if !root_or_skip("reapply_counts_unchanged_objects") {
        return;
    }
    let (ns, _dir, plan) = lab("rep");
    let n = &ns.name;
    let first = agent_netns(n, &plan, &["apply"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.apply();
    let listed = &first.objects;
    assert_eq!(first.created, 15, "{first:#?}");
    assert_eq!(listed.len(), first.changes(), "only changes are listed");
    assert!(listed.iter().all(|o| o.action != Action::Unchanged));

    let again = agent_netns(n, &plan, &["apply"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let again = again.apply();
    assert_eq!(
        (again.created, again.updated, again.removed, again.failed),
        (0, 0, 0, 0),
        "{again:#?}"
    );
    let kinds = &again.unchanged_by_kind;
    let total: usize = kinds.values().sum();
    assert_eq!(again.unchanged, total, "{again:#?}");
    for (kind, count) in [
        (ObjectKind::Neighbour, 2),
        (ObjectKind::Fdb, 2),
        (ObjectKind::Route, 2),
        // flannel.1 and cni0
        (ObjectKind::Link, 2),
        (ObjectKind::Address, 2),
        // FLANNEL-POSTRTG, FLANNEL-FWD and the jump to each
        (ObjectKind::Chain, 2),
        (ObjectKind::Rule, 2),
        (ObjectKind::File, 1),
    ] {
        assert_eq!(kinds.get(&kind), Some(&count), "{kind}: {again:#?}");
    }
    // ip_forward, plus bridge-nf-call-iptables where the module is loaded.
    assert!(kinds[&ObjectKind::Sysctl] >= 1);
    assert!(again.objects.is_empty());

    let verbose = agent_netns(n, &plan, &["--verbose", "apply"]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    let verbose = verbose.apply();
    assert_eq!(verbose.objects.len(), verbose.unchanged);
    assert_eq!(
        action(&verbose, "route 10.244.2.0/24"),
        (ObjectKind::Route, Action::Unchanged)
    );
    assert_eq!(
        action(
            &verbose,
            "iptables -t nat POSTROUTING jump to FLANNEL-POSTRTG"
        ),
        (ObjectKind::Rule, Action::Unchanged)
    );
}

/// Damages the rules with `damage`, expects `check` to report `object`
/// and `apply` to repair it.
fn caught(ns: &str, plan: &labctl_nodeplan::NodePlan, damage: &str, object: &str) {
    if !damage.is_empty() {
        nsh(ns, damage);
    }
    let check = agent_netns(ns, plan, &["check"]);
    assert_eq!(check.code, 1, "`{damage}` not seen: {:#}", check.json);
    assert!(
        diff_objects(&check.check()).iter().any(|o| o == object),
        "`{damage}` should show as {object}: {:#}",
        check.json
    );
    let apply = agent_netns(ns, plan, &["apply"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(agent_netns(ns, plan, &["check"]).code, 0);
}

#[test]
fn ruleset_stamp_never_hides_a_change() {
    if !root_or_skip("ruleset_stamp_never_hides_a_change") {
        return;
    }
    let (ns, _dir, plan) = lab("stamp");
    let n = &ns.name;
    assert_eq!(agent_netns(n, &plan, &["apply"]).code, 0);
    assert_eq!(agent_netns(n, &plan, &["apply"]).code, 0);
    let stamp = std::path::Path::new(&plan.state_dir).join("iptables-verified");
    let nft_backend =
        sh("readlink -f \"$(command -v iptables-save)\"").contains("xtables-nft-multi");
    if nft_backend {
        assert!(stamp.exists(), "an nf_tables node keeps a ruleset stamp");
    } else {
        eprintln!("note: iptables uses the legacy backend here: no stamp, every run lists");
    }

    caught(
        n,
        &plan,
        "iptables -F FLANNEL-FWD",
        "iptables -t filter FLANNEL-FWD",
    );
    if nft_backend && std::process::Command::new("nft").arg("-v").output().is_ok() {
        caught(
            n,
            &plan,
            "nft flush chain ip nat FLANNEL-POSTRTG",
            "iptables -t nat FLANNEL-POSTRTG",
        );
    }
    // A new plan with the rules unchanged on the node: the stamp was made
    // for the old plan and must not vouch for the new one.
    let mut changed = plan.clone();
    changed.iptables.filter.rules[1] = changed.iptables.filter.rules[1].replace("-d ", "-s ");
    caught(n, &changed, "", "iptables -t filter FLANNEL-FWD");
}

#[test]
fn stamp_of_a_rebuilt_namespace_is_ignored() {
    if !root_or_skip("stamp_of_a_rebuilt_namespace_is_ignored") {
        return;
    }
    let nft_backend =
        sh("readlink -f \"$(command -v iptables-save)\"").contains("xtables-nft-multi");
    if !nft_backend
        || std::process::Command::new("nft")
            .arg("-v")
            .output()
            .is_err()
    {
        common::skip(
            "stamp_of_a_rebuilt_namespace_is_ignored",
            "needs iptables-nft and the nft tool",
        );
        return;
    }
    let (ns, _dir, plan) = lab("rebuilt");
    let name = ns.name.clone();
    assert_eq!(agent_netns(&name, &plan, &["apply"]).code, 0);
    assert_eq!(agent_netns(&name, &plan, &["apply"]).code, 0);
    let stamp = std::path::Path::new(&plan.state_dir).join("iptables-verified");
    let text = std::fs::read_to_string(&stamp).expect("stamp written");
    let generation: u32 = text.trim().rsplit(' ').next().unwrap().parse().unwrap();
    // The node is rebuilt without a teardown: same name, same state
    // directory, a new namespace whose ruleset generation is brought to
    // the stamp's number, so only the namespace tells them apart.
    drop(ns);
    let ns = node_ns(&name, "192.168.56.10".parse().unwrap());
    let mut i = 0;
    while nft_generation(&ns.name) < generation {
        nsh(&ns.name, &format!("nft add table ip labctl_bump{i}"));
        i += 1;
    }
    assert_eq!(nft_generation(&ns.name), generation);
    let check = agent_netns(&ns.name, &plan, &["check"]);
    assert_eq!(check.code, 1, "{:#}", check.json);
    let found = diff_objects(&check.check());
    for o in [
        "iptables -t nat FLANNEL-POSTRTG",
        "iptables -t filter FLANNEL-FWD",
    ] {
        assert!(
            found.iter().any(|f| f == o),
            "{o} not reported: {:#}",
            check.json
        );
    }
}

/// The nf_tables ruleset generation of namespace `ns` (NFT_MSG_GETGEN).
fn nft_generation(ns: &str) -> u32 {
    use nix::sys::socket::*;
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .unwrap();
        let mut req = Vec::new();
        req.extend_from_slice(&20u32.to_ne_bytes());
        req.extend_from_slice(&((10u16 << 8) | 16).to_ne_bytes());
        req.extend_from_slice(&1u16.to_ne_bytes());
        req.extend_from_slice(&[0; 12]);
        send(fd.as_raw_fd(), &req, MsgFlags::empty()).unwrap();
        let mut buf = [0u8; 512];
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        // nlmsghdr (16) + nfgenmsg (4), then attributes: NFTA_GEN_ID (1).
        let mut off = 20;
        while off + 8 <= n {
            let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
            let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]);
            if kind == 1 {
                return u32::from_be_bytes(buf[off + 4..off + 8].try_into().unwrap());
            }
            off += (len + 3) & !3;
        }
        panic!("no generation in the reply");
    })
    .join()
    .unwrap()
}

/// The DNS service's chains as labctl's plan spells them (see
/// `labctl_lab::services`), DNATing to `pod`.
fn services(pod: &str) -> labctl_nodeplan::ServicesPlan {
    let comment = "-m comment --comment \"kube-system/kube-dns:dns cluster IP\"";
    let mut rules = Vec::new();
    for proto in ["udp", "tcp"] {
        let service = format!("-d 10.96.0.10/32 -p {proto} {comment} -m {proto} --dport 53");
        rules.push(format!(
            "-A LABCTL-SERVICES -s {pod}/32 {service} -j MARK --set-xmark 0x4000/0x4000"
        ));
        rules.push(format!(
            "-A LABCTL-SERVICES {service} -j DNAT --to-destination {pod}:53"
        ));
    }
    labctl_nodeplan::ServicesPlan {
        chains: vec![
            labctl_nodeplan::OwnedChain {
                chain: "LABCTL-SERVICES".into(),
                rules,
            },
            labctl_nodeplan::OwnedChain {
                chain: "LABCTL-POSTROUTING".into(),
                rules: vec![
                    "-A LABCTL-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE".into(),
                ],
            },
        ],
        jumps: vec![
            "-A PREROUTING -j LABCTL-SERVICES".into(),
            "-A OUTPUT -j LABCTL-SERVICES".into(),
            "-A POSTROUTING -j LABCTL-POSTROUTING".into(),
        ],
    }
}

/// The plan's service chains are made with flannel's, then left alone,
/// seen and repaired when damaged (through the ruleset stamp), follow a
/// new DNS pod address, and go with teardown.
#[test]
fn service_chains_converge_with_the_plan() {
    if !root_or_skip("service_chains_converge_with_the_plan") {
        return;
    }
    let (ns, _dir, mut plan) = lab("svc");
    let n = &ns.name;
    plan.iptables.services = Some(services("10.244.1.3"));
    let first = agent_netns(n, &plan, &["apply"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let nat = nsh(n, "iptables -w -t nat -S");
    for line in [
        "-A PREROUTING -j LABCTL-SERVICES",
        "-A OUTPUT -j LABCTL-SERVICES",
        "-A POSTROUTING -j LABCTL-POSTROUTING",
        "-j DNAT --to-destination 10.244.1.3:53",
    ] {
        assert!(nat.contains(line), "{line} missing: {nat}");
    }
    let again = agent_netns(n, &plan, &["apply"]).apply();
    assert_eq!(again.changes(), 0, "{again:#?}");
    // FLANNEL-POSTRTG, FLANNEL-FWD, LABCTL-SERVICES, LABCTL-POSTROUTING.
    assert_eq!(again.unchanged_by_kind.get(&ObjectKind::Chain), Some(&4));
    assert_eq!(agent_netns(n, &plan, &["check"]).code, 0);

    caught(
        n,
        &plan,
        "iptables -w -t nat -D OUTPUT -j LABCTL-SERVICES",
        "iptables -t nat OUTPUT jump to LABCTL-SERVICES",
    );
    caught(
        n,
        &plan,
        "iptables -w -t nat -F LABCTL-POSTROUTING",
        "iptables -t nat LABCTL-POSTROUTING",
    );
    plan.iptables.services = Some(services("10.244.1.4"));
    caught(n, &plan, "", "iptables -t nat LABCTL-SERVICES");
    assert!(nsh(n, "iptables -w -t nat -S LABCTL-SERVICES").contains("10.244.1.4:53"));

    let down = agent_netns(n, &plan, &["teardown"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let nat = nsh(n, "iptables -w -t nat -S");
    assert!(!nat.contains("LABCTL"), "{nat}");
}
