//! What labctl's tests do when they cannot run here, and one rule for "are
//! we in CI" shared by every test in the workspace.
//!
//! CI (`.ci/run`) runs as root and installs every tool the tests use, so a
//! test that would skip there is broken, not skipped: [`skip`] fails under
//! CI and only says why and returns elsewhere. Golden files are rewritten
//! only on a developer's machine: [`update_golden`] refuses under CI, which
//! must compare against the committed files.
//!
//! A small crate rather than a file included by path: the root crate's
//! tests, the agent's and the lab crate's are separate crates, and a
//! dev-dependency gives them one definition with its own tests and no
//! relative `#[path]` that breaks when a file moves.

/// True when `value`, an environment variable's value, turns a flag on:
/// set to anything but empty, `false` or `0` (any case, blanks around
/// ignored). `CI=true`, `CI=1` and `CI=yes` all mean CI.
pub fn flag_is_on(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") | Some("0") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

fn env_flag(name: &str) -> bool {
    flag_is_on(std::env::var(name).ok().as_deref())
}

/// True when tests run in CI (`CI` set to anything but empty, `false` or
/// `0`).
pub fn in_ci() -> bool {
    env_flag("CI")
}

/// Says why `test` cannot run here and returns false, so the test can
/// `return`; under CI it panics instead: a test must not pass there by
/// skipping.
pub fn skip(test: &str, why: &str) -> bool {
    skip_in(in_ci(), test, why)
}

fn skip_in(ci: bool, test: &str, why: &str) -> bool {
    assert!(
        !ci,
        "{test} cannot run in CI: {why} (CI installs every tool and runs as root, see .ci/run)"
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// True when the golden files are to be rewritten (`UPDATE_GOLDEN` on, by
/// the same rule as `CI`); panics under CI, which compares against the
/// committed files and never rewrites them.
pub fn update_golden() -> bool {
    update_golden_in(in_ci(), env_flag("UPDATE_GOLDEN"))
}

fn update_golden_in(ci: bool, requested: bool) -> bool {
    assert!(
        !(ci && requested),
        "UPDATE_GOLDEN is refused under CI: CI checks the committed golden files and never rewrites them; \
         regenerate them on a development machine (without CI set) and commit the reviewed diff"
    );
    requested
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_false_or_zero() {
        for on in ["true", "1", "yes", "TRUE", "on", " true "] {
            assert!(flag_is_on(Some(on)), "{on:?}");
        }
        for off in ["", " ", "0", "false", "FALSE", "False", " false "] {
            assert!(!flag_is_on(Some(off)), "{off:?}");
        }
        assert!(!flag_is_on(None));
    }

    #[test]
    fn a_skip_outside_ci_returns_false() {
        assert!(!skip_in(false, "t", "no tool"));
    }

    #[test]
    #[should_panic(expected = "t cannot run in CI: no tool")]
    fn a_skip_under_ci_fails() {
        skip_in(true, "t", "no tool");
    }

    #[test]
    fn golden_updates_only_when_asked_and_not_in_ci() {
        assert!(update_golden_in(false, true));
        assert!(!update_golden_in(false, false));
        assert!(!update_golden_in(true, false));
    }

    #[test]
    #[should_panic(expected = "UPDATE_GOLDEN is refused under CI")]
    fn golden_update_under_ci_fails() {
        update_golden_in(true, true);
    }
}
