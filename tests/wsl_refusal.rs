//! `labctl up` on a WSL2 host, the real binary end to end: each run sees a
//! recorded WSL2 kernel release at /proc/sys/kernel/osrelease (bind-mounted
//! in a private mount namespace, so the host is untouched) and WSL's
//! environment, with stand-ins first on PATH for the two programs that
//! cannot run here: `vagrant` (logs its calls) and `wslinfo`.
//! - NAT, no `virtualbox_WSL2` plugin, no VAGRANT_WSL_ENABLE_WINDOWS_ACCESS,
//!   under sudo: exit 3 before `vagrant up`, every refusal named, nothing
//!   created.
//! - Mirrored networking, the variable set: `vagrant up` is reached.
//!
//! Needs root (mount namespaces): skipped otherwise.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::netns::show;

const WSL2_RELEASE: &str = "5.15.167.4-microsoft-standard-WSL2\n";

/// Plays Vagrant: `up` fails at once (the test needs only to see it called).
const VAGRANT: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$LABCTL_TEST_VAGRANT_CALLS"
case "$1" in
  --version) echo "Vagrant 2.4.9" ;;
  plugin) echo "vagrant-vbguest (0.32.0, global)" ;;
  up) echo "==> master: the stand-in stops here"; exit 1 ;;
  destroy) echo "==> master: Destroying VM and associated drives..." ;;
  *) echo "stand-in vagrant: unexpected command $*" >&2; exit 1 ;;
esac
"#;

struct Wsl2 {
    dir: tempfile::TempDir,
    name: String,
}

impl Wsl2 {
    fn new() -> Wsl2 {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("tw{}", std::process::id() % 100_000);
        let wsl = Wsl2 { dir, name };
        wsl.write("osrelease", WSL2_RELEASE);
        wsl.program("bin/vagrant", VAGRANT);
        let lab = format!(
            "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {}\nprovider:\n  type: vagrant\n  \
             vagrantProvider: virtualbox\nkubernetes:\n  enabled: false\nnetwork:\n  \
             underlay: 192.168.59.0/24\n  podNetwork: 10.59.0.0/16\nnodes:\n  \
             - name: master\n    role: control-plane\n",
            wsl.name
        );
        wsl.write("lab.yaml", &lab);
        wsl
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }

    fn program(&self, name: &str, text: &str) {
        self.write(name, text);
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("vagrant.calls")).unwrap_or_default()
    }

    /// labctl with WSL's environment; `in_wsl` runs it where the kernel
    /// release reads as WSL2's.
    fn labctl(&self, in_wsl: bool, env: &[(&str, Option<&str>)], args: &[&str]) -> Output {
        let labctl = env!("CARGO_BIN_EXE_labctl");
        let mut cmd = if in_wsl {
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$1" /proc/sys/kernel/osrelease && shift && exec "$@""#)
                .arg("sh")
                .arg(self.path("osrelease"))
                .arg(labctl);
            cmd
        } else {
            Command::new(labctl)
        };
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.args(args)
            .env("PATH", path)
            .env("LABCTL_TEST_VAGRANT_CALLS", self.path("vagrant.calls"))
            .env("WSL_DISTRO_NAME", "Ubuntu-24.04")
            .env_remove("SUDO_USER")
            .env_remove("VAGRANT_WSL_ENABLE_WINDOWS_ACCESS");
        for (key, value) in env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.output().expect("labctl runs")
    }
}

fn can_run(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return support::skip(test, "needs root (a mount namespace over /proc)");
    }
    let unshare = Command::new("unshare").arg("--version").output();
    if !unshare.is_ok_and(|o| o.status.success()) {
        return support::skip(test, "unshare (util-linux) is not installed");
    }
    true
}

#[test]
fn up_on_wsl2_refuses_before_vagrant_up_and_goes_on_once_fixed() {
    let test = "up_on_wsl2_refuses_before_vagrant_up_and_goes_on_once_fixed";
    if !can_run(test) {
        return;
    }
    let wsl = Wsl2::new();
    let lab = wsl.path("lab.yaml");
    let lab = lab.to_str().unwrap();
    let lab_dir = Path::new("/var/lib/labctl/labs").join(&wsl.name);

    // Whatever happens below, the lab goes (a no-op when it never existed).
    struct Guard<'a>(&'a Wsl2);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let out = self
                .0
                .labctl(false, &[], &["destroy", "--name", &self.0.name]);
            if !out.status.success() {
                eprintln!("cleanup failed: {}", show(&out));
            }
        }
    }
    let _guard = Guard(&wsl);

    // The learner's WSL2 as it comes, and sudo on top.
    let out = wsl.labctl(true, &[("SUDO_USER", Some("ana"))], &["up", lab]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "stopped before `vagrant up`",
        "[wsl-sudo]",
        "run labctl as yourself, not with sudo: vagrant labs need no root",
        "[wsl-windows-access]",
        "export VAGRANT_WSL_ENABLE_WINDOWS_ACCESS=1",
        "[wsl2-nat-port-forward]",
        "WSL2 networking is NAT (WSL2's default",
        "hashicorp/vagrant #11716, #12164",
        "vagrant plugin install virtualbox_WSL2",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} missing: {}",
            show(&out)
        );
    }
    assert_eq!(wsl.calls(), "--version\nplugin list\n");
    assert!(!lab_dir.exists(), "nothing created: {}", lab_dir.display());

    // WSL2 set up as README says (mirrored networking, the variable, no
    // sudo): `vagrant up` is reached, and the stand-in fails it.
    wsl.program("bin/wslinfo", "#!/bin/sh\necho mirrored\n");
    let fixed = [("VAGRANT_WSL_ENABLE_WINDOWS_ACCESS", Some("1"))];
    let out = wsl.labctl(true, &fixed, &["up", lab]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the stand-in stops here"),
        "{}",
        show(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("[wsl"));
    let calls = wsl.calls();
    assert!(
        calls.ends_with("--version\nup --no-color --provider=virtualbox\n"),
        "mirrored mode needs no plugin list, and `vagrant up` runs: {calls}"
    );
}
