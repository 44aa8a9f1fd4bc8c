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
