//! Wall time per phase of `labctl up` (nodes, SSH, agent, data plane (with the pods),
//! DNS, kubeadm), for the table `up` ends with.
//!
//! Nodes work in parallel, so a phase is timed as the union of the intervals
//! during which any node was in it: two nodes connecting at the same time
//! count once, and a phase entered twice (kubeadm before and after the
//! agent) counts both stretches but not the gap between them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One phase of `up`, in the order the table lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The provider makes the machines exist and answer.
    Nodes,
    /// kubeadm: node preparation, init, join, podCIDRs, CoreDNS.
    Kubeadm,
    /// SSH sessions to the nodes.
    Ssh,
    /// The agent staged and uploaded.
    Agent,
    /// The node's one agent command: `apply` (flannel.1, cni0, routes,
    /// FDB, iptables), the busybox pods (and the DNS pod).
    DataPlane,
    /// The DNS server and each node's service rules.
    Dns,
}

impl Phase {
    /// The name shown in the table and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Nodes => "nodes",
            Phase::Kubeadm => "kubeadm",
            Phase::Ssh => "ssh",
            Phase::Agent => "agent",
            Phase::DataPlane => "data plane",
            Phase::Dns => "dns",
        }
    }
}

/// The intervals each phase ran in; shared by the threads working on nodes.
#[derive(Default)]
pub struct PhaseClock {
    spans: Mutex<Vec<(Phase, Instant, Instant)>>,
}

impl PhaseClock {
    pub fn new() -> PhaseClock {
        PhaseClock::default()
    }

    /// Runs `f` as part of `phase` and records how long it ran (failed or
    /// not).
    pub fn time<T>(&self, phase: Phase, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = f();
        let ended = Instant::now();
        if let Ok(mut spans) = self.spans.lock() {
            spans.push((phase, started, ended));
        }
        value
    }

    /// Each phase that ran, in table order, with its wall time.
    pub fn totals(&self) -> Vec<(Phase, Duration)> {
        let spans = match self.spans.lock() {
            Ok(spans) => spans.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut phases: Vec<Phase> = spans.iter().map(|s| s.0).collect();
        phases.sort();
        phases.dedup();
        phases
            .into_iter()
            .map(|phase| {
                let mut intervals: Vec<(Instant, Instant)> = spans
                    .iter()
                    .filter(|s| s.0 == phase)
                    .map(|s| (s.1, s.2))
                    .collect();
                (phase, union_length(&mut intervals))
            })
            .collect()
    }
}

/// The total length covered by `intervals` (overlaps counted once).
fn union_length(intervals: &mut [(Instant, Instant)]) -> Duration {
    intervals.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for &(start, end) in intervals.iter() {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_intervals_count_once_and_gaps_not_at_all() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        // Two nodes in parallel (0-100, 50-150), then again later (300-400).
        let mut intervals = vec![(at(300), at(400)), (at(0), at(100)), (at(50), at(150))];
        assert_eq!(
            union_length(&mut intervals),
            Duration::from_millis(250),
            "0-150 and 300-400"
        );
        assert_eq!(union_length(&mut []), Duration::ZERO);
    }

    #[test]
    fn totals_list_the_phases_that_ran_in_table_order() {
        let clock = PhaseClock::new();
        clock.time(Phase::Dns, || ());
        clock.time(Phase::Nodes, || {
            std::thread::sleep(Duration::from_millis(20))
        });
        let totals = clock.totals();
        let names: Vec<&str> = totals.iter().map(|(p, _)| p.name()).collect();
        assert_eq!(names, ["nodes", "dns"]);
        assert!(totals[0].1 >= Duration::from_millis(20), "{totals:?}");
    }
}
