//! [`gather`] on prepared files: a recorded WSL kernel release and mount
//! table, a `C:\Users` folder with `.wslconfig` files, and stand-ins for
//! `wslinfo` and `vagrant` (neither can run here) that print recorded
//! output and log their calls.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use labctl_lab::VagrantProvider::{Libvirt, Virtualbox};

use super::*;

/// A prepared host in a temp dir: files, and stand-in programs that log
/// their calls (doctor's gather tests use it too).
pub(crate) struct Host {
    dir: tempfile::TempDir,
    env: BTreeMap<&'static str, String>,
}

impl Host {
    /// An empty host: no files, no environment.
    pub(crate) fn empty() -> Host {
        Host {
            dir: tempfile::tempdir().unwrap(),
            env: BTreeMap::new(),
        }
    }

    /// A WSL2 with no `wslinfo`, no `.wslconfig`, and a `vagrant` that
    /// lists no plugins.
    fn wsl2() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            dir,
            env: BTreeMap::from([
                ("WSL_DISTRO_NAME", "Ubuntu".to_string()),
                ("USER", "ana".to_string()),
                (WINDOWS_ACCESS_VAR, "1".to_string()),
            ]),
        };
        host.write("osrelease", "5.15.167.4-microsoft-standard-WSL2\n");
        host.write("mounts", "/dev/sdc / ext4 rw 0 0\n");
        std::fs::create_dir_all(host.path("Users")).unwrap();
        host.program("vagrant", "echo 'No plugins installed.'");
        host
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A stand-in program that logs its arguments, then runs `body`.
    pub(crate) fn program(&self, name: &str, body: &str) {
        let log = self.path(&format!("{name}.calls"));
        let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", log.display());
        self.write(name, &script);
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub(crate) fn calls(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.calls"))).unwrap_or_default()
    }

    pub(crate) fn sources(&self) -> Sources {
        Sources {
            osrelease: self.path("osrelease"),
            mounts: self.path("mounts"),
            windows_users: self.path("Users"),
            wslinfo: self.path("wslinfo"),
            vagrant: self.path("vagrant"),
        }
    }

    fn gather(&self, provider: VagrantProvider) -> Inputs {
        let env = |name: &str| self.env.get(name).cloned();
        let folder = Path::new("/home/ana/.local/state/labctl/labs/flannel/vagrant");
        gather(&self.sources(), &env, 1000, folder, provider)
    }
}

/// The ids of the findings that stop `up`.
fn refused(inputs: &Inputs, provider: VagrantProvider) -> Vec<&'static str> {
    assess(inputs, provider)
        .into_iter()
        .filter(|f| f.severity == Severity::Refuse)
        .map(|f| f.id)
        .collect()
}

#[test]
fn off_wsl_nothing_but_the_release_is_read_and_nothing_runs() {
    let mut host = Host::wsl2();
    host.env.remove("WSL_DISTRO_NAME");
    host.write("osrelease", "6.1.0-28-amd64\n");
    host.program("wslinfo", "echo nat");
    let inputs = host.gather(Virtualbox);
    assert_eq!(inputs.kind(), WslKind::NotWsl);
    assert_eq!((inputs.mounts, inputs.vagrant_plugins), (None, None));
    assert_eq!(host.calls("wslinfo") + &host.calls("vagrant"), "");
}

#[test]
fn a_default_wsl2_is_nat_and_asks_vagrant_for_its_plugins() {
    let host = Host::wsl2();
    let inputs = host.gather(Virtualbox);
    assert_eq!(inputs.kind(), WslKind::Wsl2);
    assert_eq!(
        inputs.networking_mode(),
        (NetworkingMode::Nat, ModeSource::Default)
    );
    assert_eq!(inputs.mounts.as_deref(), Some("/dev/sdc / ext4 rw 0 0\n"));
    assert_eq!(host.calls("vagrant"), "plugin list\n");
    assert_eq!(refused(&inputs, Virtualbox), ["wsl2-nat-port-forward"]);
}

#[test]
fn the_plugin_from_vagrant_plugin_list_lets_virtualbox_through() {
    let host = Host::wsl2();
    host.program(
        "vagrant",
        "echo 'vagrant-libvirt (0.12.2, global)'; echo 'virtualbox_WSL2 (0.1.3, global)'",
    );
    let inputs = host.gather(Virtualbox);
    assert!(refused(&inputs, Virtualbox).is_empty());
}

#[test]
fn mirrored_in_wslconfig_spares_the_vagrant_call() {
    let host = Host::wsl2();
    host.write(
        "Users/ana/.wslconfig",
        "[wsl2]\r\nnetworkingMode=mirrored\r\n",
    );
    let inputs = host.gather(Virtualbox);
    let config = host.path("Users/ana/.wslconfig");
    assert_eq!(
        inputs.networking_mode(),
        (NetworkingMode::Mirrored, ModeSource::Wslconfig(config))
    );
    assert_eq!(host.calls("vagrant"), "");
    assert!(refused(&inputs, Virtualbox).is_empty());
}

#[test]
fn a_wslconfig_saved_as_utf16_by_notepad_is_read() {
    let host = Host::wsl2();
    let mut bytes = vec![0xff, 0xfe];
    for unit in "[wsl2]\r\nnetworkingMode=mirrored\r\n".encode_utf16() {
        bytes.extend(unit.to_le_bytes());
    }
    std::fs::create_dir_all(host.path("Users/ana")).unwrap();
    std::fs::write(host.path("Users/ana/.wslconfig"), bytes).unwrap();
    let inputs = host.gather(Virtualbox);
    assert_eq!(inputs.networking_mode().0, NetworkingMode::Mirrored);
}

#[test]
fn wslinfo_is_asked_first_and_an_old_one_is_ignored() {
    let host = Host::wsl2();
    host.write("Users/ana/.wslconfig", "[wsl2]\nnetworkingMode=mirrored\n");
    // Edited, but WSL not restarted: the running mode is still NAT.
    host.program("wslinfo", "echo nat");
    let inputs = host.gather(Virtualbox);
    assert_eq!(host.calls("wslinfo"), "--networking-mode\n");
    assert_eq!(
        inputs.networking_mode(),
        (NetworkingMode::Nat, ModeSource::Wslinfo)
    );
    assert!(!refused(&inputs, Virtualbox).is_empty());

    // A wslinfo from before `--networking-mode`: .wslconfig decides.
    host.program(
        "wslinfo",
        "echo 'Invalid command line argument' >&2; exit 1",
    );
    let inputs = host.gather(Virtualbox);
    assert_eq!(inputs.wslinfo_mode, None);
    assert_eq!(inputs.networking_mode().0, NetworkingMode::Mirrored);
}

#[test]
fn libvirt_labs_never_run_vagrant_plugin_list() {
    let host = Host::wsl2();
    let inputs = host.gather(Libvirt);
    assert_eq!(inputs.vagrant_plugins, None);
    assert_eq!(host.calls("vagrant"), "");
    assert!(refused(&inputs, Libvirt).is_empty());
}

#[test]
fn wslconfig_of_the_same_name_else_the_only_one() {
    let host = Host::wsl2();
    let users = host.path("Users");
    host.write("Users/Public/desktop.ini", "");
    host.write(
        "Users/Ana Lopez/.wslconfig",
        "[wsl2]\nnetworkingMode=mirrored\n",
    );
    let only = find_wslconfig(&users, Some("ana")).unwrap();
    assert_eq!(only.0, users.join("Ana Lopez/.wslconfig"));

    host.write("Users/bo/.wslconfig", "[wsl2]\n");
    assert_eq!(
        find_wslconfig(&users, Some("ana")),
        None,
        "two strangers: no guess"
    );
    assert_eq!(
        find_wslconfig(&users, Some("bo")).unwrap().0,
        users.join("bo/.wslconfig")
    );
    assert_eq!(
        find_wslconfig(&host.path("no-such-drive"), Some("bo")),
        None
    );
}
