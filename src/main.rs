//! labctl: build, verify and tear down Kubernetes pod-network labs.
//!
//! Parse, run, and turn any error into `error: <message>` plus its cause
//! chain and the exit status `labctl::exit::exit_code_for` picks.

use std::process::ExitCode;

use clap::Parser;
use labctl::cli::{run, Cli};
use labctl::exit::exit_code_for;
use labctl::output::{end_by_sigpipe, paint, stderr_color, stdout_closed, Style};

fn main() -> ExitCode {
    // glibc gives each thread that allocates an arena of its own, up to 8
    // per core: with a thread per node (1,000 at once) that is memory kept
    // and fragmented for nothing on a 2-core machine. Two arenas: peak RSS
    // of a 1,000-node `up` 190 -> 140 MiB, its session keeper 144 -> 119.
    // SAFETY: mallopt only tunes the allocator, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // clap prints help/version (exit 0) and usage errors (exit 2) itself.
    let cli = Cli::parse();
    // This executable may start a lab's session keeper (itself, run as
    // `labctl keep-sessions`); library users and tests connect directly.
    if let Ok(executable) = std::env::current_exe() {
        labctl::nodes::keeper::enable(executable);
    }
    // A panic is a bug in labctl: say so in one line instead of a backtrace
    // dump, and still end with a failure status.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // `println!` panics when its reader has gone: not a bug, see below.
        if message.starts_with("failed printing to stdout") && stdout_closed() {
            return;
        }
        eprintln!("error: internal error in labctl{location}: {message} (please report this bug)");
    }));
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            if is_broken_pipe(&error) && stdout_closed() {
                end_by_sigpipe();
            }
            print_error(&error);
            ExitCode::from(exit_code_for(&error))
        }
        Err(_) if stdout_closed() => end_by_sigpipe(),
        Err(_) => ExitCode::from(labctl::exit::FAILED),
    }
}

/// Whether writing failed because a pipe's reader had gone. `main` ends
/// quietly only if that pipe is stdout: a child of labctl's that closed
/// its stdin early is still an error worth reporting.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `error: <message>`, then one `  caused by: ...` per cause; a lab file's
/// diagnostics are listed one per line.
fn print_error(error: &anyhow::Error) {
    let color = stderr_color();
    let mut lines = vec![format!("{} {error}", paint("error:", Style::Red, color))];
    for cause in error.chain().skip(1) {
        if let Some(lab_error) = cause.downcast_ref::<labctl_lab::LabError>() {
            for diagnostic in &lab_error.diagnostics {
                let style = match diagnostic.severity {
                    labctl_lab::Severity::Error => Style::Red,
                    labctl_lab::Severity::Warning => Style::Yellow,
                };
                lines.push(format!(
                    "  {}",
                    paint(&diagnostic.to_string(), style, color)
                ));
            }
        } else {
            lines.push(format!("  caused by: {cause}"));
        }
    }
    eprintln!("{}", lines.join("\n"));
}
