//! The active drill of a lab: `drill.json` in the lab's state folder,
//! written atomically (`labctl_atomicfile`), so `hint`, `check` and
//! `reset` know which fault is in place, where, and which rung of the
//! hint ladder the learner has reached.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::LabDir;

/// One drill in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveDrill {
    /// The drill's name (`table::DRILLS`).
    pub drill: String,
    /// The node the fault is on, and the peer it is about.
    pub node: String,
    pub peer: String,
    /// How many hints `drill hint` has shown.
    #[serde(default)]
    pub hints_shown: usize,
}

/// Where a lab's active drill is recorded.
pub fn path(dir: &LabDir) -> PathBuf {
    dir.path.join("drill.json")
}

/// The lab's active drill, if any.
pub fn load(dir: &LabDir) -> Result<Option<ActiveDrill>> {
    let file = path(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let drill = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a drill record (remove it, then `labctl up` restores the lab)",
            file.display()
        )
    })?;
    Ok(Some(drill))
}

/// Records `drill` as the lab's active drill (temporary file, rename).
pub fn save(dir: &LabDir, drill: &ActiveDrill) -> Result<()> {
    let text = serde_json::to_string_pretty(drill).context("encoding the drill record")?;
    crate::state::write_private(&path(dir), text.as_bytes())
}

/// Forgets the lab's active drill (no error when there is none).
pub fn clear(dir: &LabDir) -> Result<()> {
    match std::fs::remove_file(path(dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path(dir).display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_clears() {
        let root = tempfile::tempdir().unwrap();
        let dir = LabDir {
            path: root.path().join("lab1"),
        };
        dir.create().unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        let mut drill = ActiveDrill {
            drill: "fdb-entry".into(),
            node: "worker1".into(),
            peer: "worker2".into(),
            hints_shown: 0,
        };
        save(&dir, &drill).unwrap();
        assert_eq!(load(&dir).unwrap().as_ref(), Some(&drill));
        drill.hints_shown = 2;
        save(&dir, &drill).unwrap();
        assert_eq!(load(&dir).unwrap().unwrap().hints_shown, 2);
        // Only the record is left: no temporary file beside it.
        let names: Vec<_> = std::fs::read_dir(&dir.path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["drill.json"]);
        clear(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        clear(&dir).unwrap();
    }

    #[test]
    fn a_broken_record_says_which_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = LabDir {
            path: root.path().to_path_buf(),
        };
        std::fs::write(path(&dir), "{not json").unwrap();
        let err = format!("{:#}", load(&dir).unwrap_err());
        assert!(
            err.contains("drill.json") && err.contains("not a drill record"),
            "{err}"
        );
    }
}
