//! flannel's host-gw backend routes each peer's pod subnet via the peer's
//! node IP, so every node must reach every other directly, on one L2
//! segment. The lab file already keeps every node IP inside the underlay;
//! on ssh and vagrant labs `up` also asks the nodes themselves before it
//! touches their data plane: `ip -4 route get PEER-IP` on each node must
//! name no `via` (a gateway means a router sits between the two). netns
//! labs share one bridge, so they always pass.

use std::net::Ipv4Addr;

use anyhow::{anyhow, Result};
use labctl_lab::{Backend, Lab};

use crate::exit::ExitError;
use crate::nodes;
use crate::ssh::HostKeyPolicy;
use crate::state::{LabDir, LabState};

/// The gateway `ip route get` names (`192.168.57.20 via 192.168.56.1 dev
/// eth1 src ...`), or none for a directly reachable address.
pub fn gateway_of(route: &str) -> Option<Ipv4Addr> {
    let words: Vec<&str> = route.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "via")
        .and_then(|w| w[1].parse().ok())
}

/// One node's finding: `ip route get` lines that name a gateway.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed {
    pub node: String,
    pub peer: String,
    pub peer_ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// The refusal for `routed` (exit 2: the lab file's backend is the fix).
pub fn refusal(lab: &str, routed: &[Routed]) -> anyhow::Error {
    let pairs: Vec<String> = routed
        .iter()
        .map(|r| {
            format!(
                "{} reaches {} ({}) via the router {}",
                r.node, r.peer, r.peer_ip, r.gateway
            )
        })
        .collect();
    ExitError::usage(anyhow!(
        "lab {lab}: the host-gw backend needs every node on one L2 segment, but {}; nothing was \
         changed on the nodes. Use `network.backend: {{type: vxlan}}` in the lab file (VXLAN \
         tunnels across routed networks), or put the nodes on one network",
        pairs.join("; ")
    ))
}

/// Asks every node of a host-gw ssh or vagrant lab how it reaches each
/// peer; refuses (exit 2) when one goes through a gateway.
pub fn check(lab: &Lab, dir: &LabDir, state: &LabState) -> Result<()> {
    if lab.network.backend != Backend::HostGw || state.netns.is_some() {
        return Ok(());
    }
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let results = nodes::parallel(&names, |node| -> Result<Vec<Routed>> {
        let session = nodes::connect(
            dir,
            state,
            node,
            &HostKeyPolicy::RequireKnown,
            nodes::CONNECT_DEADLINE,
        )?;
        let mut routed = Vec::new();
        for peer in lab.nodes.iter().filter(|n| n.name != node) {
            let ip = peer.ip.to_string();
            let argv = ["ip", "-4", "route", "get", ip.as_str()];
            let out = session.run(&argv, None)?;
            if !out.success() {
                return Err(ExitError::environment(anyhow!(
                    "node {node}: `{}` exited {}: {}",
                    argv.join(" "),
                    out.status,
                    out.stderr_text().trim()
                )));
            }
            if let Some(gateway) = gateway_of(&out.stdout_text()) {
                routed.push(Routed {
                    node: node.to_string(),
                    peer: peer.name.clone(),
                    peer_ip: peer.ip,
                    gateway,
                });
            }
        }
        Ok(routed)
    });
    let mut routed = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(found) => routed.extend(found),
            Err(e) => errors.push(e),
        }
    }
    nodes::fail_with_all(errors)?;
    if routed.is_empty() {
        Ok(())
    } else {
        Err(refusal(&lab.name, &routed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_in_the_route_means_routed() {
        // Recorded on a node of a two-network lab and on one of one network.
        assert_eq!(
            gateway_of(
                "192.168.57.20 via 192.168.56.1 dev eth1 src 192.168.56.10 uid 1000 \n    cache "
            ),
            Some(Ipv4Addr::new(192, 168, 56, 1))
        );
        assert_eq!(
            gateway_of("192.168.56.11 dev eth1 src 192.168.56.10 uid 1000 \n    cache "),
            None
        );
    }

    #[test]
    fn the_refusal_names_the_nodes_and_the_fix_with_exit_2() {
        let e = refusal(
            "lab1",
            &[Routed {
                node: "master".into(),
                peer: "worker1".into(),
                peer_ip: Ipv4Addr::new(192, 168, 57, 20),
                gateway: Ipv4Addr::new(192, 168, 56, 1),
            }],
        );
        assert_eq!(crate::exit::exit_code_for(&e), crate::exit::USAGE);
        let text = format!("{e:#}");
        assert!(
            text.contains("master reaches worker1 (192.168.57.20) via the router 192.168.56.1"),
            "{text}"
        );
        assert!(text.contains("type: vxlan"), "{text}");
    }
}
