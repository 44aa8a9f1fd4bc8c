//! WSL (Windows Subsystem for Linux) as the host of a vagrant lab: which
//! WSL this is, and what would make `vagrant up` fail there — often only
//! after waiting its 15-minute boot timeout — so `up` can refuse first,
//! with the fix.
//!
//! [`gather`] reads everything once into [`Inputs`] (the kernel release,
//! the environment, `wslinfo`, `.wslconfig`, `vagrant plugin list`, the
//! mount table); [`assess`] turns them into [`Finding`]s without I/O.
//! `labctl doctor` reports them with the host's other findings, and `up`
//! refuses (exit 3) on the refusals. A leaf module: it knows nothing of
//! providers, lifecycle or verify.

mod assess;
pub mod detect;

use std::path::{Path, PathBuf};

use crate::hostcmd::stdout_if_ok;
use labctl_lab::VagrantProvider;

pub use assess::{assess, Finding, Severity, NO_SUDO, VIRTUALBOX_WSL2_PLUGIN, WINDOWS_ACCESS_VAR};
pub use detect::{ModeSource, NetworkingMode, WslKind};

/// Everything the assessment looks at, read once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// `/proc/sys/kernel/osrelease`.
    pub osrelease: Option<String>,
    pub distro_name: Option<String>,
    /// `VAGRANT_WSL_ENABLE_WINDOWS_ACCESS` (Some("") when set empty).
    pub windows_access: Option<String>,
    pub sudo_user: Option<String>,
    pub euid: u32,
    /// Output of `wslinfo --networking-mode`; None where it does not exist.
    pub wslinfo_mode: Option<String>,
    /// The Windows user's `.wslconfig`: its path and text.
    pub wslconfig: Option<(PathBuf, String)>,
    /// Output of `vagrant plugin list`, read only where it matters.
    pub vagrant_plugins: Option<String>,
    /// The lab's folder: its keys, its Vagrantfile, Vagrant's state.
    pub lab_folder: PathBuf,
    /// `/proc/self/mounts`.
    pub mounts: Option<String>,
}

impl Inputs {
    pub fn kind(&self) -> WslKind {
        detect::wsl_kind(self.osrelease.as_deref(), self.distro_name.as_deref())
    }

    pub fn networking_mode(&self) -> (NetworkingMode, ModeSource) {
        let config = self
            .wslconfig
            .as_ref()
            .map(|(p, t)| (p.as_path(), t.as_str()));
        detect::networking_mode(self.wslinfo_mode.as_deref(), config)
    }
}

/// Where [`gather`] reads: this host's files and programs, or a test's.
#[derive(Clone, Debug)]
pub struct Sources {
    pub osrelease: PathBuf,
    pub mounts: PathBuf,
    /// `C:\Users` as WSL mounts it, where each user's `.wslconfig` lives.
    pub windows_users: PathBuf,
    pub wslinfo: PathBuf,
    pub vagrant: PathBuf,
}

impl Sources {
    pub fn host() -> Sources {
        Sources {
            osrelease: "/proc/sys/kernel/osrelease".into(),
            mounts: "/proc/self/mounts".into(),
            windows_users: "/mnt/c/Users".into(),
            wslinfo: "wslinfo".into(),
            vagrant: "vagrant".into(),
        }
    }
}

/// Reads what [`assess`] needs for a lab with `provider` in `lab_folder`.
/// Off WSL it reads only the kernel release and the environment; `vagrant
/// plugin list` (a second or two) runs only when its answer matters.
pub fn gather(
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
    euid: u32,
    lab_folder: &Path,
    provider: VagrantProvider,
) -> Inputs {
    let mut inputs = Inputs {
        osrelease: std::fs::read_to_string(&sources.osrelease).ok(),
        distro_name: env("WSL_DISTRO_NAME"),
        windows_access: env(WINDOWS_ACCESS_VAR),
        sudo_user: env("SUDO_USER"),
        euid,
        lab_folder: lab_folder.to_path_buf(),
        ..Inputs::default()
    };
    let kind = inputs.kind();
    if kind == WslKind::NotWsl {
        return inputs;
    }
    inputs.mounts = std::fs::read_to_string(&sources.mounts).ok();
    if kind == WslKind::Wsl2 {
        inputs.wslinfo_mode = stdout_if_ok(&sources.wslinfo, &["--networking-mode"]);
        let user = inputs.sudo_user.clone().or_else(|| env("USER"));
        inputs.wslconfig = find_wslconfig(&sources.windows_users, user.as_deref());
        let mirrored = inputs.networking_mode().0 == NetworkingMode::Mirrored;
        if provider == VagrantProvider::Virtualbox && !mirrored {
            inputs.vagrant_plugins = stdout_if_ok(&sources.vagrant, &["plugin", "list"]);
        }
    }
    inputs
}

/// The `.wslconfig` of the Windows user named like the Linux user, else
/// the only one among the Windows users' folders.
pub fn find_wslconfig(users: &Path, linux_user: Option<&str>) -> Option<(PathBuf, String)> {
    let read = |path: PathBuf| {
        let bytes = std::fs::read(&path).ok()?;
        Some((path, windows_text(&bytes)))
    };
    if let Some(found) = linux_user.and_then(|u| read(users.join(u).join(".wslconfig"))) {
        return Some(found);
    }
    let mut found: Vec<(PathBuf, String)> = std::fs::read_dir(users)
        .ok()?
        .flatten()
        .filter_map(|entry| read(entry.path().join(".wslconfig")))
        .collect();
    if found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

/// A Windows editor's text file: UTF-16 with a byte-order mark (Notepad's
/// "Unicode"), else UTF-8.
fn windows_text(bytes: &[u8]) -> String {
    match bytes {
        [0xff, 0xfe, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
#[path = "gather_tests.rs"]
pub(crate) mod tests;
