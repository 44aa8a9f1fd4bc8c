//! Step-by-step output for `up` and `destroy`, kind-style: each step ends in
//! a `✓ step (node) 0.3s` or `✗ step (node)` line. On a terminal, nodes
//! worked on in parallel get one live indicatif line each; elsewhere (CI,
//! pipes) plain lines only, because indicatif draws nothing when stderr is
//! not a TTY. `-q` prints nothing but errors.
//!
//! Steps also honour Ctrl-C: a step does not start once SIGINT arrived (see
//! [`crate::ui::interrupt`]), so the lab stays in a state `up`
//! resumes and `destroy` removes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The error a step returns when Ctrl-C stopped the run before it.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C) before step `{step}`")]
pub struct Interrupted {
    pub step: String,
}

/// Where step lines go.
pub struct Progress {
    quiet: bool,
    live: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Live bars when stderr is a terminal and not quiet.
    pub fn new(quiet: bool) -> Progress {
        let live = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Progress {
            quiet,
            live,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Prints one line (above the live bars when there are any).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Runs one step and reports it. `node` names the node it concerns
    /// (shown in the line and in the error).
    pub fn step<T>(
        &self,
        node: Option<&str>,
        name: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if crate::ui::interrupt::requested() {
            return Err(Interrupted {
                step: name.to_string(),
            }
            .into());
        }
        let bar = node.and_then(|n| self.bar(n));
        if let Some(bar) = &bar {
            bar.set_message(format!("{name}…"));
        }
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        let who = node.map(|n| format!(" ({n})")).unwrap_or_default();
        match &result {
            Ok(_) => self.line(&format!("✓ {name}{who} {}", seconds(took))),
            Err(_) => self.line(&format!("✗ {name}{who} {}", seconds(took))),
        }
        if let Some(bar) = &bar {
            bar.set_message(format!("{name} done"));
        }
        match (result, node) {
            (Ok(v), _) => Ok(v),
            (Err(e), Some(n)) if !e.is::<Interrupted>() => {
                Err(e.context(format!("node {n}: {name}")))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Marks a node finished (removes its live line).
    pub fn node_done(&self, node: &str) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(node) {
                bar.finish_and_clear();
            }
        }
    }

    fn bar(&self, node: &str) -> Option<ProgressBar> {
        let multi = self.live.as_ref()?;
        let mut bars = self.bars.lock().ok()?;
        let bar = bars.entry(node.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}") {
                bar.set_style(style);
            }
            bar.set_prefix(node.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Some(bar.clone())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

/// `0.3s` / `12s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1}s")
    } else {
        format!("{s:.0}s")
    }
}
