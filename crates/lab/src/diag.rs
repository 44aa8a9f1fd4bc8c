//! Diagnostics: one problem in a lab file, with where it is and what to do.

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a lab file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the caller named it.
    pub file: String,
    /// Field path, e.g. `nodes[2].ip`; empty for the document itself.
    pub path: String,
    /// 1-based line and column, where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// What is wrong, one sentence.
    pub message: String,
    /// What to do about it, if there is a useful suggestion.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    /// `file:line:column: error: nodes[2].ip: message (hint)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}:", self.file)?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            f.write_str(" ")?;
        }
        f.write_str(match self.severity {
            Severity::Error => "error: ",
            Severity::Warning => "warning: ",
        })?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    /// True for error severity (the lab cannot be used).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Every error-severity problem found in a lab file (plus any warnings found
/// on the way). Displays as one line per diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabError {
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LabError {}
