//! The pods verify probes from, and the pairs its probes run between:
//! the ring round the usable pods (`vxlan`, `mtu`) and the mesh. Pure.

use std::net::Ipv4Addr;

/// A pod verify can probe: its node (index in the view, and name), its
/// name, what reaches it (its namespace on the node, or its Kubernetes
/// name), its IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbePod {
    pub at: usize,
    pub node: String,
    pub name: String,
    pub handle: String,
    pub ip: Ipv4Addr,
    /// Its eth0's MTU when already read (netns pods, by the node check).
    pub eth0_mtu: Option<u32>,
}

/// Ring pairs over the usable pods: pod i sends to pod i+1.
pub(crate) fn ring(n: usize) -> Vec<(usize, usize)> {
    if n < 2 {
        return Vec::new();
    }
    (0..n).map(|i| (i, (i + 1) % n)).collect()
}

/// The pairs the DF pings of `mtu` run between: both ways round the ring
/// (with two pods one way round is both ways already).
pub(crate) fn mtu_pairs(n: usize) -> Vec<(usize, usize)> {
    let mut pairs = ring(n);
    if n > 2 {
        pairs.extend(ring(n).into_iter().map(|(a, b)| (b, a)));
    }
    pairs
}

/// Each pair (of indexes in `ok`) as (sender node, receiver node, sender
/// pod IP, receiver pod IP).
pub(crate) fn ring_pairs(
    pairs: &[(usize, usize)],
    ok: &[ProbePod],
) -> Vec<(String, String, Ipv4Addr, Ipv4Addr)> {
    pairs
        .iter()
        .map(|(a, b)| {
            let (pa, pb) = (&ok[*a], &ok[*b]);
            (pa.node.clone(), pb.node.clone(), pa.ip, pb.ip)
        })
        .collect()
}
