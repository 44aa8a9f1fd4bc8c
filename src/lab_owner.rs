//! Whose lab is it? A lab's state lives in the folder of the user who ran
//! `up` (root: /var/lib/labctl, anyone else: their XDG state folder), so a
//! lab looked for as the wrong user seems not to exist. Before saying so,
//! labctl looks in the one other place it can be and says what to run:
//! `sudo labctl …` for a root lab (netns labs, or one brought up with sudo),
//! plain `labctl …` without sudo for a lab that `sudo` hid from its owner.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use crate::paths::lab_dir_for;

/// Who runs this labctl, as far as finding labs goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub is_root: bool,
    /// `SUDO_USER` when root came through sudo.
    pub sudo_user: Option<String>,
    /// That user's home folder (from the password database).
    pub sudo_home: Option<PathBuf>,
}

impl Caller {
    /// The running process.
    pub fn current() -> Caller {
        let is_root = crate::process::is_root();
        let sudo_user = std::env::var("SUDO_USER")
            .ok()
            .filter(|u| is_root && !u.is_empty() && u != "root");
        let sudo_home = sudo_user.as_deref().and_then(home_of);
        Caller {
            is_root,
            sudo_user,
            sudo_home,
        }
    }
}

/// Where else the lab `name` is, and what to run to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elsewhere {
    pub dir: PathBuf,
    /// The command line prefix that reaches it: `sudo labctl` or `labctl`.
    pub run_as: String,
    /// Whose it is, for the message.
    pub owner: String,
}

impl Elsewhere {
    /// "lab X is not yours: ... run `PREFIX SUBCOMMAND`".
    pub fn message(&self, lab: &str, subcommand: &str) -> String {
        if self.run_as.starts_with("sudo") {
            format!(
                "lab {lab} is not in your state folder but in {}: it belongs to {} \
                 (a netns lab, or one brought up with sudo); run `{} {subcommand}`",
                self.dir.display(),
                self.owner,
                self.run_as
            )
        } else {
            format!(
                "lab {lab} is not root's but {}'s (its state is in {}): sudo hides it; \
                 run `{} {subcommand}` as {} without sudo (vagrant and ssh labs need no root)",
                self.owner,
                self.dir.display(),
                self.run_as,
                self.owner
            )
        }
    }
}

/// The other state folder that holds the lab `name`, if any: root's for a
/// normal user, the sudo user's (default XDG location) for root via sudo.
/// `exists` is the test for "a lab is there" (a `state.json` in it).
pub fn find_elsewhere(
    name: &str,
    caller: &Caller,
    exists: impl Fn(&Path) -> bool,
) -> Option<Elsewhere> {
    let (dir, run_as, owner) = if !caller.is_root {
        let dir = lab_dir_for(name, true, None, None).ok()?;
        (dir, "sudo labctl".to_string(), "root".to_string())
    } else {
        let user = caller.sudo_user.clone()?;
        // sudo resets the environment: the user's XDG_STATE_HOME is not
        // known here, their default is.
        let dir = lab_dir_for(name, false, None, caller.sudo_home.as_deref()).ok()?;
        (dir, "labctl".to_string(), user)
    };
    exists(&dir.join("state.json")).then_some(Elsewhere { dir, run_as, owner })
}

/// [`find_elsewhere`] for the running process, on the real filesystem. A
/// state file that cannot be looked at for want of permission (root's lab
/// folder is 0700) is there all the same: it is another user's lab.
pub fn elsewhere(name: &str) -> Option<Elsewhere> {
    find_elsewhere(name, &Caller::current(), |p| match std::fs::metadata(p) {
        Ok(meta) => meta.is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    })
}

/// For a lab not in this user's state folder: fails with `kind` (an
/// [`crate::exit::ExitError`] constructor) and what to run when the lab is
/// another user's; `Ok` when it is nobody's.
pub fn refuse_if_elsewhere(
    name: &str,
    command: &str,
    kind: fn(anyhow::Error) -> anyhow::Error,
) -> anyhow::Result<()> {
    match elsewhere(name) {
        Some(other) => Err(kind(anyhow::anyhow!("{}", other.message(name, command)))),
        None => Ok(()),
    }
}

fn home_of(user: &str) -> Option<PathBuf> {
    let c_user = CString::new(user).ok()?;
    // SAFETY: getpwnam takes a NUL-terminated name and returns a pointer to
    // static storage or null; we copy out of it before any other call.
    let pw = unsafe { libc::getpwnam(c_user.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: pw is non-null, pw_dir is a NUL-terminated string or null.
    let dir = unsafe { (*pw).pw_dir };
    if dir.is_null() {
        return None;
    }
    // SAFETY: checked non-null above.
    let dir = unsafe { CStr::from_ptr(dir) };
    Some(PathBuf::from(dir.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Caller {
        Caller {
            is_root: false,
            sudo_user: None,
            sudo_home: None,
        }
    }

    fn sudo(user: &str, home: &str) -> Caller {
        Caller {
            is_root: true,
            sudo_user: Some(user.into()),
            sudo_home: Some(home.into()),
        }
    }

    #[test]
    fn a_user_is_sent_to_sudo_for_a_root_lab() {
        let found = find_elsewhere("flannel", &user(), |p| {
            p == Path::new("/var/lib/labctl/labs/flannel/state.json")
        })
        .unwrap();
        assert_eq!(found.run_as, "sudo labctl");
        let msg = found.message("flannel", "verify");
        assert!(msg.contains("run `sudo labctl verify`"), "{msg}");
        assert!(msg.contains("/var/lib/labctl/labs/flannel"), "{msg}");
    }

    #[test]
    fn sudo_is_sent_back_to_the_user_who_ran_up() {
        let found = find_elsewhere("vm", &sudo("ada", "/home/ada"), |p| {
            p == Path::new("/home/ada/.local/state/labctl/labs/vm/state.json")
        })
        .unwrap();
        assert_eq!(found.owner, "ada");
        let msg = found.message("vm", "verify");
        assert!(
            msg.contains("run `labctl verify` as ada without sudo"),
            "{msg}"
        );
    }

    #[test]
    fn nothing_elsewhere_is_none() {
        assert_eq!(find_elsewhere("x", &user(), |_| false), None);
        assert_eq!(
            find_elsewhere("x", &sudo("ada", "/home/ada"), |_| false),
            None
        );
        // Plain root (no sudo) has no other place to look.
        let root = Caller {
            is_root: true,
            sudo_user: None,
            sudo_home: None,
        };
        assert_eq!(find_elsewhere("x", &root, |_| true), None);
    }

    #[test]
    fn home_of_root_is_found() {
        assert_eq!(home_of("root").as_deref(), Some(Path::new("/root")));
        assert_eq!(home_of("no-such-user-labctl"), None);
    }
}
