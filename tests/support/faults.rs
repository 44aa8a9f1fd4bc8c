//! The iptables commands that inject (and undo) verify's firewall faults
//! on a flannel node, shared by the hand-built lab's probe test, the CLI
//! fault-injection test and the egress tests of ssh and kubeadm labs:
//! `op` is the iptables operation (`-A`, `-I` to inject a rule, `-D` to
//! delete one).

/// flannel's jump from FORWARD to FLANNEL-FWD.
pub fn forward_jump(op: &'static str) -> Vec<&'static str> {
    vec![
        "iptables",
        "-w",
        op,
        "FORWARD",
        "-m",
        "comment",
        "--comment",
        "flanneld forward",
        "-j",
        "FLANNEL-FWD",
    ]
}

/// flannel's jump from nat POSTROUTING to FLANNEL-POSTRTG, as the
/// `postrouting-jump` drill spells it.
pub fn postrouting_jump(op: &'static str) -> Vec<&'static str> {
    labctl::drill::table::masq_jump(op).to_vec()
}

/// A rule dropping VXLAN (UDP 8472) arriving at the node.
pub fn vxlan_drop(op: &'static str) -> Vec<&'static str> {
    vec![
        "iptables", "-w", op, "INPUT", "-p", "udp", "--dport", "8472", "-j", "DROP",
    ]
}
