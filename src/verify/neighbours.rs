//! The host's neighbour (ARP) table, which every network namespace shares:
//! its limits, and whether it refused entries while verify probed. At 50
//! nodes a lab needs about 2,750 dynamic entries, more than the default
//! `gc_thresh3` of 1,024, and pairs of pods then silently stop answering.

use super::evidence::{neighbour_entries_needed, NeighbourTable};
use super::parse;

/// The table's `table_fulls` counter (entries refused since boot), read in
/// this process's namespace: the statistics are global like the table.
pub fn table_fulls() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/net/stat/arp_cache").ok()?;
    parse::parse_arp_table_fulls(&stat)
}

/// gc_thresh1..3 as the host has them; None where the sysctls are not
/// visible (they exist in the initial network namespace only).
pub fn thresholds() -> Option<[u32; 3]> {
    // The same sysctls `up` raises for big netns labs.
    crate::provider::netns::neighbour_sysctls::read().ok()
}

/// The evidence for a lab of `nodes` nodes, given `table_fulls` as read
/// before the probes ran.
pub fn observe(nodes: usize, fulls_before: Option<u64>) -> Option<NeighbourTable> {
    let gc_thresh = thresholds()?;
    let refused = match (fulls_before, table_fulls()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    };
    let mut log_lines = parse::parse_neighbour_overflow(&recent_kernel_log());
    // The last few say enough (the kernel rate-limits them anyway).
    let keep = log_lines.len().saturating_sub(3);
    log_lines.drain(..keep);
    Some(NeighbourTable {
        gc_thresh,
        needed: neighbour_entries_needed(nodes),
        refused_during_probes: refused,
        log_lines,
    })
}

/// The kernel log of the last ten minutes (netns nodes share this host's
/// kernel); empty when dmesg cannot be read.
fn recent_kernel_log() -> String {
    let Ok(out) = std::process::Command::new("dmesg")
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return String::new();
    };
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let text = String::from_utf8_lossy(&out.stdout);
    super::parse::recent_kernel_lines(text.lines(), uptime)
}
