//! Options every command shares (verbosity, output format, colour).

/// `--output text|json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Global options after parsing, handed to every command.
#[derive(Clone, Debug, Default)]
pub struct GlobalOpts {
    /// `-v` count.
    pub verbose: u8,
    /// `-q`.
    pub quiet: bool,
    /// `--output`.
    pub output: OutputFormat,
    /// Colour allowed: stdout is a TTY and NO_COLOR is unset.
    pub color: bool,
}

impl GlobalOpts {
    /// Global options with colour decided for stdout (TTY, NO_COLOR).
    pub fn new(verbose: u8, quiet: bool, output: OutputFormat) -> GlobalOpts {
        use std::io::IsTerminal;
        GlobalOpts {
            verbose,
            quiet,
            output,
            color: color_allowed(std::io::stdout().is_terminal()),
        }
    }
}

/// Colour is allowed on a terminal unless NO_COLOR is set to anything
/// non-empty (<https://no-color.org>).
pub fn color_allowed(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stderr may be coloured (errors and warnings go there).
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    color_allowed(std::io::stderr().is_terminal())
}

/// The few styles labctl uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Bold,
    Red,
    Yellow,
    Green,
}

/// `text` wrapped in the ANSI codes for `style` when `color` is on.
pub fn paint(text: &str, style: Style, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Red => "1;31",
        Style::Yellow => "33",
        Style::Green => "32",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A plain text table: a header row and rows, columns padded to the widest
/// cell, two spaces apart, no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<pad$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Whether stdout is a pipe or socket whose reading end is gone, as when
/// `labctl exec master -- ip route | head -1` has printed its line.
///
/// The Rust runtime ignores SIGPIPE, so such a write fails with EPIPE
/// (an error, or a panic inside `println!`); `main` asks this before it
/// reports either, so that only a closed stdout ends labctl quietly and a
/// broken pipe to one of labctl's own children is still reported.
pub fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; poll only writes `revents`.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & libc::POLLERR != 0
}

/// End labctl as `cat` or `grep` end when their reader has gone: killed
/// by SIGPIPE, which shells do not report and `set -o pipefail` sees as
/// status 141.
pub fn end_by_sigpipe() -> ! {
    // SAFETY: restoring the default action and raising a signal at
    // ourselves; nothing else in the process depends on SIGPIPE's action
    // at this point, the last thing labctl does.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}
