//! What a lab asks of its hosts' neighbour tables: how many dynamic
//! entries it holds at once, and the gc_thresh limits that hold them. Pure:
//! `up` raises the limits on netns hosts, verify warns where they are low.

/// Dynamic neighbour entries a lab of `nodes` nodes (one pod each, the DNS
/// pod on one) holds at once while every pod talks to every other pod:
/// each node resolves every peer's underlay address (n·(n−1)), plus per
/// node its pods' gateway and cni0 entries, the host and outside
/// namespace seen from the node and the node seen from both.
pub fn neighbour_entries_needed(nodes: usize) -> u32 {
    let n = nodes as u64;
    u32::try_from(n * n.saturating_sub(1) + 6 * n).unwrap_or(u32::MAX)
}

/// Dynamic neighbour entries one node of a lab of `nodes` nodes holds
/// when it is a machine of its own (its own table): its peers' underlay
/// addresses plus its pods' and neighbours' few.
pub fn neighbour_entries_per_node(nodes: usize) -> u32 {
    neighbour_entries_needed(nodes) / (nodes.max(1) as u32)
}

/// Limits (gc_thresh1, 2, 3) that hold `needed` dynamic entries with room
/// to spare: gc_thresh2 (above which the kernel evicts hard) at or above
/// the need, gc_thresh3 (the hard cap) twice that, powers of two, never
/// below the kernel defaults (128, 512, 1024).
pub fn suggested_gc_thresh(needed: u32) -> [u32; 3] {
    let third = needed
        .saturating_mul(2)
        .max(1024)
        .checked_next_power_of_two()
        .unwrap_or(u32::MAX);
    [(third / 8).max(128), (third / 2).max(512), third]
}
