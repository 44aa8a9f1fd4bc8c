//! What flannel itself would put on a node, spelled out exactly: the
//! iptables rules in `iptables -S` form, `/run/flannel/subnet.env`, and the
//! CNI conflist (bridge + host-local + portmap, the plugins that Kubernetes
//! packages install). See shared/reference/flannel-node.md.

use ipnet::Ipv4Net;
use labctl_nodeplan::{ChainPlan, FilePlan, IptablesPlan};
use serde::Serialize;

pub const SUBNET_ENV_PATH: &str = "/run/flannel/subnet.env";
pub const CNI_CONFLIST_PATH: &str = "/etc/cni/net.d/10-flannel.conflist";
pub const BRIDGE_NAME: &str = "cni0";
const MASQ_COMMENT: &str = r#"-m comment --comment "flanneld masq""#;
const FORWARD_COMMENT: &str = r#"-m comment --comment "flanneld forward""#;

/// FLANNEL-POSTRTG (nat, only with ipMasq) and FLANNEL-FWD (filter).
pub fn iptables(network: Ipv4Net, subnet: Ipv4Net, ip_masq: bool) -> IptablesPlan {
    let nat = ip_masq.then(|| {
        let chain = "FLANNEL-POSTRTG";
        ChainPlan {
            chain: chain.to_string(),
            parent: "POSTROUTING".to_string(),
            jump: format!("-A POSTROUTING {MASQ_COMMENT} -j {chain}"),
            rules: vec![
                // Packets kube-proxy marked are masqueraded there already.
                format!("-A {chain} -m mark --mark 0x4000/0x4000 {MASQ_COMMENT} -j RETURN"),
                // Pod to pod stays un-NATed, both ways.
                format!("-A {chain} -s {subnet} -d {network} {MASQ_COMMENT} -j RETURN"),
                format!("-A {chain} -s {network} -d {subnet} {MASQ_COMMENT} -j RETURN"),
                // Outside into this node's pods keeps its source.
                format!("-A {chain} ! -s {network} -d {subnet} {MASQ_COMMENT} -j RETURN"),
                // Pods going out (not multicast) look like the node.
                format!("-A {chain} -s {network} ! -d 224.0.0.0/4 {MASQ_COMMENT} -j MASQUERADE --random-fully"),
                // Outside the cluster (the host, say) to remote pods.
                format!("-A {chain} ! -s {network} -d {network} {MASQ_COMMENT} -j MASQUERADE --random-fully"),
            ],
        }
    });
    let chain = "FLANNEL-FWD";
    let filter = ChainPlan {
        chain: chain.to_string(),
        parent: "FORWARD".to_string(),
        jump: format!("-A FORWARD {FORWARD_COMMENT} -j {chain}"),
        rules: vec![
            format!("-A {chain} -s {network} {FORWARD_COMMENT} -j ACCEPT"),
            format!("-A {chain} -d {network} {FORWARD_COMMENT} -j ACCEPT"),
        ],
    };
    IptablesPlan {
        nat,
        filter,
        services: None,
    }
}

/// The subnet's first host with the subnet's prefix: cni0's address and
/// FLANNEL_SUBNET (10.244.1.0/24 → 10.244.1.1/24).
pub fn gateway(subnet: Ipv4Net) -> Ipv4Net {
    let first = std::net::Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(1));
    Ipv4Net::new(first, subnet.prefix_len()).unwrap_or(subnet)
}

/// `/run/flannel/subnet.env`, keys in flannel's order.
pub fn subnet_env(network: Ipv4Net, subnet: Ipv4Net, mtu: u32, ip_masq: bool) -> FilePlan {
    FilePlan {
        path: SUBNET_ENV_PATH.to_string(),
        mode: 0o644,
        contents: format!(
            "FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ip_masq}\n",
            gateway(subnet)
        ),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Conflist {
    cni_version: &'static str,
    name: &'static str,
    plugins: (BridgePlugin, PortmapPlugin),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BridgePlugin {
    #[serde(rename = "type")]
    kind: &'static str,
    bridge: &'static str,
    is_gateway: bool,
    is_default_gateway: bool,
    hairpin_mode: bool,
    ip_masq: bool,
    mtu: u32,
    ipam: HostLocal,
}

#[derive(Serialize)]
struct HostLocal {
    #[serde(rename = "type")]
    kind: &'static str,
    ranges: [[Range; 1]; 1],
    routes: [Route; 1],
}

#[derive(Serialize)]
struct Range {
    subnet: String,
    gateway: String,
}

#[derive(Serialize)]
struct Route {
    dst: String,
}

#[derive(Serialize)]
struct PortmapPlugin {
    #[serde(rename = "type")]
    kind: &'static str,
    capabilities: PortmapCapabilities,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PortmapCapabilities {
    port_mappings: bool,
}

/// `/etc/cni/net.d/10-flannel.conflist`: pretty JSON, trailing newline.
/// ipMasq is false in the bridge plugin because FLANNEL-POSTRTG does it.
pub fn cni_conflist(network: Ipv4Net, subnet: Ipv4Net, mtu: u32) -> FilePlan {
    let conflist = Conflist {
        cni_version: "1.0.0",
        name: "cbr0",
        plugins: (
            BridgePlugin {
                kind: "bridge",
                bridge: BRIDGE_NAME,
                is_gateway: true,
                is_default_gateway: true,
                hairpin_mode: true,
                ip_masq: false,
                mtu,
                ipam: HostLocal {
                    kind: "host-local",
                    ranges: [[Range {
                        subnet: subnet.to_string(),
                        gateway: gateway(subnet).addr().to_string(),
                    }]],
                    routes: [Route {
                        dst: network.to_string(),
                    }],
                },
            },
            PortmapPlugin {
                kind: "portmap",
                capabilities: PortmapCapabilities {
                    port_mappings: true,
                },
            },
        ),
    };
    // Serializing plain structs of strings, bools and numbers cannot fail.
    let mut contents = serde_json::to_string_pretty(&conflist).unwrap_or_default();
    contents.push('\n');
    FilePlan {
        path: CNI_CONFLIST_PATH.to_string(),
        mode: 0o644,
        contents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    /// The exact text of shared/reference/flannel-node.md for the example
    /// node 10.244.0.0/24 in 10.244.0.0/16.
    const REFERENCE_NAT: &str = r#"-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully"#;

    const REFERENCE_FILTER: &str = r#"-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT"#;

    fn lines(chain: &ChainPlan) -> String {
        std::iter::once(chain.jump.clone())
            .chain(chain.rules.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn iptables_match_the_reference_exactly() {
        let plan = iptables(net("10.244.0.0/16"), net("10.244.0.0/24"), true);
        let nat = plan.nat.unwrap();
        assert_eq!(
            (nat.chain.as_str(), nat.parent.as_str()),
            ("FLANNEL-POSTRTG", "POSTROUTING")
        );
        assert_eq!(lines(&nat), REFERENCE_NAT);
        assert_eq!(
            (plan.filter.chain.as_str(), plan.filter.parent.as_str()),
            ("FLANNEL-FWD", "FORWARD")
        );
        assert_eq!(lines(&plan.filter), REFERENCE_FILTER);
    }

    #[test]
    fn no_nat_chain_without_ip_masq() {
        let plan = iptables(net("10.244.0.0/16"), net("10.244.0.0/24"), false);
        assert_eq!(plan.nat, None);
        assert_eq!(lines(&plan.filter), REFERENCE_FILTER);
    }

    #[test]
    fn subnet_env_matches_the_reference_exactly() {
        let file = subnet_env(net("10.244.0.0/16"), net("10.244.0.0/24"), 1450, true);
        assert_eq!(file.path, "/run/flannel/subnet.env");
        assert_eq!(file.mode, 0o644);
        assert_eq!(
            file.contents,
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        );
    }

    #[test]
    fn conflist_uses_standard_plugins_over_the_node_subnet() {
        let file = cni_conflist(net("10.244.0.0/16"), net("10.244.1.0/24"), 1450);
        assert_eq!(file.path, "/etc/cni/net.d/10-flannel.conflist");
        assert!(file.contents.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&file.contents).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "cbr0");
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "cni0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["isDefaultGateway"], true);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["mtu"], 1450);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.244.1.1");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "10.244.0.0/16");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        assert_eq!(v["plugins"].as_array().unwrap().len(), 2);
    }
}
