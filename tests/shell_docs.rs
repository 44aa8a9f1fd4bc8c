//! Shell completions and man pages, both generated from the clap
//! definitions: the bash script loads in a real bash, the man pages render
//! with a real `man -l`, and every command has its page.

mod common;

use std::process::Command;

use common::*;

/// The commands `labctl --help` lists (clap's own `help` aside).
fn commands() -> Vec<String> {
    use clap::CommandFactory;
    // Hidden commands are labctl's own (the session keeper), not the user's.
    labctl::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn bash_completion_loads_and_completes_commands() {
    let bin = env!("CARGO_BIN_EXE_labctl");
    let script = format!(
        "source <('{bin}' completions bash) && complete -p labctl && \
         COMP_WORDS=(labctl in) COMP_CWORD=1 COMP_LINE='labctl in' COMP_POINT=9 && \
         _labctl labctl in labctl && printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _labctl labctl"), "{stdout}");
    assert!(
        stdout.contains("reply:init"),
        "`labctl in<TAB>` offers init:\n{stdout}"
    );
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["zsh", "fish"] {
        let run = run_in(dir.path(), &["completions", shell]);
        assert_eq!(run.code, 0, "{run}");
        for command in commands() {
            assert!(
                run.stdout.contains(&command),
                "{shell} script lacks {command}"
            );
        }
    }
    let run = run_in(dir.path(), &["completions", "tcsh"]);
    assert_eq!(run.code, 2, "{run}");
}

/// `man -l FILE` rendered to plain text, or None (with the reason printed)
/// where man is not installed.
fn render_man(page: &std::path::Path) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", "command -v man"])
        .output()
        .unwrap();
    if !found.status.success() {
        labctl_testenv::skip("man page rendering", "man (man-db) is not installed");
        return None;
    }
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l {}: {stderr}", page.display());
    assert!(
        !stderr.contains("warning"),
        "man -l {}: {stderr}",
        page.display()
    );
    Some(without_overstrike(&String::from_utf8_lossy(&out.stdout)))
}

/// man's bold and underline are `x\bx` and `_\bx` on a pager-less output.
fn without_overstrike(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn man_pages_cover_every_command_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let printed = run_in(dir.path(), &["man"]);
    assert_eq!(printed.code, 0, "{printed}");
    assert!(
        printed.stdout.contains(".TH labctl 1"),
        "roff title:\n{printed}"
    );

    let out = dir.path().join("man1");
    let run = run_in(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run}");
    let main = out.join("labctl.1");
    assert_eq!(
        std::fs::read_to_string(&main).unwrap(),
        printed.stdout,
        "--out writes the printed page"
    );
    let written = files_under(&out);
    // labctl.1, one page per command, and one per nested command (drill's).
    for page in &written {
        let stem = page.trim_end_matches(".1");
        assert!(
            stem == "labctl"
                || commands().iter().any(|c| {
                    stem == format!("labctl-{c}") || stem.starts_with(&format!("labctl-{c}-"))
                }),
            "{page} is no command's page: {written:?}"
        );
    }
    assert!(written.len() > commands().len(), "{written:?}");
    if let Some(text) = render_man(&main) {
        assert!(text.contains("labctl - "), "NAME section:\n{text}");
        for command in commands() {
            assert!(
                text.contains(&format!("labctl-{command}(1)")),
                "{command} in SEE ALSO/COMMANDS:\n{text}"
            );
        }
    }
    for command in commands() {
        let page = out.join(format!("labctl-{command}.1"));
        let roff =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            roff.starts_with(".ie \\n(.g") || roff.contains(".TH"),
            "{command}: {roff}"
        );
        assert!(
            roff.contains(&format!(".TH labctl-{command} 1")),
            "{command}: {roff}"
        );
        if let Some(text) = render_man(&page) {
            assert!(
                text.contains(&format!("labctl {command}")),
                "synopsis of {command}:\n{text}"
            );
        }
    }
}
