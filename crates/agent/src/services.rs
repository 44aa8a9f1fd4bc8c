//! The plan's service chains in the nat table (`LABCTL-SERVICES` and
//! `LABCTL-POSTROUTING` on labs where labctl runs the pods): converged,
//! checked and removed with flannel's chains, in the same listing and the
//! same `iptables-restore` payload. A chain's jumps may come from several
//! built-in chains (PREROUTING and OUTPUT); each planned jump is kept once
//! and any other jump from that parent to that chain is deleted.

use labctl_nodeplan::ServicesPlan;

use crate::iptables::{converge_jump, converge_rules, jumps_to, owned_chain, spec};
use crate::report::{Collector, ObjectKind};

/// The parent chain of a jump line (`-A PARENT ... -j CHAIN`) and the
/// chain it jumps to.
fn jump_ends(jump: &str) -> Option<(&str, &str)> {
    let parent = jump.strip_prefix("-A ")?.split(' ').next()?;
    let target = jump.rsplit_once(" -j ")?.1.split(' ').next()?;
    Some((parent, target))
}

/// Compares the planned chains and jumps with the nat table's lines and
/// appends the fixes to `payload` (the nat section's body): chains first,
/// so the jumps find them.
pub fn converge(plan: &ServicesPlan, nat: &[String], payload: &mut String, out: &mut Collector) {
    for c in &plan.chains {
        let live = owned_chain(nat, &c.chain);
        converge_rules("nat", &c.chain, &c.rules, &live, payload, out);
    }
    for jump in &plan.jumps {
        let Some((parent, chain)) = jump_ends(jump) else {
            out.errors.push(format!(
                "the plan's service jump {jump:?} is not `-A PARENT ... -j CHAIN`"
            ));
            continue;
        };
        let live = jumps_to(nat, chain, parent);
        converge_jump("nat", parent, chain, jump, &live, payload, out);
    }
}

/// Reports every planned chain and jump unchanged (the ruleset stamp
/// proved nothing touched them).
pub fn report_verified(plan: &ServicesPlan, out: &mut Collector) {
    for c in &plan.chains {
        out.unchanged(ObjectKind::Chain, format!("iptables -t nat {}", c.chain));
    }
    for jump in &plan.jumps {
        if let Some((parent, chain)) = jump_ends(jump) {
            out.unchanged(
                ObjectKind::Rule,
                format!("iptables -t nat {parent} jump to {chain}"),
            );
        }
    }
}

/// Appends the removal of every planned jump (and any other jump from its
/// parent to its chain), then of the chains, to `payload`; returns the
/// chains that were there.
pub fn teardown(plan: &ServicesPlan, nat: &[String], payload: &mut String) -> Vec<String> {
    for jump in &plan.jumps {
        if let Some((parent, chain)) = jump_ends(jump) {
            for j in jumps_to(nat, chain, parent) {
                payload.push_str(&format!("-D {parent} {}\n", spec(&j, parent)));
            }
        }
    }
    let mut removed = Vec::new();
    for c in &plan.chains {
        if owned_chain(nat, &c.chain).exists {
            payload.push_str(&format!(":{0} - [0:0]\n-X {0}\n", c.chain));
            removed.push(format!("iptables -t nat {}", c.chain));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ServicesPlan {
        labctl_nodeplan::ServicesPlan {
            chains: vec![labctl_nodeplan::OwnedChain {
                chain: "LABCTL-SERVICES".into(),
                rules: vec![
                    "-A LABCTL-SERVICES -d 10.96.0.10/32 -j DNAT --to-destination 10.244.0.3:53"
                        .into(),
                ],
            }],
            jumps: vec![
                "-A PREROUTING -j LABCTL-SERVICES".into(),
                "-A OUTPUT -j LABCTL-SERVICES".into(),
            ],
        }
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn missing_chains_come_before_their_jumps() {
        let mut payload = String::new();
        let mut out = Collector::default();
        converge(
            &plan(),
            &lines("-P PREROUTING ACCEPT"),
            &mut payload,
            &mut out,
        );
        assert_eq!(
            payload,
            ":LABCTL-SERVICES - [0:0]\n\
             -A LABCTL-SERVICES -d 10.96.0.10/32 -j DNAT --to-destination 10.244.0.3:53\n\
             -A PREROUTING -j LABCTL-SERVICES\n\
             -A OUTPUT -j LABCTL-SERVICES\n"
        );
        assert_eq!(out.objects.len(), 3, "{:?}", out.objects);
    }

    #[test]
    fn a_matching_table_needs_nothing_and_extra_jumps_go() {
        let live = "-N LABCTL-SERVICES\n\
                    -A PREROUTING -j LABCTL-SERVICES\n\
                    -A OUTPUT -j LABCTL-SERVICES\n\
                    -A LABCTL-SERVICES -d 10.96.0.10/32 -j DNAT --to-destination 10.244.0.3:53";
        let mut payload = String::new();
        let mut out = Collector::default();
        converge(&plan(), &lines(live), &mut payload, &mut out);
        assert_eq!(payload, "");
        assert!(out.objects.is_empty(), "{:?}", out.objects);

        let doubled = format!("{live}\n-A OUTPUT -m comment --comment x -j LABCTL-SERVICES");
        converge(&plan(), &lines(&doubled), &mut payload, &mut out);
        assert_eq!(
            payload,
            "-D OUTPUT -m comment --comment x -j LABCTL-SERVICES\n"
        );
    }

    #[test]
    fn teardown_removes_jumps_then_chains() {
        let live = "-N LABCTL-SERVICES\n\
                    -A PREROUTING -j LABCTL-SERVICES\n\
                    -A LABCTL-SERVICES -j RETURN";
        let mut payload = String::new();
        let removed = teardown(&plan(), &lines(live), &mut payload);
        assert_eq!(removed, ["iptables -t nat LABCTL-SERVICES"]);
        assert_eq!(
            payload,
            "-D PREROUTING -j LABCTL-SERVICES\n:LABCTL-SERVICES - [0:0]\n-X LABCTL-SERVICES\n"
        );
    }
}
