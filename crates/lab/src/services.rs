//! The service chains labctl puts on every node of a lab where it runs the
//! pods itself (netns labs, and ssh and vagrant labs without Kubernetes):
//! the cluster DNS service IP DNATed to the DNS pod the way kube-proxy
//! programs a ClusterIP, in `iptables -S` form. The agent converges them
//! with the rest of the node's plan (kubeadm labs leave them to
//! kube-proxy).

use std::net::Ipv4Addr;

use labctl_nodeplan::{OwnedChain, ServicesPlan};

/// The nat chain that makes the DNS service IP work on a node.
pub const SERVICES_CHAIN: &str = "LABCTL-SERVICES";
/// The nat chain that masquerades what [`SERVICES_CHAIN`] marked, as
/// kube-proxy's KUBE-POSTROUTING does.
pub const HAIRPIN_CHAIN: &str = "LABCTL-POSTROUTING";
/// kube-proxy's masquerade mark: flannel's first FLANNEL-POSTRTG rule
/// returns on it, leaving such packets to kube-proxy's (here: our) rule.
const MASQ_MARK: &str = "0x4000/0x4000";

/// Both chains and their jumps: pods' traffic to the service (PREROUTING),
/// the node's own (OUTPUT), and the hairpin masquerade (POSTROUTING).
pub fn dns_service(dns_service: Ipv4Addr, dns_pod: Ipv4Addr) -> ServicesPlan {
    ServicesPlan {
        chains: vec![
            OwnedChain {
                chain: SERVICES_CHAIN.into(),
                rules: service_rules(dns_service, dns_pod),
            },
            OwnedChain {
                chain: HAIRPIN_CHAIN.into(),
                rules: vec![format!(
                    "-A {HAIRPIN_CHAIN} -m mark --mark {MASQ_MARK} -j MASQUERADE"
                )],
            },
        ],
        jumps: vec![
            format!("-A PREROUTING -j {SERVICES_CHAIN}"),
            format!("-A OUTPUT -j {SERVICES_CHAIN}"),
            format!("-A POSTROUTING -j {HAIRPIN_CHAIN}"),
        ],
    }
}

/// Per protocol: traffic from the DNS pod to its own service is marked for
/// masquerade (hairpin: without it the reply would come from the pod's own
/// address and be dropped), then everything to the service is DNATed.
pub fn service_rules(dns_service: Ipv4Addr, dns_pod: Ipv4Addr) -> Vec<String> {
    let comment = "-m comment --comment \"kube-system/kube-dns:dns cluster IP\"";
    ["udp", "tcp"]
        .iter()
        .flat_map(|proto| {
            let service = format!("-d {dns_service}/32 -p {proto} {comment} -m {proto} --dport 53");
            [
                format!(
                    "-A {SERVICES_CHAIN} -s {dns_pod}/32 {service} -j MARK --set-xmark {MASQ_MARK}"
                ),
                format!("-A {SERVICES_CHAIN} {service} -j DNAT --to-destination {dns_pod}:53"),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_service_is_dnated_to_the_pod_and_its_hairpin_masqueraded() {
        let p = dns_service("10.96.0.10".parse().unwrap(), "10.244.0.3".parse().unwrap());
        assert_eq!(p.chains[0].chain, "LABCTL-SERVICES");
        assert_eq!(
            p.chains[0].rules[1],
            "-A LABCTL-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j DNAT --to-destination 10.244.0.3:53"
        );
        assert_eq!(p.chains[0].rules.len(), 4, "udp and tcp, mark and DNAT");
        assert!(p.chains[0].rules[0].contains("-s 10.244.0.3/32"));
        assert!(p.chains[0].rules[2].contains("-p tcp"));
        assert_eq!(
            p.chains[1].rules,
            ["-A LABCTL-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE"]
        );
        assert_eq!(
            p.jumps,
            [
                "-A PREROUTING -j LABCTL-SERVICES",
                "-A OUTPUT -j LABCTL-SERVICES",
                "-A POSTROUTING -j LABCTL-POSTROUTING"
            ]
        );
    }
}
