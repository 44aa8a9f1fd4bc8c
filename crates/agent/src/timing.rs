//! Phase timing for performance work: with `LABCTL_AGENT_TIMING` set, each
//! `lap` prints the milliseconds since the process started on stderr.
//! Costs nothing measurable when the variable is unset.

use std::sync::OnceLock;
use std::time::Instant;

/// (enabled, start) fixed at the first call (`start()` from main).
static CLOCK: OnceLock<(bool, Instant)> = OnceLock::new();

fn clock() -> &'static (bool, Instant) {
    CLOCK.get_or_init(|| {
        (
            std::env::var_os("LABCTL_AGENT_TIMING").is_some(),
            Instant::now(),
        )
    })
}

/// Starts the clock; call first thing in main.
pub fn start() {
    clock();
}

/// Prints `what: N ms` (since start) when timing is on.
pub fn lap(what: &str) {
    let (on, t0) = clock();
    if *on {
        eprintln!("{what}: {:.2} ms", t0.elapsed().as_secs_f64() * 1000.0);
    }
}
