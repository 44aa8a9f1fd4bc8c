//! The diagnosis engine: from evidence to named causes ([`Diagnosis`]),
//! each with the node (and peer) it is about, the evidence that points at
//! it, and the fix.
//! Pure: tested with hand-written evidence.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use labctl_nodeplan::report::{ObjectKind, State};
use labctl_nodeplan::Backend;

use super::evidence::Evidence;
use super::kube::nodes::NAT_NIC_IP;
use super::model::{CheckId, Diagnosis, LabView};
use super::parse::Drift;

// The builder the causes below are written with (the record is the
// model's: the report holds it).
impl Diagnosis {
    fn new(cause: &str, message: String, fix: String, checks: &[CheckId]) -> Diagnosis {
        Diagnosis {
            cause: cause.to_string(),
            node: None,
            peer: None,
            message,
            evidence: Vec::new(),
            fix,
            repaired_by_up: false,
            checks: checks.to_vec(),
        }
    }
    fn on(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }
    fn peer(mut self, peer: Option<&str>) -> Self {
        self.peer = peer.map(str::to_string);
        self
    }
    fn by_up(mut self) -> Self {
        self.repaired_by_up = true;
        self
    }
    fn with(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }
}

/// What a drift record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DriftKind {
    Route,
    Neighbour,
    Fdb,
    VxlanLocal,
    Mtu,
    ForwardChain,
    PostroutingJump,
    Other,
}

/// What a difference is about, from its kind, attribute and table.
fn drift_kind(d: &Drift) -> DriftKind {
    let x = &d.difference;
    match (x.kind, x.attribute.as_deref(), x.table.as_deref()) {
        (ObjectKind::Link, Some("mtu"), _) => DriftKind::Mtu,
        (ObjectKind::Link, Some("local"), _) => DriftKind::VxlanLocal,
        (ObjectKind::Fdb, _, _) => DriftKind::Fdb,
        (ObjectKind::Neighbour, _, _) => DriftKind::Neighbour,
        (ObjectKind::Route, _, _) => DriftKind::Route,
        // The filter table holds only FLANNEL-FWD and FORWARD's jump to it.
        (ObjectKind::Chain | ObjectKind::Rule, _, Some("filter")) => DriftKind::ForwardChain,
        (ObjectKind::Rule, _, Some("nat")) => DriftKind::PostroutingJump,
        _ => DriftKind::Other,
    }
}

/// A text value of a difference (`None`: absent, or a list of lines).
fn text(v: &Option<State>) -> Option<&str> {
    match v {
        Some(State::Text(s)) => Some(s),
        _ => None,
    }
}

/// Explains the evidence: every cause found, most specific first.
pub fn diagnose(lab: &LabView, ev: &Evidence) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    neighbour_overflow(lab, ev, &mut out);
    nat_nic(lab, ev, &mut out);
    kubelet_node_ip(lab, ev, &mut out);
    peer_entries(lab, ev, &mut out);
    forward_drop(lab, ev, &mut out);
    postrouting_jump(lab, ev, &mut out);
    mtu_mismatch(lab, ev, &mut out);
    vxlan_blocked(lab, ev, &mut out);
    checksum_offload(ev, &mut out);
    busybox_nslookup(ev, &mut out);
    pod_resolv_conf(lab, ev, &mut out);
    image_pull(ev, &mut out);
    other_drift(ev, &mut out);
    unreachable(ev, &mut out);
    out
}

const MESH: &[CheckId] = &[
    CheckId::Dataplane,
    CheckId::PodMesh,
    CheckId::Vxlan,
    CheckId::Mtu,
];

/// Checks a full neighbour table can fail (pairs whose addresses cannot
/// be resolved drop their packets).
const NEIGHBOUR_CHECKS: &[CheckId] = &[
    CheckId::PodMesh,
    CheckId::Vxlan,
    CheckId::Mtu,
    CheckId::Dns,
    CheckId::Egress,
];

fn probes_failed(ev: &Evidence) -> bool {
    ev.mesh
        .as_ref()
        .is_some_and(|m| m.failures().next().is_some())
        || ev.vxlan.iter().any(|p| !p.ping_ok)
        || ev.mtu.iter().any(|p| !p.fits_passed)
        || ev.dns.iter().any(|p| !p.ok && !p.nxdomain)
        || ev.egress.iter().any(|e| !e.reply_received)
}

fn neighbour_overflow(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let Some(t) = &ev.neighbour_table else { return };
    let [g1, g2, g3] = t.gc_thresh;
    let too_small = t.needed > g3;
    let failed = probes_failed(ev);
    // Refusals while verify ran are proof; old log lines or a small limit
    // only count when something actually failed.
    if !(t.refused_during_probes > 0 || (failed && (!t.log_lines.is_empty() || too_small))) {
        return;
    }
    let [s1, s2, s3] = super::evidence::suggested_gc_thresh(t.needed);
    let mut d = Diagnosis::new(
        "neighbour-table-overflow",
        format!(
            "the kernel's neighbour (ARP) table is full: all network namespaces on this host share at most gc_thresh3 = {g3} dynamic entries, and this lab of {} nodes needs about {} (every node resolves every peer's underlay address), so new entries are refused and packets to those peers are dropped",
            lab.nodes.len(),
            t.needed
        ),
        format!(
            "raise the host's limits, then verify again: sysctl -w net.ipv4.neigh.default.gc_thresh1={s1} net.ipv4.neigh.default.gc_thresh2={s2} net.ipv4.neigh.default.gc_thresh3={s3} (a file in /etc/sysctl.d/ keeps them across reboots; `labctl up` raises them for a netns lab that needs it and `labctl destroy` puts the old values back)"
        ),
        NEIGHBOUR_CHECKS,
    )
    .by_up()
    .with(format!(
        "net.ipv4.neigh.default.gc_thresh1/2/3 = {g1}/{g2}/{g3}; the lab needs about {} dynamic entries",
        t.needed
    ));
    if t.refused_during_probes > 0 {
        d = d.with(format!(
            "/proc/net/stat/arp_cache: {} entries refused (table_fulls) while verify ran",
            t.refused_during_probes
        ));
    }
    for line in &t.log_lines {
        d = d.with(format!("kernel log: {line}"));
    }
    out.push(d);
}

fn nat_nic(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let mut local = ev.vtep_local.clone();
    for d in ev
        .drift
        .iter()
        .filter(|d| drift_kind(d) == DriftKind::VxlanLocal)
    {
        // `none` when the device has no local address at all.
        if let Some(ip) = text(&d.difference.actual).and_then(|a| a.parse().ok()) {
            local.entry(d.node.clone()).or_insert(ip);
        }
    }
    for pair in &ev.vxlan {
        if let (Some(node), Some(ip)) = (lab.node(&pair.from), pair.outer_sources.first()) {
            if *ip != node.underlay_ip {
                local.entry(node.name.clone()).or_insert(*ip);
            }
        }
    }
    let fix = |node: &str, ip: Ipv4Addr| {
        format!(
            "labctl up (the agent picks the underlay interface by the node's lab IP); by hand on {node}: recreate {} with `local {ip}` on the interface that holds {ip}; with flanneld: --iface-can-reach / --public-ip, and kubelet --node-ip",
            lab.vxlan_device
        )
    };
    let distinct: BTreeSet<Ipv4Addr> = local.values().copied().collect();
    if lab.nodes.len() > 1 && local.len() == lab.nodes.len() && distinct.len() == 1 {
        let ip = *distinct.iter().next().unwrap_or(&Ipv4Addr::UNSPECIFIED);
        let mut d = Diagnosis::new(
            "nat-nic",
            format!("every node's VTEP advertises the same address {ip} (the NAT NIC), so cross-node VXLAN traffic never reaches the other node"),
            fix("each node", ip),
            MESH,
        )
        .by_up();
        for (node, ip) in &local {
            d = d.with(format!("{node}: {} local {ip}", lab.vxlan_device));
        }
        out.push(d);
        return;
    }
    for (name, ip) in &local {
        let Some(node) = lab.node(name) else { continue };
        if *ip != node.underlay_ip {
            out.push(
                Diagnosis::new(
                    "nat-nic",
                    format!(
                        "{name}'s {} uses local {ip}, not its lab IP {}: the wrong NIC (often the NAT NIC) was chosen, peers send to {} but {name} sends from {ip}",
                        lab.vxlan_device, node.underlay_ip, node.underlay_ip
                    ),
                    fix(name, node.underlay_ip),
                    MESH,
                )
                .on(name)
                .by_up()
                .with(format!("{name}: {} local {ip}, lab IP {}", lab.vxlan_device, node.underlay_ip)),
            );
        }
    }
}

/// kubeadm labs: a kubelet registered an InternalIP that is not its
/// node's lab IP (10.0.2.15: the NAT NIC won, as for the VTEP above).
fn kubelet_node_ip(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let Some(k) = &ev.kubernetes else { return };
    for kn in &k.nodes {
        let (Some(node), Some(ip)) = (lab.node(&kn.node), kn.internal_ip) else {
            continue;
        };
        if ip == node.underlay_ip {
            continue;
        }
        let why = if ip == NAT_NIC_IP {
            "the NAT NIC (the interface of the default route) won"
        } else {
            "the wrong interface was chosen"
        };
        out.push(
            Diagnosis::new(
                "nat-nic",
                format!(
                    "{}'s kubelet registered InternalIP {ip}, not its lab IP {}: {why}, so the API server, `kubectl exec`/logs and anything using node addresses go to {ip}",
                    kn.node, node.underlay_ip
                ),
                format!(
                    "set the kubelet's node-ip to {lab_ip} on {name} (labctl's kubeadm configs set nodeRegistration.kubeletExtraArgs node-ip; on a running node: KUBELET_EXTRA_ARGS=--node-ip={lab_ip} in /etc/default/kubelet, then `systemctl restart kubelet`), then check `kubectl get node {name} -o wide`",
                    lab_ip = node.underlay_ip,
                    name = kn.node
                ),
                &[CheckId::Kubernetes],
            )
            .on(&kn.node)
            .with(format!(
                "kubectl get nodes: {} InternalIP {ip}, lab IP {}",
                kn.node, node.underlay_ip
            )),
        );
    }
}

fn peer_entries(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let dev = &lab.vxlan_device;
    for d in &ev.drift {
        let kind = drift_kind(d);
        let what = match kind {
            DriftKind::Route => "route",
            DriftKind::Neighbour => "neighbour",
            DriftKind::Fdb => "fdb",
            _ => continue,
        };
        let x = &d.difference;
        // An entry without a link-layer address is the kernel's own, made
        // while it tries to resolve the address flannel's permanent entry
        // would have given (any traffic towards that peer, the mesh's
        // included): flannel's entry is missing.
        let unresolved = kind == DriftKind::Neighbour
            && text(&x.actual).is_some_and(|a| a.contains(" lladdr none"));
        let state = match (&x.expected, &x.actual) {
            (Some(_), None) => "missing",
            (Some(_), Some(_)) if unresolved => "missing",
            (None, Some(_)) => "stale",
            _ => "wrong",
        };
        let peer = x.peer.as_deref().and_then(|p| lab.node(p));
        let peer_name = peer.map(|p| p.name.as_str());
        let name = &x.name;
        let host_gw = lab.backend == Backend::HostGw;
        let by_hand = match (kind, state, peer) {
            // host-gw: the route the agent reports as wanted is the fix.
            (DriftKind::Route, "stale", _) if host_gw => format!("ip route del {name}"),
            (DriftKind::Route, _, Some(_)) if host_gw => format!(
                "ip route replace {}",
                text(&x.expected).unwrap_or("SUBNET via PEER-NODE-IP dev UNDERLAY")
            ),
            (DriftKind::Route, "stale", _) => format!("ip route del {name} dev {dev}"),
            (DriftKind::Neighbour, "stale", _) => format!("ip neigh del {name} dev {dev}"),
            (DriftKind::Fdb, "stale", _) => format!("bridge fdb del {name} dev {dev} self"),
            (DriftKind::Route, _, Some(p)) => {
                format!(
                    "ip route replace {} via {} dev {dev} onlink",
                    p.subnet,
                    p.subnet.network()
                )
            }
            (DriftKind::Neighbour, _, Some(p)) => format!(
                "ip neigh replace {} lladdr {} dev {dev} nud permanent",
                p.subnet.network(),
                p.vtep_mac
            ),
            (DriftKind::Fdb, _, Some(p)) => {
                format!(
                    "bridge fdb replace {} dev {dev} dst {} self permanent",
                    p.vtep_mac, p.underlay_ip
                )
            }
            _ => format!(
                "set it to: {}",
                x.expected
                    .as_ref()
                    .map_or("(remove it)".to_string(), State::to_string)
            ),
        };
        let about = match peer_name {
            Some(p) => format!(" for peer {p}"),
            None => String::new(),
        };
        let consequence = match state {
            "stale" => "an entry for a node that is not (or no longer) in the lab",
            "missing" => "traffic to that peer's pods has nowhere to go",
            _ => "traffic to that peer's pods goes to the wrong place",
        };
        out.push(
            Diagnosis::new(
                &format!("{state}-{what}"),
                format!("{} on {}: {state} {what}{about} ({consequence})", what_long(kind, lab.backend), d.node),
                format!("labctl up (the agent converges every per-peer entry); by hand on {}: {by_hand}", d.node),
                &[CheckId::Dataplane, CheckId::PodMesh, CheckId::Vxlan, CheckId::Mtu],
            )
            .on(&d.node)
            .peer(peer_name)
            .by_up()
            .with(d.line()),
        );
    }
}

fn what_long(kind: DriftKind, backend: Backend) -> &'static str {
    match kind {
        DriftKind::Route if backend == Backend::HostGw => {
            "host-gw route to a peer's pod subnet via its node IP"
        }
        DriftKind::Route => "onlink route to a peer's pod subnet",
        DriftKind::Neighbour => "permanent neighbour (ARP) entry for a peer's VTEP",
        DriftKind::Fdb => "FDB entry mapping a peer's VTEP MAC to its underlay IP",
        _ => "object",
    }
}

fn forward_drop(_lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    for (node, fw) in &ev.firewall {
        let fwd_drift: Vec<&Drift> = ev
            .drift
            .iter()
            .filter(|d| &d.node == node && drift_kind(d) == DriftKind::ForwardChain)
            .collect();
        let drops = fw
            .forward_policy
            .as_deref()
            .is_some_and(|p| p == "DROP" || p == "REJECT");
        let fwd_missing = !fw.forward_jump || !fwd_drift.is_empty();
        if drops && fwd_missing {
            let mut d = Diagnosis::new(
                "forward-drop",
                format!("FORWARD on {node} drops pod traffic (policy DROP) and FLANNEL-FWD, which accepts the pod network, is missing or not jumped to"),
                format!("labctl up (restores FLANNEL-FWD and its jump); by hand on {node}: iptables -A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD (with the chain's two ACCEPT rules for the pod network)"),
                &[CheckId::Dataplane, CheckId::PodMesh, CheckId::Vxlan, CheckId::Mtu, CheckId::Dns, CheckId::Egress],
            )
            .on(node)
            .by_up()
            .with(format!("{node}: iptables -S FORWARD: -P FORWARD {}", fw.forward_policy.as_deref().unwrap_or("?")));
            if !fw.forward_jump {
                d = d.with(format!("{node}: no -A FORWARD ... -j FLANNEL-FWD"));
            }
            for f in fwd_drift {
                d = d.with(f.line());
            }
            out.push(d);
        }
    }
}

fn postrouting_jump(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let mut nodes: BTreeSet<String> = ev
        .drift
        .iter()
        .filter(|d| drift_kind(d) == DriftKind::PostroutingJump && d.difference.actual.is_none())
        .map(|d| d.node.clone())
        .collect();
    for e in &ev.egress {
        if e.observed_sources.contains(&e.pod_ip) {
            nodes.insert(e.node.clone());
        }
    }
    for node in nodes {
        let mut d = Diagnosis::new(
            "postrouting-jump-missing",
            format!("nothing on {node} masquerades pod traffic leaving the cluster: the POSTROUTING jump to FLANNEL-POSTRTG is missing, so the outside sees pod IPs it cannot answer"),
            format!("labctl up; by hand on {node}: iptables -t nat -A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG"),
            &[CheckId::Dataplane, CheckId::Egress],
        )
        .on(&node)
        .by_up();
        for f in ev
            .drift
            .iter()
            .filter(|f| f.node == node && drift_kind(f) == DriftKind::PostroutingJump)
        {
            d = d.with(f.line());
        }
        for e in ev
            .egress
            .iter()
            .filter(|e| e.node == node && e.observed_sources.contains(&e.pod_ip))
        {
            d = d.with(format!(
                "{}: {} {} (the pod), expected {} (the node)",
                e.node,
                e.observer(),
                e.pod_ip,
                e.node_ip
            ));
        }
        let _ = lab;
        out.push(d);
    }
}

fn mtu_mismatch(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let mut wrong: Vec<String> = ev
        .link_mtus
        .iter()
        .filter(|m| m.mtu != lab.pod_mtu)
        .map(|m| {
            format!(
                "{}: {} mtu {} (expected {})",
                m.node, m.device, m.mtu, lab.pod_mtu
            )
        })
        .collect();
    let mut nodes: BTreeSet<String> = ev
        .link_mtus
        .iter()
        .filter(|m| m.mtu != lab.pod_mtu)
        .map(|m| m.node.clone())
        .collect();
    for d in ev.drift.iter().filter(|d| drift_kind(d) == DriftKind::Mtu) {
        wrong.push(d.line());
        nodes.insert(d.node.clone());
    }
    // A pair whose normal-size pings fail too (pod mesh), or whose route /
    // neighbour / FDB entry is already named, loses the DF probe as a
    // consequence: that is not an MTU problem.
    let explained = |from: &str, to: &str| {
        let mesh_failed = ev
            .mesh
            .as_ref()
            .and_then(|m| m.cell(from, to))
            .is_some_and(|c| !c.ok());
        let dataplane = out.iter().any(|d| {
            d.checks.contains(&CheckId::Mtu)
                && d.cause != "mtu-mismatch"
                && match (d.node.as_deref(), d.peer.as_deref()) {
                    (Some(n), Some(p)) => (n == from && p == to) || (n == to && p == from),
                    (Some(n), None) => n == from || n == to,
                    _ => false,
                }
        });
        mesh_failed || dataplane
    };
    let failed: Vec<String> = ev
        .mtu
        .iter()
        .filter(|p| !p.fits_passed || !p.over_failed)
        .filter(|p| !p.over_failed || !explained(&p.from, &p.to))
        .map(|p| {
            format!(
                "{} → {}: DF ping of {} bytes {}, {} bytes {} ({})",
                p.from,
                p.to,
                p.payload,
                if p.fits_passed { "passed" } else { "FAILED" },
                p.payload + 1,
                if p.over_failed {
                    "refused"
                } else {
                    "PASSED (too big should not fit)"
                },
                p.detail
            )
        })
        .collect();
    if wrong.is_empty() && failed.is_empty() {
        return;
    }
    // With every interface right, lost DF probes are what a full neighbour
    // table does to any packet: not an MTU problem.
    if wrong.is_empty() && out.iter().any(|d| d.cause == "neighbour-table-overflow") {
        return;
    }
    let list: Vec<String> = nodes.iter().cloned().collect();
    let message = if list.is_empty() {
        format!(
            "the path MTU between pods is not {} end to end (interfaces look right: something on the underlay is smaller than {})",
            lab.pod_mtu, lab.underlay_mtu
        )
    } else {
        format!(
            "MTU mismatch: {} on {} differ from the lab's pod MTU {} ({}), so full-size packets are dropped one way",
            "interfaces",
            list.join(", "),
            lab.pod_mtu,
            match lab.backend {
                Backend::Vxlan => format!("underlay {} − 50", lab.underlay_mtu),
                Backend::HostGw => format!("host-gw: the underlay's {}", lab.underlay_mtu),
            }
        )
    };
    let mut d = Diagnosis::new(
        "mtu-mismatch",
        message,
        match lab.backend {
            Backend::Vxlan => format!(
                "labctl up (sets {} and cni0 to {}); by hand: ip link set {} mtu {} on each listed node",
                lab.vxlan_device, lab.pod_mtu, lab.vxlan_device, lab.pod_mtu
            ),
            Backend::HostGw => format!(
                "labctl up (sets cni0 to {}); by hand: ip link set cni0 mtu {} on each listed node",
                lab.pod_mtu, lab.pod_mtu
            ),
        },
        &[CheckId::Dataplane, CheckId::Mtu, CheckId::PodMesh],
    )
    .by_up();
    if list.len() == 1 {
        d = d.on(&list[0]);
    }
    d.evidence = wrong.into_iter().chain(failed).collect();
    out.push(d);
}

fn vxlan_blocked(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let port = lab.port;
    let checksum_nodes: BTreeSet<&str> = ev.bad_checksums.iter().map(|(n, _)| n.as_str()).collect();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for p in &ev.vxlan {
        if p.ping_ok || p.sender_out == 0 {
            continue;
        }
        let dropped_between = p.receiver_in == 0;
        let dropped_at_receiver = p.receiver_in > 0 && p.receiver_decapsulated == Some(0);
        if !(dropped_between || dropped_at_receiver) || checksum_nodes.contains(p.to.as_str()) {
            continue;
        }
        let rules = ev
            .firewall
            .get(&p.to)
            .map(|f| f.vxlan_blocking_rules.clone())
            .unwrap_or_default();
        let where_ = if dropped_between {
            format!("they never arrive on {}'s underlay interface", p.to)
        } else {
            format!(
                "they arrive on {}'s underlay interface but never reach its {}",
                p.to, lab.vxlan_device
            )
        };
        let mut d = Diagnosis::new(
            "vxlan-port-blocked",
            format!("UDP {port} is blocked between {} and {}: VXLAN packets leave {} ({} seen) and {where_}", p.from, p.to, p.from, p.sender_out),
            if rules.is_empty() {
                format!("allow UDP {port} between the nodes (host firewall, cloud security group) on {}", p.to)
            } else {
                format!("remove the rule on {}: iptables {}", p.to, rules[0].replacen("-A ", "-D ", 1))
            },
            &[CheckId::PodMesh, CheckId::Vxlan, CheckId::Mtu],
        )
        .on(&p.to)
        .peer(Some(&p.from))
        .with(format!(
            "{} → {}: sender out {}, receiver in {}, decapsulated {}",
            p.from,
            p.to,
            p.sender_out,
            p.receiver_in,
            p.receiver_decapsulated.map_or("?".to_string(), |n| n.to_string())
        ));
        for r in &rules {
            d = d.with(format!("{}: {r}", p.to));
        }
        reported.insert(p.to.clone());
        out.push(d);
    }
    // Without a capture (or before it ran): a blocking rule plus failed pings
    // to that node is enough to name it.
    let mesh_fails_to = |node: &str| {
        ev.mesh
            .as_ref()
            .is_some_and(|m| m.failures().any(|c| c.to == node || c.from == node))
    };
    for (node, fw) in &ev.firewall {
        if fw.vxlan_blocking_rules.is_empty() || reported.contains(node) || !mesh_fails_to(node) {
            continue;
        }
        let mut d = Diagnosis::new(
            "vxlan-port-blocked",
            format!("UDP {port} is blocked on {node}: VXLAN packets from the other nodes are dropped before they reach {}", lab.vxlan_device),
            format!("remove the rule on {node}: iptables {}", fw.vxlan_blocking_rules[0].replacen("-A ", "-D ", 1)),
            &[CheckId::PodMesh, CheckId::Vxlan, CheckId::Mtu],
        )
        .on(node);
        for r in &fw.vxlan_blocking_rules {
            d = d.with(format!("{node}: {r}"));
        }
        out.push(d);
    }
}

fn checksum_offload(ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let nodes: BTreeSet<&str> = ev.bad_checksums.iter().map(|(n, _)| n.as_str()).collect();
    for node in nodes {
        let mut d = Diagnosis::new(
            "vxlan-checksum-offload",
            format!("the kernel on {node} drops VXLAN packets with a bad outer UDP checksum: the known checksum-offload bug for NATed VXLAN traffic (fixed in Linux 5.7; symptom: 63-second delays)"),
            "on every node: ethtool -K flannel.1 tx-checksum-ip-generic off".to_string(),
            &[CheckId::Vxlan, CheckId::PodMesh],
        )
        .on(node);
        for (_, b) in ev.bad_checksums.iter().filter(|(n, _)| n == node).take(3) {
            d = d.with(format!("{node}: {}", b.line));
        }
        out.push(d);
    }
}

fn busybox_nslookup(ev: &Evidence, out: &mut Vec<Diagnosis>) {
    // Only where no lookup worked: a node whose full-name query answered
    // has working DNS, whatever its nslookup does with short names.
    let resolved = |node: &str| ev.dns.iter().any(|p| p.node == node && p.ok);
    let newer: Vec<_> = ev
        .dns
        .iter()
        .filter(|p| !resolved(&p.node))
        .filter(|p| p.nxdomain && !p.query.ends_with('.') && p.query.split('.').count() <= 2)
        .filter(|p| p.busybox.is_some_and(|v| v > (1, 28, u32::MAX)))
        .collect();
    if let Some(first) = newer.first() {
        let (a, b, c) = first.busybox.unwrap_or_default();
        let mut d = Diagnosis::new(
            "busybox-nslookup",
            format!("busybox {a}.{b}.{c} (newer than 1.28) answers NXDOMAIN for short names such as {} even when cluster DNS works: its nslookup does not apply the search domains", first.query),
            "use busybox:1.28 for DNS tests (verify.image in the lab file), or query the full name kubernetes.default.svc.<domain>".to_string(),
            &[CheckId::Dns],
        );
        for p in newer {
            d = d.with(format!(
                "{}: nslookup {} → NXDOMAIN (busybox {a}.{b}.{c})",
                p.node, p.query
            ));
        }
        out.push(d);
    }
}

/// A pod whose failed lookup went to servers other than the cluster DNS
/// service: its own /etc/resolv.conf (kubelet's, or on netns labs
/// /etc/netns/<pod>/resolv.conf) does not name the service IP.
fn pod_resolv_conf(lab: &LabView, ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let service = lab.dns_service_ip;
    for p in ev.dns.iter().filter(|p| !p.ok) {
        if p.nameservers.is_empty() || p.nameservers.contains(&service) {
            continue;
        }
        let named: Vec<String> = p.nameservers.iter().map(Ipv4Addr::to_string).collect();
        let named = named.join(", ");
        out.push(
            Diagnosis::new(
                "pod-resolv-conf",
                format!("the pod on {} asks {named} for names, not the cluster DNS service {service}: its /etc/resolv.conf is wrong", p.node),
                format!("`labctl up` rewrites the pod's resolv.conf (nameserver {service}, the cluster search list, ndots:5), as kubelet writes it for ClusterFirst pods; look with `labctl exec {} -- cat /etc/netns/<pod>/resolv.conf` on netns and network-only labs", p.node),
                &[CheckId::Dns],
            )
            .on(&p.node)
            .by_up()
            .with(format!("{}: resolv.conf nameserver {named}; nslookup {} failed", p.node, p.query)),
        );
    }
}

/// The reasons a kubelet gives for an image it cannot fetch.
const IMAGE_PULL_REASONS: &[&str] = &["ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull"];

fn image_pull(ev: &Evidence, out: &mut Vec<Diagnosis>) {
    // One cause per node: the registry is reached (or not) from each node
    // on its own, through that node's NAT NIC, proxy and DNS.
    for pod in &ev.pods {
        let Some(problem) = &pod.problem else {
            continue;
        };
        if !IMAGE_PULL_REASONS.iter().any(|r| problem.contains(r)) {
            continue;
        }
        out.push(
            Diagnosis::new(
                "image-pull",
                format!(
                    "{} cannot pull the image of {}: the container runtime on {} does not reach the registry, or the image name is wrong",
                    pod.node, pod.name, pod.node
                ),
                format!(
                    "on {}: check its internet access, DNS and proxy (`crictl pull busybox:1.28` shows the runtime's error), or import the image offline (`ctr -n k8s.io images import busybox.tar`); then run labctl verify again",
                    pod.node
                ),
                &[CheckId::Pods],
            )
            .on(&pod.node)
            .with(format!("{}: {problem}", pod.name)),
        );
    }
}

fn other_drift(ev: &Evidence, out: &mut Vec<Diagnosis>) {
    let rest: Vec<&Drift> = ev
        .drift
        .iter()
        .filter(|d| drift_kind(d) == DriftKind::Other)
        .collect();
    let nodes: BTreeSet<&str> = rest.iter().map(|d| d.node.as_str()).collect();
    for node in nodes {
        let mut d = Diagnosis::new(
            "drift",
            format!("{node} differs from its plan"),
            "labctl up (converges the node back to the plan)".to_string(),
            &[CheckId::Dataplane],
        )
        .on(node)
        .by_up();
        for r in rest.iter().filter(|r| r.node == node) {
            d = d.with(r.line());
        }
        out.push(d);
    }
}

fn unreachable(ev: &Evidence, out: &mut Vec<Diagnosis>) {
    for r in ev
        .reach
        .iter()
        .filter(|r| !r.reachable || r.agent_version.is_none())
    {
        let (cause, message) = if !r.reachable {
            (
                "node-unreachable",
                format!("{} does not answer over SSH", r.node),
            )
        } else {
            (
                "agent-missing",
                format!("{} has no working labctl-agent", r.node),
            )
        };
        let mut d = Diagnosis::new(
            cause,
            message,
            "labctl up (starts the node and uploads the agent)".to_string(),
            &[CheckId::Nodes],
        )
        .on(&r.node)
        .by_up();
        if let Some(e) = &r.error {
            d = d.with(format!("{}: {e}", r.node));
        }
        out.push(d);
    }
}

#[cfg(test)]
#[path = "diagnose/tests.rs"]
pub(crate) mod tests;
