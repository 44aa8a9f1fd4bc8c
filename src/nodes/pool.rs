//! A small worker pool for the per-node SSH work: at most [`WORKERS`]
//! threads take nodes one after another, instead of one thread per node.
//! On a 2-core machine fifty SSH handshakes at once only queue for the CPU
//! (and for sshd's MaxStartups); a bounded pool finishes as early and keeps
//! memory and scheduler churn flat as labs grow.
//!
//! [`fan_out`] is the lifecycle's variant: how many nodes it works on at
//! once adapts ([`Throttle`]): it starts at twice the cores plus a few,
//! halves when a node's SSH handshake times out (this host or the nodes
//! are too busy to answer in time) and grows back one step at a time while
//! nodes answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

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

/// Adaptive bound on the nodes worked on at once: a counting semaphore
/// whose limit halves on [`Throttle::overloaded`] and grows by one after
/// every [`GROW_AFTER`] nodes finished without a timeout.
pub struct Throttle {
    state: Mutex<ThrottleState>,
    freed: Condvar,
    floor: usize,
    ceiling: usize,
}

#[derive(Debug, Clone, Copy)]
struct ThrottleState {
    limit: usize,
    in_use: usize,
    calm: usize,
}

/// Nodes finished without a handshake timeout before the limit grows by one.
pub const GROW_AFTER: usize = 4;

impl Throttle {
    /// Starts at `start`, never below `floor` nor above `ceiling`.
    pub const fn new(start: usize, floor: usize, ceiling: usize) -> Throttle {
        Throttle {
            state: Mutex::new(ThrottleState {
                limit: start,
                in_use: 0,
                calm: 0,
            }),
            freed: Condvar::new(),
            floor,
            ceiling,
        }
    }

    /// Sized for this host: 2 × cores + 4 to start (SSH work is mostly
    /// waiting on the node), between 2 and 4 × cores + 8.
    pub fn for_this_host() -> Throttle {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Throttle::new(2 * cores + 4, 2, 4 * cores + 8)
    }

    /// The most nodes it ever lets through at once.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than the limit are in flight and takes a slot.
    fn acquire(&self) {
        let mut s = self.lock();
        while s.in_use >= s.limit {
            s = self.freed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.in_use += 1;
    }

    fn release(&self) {
        let mut s = self.lock();
        s.in_use = s.in_use.saturating_sub(1);
        s.calm += 1;
        if s.calm >= GROW_AFTER && s.limit < self.ceiling {
            s.limit += 1;
            s.calm = 0;
        }
        drop(s);
        self.freed.notify_all();
    }

    /// A handshake timed out: fewer nodes at once from now on.
    pub fn overloaded(&self) {
        let mut s = self.lock();
        s.limit = (s.limit / 2).max(self.floor);
        s.calm = 0;
    }
}

/// The lifecycle's fan-out limit, shared by everything one labctl run does
/// on its nodes (the SSH connect reports timeouts to it).
pub fn throttle() -> &'static Throttle {
    static THROTTLE: std::sync::OnceLock<Throttle> = std::sync::OnceLock::new();
    THROTTLE.get_or_init(Throttle::for_this_host)
}

/// Runs `work` on every item under `throttle` (at most its ceiling of
/// threads, at most its current limit working at once); results in the
/// order of `items`. A panic in `work` is raised again here.
pub fn fan_out<T, R, F>(throttle: &Throttle, items: Vec<T>, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let results = map(
        items,
        throttle.ceiling(),
        |item| {
            throttle.acquire();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item)));
            throttle.release();
            r
        },
        |_| Err(Box::new("a worker thread ended early") as Box<dyn std::any::Any + Send>),
    );
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_halves_on_timeouts_and_grows_back() {
        let t = Throttle::new(8, 2, 10);
        t.overloaded();
        assert_eq!(t.limit(), 4);
        t.overloaded();
        t.overloaded();
        assert_eq!(t.limit(), 2, "never below the floor");
        for _ in 0..GROW_AFTER {
            t.acquire();
            t.release();
        }
        assert_eq!(t.limit(), 3);
        for _ in 0..100 {
            t.acquire();
            t.release();
        }
        assert_eq!(t.limit(), 10, "never above the ceiling");
    }

    #[test]
    fn fan_out_keeps_order_and_stays_under_the_limit() {
        let t = Throttle::new(3, 1, 3);
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = fan_out(&t, (0..30).collect(), |i: usize| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            if i == 5 {
                // A timeout half-way: the limit drops to 1.
                t.overloaded();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i + 1
        });
        assert_eq!(out, (1..31).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

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
