//! Lab names from the command line (`destroy --name`, `status --name`,
//! `ssh`/`exec --lab`) follow the lab file's rule for `name`
//! ([`labctl_lab::is_lab_name`]: a lowercase DNS label of at most 20
//! characters) before they become a state path: a word like `..`, `/abs`
//! or `a/b` must never reach `remove_dir_all`. clap checks `--name` as it
//! parses, and [`crate::paths::lab_dir`] checks again, so no path is built
//! from a word that skipped the parser.
//!
//! Messages show such words through [`quoted`], so a newline or an escape
//! sequence in one cannot forge labctl's output.

use anyhow::anyhow;

use crate::exit::ExitError;

/// `word` in backticks, control characters escaped (`\n`, `\u{1b}`).
pub fn quoted(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('`');
    for c in word.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// Why `word` is not a lab name, or `None` when it is one.
fn refusal(word: &str) -> Option<String> {
    (!labctl_lab::is_lab_name(word)).then(|| {
        format!(
            "{} is not a lab name: {}",
            quoted(word),
            labctl_lab::LAB_NAME_RULE
        )
    })
}

/// Refuses (exit 2) a word that is not a lab name.
pub fn check_lab_name(word: &str) -> anyhow::Result<()> {
    match refusal(word) {
        None => Ok(()),
        Some(why) => Err(ExitError::usage(anyhow!(why))),
    }
}

/// clap's value parser for a lab name argument: the same rule while the
/// command line is parsed (clap exits 2 and names the option).
pub fn lab_name_arg(word: &str) -> Result<String, String> {
    match refusal(word) {
        None => Ok(word.to_string()),
        Some(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "..", "../x", "/abs", "a/b", "", ".", "a;b", "$(x)", "a\nb", "Lab", "-a", "a b",
    ];

    #[test]
    fn lab_names_pass_and_hostile_words_are_refused_by_name() {
        for ok in ["flannel", "lab-1", "a", &"a".repeat(20)] {
            assert!(check_lab_name(ok).is_ok(), "{ok}");
            assert_eq!(lab_name_arg(ok).unwrap(), ok);
        }
        let long = "a".repeat(300);
        for word in HOSTILE
            .iter()
            .copied()
            .chain([long.as_str(), &"a".repeat(21)])
        {
            let err = check_lab_name(word).unwrap_err();
            assert_eq!(crate::exit::exit_code_for(&err), crate::exit::USAGE);
            let message = format!("{err:#}");
            assert!(message.contains(&quoted(word)), "{message}");
            assert!(message.contains("at most 20 lowercase"), "{message}");
            assert_eq!(lab_name_arg(word).unwrap_err(), message);
        }
    }

    #[test]
    fn quoting_escapes_control_characters_only() {
        assert_eq!(quoted("a\nb"), "`a\\nb`");
        assert_eq!(quoted("\u{1b}[31m"), "`\\u{1b}[31m`");
        assert_eq!(quoted("it's $(x) ü"), "`it's $(x) ü`");
        assert_eq!(quoted(""), "``");
    }
}
