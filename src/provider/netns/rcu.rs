//! Expedited RCU grace periods while a netns lab's links go away.
//!
//! Deleting a node's eth1 takes its VXLAN device (flannel.1) along, and the
//! kernel closes each VXLAN socket with a full RCU grace period, under the
//! RTNL lock: about 15 ms per node, one node after another (3 s of a
//! 200-node destroy, the machine otherwise idle). With
//! `/sys/kernel/rcu_expedited` set, a grace period takes microseconds.
//!
//! The knob is host-wide, so `destroy` sets it only while it removes the
//! lab's namespaces and links, and puts the host's value back right after.
//! Which labctl processes hold it, and the value to put back, are recorded
//! first in `<labctl state>/rcu-expedited.json` under the host lock: the
//! last holder restores it, and a holder killed before restoring is
//! noticed (its process is gone) by the next netns `up` or `destroy`,
//! which restores it then ([`settle`]). A host without the knob, or where
//! it cannot be written, is left alone (destroy is only slower).

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The kernel's knob.
const KNOB: &str = "/sys/kernel/rcu_expedited";

/// Where the knob lives and where its record is kept (tests use files of
/// their own).
#[derive(Debug, Clone)]
pub struct Knob {
    pub path: PathBuf,
    pub record: PathBuf,
    /// The lock serialising the record between labctl processes.
    pub lock: PathBuf,
}

/// The record: the host's own value and the processes that need it set.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Record {
    original: String,
    /// `PID:START` (start time in clock ticks since boot, so a reused pid
    /// is no holder).
    holders: Vec<String>,
}

impl Knob {
    /// The host's knob, recorded beside the labs' folders.
    pub fn host() -> Result<Knob> {
        let dir = super::hostdirs::labctl_dir()?;
        Ok(Knob {
            path: PathBuf::from(KNOB),
            record: dir.join("rcu-expedited.json"),
            lock: dir.join("host.lock"),
        })
    }

    /// Runs `f` under the lock.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _lock = super::hostdirs::lock_at(&self.lock)?;
        f()
    }

    fn read_record(&self) -> Option<Record> {
        let text = fs::read_to_string(&self.record).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write_record(&self, record: &Record) -> Result<()> {
        let text = serde_json::to_string(record)?;
        crate::state::write_private(&self.record, text.as_bytes())
    }

    fn set(&self, value: &str) -> Result<()> {
        fs::write(&self.path, value)
            .with_context(|| format!("cannot set {} to {value}", self.path.display()))
    }

    /// Takes a hold (the knob set to 1, the host's value recorded first,
    /// or kept from a holder that is gone); false when the knob is missing
    /// or cannot be written. Call under the host lock.
    fn hold(&self, me: &str) -> Result<bool> {
        let Ok(current) = fs::read_to_string(&self.path) else {
            return Ok(false);
        };
        let mut record = self.live_record().unwrap_or(Record {
            original: current.trim().to_string(),
            holders: Vec::new(),
        });
        record.holders.push(me.to_string());
        self.write_record(&record)?;
        if self.set("1").is_err() {
            self.release(me)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The record without holders whose process is gone; None when there
    /// is no record.
    fn live_record(&self) -> Option<Record> {
        let mut record = self.read_record()?;
        record.holders.retain(|h| holder_alive(h));
        Some(record)
    }

    /// Drops `me` (and any gone holder); the last one puts the host's value
    /// back and removes the record. Call under the host lock.
    fn release(&self, me: &str) -> Result<()> {
        let Some(mut record) = self.live_record() else {
            return Ok(());
        };
        record.holders.retain(|h| h != me);
        if !record.holders.is_empty() {
            return self.write_record(&record);
        }
        self.set(&record.original)
            .context("putting the host's RCU setting back")?;
        match fs::remove_file(&self.record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.record.display()))
            }
            _ => Ok(()),
        }
    }
}

/// This process as a holder.
fn me() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// A process's start time (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command: state is field 3, so start time is the 20th here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn holder_alive(holder: &str) -> bool {
    let Some((pid, start)) = holder.split_once(':') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

/// Runs `work` with expedited grace periods, then puts the host's value
/// back (also when `work` fails). Problems with the knob are returned
/// beside `work`'s result: the work is never held up by them.
pub fn expedited<T>(knob: &Knob, work: impl FnOnce() -> T) -> (T, Option<anyhow::Error>) {
    let me = me();
    let held = knob.locked(|| knob.hold(&me));
    let result = work();
    let problem = match held {
        Ok(true) => knob.locked(|| knob.release(&me)).err(),
        Ok(false) => None,
        Err(e) => Some(e),
    };
    (result, problem)
}

/// Puts the host's value back when every process that set it is gone
/// (killed before it could). [`expedited`] needs no call first: its hold
/// keeps the value such a record holds.
pub fn settle(knob: &Knob) -> Result<()> {
    knob.locked(|| knob.release(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knob(dir: &std::path::Path, value: &str) -> Knob {
        let k = Knob {
            path: dir.join("rcu_expedited"),
            record: dir.join("rcu-expedited.json"),
            lock: dir.join("host.lock"),
        };
        fs::write(&k.path, value).unwrap();
        k
    }

    fn value(k: &Knob) -> String {
        fs::read_to_string(&k.path).unwrap()
    }

    #[test]
    fn set_while_working_and_put_back_after() {
        let dir = tempfile::tempdir().unwrap();
        let k = knob(dir.path(), "0\n");
        let (seen, problem) = expedited(&k, || value(&k));
        assert_eq!(seen, "1");
        assert!(problem.is_none(), "{problem:?}");
        assert_eq!(value(&k), "0");
        assert!(!k.record.exists());
    }

    #[test]
    fn the_last_of_two_holders_restores() {
        let dir = tempfile::tempdir().unwrap();
        let k = knob(dir.path(), "0");
        // Another live holder: the process that started this test.
        let parent = std::os::unix::process::parent_id();
        let other = format!("{parent}:{}", start_time(parent).unwrap());
        assert!(k.hold(&other).unwrap());
        let (_, problem) = expedited(&k, || ());
        assert!(problem.is_none());
        assert_eq!(value(&k), "1", "the other holder still needs it");
        k.release(&other).unwrap();
        assert_eq!(value(&k), "0");
    }

    #[test]
    fn a_killed_holder_is_settled_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let k = knob(dir.path(), "1");
        let gone = Record {
            original: "0".into(),
            holders: vec!["4000000000:1".into()],
        };
        k.write_record(&gone).unwrap();
        settle(&k).unwrap();
        assert_eq!(value(&k), "0");
        assert!(!k.record.exists());
        // Nothing recorded: nothing to do.
        settle(&k).unwrap();
        assert_eq!(value(&k), "0");
    }

    #[test]
    fn a_host_without_the_knob_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let k = Knob {
            path: dir.path().join("missing"),
            record: dir.path().join("rcu-expedited.json"),
            lock: dir.path().join("host.lock"),
        };
        let (ran, problem) = expedited(&k, || true);
        assert!(ran);
        assert!(problem.is_none());
        assert!(!k.record.exists() && !k.path.exists());
    }
}
