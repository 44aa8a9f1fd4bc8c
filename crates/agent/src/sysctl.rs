//! The two kernel switches a flannel node needs: IPv4 forwarding, and
//! iptables for bridged traffic, wherever the plan asks for bridge
//! netfilter or its module is loaded anyway. Both live under
//! /proc/sys/net, which belongs to the network namespace of the process
//! reading it (the bridge one per namespace since Linux 5.3).

use labctl_nodeplan::NodePlan;

use crate::links::Mode;
use crate::report::{Action, Collector, Difference, ObjectKind};

const FORWARD: &str = "net.ipv4.ip_forward";
const BRIDGE_NF: &str = "net.bridge.bridge-nf-call-iptables";

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// The sysctls this node needs. The bridge one only where it exists or
/// the plan wants the module that makes it (then its absence is a
/// difference `check` reports).
pub fn wanted(plan: &NodePlan) -> Vec<&'static str> {
    // The stat of /proc only when the plan does not decide it already.
    wanted_given(
        plan.bridge_netfilter,
        plan.bridge_netfilter || crate::bridge_nf::present(),
    )
}

fn wanted_given(bridge_netfilter: bool, module_present: bool) -> Vec<&'static str> {
    let mut keys = vec![FORWARD];
    if bridge_netfilter || module_present {
        keys.push(BRIDGE_NF);
    }
    keys
}

/// Reads a sysctl (None when it does not exist).
pub fn read(key: &str) -> Option<String> {
    std::fs::read_to_string(path(key))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sets each wanted sysctl to 1.
pub fn converge(plan: &NodePlan, mode: Mode, out: &mut Collector) {
    for key in wanted(plan) {
        let obj = format!("sysctl {key}");
        let have = read(key);
        if have.as_deref() == Some("1") {
            out.unchanged(ObjectKind::Sysctl, obj);
            continue;
        }
        let d = Difference::new(ObjectKind::Sysctl, &obj, key)
            .expected(Some("1".into()))
            .actual(have);
        out.object(ObjectKind::Sysctl, &obj, Action::Updated, vec![d]);
        if mode == Mode::Apply {
            if let Err(e) = std::fs::write(path(key), "1\n") {
                out.fail(
                    &obj,
                    format!("cannot set {key}=1: {}", crate::error::describe_io(&e)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_sysctl_is_wanted_when_asked_for_or_present() {
        assert_eq!(wanted_given(false, false), vec![FORWARD]);
        assert_eq!(wanted_given(false, true), vec![FORWARD, BRIDGE_NF]);
        assert_eq!(wanted_given(true, false), vec![FORWARD, BRIDGE_NF]);
        assert_eq!(wanted_given(true, true), vec![FORWARD, BRIDGE_NF]);
    }
}
