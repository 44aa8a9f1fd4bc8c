//! The lab as a graph: nodes on the underlay, each with its VTEP
//! (flannel.1), its bridge (cni0) and its pods, the DNS service, and one
//! tunnel per pair of nodes. Built from the node plans and, when the lab is
//! up, each node's `check` report: a difference marks the object it names
//! broken, with the difference as the reason. Pure: no I/O.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use labctl_nodeplan::report::{Difference, ObjectKind, State};
use labctl_nodeplan::{NodePlan, VxlanPlan};

/// Where the picture's state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The plan only: the lab is not up on this host.
    Plan,
    /// The plan, checked on every node by its agent.
    Live,
}

/// What one node's agent said, or why it could not be asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeLive {
    /// `check` ran: every difference between the plan and the node.
    Checked(Vec<Difference>),
    /// The node or its agent could not be reached (the error).
    Unreachable(String),
}

/// A pod as the lab records it (its address once it exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub ip: Option<Ipv4Addr>,
}

/// What the command hands to [`build`] for one node.
#[derive(Clone, Debug)]
pub struct NodeInput {
    pub plan: NodePlan,
    pub control_plane: bool,
    pub pods: Vec<Pod>,
    /// `None` when the picture is of the plan only.
    pub live: Option<NodeLive>,
}

/// The VXLAN device of a node (VTEP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vtep {
    pub device: String,
    pub mac: String,
    pub address: Ipv4Net,
    pub vni: u32,
    pub port: u16,
    pub mtu: u32,
    pub problems: Vec<String>,
}

/// The pod bridge of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    pub device: String,
    pub address: Ipv4Net,
    pub subnet: Ipv4Net,
    pub problems: Vec<String>,
}

/// One node of the picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
    /// `None` when the plan has no VXLAN device (a backend without one).
    pub vtep: Option<Vtep>,
    pub bridge: Bridge,
    pub pods: Vec<Pod>,
    /// Why the node could not be checked.
    pub unreachable: Option<String>,
    /// Differences not drawn on the VTEP, bridge or a tunnel (routes to
    /// nowhere known, iptables, files, sysctls).
    pub problems: Vec<String>,
}

impl Node {
    /// The node's role, for labels.
    pub fn role(&self) -> &'static str {
        if self.control_plane {
            "control plane"
        } else {
            "worker"
        }
    }

    /// Whether anything on the node is drawn broken.
    pub fn broken(&self) -> bool {
        self.unreachable.is_some()
            || !self.problems.is_empty()
            || !self.bridge.problems.is_empty()
            || self.vtep.as_ref().is_some_and(|v| !v.problems.is_empty())
    }
}

/// The tunnel between two nodes (`a` before `b` in node order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub a: String,
    pub b: String,
    pub problems: Vec<String>,
}

/// The cluster DNS service and the pod behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    pub service_ip: Ipv4Addr,
    /// The DNS pod's node and address, when labctl runs one.
    pub backend: Option<(String, Option<Ipv4Addr>)>,
}

/// The whole picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    pub lab: String,
    pub source: Source,
    pub underlay: Option<Ipv4Net>,
    pub underlay_mtu: u32,
    pub pod_network: Option<Ipv4Net>,
    pub dns: Option<Dns>,
    pub nodes: Vec<Node>,
    /// One per pair of nodes: a VXLAN tunnel, or on host-gw the pair's
    /// routes via each other's node IP.
    pub tunnels: Vec<Tunnel>,
    /// flannel's host-gw backend: no VTEPs, the tunnels are routes.
    pub host_gw: bool,
}

impl Graph {
    /// What a tunnel is called on its edge: VXLAN, or host-gw's route.
    pub fn tunnel_label(&self) -> &'static str {
        if self.host_gw {
            "host-gw route"
        } else {
            "VXLAN"
        }
    }

    /// The element a tunnel's edge ends at on `node`: its VTEP, or on
    /// host-gw (no VTEP) its bridge, where the routed pod traffic starts.
    pub fn tunnel_end(&self, node: &str) -> String {
        if self.host_gw {
            ids::bridge(node)
        } else {
            ids::vtep(node)
        }
    }

    /// The title line: the lab and where its state comes from.
    pub fn title(&self) -> String {
        match self.source {
            Source::Plan => format!(
                "Lab {} — from the plan (the lab is not up on this host)",
                self.lab
            ),
            Source::Live => format!(
                "Lab {} — live state, checked by each node's agent",
                self.lab
            ),
        }
    }

    /// The underlay's label: its network and MTU.
    pub fn underlay_label(&self) -> String {
        match self.underlay {
            Some(net) => format!("underlay {net} · MTU {}", self.underlay_mtu),
            None => format!("underlay · MTU {}", self.underlay_mtu),
        }
    }

    /// Whether anything is drawn broken.
    pub fn broken(&self) -> bool {
        self.nodes.iter().any(Node::broken) || self.tunnels.iter().any(|t| !t.problems.is_empty())
    }
}

/// The plan's VXLAN device, if it has one: the one place the picture
/// asks whether the backend tunnels.
pub fn vxlan_of(plan: &NodePlan) -> Option<&VxlanPlan> {
    plan.vxlan.as_ref()
}

/// `node: object: expected X, actual Y`, one difference for people.
pub fn difference_line(node: &str, d: &Difference) -> String {
    let show = |v: &Option<State>| v.as_ref().map_or("(absent)".to_string(), State::to_string);
    format!(
        "{node}: {}: expected {}, actual {}",
        d.object,
        show(&d.expected),
        show(&d.actual)
    )
}

/// Builds the picture of lab `lab` from its nodes, in lab order.
pub fn build(lab: &str, underlay: Option<Ipv4Net>, inputs: &[NodeInput]) -> Graph {
    let source = if inputs.iter().any(|i| i.live.is_some()) {
        Source::Live
    } else {
        Source::Plan
    };
    let mut nodes: Vec<Node> = inputs.iter().map(node_of).collect();
    let mut tunnels = Vec::new();
    for (i, a) in inputs.iter().enumerate() {
        for b in &inputs[i + 1..] {
            // Both tunnel, or both route via each other (host-gw).
            if vxlan_of(&a.plan).is_some() == vxlan_of(&b.plan).is_some() {
                tunnels.push(Tunnel {
                    a: a.plan.node.clone(),
                    b: b.plan.node.clone(),
                    problems: Vec::new(),
                });
            }
        }
    }
    for input in inputs {
        place_live(input, &mut nodes, &mut tunnels);
    }
    let first = inputs.first().map(|i| &i.plan);
    let dns = first.map(|p| Dns {
        service_ip: p.dns_service_ip,
        backend: inputs.iter().find_map(|i| {
            let pod = i.pods.iter().find(|p| p.name == crate::nodes::DNS_POD)?;
            Some((i.plan.node.clone(), pod.ip))
        }),
    });
    Graph {
        lab: lab.to_string(),
        source,
        underlay,
        underlay_mtu: first.map_or(0, |p| p.underlay_mtu),
        pod_network: first.map(|p| p.network),
        dns,
        nodes,
        tunnels,
        host_gw: first.is_some_and(|p| p.backend == labctl_nodeplan::Backend::HostGw),
    }
}

fn node_of(input: &NodeInput) -> Node {
    let plan = &input.plan;
    Node {
        name: plan.node.clone(),
        ip: plan.underlay_ip,
        control_plane: input.control_plane,
        vtep: vxlan_of(plan).map(|v| Vtep {
            device: v.name.clone(),
            mac: v.mac.to_string(),
            address: v.address,
            vni: v.vni,
            port: v.port,
            mtu: v.mtu,
            problems: Vec::new(),
        }),
        bridge: Bridge {
            device: plan.bridge.name.clone(),
            address: plan.bridge.address,
            subnet: plan.subnet,
            problems: Vec::new(),
        },
        pods: input.pods.clone(),
        unreachable: None,
        problems: Vec::new(),
    }
}

/// Puts one node's live findings where they belong: an unreachable node
/// breaks its tunnels; a difference on the VXLAN device breaks the VTEP
/// and every tunnel of the node; a route, neighbour or FDB entry for a
/// peer breaks that tunnel; the bridge's own differences break the bridge.
fn place_live(input: &NodeInput, nodes: &mut [Node], tunnels: &mut [Tunnel]) {
    let name = &input.plan.node;
    let Some(live) = &input.live else { return };
    let Some(node) = nodes.iter_mut().find(|n| &n.name == name) else {
        return;
    };
    // A device is known by its name (links) or by its planned address
    // (addresses): report fields, never the words of a label.
    let vxlan_device = vxlan_of(&input.plan).map(|v| (v.name.clone(), v.address.to_string()));
    let bridge_device = (
        input.plan.bridge.name.clone(),
        input.plan.bridge.address.to_string(),
    );
    let touches = |t: &Tunnel, peer: Option<&str>| {
        (&t.a == name || &t.b == name) && peer.is_none_or(|p| t.a == p || t.b == p)
    };
    let differences = match live {
        NodeLive::Unreachable(error) => {
            node.unreachable = Some(error.clone());
            for t in tunnels.iter_mut().filter(|t| touches(t, None)) {
                t.problems.push(format!("{name}: not checked: unreachable"));
            }
            return;
        }
        NodeLive::Checked(differences) => differences,
    };
    for d in differences {
        let line = difference_line(name, d);
        let on_device = |(device, address): &(String, String)| match d.kind {
            ObjectKind::Link => &d.name == device,
            ObjectKind::Address => &d.name == address,
            _ => false,
        };
        if let (Some(device), Some(vtep)) = (&vxlan_device, node.vtep.as_mut()) {
            if on_device(device) {
                vtep.problems.push(line.clone());
                for t in tunnels.iter_mut().filter(|t| touches(t, None)) {
                    t.problems.push(line.clone());
                }
                continue;
            }
        }
        if on_device(&bridge_device) {
            node.bridge.problems.push(line);
            continue;
        }
        let peer_object = matches!(
            d.kind,
            ObjectKind::Route | ObjectKind::Neighbour | ObjectKind::Fdb
        );
        match (&d.peer, peer_object) {
            (Some(peer), true) if tunnels.iter().any(|t| touches(t, Some(peer))) => {
                for t in tunnels.iter_mut().filter(|t| touches(t, Some(peer))) {
                    t.problems.push(line.clone());
                }
            }
            _ => node.problems.push(line),
        }
    }
}

/// Element ids: stable, derived from names (DNS labels), so tests and
/// style sheets can find them.
pub mod ids {
    pub fn node(node: &str) -> String {
        format!("node-{node}")
    }
    pub fn vtep(node: &str) -> String {
        format!("vtep-{node}")
    }
    pub fn bridge(node: &str) -> String {
        format!("bridge-{node}")
    }
    pub fn pod(node: &str, pod: &str) -> String {
        format!("pod-{node}-{pod}")
    }
    pub fn tunnel(a: &str, b: &str) -> String {
        format!("tunnel-{a}-{b}")
    }
    pub const UNDERLAY: &str = "underlay";
    pub const DNS: &str = "dns-service";
}

#[cfg(test)]
#[path = "model_tests.rs"]
pub(crate) mod tests;
