//! The host's neighbour (ARP) table, which every network namespace shares:
//! its limits, and whether it refused entries while verify probed. At 50
//! nodes a lab needs about 2,750 dynamic entries, more than the default
//! `gc_thresh3` of 1,024, and pairs of pods then silently stop answering.
//! verify warns (without failing) where the limits are below what the lab
//! needs, naming the nodes and the sysctls to raise.

use labctl_lab::neighbour_limits::neighbour_entries_per_node;

use super::evidence::{neighbour_entries_needed, suggested_gc_thresh, Evidence, NeighbourTable};
use super::model::{LabView, Warning};
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

/// The sysctls, as `sysctl -w` names them.
const SYSCTLS: [&str; 3] = [
    "net.ipv4.neigh.default.gc_thresh1",
    "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3",
];

/// Three numbers, one a line.
pub(super) fn parse_gc_thresh(text: &str) -> Option<[u32; 3]> {
    let v: Vec<u32> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

/// Warnings for nodes whose neighbour table would evict the lab's entries:
/// above gc_thresh2 the kernel garbage-collects entries older than 5 s on
/// every allocation (a cross-node ping then waits for ARP again), above
/// gc_thresh3 it refuses new ones. netns nodes share this host's table and
/// its thresholds (they are not per namespace): the warning names every
/// node and the host's sysctls; other labs' nodes each have their own.
pub fn warnings(view: &LabView, ev: &Evidence) -> Vec<Warning> {
    let mut out = Vec::new();
    let all: Vec<String> = view.nodes.iter().map(|n| n.name.clone()).collect();
    if let Some(t) = &ev.neighbour_table {
        let shared = format!(
            "these nodes are network namespaces on this host and share its kernel's one neighbour table (gc_thresh is not per namespace); the lab of {} nodes needs about {} dynamic entries in it",
            all.len(),
            t.needed
        );
        out.extend(limit_warning(
            all,
            t.gc_thresh,
            t.needed,
            shared,
            "on this host",
        ));
    }
    let per_node = neighbour_entries_per_node(view.nodes.len());
    for (node, gc) in &ev.node_gc_thresh {
        let own = format!("the node needs about {per_node} dynamic entries (one per peer node's underlay address, plus its pods')");
        out.extend(limit_warning(
            vec![node.clone()],
            *gc,
            per_node,
            own,
            &format!("on node {node}"),
        ));
    }
    out
}

fn limit_warning(
    nodes: Vec<String>,
    gc: [u32; 3],
    needed: u32,
    why: String,
    place: &str,
) -> Option<Warning> {
    if needed <= gc[1] {
        return None;
    }
    let suggested = suggested_gc_thresh(needed);
    let raise: Vec<String> = (0..3)
        .filter(|&i| gc[i] < suggested[i])
        .map(|i| format!("{}={}", SYSCTLS[i], suggested[i]))
        .collect();
    let fate = if needed > gc[2] {
        format!(
            "above {} = {} the kernel refuses new entries and packets to those peers are dropped",
            SYSCTLS[2], gc[2]
        )
    } else {
        format!(
            "above {} = {} the kernel garbage-collects entries older than 5 s, so traffic between nodes keeps waiting for ARP (and at {} = {} new entries are refused)",
            SYSCTLS[1], gc[1], SYSCTLS[2], gc[2]
        )
    };
    Some(Warning {
        id: "neighbour-table-limits",
        nodes,
        message: format!("{why}; {fate}"),
        fix: format!(
            "raise the limits {place}: sysctl -w {} (a file in /etc/sysctl.d/ keeps them across reboots)",
            raise.join(" ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_thresh_parses_three_lines() {
        assert_eq!(parse_gc_thresh("128\n512\n1024\n"), Some([128, 512, 1024]));
        assert_eq!(parse_gc_thresh("128\n512\n"), None);
        assert_eq!(parse_gc_thresh("a\nb\nc\n"), None);
    }

    #[test]
    fn warns_above_gc_thresh2_naming_node_and_sysctl() {
        let w = limit_warning(
            vec!["w3".into()],
            [8, 12, 1024],
            24,
            "why".into(),
            "on node w3",
        )
        .expect("24 entries > gc_thresh2 12");
        assert_eq!(w.nodes, ["w3"]);
        assert!(
            w.fix.contains("net.ipv4.neigh.default.gc_thresh2=512"),
            "{}",
            w.fix
        );
        assert!(!w.fix.contains("gc_thresh3="), "{}", w.fix);
        assert!(w.message.contains("garbage-collects"), "{}", w.message);
        let full =
            limit_warning(vec!["w3".into()], [8, 12, 16], 24, "why".into(), "here").expect("warns");
        assert!(
            full.message.contains("refuses new entries"),
            "{}",
            full.message
        );
        assert!(full.fix.contains("gc_thresh3=1024"), "{}", full.fix);
        assert!(limit_warning(vec![], [128, 512, 1024], 24, "why".into(), "here").is_none());
    }
}
