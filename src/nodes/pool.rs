//! A small worker pool for the per-node SSH work: at most [`WORKERS`]
//! threads take nodes one after another, instead of one thread per node.
//! On a 2-core machine fifty SSH handshakes at once only queue for the CPU
//! (and for sshd's MaxStartups); a bounded pool finishes as early and keeps
//! memory and scheduler churn flat as labs grow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Upper bound of threads talking to nodes at once. SSH work is mostly
/// waiting on the node (fork/exec of the remote command), so a few workers
/// per core keep both cores busy.
pub const WORKERS: usize = 12;

/// Runs `work` on every item with at most `workers` threads; results come
/// back in the order of `items`. A panicking item yields `on_panic(item
/// index)` instead of tearing the run down.
pub fn map<T, R, F>(items: Vec<T>, workers: usize, work: F, on_panic: impl Fn(usize) -> R) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let item = queue[i].lock().ok().and_then(|mut slot| slot.take());
                let Some(item) = item else { continue };
                // A panic is caught per item so the other nodes still get
                // their answer (the worker goes on with the next one).
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item)));
                if let (Ok(r), Ok(mut slot)) = (r, results[i].lock()) {
                    *slot = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| on_panic(i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_bounds_threads() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = map(
            (0..40).collect(),
            4,
            |i: usize| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                i * 2
            },
            |_| usize::MAX,
        );
        assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn a_panicking_item_gets_the_fallback() {
        let out = map(
            vec![1, 2, 3],
            2,
            |i: i32| {
                if i == 2 {
                    panic!("boom");
                }
                i
            },
            |i| -(i as i32),
        );
        assert_eq!(out, vec![1, -1, 3]);
    }
}
