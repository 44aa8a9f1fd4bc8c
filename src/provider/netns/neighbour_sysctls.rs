//! The host's neighbour (ARP) table limits. There is one table for all
//! network namespaces, capped by net.ipv4.neigh.default.gc_thresh3 (1,024
//! dynamic entries by default), and a netns lab needs about n·(n−1) of them
//! (every node resolves every peer's underlay address): from about 30 nodes
//! on, pods stop reaching each other and the kernel logs "neighbor table
//! overflow".
//!
//! `up` raises the limits only when the netns labs on this host together
//! need more than the host's own limits hold, and records the host's values
//! in the lab state first; `destroy` of the last lab holding such a record
//! puts them back (never raising anything on the way).

use anyhow::{Context, Result};

use crate::state::{LabDir, LabState, NeighbourLimits};
use labctl_lab::neighbour_limits::{neighbour_entries_needed, suggested_gc_thresh};

const NAMES: [&str; 3] = ["gc_thresh1", "gc_thresh2", "gc_thresh3"];

fn path(name: &str) -> String {
    format!("/proc/sys/net/ipv4/neigh/default/{name}")
}

/// gc_thresh1..3 as the host has them now.
pub fn read() -> Result<[u32; 3]> {
    let mut values = [0u32; 3];
    for (value, name) in values.iter_mut().zip(NAMES) {
        let p = path(name);
        let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {p}"))?;
        *value = text
            .trim()
            .parse()
            .with_context(|| format!("{p} holds {:?}, not a number", text.trim()))?;
    }
    Ok(values)
}

/// Writes the limits that differ from `current`; the cap first when
/// raising, last when lowering, so gc_thresh2 never exceeds gc_thresh3.
fn write(current: [u32; 3], values: [u32; 3]) -> Result<()> {
    let mut order = [0usize, 1, 2];
    if values[2] > current[2] {
        order.reverse();
    }
    for i in order {
        if values[i] == current[i] {
            continue;
        }
        let p = path(NAMES[i]);
        std::fs::write(&p, values[i].to_string())
            .with_context(|| format!("cannot set {p} to {}", values[i]))?;
    }
    Ok(())
}

/// The other netns labs on this host: their node count and their record.
fn other_labs(this_lab: &str) -> Vec<(usize, Option<NeighbourLimits>)> {
    crate::state::lab_names()
        .into_iter()
        .filter(|name| name != this_lab)
        .filter_map(|name| LabDir::new(&name).ok()?.load().ok())
        .filter_map(|state| {
            let ns = state.netns?;
            Some((ns.nodes.len(), ns.neighbour_limits))
        })
        .collect()
}

/// What `up` has to do: the host's original limits and the ones to set;
/// None when the netns labs on this host (this one with `nodes` nodes
/// included) fit the host's own limits, or an earlier `up` already raised
/// and recorded them.
pub fn plan(state: &LabState, nodes: usize) -> Result<Option<([u32; 3], [u32; 3])>> {
    let others = other_labs(&state.name);
    let needed = others
        .iter()
        .map(|(n, _)| neighbour_entries_needed(*n))
        .fold(neighbour_entries_needed(nodes), u32::saturating_add);
    let current = read()?;
    let own = state
        .netns
        .as_ref()
        .and_then(|n| n.neighbour_limits.clone());
    // The host's values before any lab raised them.
    let original = others
        .iter()
        .find_map(|(_, r)| r.clone())
        .or(own)
        .map_or(current, |r| r.previous);
    if needed <= original[1] {
        return Ok(None);
    }
    let wanted = suggested_gc_thresh(needed);
    Ok(Some((
        original,
        [0, 1, 2].map(|i| current[i].max(wanted[i])),
    )))
}

/// Records the host's `original` limits in the lab state, then sets
/// `target`. Returns true when a value changed.
pub fn raise(
    dir: &LabDir,
    state: &mut LabState,
    original: [u32; 3],
    target: [u32; 3],
) -> Result<bool> {
    if let Some(ns) = state.netns.as_mut() {
        ns.neighbour_limits = Some(NeighbourLimits { previous: original });
    }
    // Recorded before the change, so destroy can undo a half-done one.
    dir.save(state)?;
    let current = read()?;
    write(current, target)?;
    Ok(target != current)
}

/// Puts the host's values back when this lab raised them and no other lab
/// still needs them raised. Only lowers: a limit someone set lower since
/// stays as it is.
pub fn restore(this_lab: &str, record: Option<&NeighbourLimits>) -> Result<()> {
    let Some(record) = record else {
        return Ok(());
    };
    if other_labs(this_lab).iter().any(|(_, r)| r.is_some()) {
        return Ok(());
    }
    let current = read()?;
    let back = [0, 1, 2].map(|i| current[i].min(record.previous[i]));
    write(current, back).context("putting the host's neighbour table limits back")
}
