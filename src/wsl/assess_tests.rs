//! Every finding from prepared inputs: recorded WSL kernel releases,
//! `.wslconfig` texts, `vagrant plugin list` outputs and mount tables.

use std::path::PathBuf;

use labctl_lab::VagrantProvider::{Libvirt, Virtualbox};

use super::*;

const WSL2_RELEASE: &str = "5.15.167.4-microsoft-standard-WSL2\n";
const WSL1_RELEASE: &str = "4.4.0-19041-Microsoft\n";
const WSLCONFIG: &str = "/mnt/c/Users/ana/.wslconfig";
const MOUNTS: &str = "/dev/sdc / ext4 rw,relatime 0 0\n\
    C:\\134 /mnt/c 9p rw,noatime,aname=drvfs;path=C:\\;uid=1000;gid=1000;symlinkroot=/mnt/ 0 0\n\
    D:\\134 /mnt/d 9p rw,noatime,aname=drvfs;path=D:\\;metadata;uid=1000;gid=1000 0 0\n";

/// A learner's WSL2 as it comes: NAT, the variable set, no plugin, the lab
/// on the Linux side.
fn wsl2() -> Inputs {
    Inputs {
        osrelease: Some(WSL2_RELEASE.into()),
        distro_name: Some("Ubuntu-24.04".into()),
        windows_access: Some("1".into()),
        euid: 1000,
        vagrant_plugins: Some("No plugins installed.\n".into()),
        lab_folder: PathBuf::from("/home/ana/.local/state/labctl/labs/flannel/vagrant"),
        mounts: Some(MOUNTS.into()),
        ..Inputs::default()
    }
}

fn ids(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
    findings.iter().map(|f| (f.id, f.severity)).collect()
}

#[test]
fn nothing_off_wsl_whatever_else_is_missing() {
    let inputs = Inputs {
        osrelease: Some("6.1.0-28-amd64\n".into()),
        windows_access: None,
        sudo_user: Some("ana".into()),
        euid: 0,
        lab_folder: PathBuf::from("/mnt/c/labs"),
        ..wsl2()
    };
    let inputs = Inputs {
        distro_name: None,
        ..inputs
    };
    assert_eq!(assess(&inputs, Virtualbox), vec![]);
}

#[test]
fn wsl2_nat_without_the_plugin_refuses_with_both_fixes() {
    let findings = assess(&wsl2(), Virtualbox);
    assert_eq!(
        ids(&findings),
        [("wsl2-nat-port-forward", Severity::Refuse)]
    );
    let f = &findings[0];
    for needle in [
        "NAT (WSL2's default",
        "127.0.0.1",
        "15 minutes",
        "#11716",
        "#12164",
    ] {
        assert!(
            f.message.contains(needle),
            "{needle:?} not in {}",
            f.message
        );
    }
    for needle in [
        "networkingMode=mirrored",
        "%UserProfile%\\.wslconfig",
        "wsl --shutdown",
        "vagrant plugin install virtualbox_WSL2",
    ] {
        assert!(f.fix.contains(needle), "{needle:?} not in {}", f.fix);
    }
}

#[test]
fn the_running_mode_from_wslinfo_wins_over_wslconfig() {
    let inputs = Inputs {
        wslinfo_mode: Some("nat\n".into()),
        wslconfig: Some((WSLCONFIG.into(), "[wsl2]\nnetworkingMode=mirrored\n".into())),
        ..wsl2()
    };
    let findings = assess(&inputs, Virtualbox);
    assert_eq!(
        ids(&findings),
        [("wsl2-nat-port-forward", Severity::Refuse)]
    );
    assert!(findings[0]
        .message
        .contains("from `wslinfo --networking-mode`"));

    let bridged = Inputs {
        wslinfo_mode: Some("bridged\n".into()),
        ..wsl2()
    };
    let findings = assess(&bridged, Virtualbox);
    assert!(findings[0]
        .message
        .starts_with("WSL2 networking is bridged"));
}

#[test]
fn mirrored_networking_or_the_plugin_lets_virtualbox_through() {
    let mirrored_config = Inputs {
        wslconfig: Some((WSLCONFIG.into(), "[wsl2]\nnetworkingMode=mirrored\n".into())),
        ..wsl2()
    };
    assert_eq!(assess(&mirrored_config, Virtualbox), vec![]);
    let mirrored_running = Inputs {
        wslinfo_mode: Some("mirrored\n".into()),
        ..wsl2()
    };
    assert_eq!(assess(&mirrored_running, Virtualbox), vec![]);
    let plugin = Inputs {
        vagrant_plugins: Some("virtualbox_WSL2 (0.1.3, global)\n".into()),
        ..wsl2()
    };
    assert_eq!(assess(&plugin, Virtualbox), vec![]);
}

#[test]
fn libvirt_inside_wsl2_needs_neither_windows_nor_its_loopback() {
    let inputs = Inputs {
        windows_access: None,
        ..wsl2()
    };
    assert_eq!(assess(&inputs, Libvirt), vec![]);
}

#[test]
fn virtualbox_without_windows_access_refuses_also_on_wsl1() {
    let wsl1 = Inputs {
        osrelease: Some(WSL1_RELEASE.into()),
        windows_access: None,
        ..wsl2()
    };
    let findings = assess(&wsl1, Virtualbox);
    // WSL1 shares Windows' network stack: no port-forward finding.
    assert_eq!(ids(&findings), [("wsl-windows-access", Severity::Refuse)]);
    assert!(findings[0]
        .fix
        .contains("export VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1"));

    let zero = Inputs {
        windows_access: Some("0".into()),
        ..wsl1
    };
    let findings = assess(&zero, Virtualbox);
    assert_eq!(
        ids(&findings),
        [("wsl-windows-access-value", Severity::Warn)]
    );
    assert!(findings[0].message.contains("\"0\""));
}

#[test]
fn sudo_is_refused_for_virtualbox_and_warned_about_otherwise() {
    let sudo = Inputs {
        sudo_user: Some("ana".into()),
        euid: 0,
        windows_access: None,
        vagrant_plugins: Some("virtualbox_WSL2 (0.1.3, global)\n".into()),
        ..wsl2()
    };
    let findings = assess(&sudo, Virtualbox);
    assert_eq!(
        ids(&findings),
        [
            ("wsl-sudo", Severity::Refuse),
            ("wsl-windows-access", Severity::Refuse)
        ]
    );
    assert_eq!(findings[0].fix, NO_SUDO);
    assert!(findings[0].message.contains("for ana"));
    assert_eq!(ids(&assess(&sudo, Libvirt)), [("wsl-sudo", Severity::Warn)]);

    // Root by login (no sudo), or a SUDO_USER left over in a user's shell.
    let root = Inputs {
        sudo_user: None,
        ..sudo.clone()
    };
    assert_eq!(ids(&assess(&root, Libvirt)), []);
    let leftover = Inputs { euid: 1000, ..sudo };
    assert_eq!(ids(&assess(&leftover, Libvirt)), []);
}

#[test]
fn a_lab_folder_on_a_windows_drive_needs_private_files() {
    let on_c = Inputs {
        lab_folder: PathBuf::from("/mnt/c/Users/ana/state/labctl/labs/flannel/vagrant"),
        ..wsl2()
    };
    let findings = assess(&on_c, Libvirt);
    assert_eq!(
        ids(&findings),
        [("wsl-lab-folder-on-windows-drive", Severity::Refuse)]
    );
    assert!(findings[0]
        .message
        .contains("at /mnt/c, mounted without `metadata`"));
    assert!(findings[0].fix.contains("XDG_STATE_HOME"));
    assert!(findings[0].fix.contains("/etc/wsl.conf"));

    let on_d = Inputs {
        lab_folder: PathBuf::from("/mnt/d/state/labctl/labs/flannel/vagrant"),
        ..wsl2()
    };
    assert_eq!(assess(&on_d, Libvirt), vec![]);
}

#[test]
fn a_wrong_value_only_warns_a_missing_variable_refuses() {
    let warn_only = assess(
        &Inputs {
            windows_access: Some("yes".into()),
            vagrant_plugins: Some("virtualbox_WSL2 (0.1.3, global)\n".into()),
            ..wsl2()
        },
        Virtualbox,
    );
    assert_eq!(
        ids(&warn_only),
        [("wsl-windows-access-value", Severity::Warn)]
    );

    let findings = assess(
        &Inputs {
            windows_access: None,
            ..wsl2()
        },
        Virtualbox,
    );
    assert_eq!(
        ids(&findings),
        [
            ("wsl-windows-access", Severity::Refuse),
            ("wsl2-nat-port-forward", Severity::Refuse)
        ]
    );
}
