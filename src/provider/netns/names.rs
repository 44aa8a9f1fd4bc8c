//! Names of what a netns lab creates on this host.
//!
//! Namespaces are named for people (`<lab>-<node>`, `<lab>-ext`); host link
//! names must fit 15 bytes, so they are derived from a hash of the lab (and
//! node) name: `lcb` + 8 hex digits for the bridge, `lcx…` for the outside
//! world's veth, `lcv…` for a node's veth. All are recorded in state.json.

/// The node namespace of `node` in `lab`.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The "outside world" namespace of `lab`.
pub fn ext_netns(lab: &str) -> String {
    format!("{lab}-ext")
}

/// The lab's host bridge.
pub fn bridge(lab: &str) -> String {
    format!("lcb{}", short_hash(lab))
}

/// The host end of the outside world's veth.
pub fn ext_veth(lab: &str) -> String {
    format!("lcx{}", short_hash(lab))
}

/// The host end of `node`'s veth.
pub fn node_veth(lab: &str, node: &str) -> String {
    format!("lcv{}", short_hash(&format!("{lab}/{node}")))
}

/// 8 hex digits of FNV-1a 64 (stable across versions and hosts).
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", (h >> 32) ^ (h & 0xffff_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_fit_and_differ() {
        let names = [
            bridge("flannel"),
            ext_veth("flannel"),
            node_veth("flannel", "worker1"),
        ];
        for n in &names {
            assert!(n.len() <= 15, "{n}");
        }
        assert_ne!(
            node_veth("flannel", "worker1"),
            node_veth("flannel", "worker2")
        );
        assert_ne!(bridge("a"), bridge("b"));
        assert_eq!(bridge("flannel"), bridge("flannel"));
    }
}
