//! The drills as data: each names one fault, the symptom a learner sees,
//! the commands that inject it, the fix the last hint gives, what `reset`
//! must undo that `labctl-agent apply` does not own, the cause verify
//! names, and the hint ladder. Commands and hints are templates whose
//! `{value}` words come from the node's saved plan ([`super::values`]):
//! every command is an argv, never a shell string.

use anyhow::Result;

use super::values::{fill, fill_argv, Values};

/// One break-and-fix exercise.
#[derive(Debug)]
pub struct Drill {
    pub name: &'static str,
    /// One line for `drill list`.
    pub title: &'static str,
    /// What the learner sees, never the cause.
    pub symptom: &'static str,
    /// The cause id verify names for this fault (`Diagnosis::cause`).
    pub cause: &'static str,
    /// Run on the node, in order, to inject the fault.
    pub fault: &'static [&'static [&'static str]],
    /// The fix: commands on the node, which the last rung of the ladder
    /// gives ([`ladder`]).
    pub fix: &'static [&'static [&'static str]],
    /// What `reset` runs before the agent converges the node back to its
    /// plan: the parts of the fault the plan does not own.
    pub undo: &'static [Undo],
    /// The drill needs labctl's own busybox pod on the node (network-only
    /// labs: netns, ssh, vagrant without Kubernetes).
    pub needs_pod: bool,
    /// From the symptom to where to look and the command to look with;
    /// [`ladder`] adds the fix as the last rung.
    pub hints: &'static [&'static str],
}

/// One undo step: `run`, only when `only_if` succeeds (when given).
#[derive(Debug)]
pub struct Undo {
    pub run: &'static [&'static str],
    pub only_if: Option<&'static [&'static str]>,
}

const ROUTE: &[&str] = &[
    "ip",
    "route",
    "replace",
    "{peer_subnet}",
    "via",
    "{peer_net}",
    "dev",
    "{vxlan}",
    "onlink",
];
const NEIGH: &[&str] = &[
    "ip",
    "neigh",
    "replace",
    "{peer_net}",
    "lladdr",
    "{peer_mac}",
    "dev",
    "{vxlan}",
    "nud",
    "permanent",
];
const FDB: &[&str] = &[
    "bridge",
    "fdb",
    "replace",
    "{peer_mac}",
    "dev",
    "{vxlan}",
    "dst",
    "{peer_ip}",
    "self",
    "permanent",
];
/// flannel's jump from nat POSTROUTING to FLANNEL-POSTRTG, added (`-A`)
/// or deleted (`-D`): the argv the `postrouting-jump` drill runs, also
/// the tests' way to inject that fault.
pub const fn masq_jump(op: &'static str) -> [&'static str; 12] {
    [
        "iptables",
        "-w",
        "-t",
        "nat",
        op,
        "POSTROUTING",
        "-m",
        "comment",
        "--comment",
        "flanneld masq",
        "-j",
        "FLANNEL-POSTRTG",
    ]
}
const VXLAN_DROP_CHECK: &[&str] = &[
    "iptables", "-w", "-C", "INPUT", "-p", "udp", "--dport", "{port}", "-j", "DROP",
];
const VXLAN_DROP_DELETE: &[&str] = &[
    "iptables", "-w", "-D", "INPUT", "-p", "udp", "--dport", "{port}", "-j", "DROP",
];
const POD_MTU: &[&str] = &[
    "ip",
    "netns",
    "exec",
    "{pod_ns}",
    "ip",
    "link",
    "set",
    "eth0",
    "mtu",
    "{pod_mtu}",
];
const RESOLV_FIX: &[&str] = &[
    "sed",
    "-i",
    "s/^nameserver .*/nameserver {dns_service}/",
    "{resolv_conf}",
];
const SUBNET_FIX: &[&str] = &[
    "sed",
    "-i",
    "s|^FLANNEL_SUBNET=.*|{subnet_line}|",
    "{subnet_env}",
];

/// Every drill, in the order `drill list` shows them.
pub const DRILLS: &[Drill] = &[
    Drill {
        name: "fdb-entry",
        title: "a node forgot where a peer's VTEP lives (FDB entry deleted)",
        symptom: "pods on {node} cannot reach pods on {peer}; every other pair works",
        cause: "missing-fdb",
        fault: &[&["bridge", "fdb", "del", "{peer_mac}", "dev", "{vxlan}", "dst", "{peer_ip}", "self"]],
        fix: &[FDB ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Only {node} → {peer} fails: look at what {node} knows about {peer}, not at the pods.",
            "A packet for {peer}'s pods leaves {node} through {vxlan}: route, then neighbour (the VTEP MAC), then the FDB (which node IP that MAC lives at).",
            "Look with: labctl exec {node} -- bridge fdb show dev {vxlan}   (is there an entry for {peer_mac} → dst {peer_ip}?)",
        ],
    },
    Drill {
        name: "vtep-local",
        title: "a VTEP sends from the wrong address (the NAT NIC's)",
        symptom: "pods on {node} reach no pod on another node; pods on the other nodes reach each other",
        cause: "nat-nic",
        fault: &[&["ip", "link", "set", "{vxlan}", "type", "vxlan", "local", "{nat_ip}"]],
        fix: &[&["ip", "link", "set", "{vxlan}", "type", "vxlan", "local", "{node_ip}"] ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Everything to and from {node} fails across nodes, in both directions: suspect {node}'s tunnel end itself.",
            "The peers send VXLAN to {node_ip}; look at which address {node}'s {vxlan} sends from (its `local`).",
            "Look with: labctl exec {node} -- ip -d link show {vxlan}   (local should be {node_ip})",
        ],
    },
    Drill {
        name: "onlink-route",
        title: "a node lost its route to a peer's pod subnet",
        symptom: "pods on {node} cannot reach pods on {peer}; {peer}'s pods' pings to {node} get no reply",
        cause: "missing-route",
        fault: &[&["ip", "route", "del", "{peer_subnet}", "dev", "{vxlan}"]],
        fix: &[ROUTE ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Only the pair {node} / {peer} fails: {node} must know where {peer}'s pod subnet {peer_subnet} is.",
            "Pod subnets of other nodes are reached through {vxlan} by one onlink route per peer.",
            "Look with: labctl exec {node} -- ip route   (is there a route to {peer_subnet} via {peer_net} dev {vxlan}?)",
        ],
    },
    Drill {
        name: "postrouting-jump",
        title: "pod traffic leaves the cluster unmasqueraded",
        symptom: "the pod on {node} cannot reach the outside address; pods on the other nodes can, and pod-to-pod works",
        cause: "postrouting-jump-missing",
        fault: &[&masq_jump("-D")],
        fix: &[&masq_jump("-A")],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Only traffic leaving the cluster from {node} fails: the outside cannot answer a pod IP, so someone must rewrite the source.",
            "flannel masquerades in the nat table: POSTROUTING jumps to FLANNEL-POSTRTG.",
            "Look with: labctl exec {node} -- iptables -t nat -S POSTROUTING   (is the jump to FLANNEL-POSTRTG there?)",
        ],
    },
    Drill {
        name: "pod-mtu",
        title: "a pod's MTU is above what VXLAN can carry",
        symptom: "small pings from the pod on {node} work, full-size packets to other nodes are lost",
        cause: "mtu-mismatch",
        fault: &[&[
            "ip", "netns", "exec", "{pod_ns}", "ip", "link", "set", "eth0", "mtu", "{underlay_mtu}",
        ]],
        fix: &[POD_MTU ],
        undo: &[Undo { run: POD_MTU, only_if: None }],
        needs_pod: true,
        hints: &[
            "Small packets pass and big ones vanish: think about sizes, not addresses.",
            "VXLAN adds 50 bytes: every pod interface must be at most {pod_mtu} ({vxlan}'s MTU), the underlay carries {underlay_mtu}.",
            "Look with: labctl exec {node} -- ip netns exec {pod_ns} ip link show eth0   (and ip link show {vxlan})",
        ],
    },
    Drill {
        name: "vxlan-port",
        title: "VXLAN's UDP port is dropped on a node",
        symptom: "no pod on another node reaches the pods on {node}, and {node}'s pods get no replies from them",
        cause: "vxlan-port-blocked",
        fault: &[&["iptables", "-w", "-I", "INPUT", "-p", "udp", "--dport", "{port}", "-j", "DROP"]],
        fix: &[VXLAN_DROP_DELETE ],
        undo: &[Undo { run: VXLAN_DROP_DELETE, only_if: Some(VXLAN_DROP_CHECK) }],
        needs_pod: false,
        hints: &[
            "Everything into {node} across nodes is lost while the routes, neighbours and FDB entries look right: look at the packets on the underlay.",
            "VXLAN is UDP {port} between the node IPs; a firewall on {node} may drop it before {vxlan} sees it.",
            "Look with: labctl exec {node} -- iptables -S INPUT   (a DROP for udp dport {port}?)",
        ],
    },
    Drill {
        name: "bridge-down",
        title: "the pod bridge is down",
        symptom: "the pod on {node} reaches nothing, not even its own node; pods on the other nodes cannot reach it",
        cause: "drift",
        fault: &[&["ip", "link", "set", "{bridge}", "down"]],
        fix: &[&["ip", "link", "set", "{bridge}", "up"] ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "The pod on {node} is cut off from everything: start at the first hop, the node's side of the pod's cable.",
            "Pods plug into the bridge {bridge}; a bridge that is down forwards nothing.",
            "Look with: labctl exec {node} -- ip link show {bridge}   (state UP?)",
        ],
    },
    Drill {
        name: "neighbour-mac",
        title: "a node has a stale MAC for a peer's VTEP",
        symptom: "pods on {node} cannot reach pods on {peer}; every other pair works",
        cause: "wrong-neighbour",
        fault: &[&[
            "ip", "neigh", "replace", "{peer_net}", "lladdr", "{stale_mac}", "dev", "{vxlan}", "nud",
            "permanent",
        ]],
        fix: &[NEIGH ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Only {node} → {peer} fails: the packets leave {node} but nobody on {peer} takes them.",
            "The inner destination MAC comes from {node}'s permanent neighbour entry for {peer_net}; it must be {peer}'s VTEP MAC {peer_mac}.",
            "Look with: labctl exec {node} -- ip neigh show dev {vxlan}   (compare with labctl exec {peer} -- ip link show {vxlan})",
        ],
    },
    Drill {
        name: "subnet-env",
        title: "flannel's subnet.env names another node's subnet",
        symptom: "pods keep working, but verify says {node} differs from its plan; a new pod there would get an address of {peer}'s subnet",
        cause: "drift",
        fault: &[&["sed", "-i", "s|^FLANNEL_SUBNET=.*|{wrong_subnet_line}|", "{subnet_env}"]],
        fix: &[SUBNET_FIX ],
        undo: &[],
        needs_pod: false,
        hints: &[
            "Nothing is broken yet, but {node} no longer matches its plan: the CNI plugin would hand out wrong pod addresses.",
            "The CNI plugin reads the node's pod subnet from {subnet_env}.",
            "Look with: labctl exec {node} -- cat {subnet_env}   (FLANNEL_SUBNET should match the {bridge} address)",
        ],
    },
    Drill {
        name: "pod-dns",
        title: "a pod's resolv.conf points nowhere",
        symptom: "the pod on {node} can ping every pod but cannot resolve kubernetes.default",
        cause: "pod-resolv-conf",
        fault: &[&["sed", "-i", "s/^nameserver .*/nameserver {nowhere}/", "{resolv_conf}"]],
        fix: &[RESOLV_FIX ],
        undo: &[Undo { run: RESOLV_FIX, only_if: None }],
        needs_pod: true,
        hints: &[
            "Pings work and names do not: the network is fine, the question is whom the pod asks.",
            "A pod asks the servers in its own resolv.conf; kubelet writes the cluster DNS service {dns_service} there.",
            "Look with: labctl exec {node} -- cat {resolv_conf}",
        ],
    },
];

/// The whole hint ladder, filled: the drill's rungs, then the fix as a
/// `labctl exec` line per command.
pub fn ladder(drill: &Drill, v: &Values) -> Result<Vec<String>> {
    let mut rungs: Vec<String> = drill
        .hints
        .iter()
        .map(|h| fill(h, v))
        .collect::<Result<_>>()?;
    let node = fill("{node}", v)?;
    let fixes: Vec<String> = drill
        .fix
        .iter()
        .map(|argv| {
            let words = fill_argv(argv, v)?;
            Ok(format!("labctl exec {node} -- {}", shell_words(&words)))
        })
        .collect::<Result<_>>()?;
    rungs.push(format!("Fix: {}", fixes.join(" ; ")));
    Ok(rungs)
}

/// `words` as one shell line (single quotes around words that need them).
pub fn shell_words(words: &[String]) -> String {
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    };
    words
        .iter()
        .map(|w| {
            if plain(w) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The drill of this name.
pub fn find(name: &str) -> Option<&'static Drill> {
    DRILLS.iter().find(|d| d.name == name)
}

/// The names, for messages.
pub fn names() -> String {
    DRILLS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}
