//! Reading what WSL leaves behind, without I/O: which WSL this is (from the
//! kernel release and `WSL_DISTRO_NAME`), WSL2's networking mode (from
//! `wslinfo --networking-mode` or `.wslconfig`), the Vagrant plugins from
//! `vagrant plugin list`, and whether a folder lies on a Windows drive
//! (from the mount table).

use std::path::{Path, PathBuf};

/// Which WSL, if any, labctl runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WslKind {
    NotWsl,
    /// The Windows network stack is shared: Windows' 127.0.0.1 is ours.
    Wsl1,
    /// A VM with its own network, NAT by default.
    Wsl2,
}

/// WSL1 kernels report `4.4.0-19041-Microsoft`; WSL2's own kernels
/// `5.15.167.4-microsoft-standard-WSL2` (before 5.10: no `-WSL2`). A WSL2
/// with a custom kernel says nothing there, but WSL still sets
/// `WSL_DISTRO_NAME` (sudo drops it: the release is read first).
pub fn wsl_kind(osrelease: Option<&str>, distro_name: Option<&str>) -> WslKind {
    let release = osrelease.unwrap_or("").trim().to_ascii_lowercase();
    if release.contains("microsoft") {
        if release.contains("wsl2") || release.contains("microsoft-standard") {
            WslKind::Wsl2
        } else {
            WslKind::Wsl1
        }
    } else if distro_name.is_some_and(|d| !d.trim().is_empty()) {
        WslKind::Wsl2
    } else {
        WslKind::NotWsl
    }
}

/// WSL2's networking mode. Only `mirrored` shares Windows' loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkingMode {
    Nat,
    Mirrored,
    /// `bridged`, `virtioproxy`, `none`, ...: none of them reach Windows'
    /// 127.0.0.1.
    Other(String),
}

impl NetworkingMode {
    fn from_word(word: &str) -> NetworkingMode {
        let word = word.trim().trim_matches('"').to_ascii_lowercase();
        match word.as_str() {
            "nat" => NetworkingMode::Nat,
            "mirrored" => NetworkingMode::Mirrored,
            _ => NetworkingMode::Other(word),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            NetworkingMode::Nat => "NAT",
            NetworkingMode::Mirrored => "mirrored",
            NetworkingMode::Other(word) => word,
        }
    }
}

/// Where the networking mode was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeSource {
    Wslinfo,
    Wslconfig(PathBuf),
    /// Neither `wslinfo` nor a `.wslconfig` said: WSL2's default.
    Default,
}

impl ModeSource {
    pub fn describe(&self) -> String {
        match self {
            ModeSource::Wslinfo => "from `wslinfo --networking-mode`".to_string(),
            ModeSource::Wslconfig(path) => format!("from {}", path.display()),
            ModeSource::Default => {
                "WSL2's default: no `wslinfo --networking-mode` here and no .wslconfig that sets networkingMode".to_string()
            }
        }
    }
}

/// The mode the running WSL reports (`wslinfo`, WSL 2.0 and later) wins
/// over `.wslconfig`, which takes effect only after `wsl --shutdown`.
pub fn networking_mode(
    wslinfo: Option<&str>,
    wslconfig: Option<(&Path, &str)>,
) -> (NetworkingMode, ModeSource) {
    if let Some(word) = wslinfo.map(str::trim).filter(|w| !w.is_empty()) {
        return (NetworkingMode::from_word(word), ModeSource::Wslinfo);
    }
    if let Some((path, text)) = wslconfig {
        if let Some(word) = wslconfig_networking_mode(text) {
            return (
                NetworkingMode::from_word(&word),
                ModeSource::Wslconfig(path.to_path_buf()),
            );
        }
    }
    (NetworkingMode::Nat, ModeSource::Default)
}

/// `networkingMode` in the `[wsl2]` section of a `.wslconfig` (INI: `#`
/// and `;` comments, names compared without case, the last one counts).
pub fn wslconfig_networking_mode(text: &str) -> Option<String> {
    let mut in_wsl2 = false;
    let mut mode = None;
    for line in text.lines() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_wsl2 = section.trim().eq_ignore_ascii_case("wsl2");
            continue;
        }
        if !in_wsl2 {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim().eq_ignore_ascii_case("networkingMode") {
                let value = value.split(['#', ';']).next().unwrap_or("").trim();
                mode = Some(value.trim_matches('"').to_string());
            }
        }
    }
    mode
}

/// Whether `vagrant plugin list` names `plugin` (lines like
/// `virtualbox_WSL2 (0.1.3, global)`; "No plugins installed." otherwise).
pub fn plugin_listed(list: &str, plugin: &str) -> bool {
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name.eq_ignore_ascii_case(plugin))
}

/// A Windows drive as WSL mounts it (DrvFs; WSL2 serves it over 9p).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowsMount {
    pub mount_point: PathBuf,
    /// Whether files there can be private: the `metadata` option, or a
    /// file mask that clears group and other bits.
    pub private_files: bool,
}

/// The Windows drive holding `folder`, from a mount table
/// (`/proc/self/mounts`); without one, any `/mnt/<letter>/...` counts, as
/// WSL mounts drives there by default.
pub fn windows_mount(folder: &Path, mounts: Option<&str>) -> Option<WindowsMount> {
    let Some(mounts) = mounts else {
        let mut parts = folder.components().skip(1);
        let mnt = parts.next()?.as_os_str() == "mnt";
        let drive = parts.next()?.as_os_str().to_str()?.to_string();
        let is_drive = drive.len() == 1 && drive.chars().all(|c| c.is_ascii_alphabetic());
        return (mnt && is_drive).then(|| WindowsMount {
            mount_point: Path::new("/mnt").join(drive),
            private_files: false,
        });
    };
    // The longest mount point that contains the folder decides.
    let mut best: Option<(PathBuf, &str, &str)> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, point, kind, options, ..] = fields[..] else {
            continue;
        };
        let point = PathBuf::from(unescape_mount(point));
        let longer = best
            .as_ref()
            .is_none_or(|(b, _, _)| point.as_os_str().len() >= b.as_os_str().len());
        if folder.starts_with(&point) && longer {
            best = Some((point, kind, options));
        }
    }
    let (mount_point, kind, options) = best?;
    let drvfs = kind == "drvfs" || (kind == "9p" && options.contains("aname=drvfs"));
    drvfs.then(|| WindowsMount {
        mount_point,
        private_files: private_files(options),
    })
}

/// `metadata`, or `fmask=`/`umask=` with group and other bits all masked.
fn private_files(options: &str) -> bool {
    options.split([',', ';']).any(|option| {
        if option == "metadata" {
            return true;
        }
        let mask = option
            .strip_prefix("fmask=")
            .or_else(|| option.strip_prefix("umask="));
        mask.and_then(|m| u32::from_str_radix(m, 8).ok())
            .is_some_and(|m| m & 0o077 == 0o077)
    })
}

/// /proc/self/mounts writes a space in a path as `\040`.
fn unescape_mount(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_kernel_release_and_distro_name() {
        let wsl2 = "5.15.167.4-microsoft-standard-WSL2\n";
        assert_eq!(wsl_kind(Some(wsl2), None), WslKind::Wsl2);
        assert_eq!(
            wsl_kind(Some("4.19.128-microsoft-standard"), None),
            WslKind::Wsl2
        );
        assert_eq!(
            wsl_kind(Some("4.4.0-19041-Microsoft"), Some("Ubuntu")),
            WslKind::Wsl1
        );
        assert_eq!(
            wsl_kind(Some("6.6.36-custom"), Some("Ubuntu")),
            WslKind::Wsl2
        );
        assert_eq!(wsl_kind(Some("6.1.0-28-amd64"), None), WslKind::NotWsl);
        assert_eq!(wsl_kind(Some("6.1.0-28-amd64"), Some(" ")), WslKind::NotWsl);
        assert_eq!(wsl_kind(None, None), WslKind::NotWsl);
    }

    #[test]
    fn wslinfo_wins_over_wslconfig_and_nat_is_the_default() {
        let cfg = Path::new("/mnt/c/Users/ana/.wslconfig");
        let mirrored = "[wsl2]\nnetworkingMode=mirrored\n";
        assert_eq!(
            networking_mode(Some("nat\n"), Some((cfg, mirrored))),
            (NetworkingMode::Nat, ModeSource::Wslinfo)
        );
        assert_eq!(
            networking_mode(None, Some((cfg, mirrored))),
            (NetworkingMode::Mirrored, ModeSource::Wslconfig(cfg.into()))
        );
        assert_eq!(
            networking_mode(Some(""), Some((cfg, "[wsl2]\nmemory=8GB\n"))),
            (NetworkingMode::Nat, ModeSource::Default)
        );
        assert_eq!(
            networking_mode(Some("Bridged"), None).0,
            NetworkingMode::Other("bridged".into())
        );
    }

    #[test]
    fn wslconfig_reads_only_the_wsl2_section() {
        let text = "\u{feff}[experimental]\nnetworkingMode=mirrored\n\n[WSL2]\n# networkingMode=mirrored\n\
                    memory = 8GB\n NetworkingMode = \"Mirrored\" ; the new mode\n";
        assert_eq!(wslconfig_networking_mode(text).as_deref(), Some("Mirrored"));
        assert_eq!(wslconfig_networking_mode("[wsl2]\nmemory=4GB\n"), None);
        assert_eq!(
            wslconfig_networking_mode("[boot]\nnetworkingMode=nat\n"),
            None
        );
    }

    #[test]
    fn plugins_from_vagrant_plugin_list() {
        let list = "vagrant-libvirt (0.12.2, global)\nvirtualbox_WSL2 (0.1.3, global)\n  - Version Constraint: > 0\n";
        assert!(plugin_listed(list, "virtualbox_WSL2"));
        assert!(!plugin_listed(list, "vagrant-vbguest"));
        assert!(!plugin_listed("No plugins installed.\n", "virtualbox_WSL2"));
    }

    #[test]
    fn windows_drives_from_the_mount_table() {
        let mounts = "/dev/sdc / ext4 rw,relatime 0 0\n\
            C:\\134 /mnt/c 9p rw,noatime,dirsync,aname=drvfs;path=C:\\;uid=1000;gid=1000;symlinkroot=/mnt/,mmap,access=client 0 0\n\
            D:\\134 /mnt/d 9p rw,noatime,aname=drvfs;path=D:\\;metadata;uid=1000 0 0\n\
            drivers /usr/lib/wsl/drivers 9p ro,nosuid,aname=drivers;fmask=222;dmask=222 0 0\n\
            E: /mnt/my\\040drive drvfs rw,noatime,uid=1000,fmask=077 0 0\n";
        let on = |p: &str| windows_mount(Path::new(p), Some(mounts));
        let c = on("/mnt/c/Users/ana/labs/x/vagrant").unwrap();
        assert_eq!(
            (c.mount_point.as_path(), c.private_files),
            (Path::new("/mnt/c"), false)
        );
        assert!(on("/mnt/d/labs").unwrap().private_files);
        assert!(on("/mnt/my drive/labs").unwrap().private_files);
        assert_eq!(on("/home/ana/.local/state/labctl/labs/x"), None);
        assert_eq!(on("/usr/lib/wsl/drivers/x"), None);
        assert_eq!(on("/mnt/cx/labs"), None);
    }

    #[test]
    fn windows_drives_by_path_without_a_mount_table() {
        let m = windows_mount(Path::new("/mnt/e/labs"), None).unwrap();
        assert_eq!(m.mount_point, Path::new("/mnt/e"));
        assert_eq!(windows_mount(Path::new("/mnt/wsl/labs"), None), None);
        assert_eq!(windows_mount(Path::new("/home/ana"), None), None);
    }
}
