//! Where labctl keeps a lab's state on this host.
//!
//! Root (labs that touch the host, e.g. netns) uses the system location;
//! anyone else gets the XDG state folder, so `labctl render` works without
//! privileges.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::ExitError;

/// The state folder of the lab `name`:
/// `/var/lib/labctl/labs/<name>` as root, else
/// `$XDG_STATE_HOME/labctl/labs/<name>` (default `~/.local/state/...`).
/// A `name` that is not a lab name is refused (exit 2): every state path
/// is built here, so no word from the command line becomes a path unchecked.
pub fn lab_dir(name: &str) -> anyhow::Result<PathBuf> {
    let is_root = crate::process::is_root();
    lab_dir_for(
        name,
        is_root,
        std::env::var_os("XDG_STATE_HOME").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    )
}

/// [`lab_dir`] with its inputs spelled out (testable without changing the
/// process environment). An empty or relative XDG_STATE_HOME is ignored, as
/// the XDG spec says.
pub fn lab_dir_for(
    name: &str,
    is_root: bool,
    xdg_state_home: Option<&Path>,
    home: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    crate::names::check_lab_name(name)?;
    let base = if is_root {
        PathBuf::from("/var/lib/labctl")
    } else if let Some(state) = xdg_state_home.filter(|p| p.is_absolute()) {
        state.join("labctl")
    } else if let Some(home) = home.filter(|p| p.is_absolute()) {
        home.join(".local/state/labctl")
    } else {
        return Err(ExitError::environment(anyhow!(
            "cannot choose a state folder for lab {name}: neither XDG_STATE_HOME nor HOME is set"
        )));
    };
    Ok(base.join("labs").join(name))
}

/// Refuses (exit 2) an output file named on the command line whose folder
/// does not exist or that is a folder, before anything is written;
/// `example` is a file name to suggest (`lab.yaml`).
pub fn check_output_file(path: &Path, example: &str) -> anyhow::Result<()> {
    let shown = path.display();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ExitError::usage(anyhow!(
            "cannot write {shown}: the folder {} does not exist (create it first, or pick another -o)",
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(ExitError::usage(anyhow!(
            "cannot write {shown}: it is a folder (give a file name, e.g. -o {shown}/{example})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_var_lib() {
        let dir = lab_dir_for(
            "flannel",
            true,
            Some(Path::new("/x")),
            Some(Path::new("/root")),
        )
        .unwrap();
        assert_eq!(dir, Path::new("/var/lib/labctl/labs/flannel"));
    }

    #[test]
    fn users_get_xdg_state_home_then_home() {
        let xdg = lab_dir_for("a", false, Some(Path::new("/s")), Some(Path::new("/h"))).unwrap();
        assert_eq!(xdg, Path::new("/s/labctl/labs/a"));
        let home = lab_dir_for("a", false, Some(Path::new("rel")), Some(Path::new("/h"))).unwrap();
        assert_eq!(home, Path::new("/h/.local/state/labctl/labs/a"));
        assert!(lab_dir_for("a", false, None, None).is_err());
    }

    #[test]
    fn a_word_that_is_no_lab_name_never_becomes_a_path() {
        for word in ["..", "../x", "/abs", "a/b", "", "a\nb"] {
            let err = lab_dir_for(word, true, None, None).unwrap_err();
            assert_eq!(crate::exit::exit_code_for(&err), crate::exit::USAGE);
            let err = lab_dir_for(word, false, Some(Path::new("/s")), None).unwrap_err();
            assert!(format!("{err}").contains("is not a lab name"), "{err}");
        }
    }
}
