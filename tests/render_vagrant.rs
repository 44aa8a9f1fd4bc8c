//! The real Vagrant on rendered Vagrantfiles: every one passes `vagrant
//! validate -p` (Vagrant's own check, without any provider installed), and
//! the SSH keys one hands Vagrant once the lab has its own key are the lab
//! key and the insecure keys Vagrant copied for the caller into its own
//! home, never the packaged ones under `Vagrant.source_root` (root-owned on
//! Debian: Vagrant refuses them for anyone else, and as root chmods them for
//! everyone). Needs the `vagrant` package: without it the tests say why and
//! fail in CI instead of passing silently.
//!
//! The key test loads a probe plugin (`.vagrantplugins` in the
//! Vagrantfile's folder, which Vagrant loads) that prints
//! `config.ssh.private_key_path` and runs Vagrant's own owner and mode check
//! on each key, the one `vagrant up` runs before it logs in. Run as root, it
//! runs Vagrant as uid 65534, as a normal user would.

mod common;
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use labctl::render;

fn vagrant_available() -> Result<String, String> {
    match Command::new("vagrant").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(out) => Err(format!(
            "`vagrant --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "cannot run vagrant ({e}); install it with `apt-get install -y vagrant`"
        )),
    }
}

#[test]
fn every_rendered_vagrantfile_passes_vagrant_validate() {
    let version = match vagrant_available() {
        Ok(version) => version,
        Err(why) => {
            labctl_testenv::skip("every_rendered_vagrantfile_passes_vagrant_validate", &why);
            return;
        }
    };
    eprintln!("using {version}");
    let labs = all_labs();
    assert!(
        labs.len() >= 3,
        "labs/ should hold netns, vagrant and ssh labs"
    );
    // One vagrant (a Ruby process, ~5 s) per lab, all at once.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = labs
            .iter()
            .map(|lab_file| {
                scope.spawn(move || {
                    let text = std::fs::read_to_string(lab_file).unwrap();
                    let lab = labctl_lab::parse(&lab_file.display().to_string(), &text).unwrap();
                    let vagrantfile = render::vagrantfile(&lab).unwrap();
                    let dir = tempfile::tempdir().unwrap();
                    std::fs::write(dir.path().join("Vagrantfile"), &vagrantfile).unwrap();
                    let out = Command::new("vagrant")
                        .args(["validate", "-p"])
                        .current_dir(dir.path())
                        .env("VAGRANT_HOME", dir.path().join("vagrant-home"))
                        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
                        .env("VAGRANT_NO_COLOR", "1")
                        .env_remove("VAGRANT_DEFAULT_PROVIDER")
                        .env_remove("VAGRANT_CWD")
                        .output()
                        .unwrap();
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    if out.status.success() && stdout.contains("Vagrantfile validated successfully")
                    {
                        None
                    } else {
                        Some(format!(
                            "{}: vagrant validate -p failed ({}):\n{stdout}{}",
                            lab_file.display(),
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        ))
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The uid (and gid) Vagrant runs as when the test runs as root: nobody.
const NORMAL_USER: u32 = 65534;

const PROBE: &str = r##"require "json"
class LabctlKeyProbe < Vagrant.plugin("2")
  name "labctl key probe"
  command("labctl-key-probe") do
    Class.new(Vagrant.plugin("2", :command)) do
      def execute
        keys = @env.vagrantfile.config.ssh.private_key_path || []
        refused = keys.filter_map do |key|
          Vagrant::Util::SSH.check_key_permissions(Pathname.new(key))
          nil
        rescue Vagrant::Errors::VagrantError => e
          "#{key}: #{e.class}"
        end
        puts JSON.generate(
          "source_root" => Vagrant.source_root.to_s,
          "user_data_path" => Vagrant.user_data_path.to_s,
          "keys" => keys,
          "refused" => refused,
        )
        0
      end
    end
  end
end
"##;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `vagrant ARGS` in `folder` with a clean environment and `home` as HOME;
/// as uid [`NORMAL_USER`] when the test runs as root.
fn vagrant_as_user(folder: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("setpriv");
        let id = NORMAL_USER.to_string();
        cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", "vagrant"]);
        cmd
    } else {
        Command::new("vagrant")
    };
    cmd.args(args)
        .current_dir(folder)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_NO_COLOR", "1")
        .output()
        .unwrap()
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

fn show(out: &std::process::Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn vagrant_gets_the_lab_key_and_only_keys_the_caller_owns() {
    let test = "vagrant_gets_the_lab_key_and_only_keys_the_caller_owns";
    let version = match vagrant_available() {
        Ok(v) => v,
        Err(why) => {
            support::skip(test, &why);
            return;
        }
    };
    if is_root() && Command::new("setpriv").arg("--version").output().is_err() {
        support::skip(
            test,
            "setpriv (util-linux) is missing: cannot run Vagrant as a normal user",
        );
        return;
    }
    eprintln!("using {version}");

    // The lab folder as `labctl up` lays it out: vagrant/Vagrantfile and
    // vagrant-keys/lab_ed25519 next to it.
    let tmp = tempfile::tempdir().unwrap();
    let lab_dir = tmp.path().join("lab");
    let folder = lab_dir.join("vagrant");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let lab_key = labctl::vagrant_cli::ensure_lab_key(&lab_dir, "keyprobe").unwrap();
    let text = std::fs::read_to_string(lab_path("vagrant-netonly.yaml")).unwrap();
    let lab = labctl_lab::parse("labs/vagrant-netonly.yaml", &text).unwrap();
    std::fs::write(
        folder.join("Vagrantfile"),
        render::vagrantfile(&lab).unwrap(),
    )
    .unwrap();
    std::fs::write(folder.join(".vagrantplugins"), PROBE).unwrap();
    let caller = if is_root() {
        chown_tree(tmp.path(), NORMAL_USER);
        NORMAL_USER
    } else {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    };

    let out = vagrant_as_user(&folder, &home, &["labctl-key-probe"]);
    assert!(out.status.success(), "the key probe failed: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!("the key probe printed no JSON: {}", show(&out));
        });
    let probe: serde_json::Value = serde_json::from_str(line).unwrap();
    let strings = |field: &str| -> Vec<String> {
        probe[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} missing in {line}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let keys: Vec<PathBuf> = strings("keys").iter().map(PathBuf::from).collect();
    let source_root = PathBuf::from(probe["source_root"].as_str().unwrap());
    let user_data = PathBuf::from(probe["user_data_path"].as_str().unwrap());

    assert_eq!(user_data, home.join(".vagrant.d"), "{line}");
    assert_eq!(
        keys.first(),
        Some(&lab_key),
        "the lab key comes first: {line}"
    );
    assert!(
        keys.len() >= 2,
        "no insecure key for Vagrant's first login (it copies insecure_private_key into its home): {line}"
    );
    for key in &keys[1..] {
        assert!(
            key.starts_with(&user_data) && !key.starts_with(&source_root),
            "{} is not one of Vagrant's per-user copies in {}: {line}",
            key.display(),
            user_data.display()
        );
    }
    for key in &keys {
        let meta = std::fs::metadata(key).unwrap();
        assert_eq!(meta.uid(), caller, "{} is not the caller's", key.display());
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", key.display());
    }
    assert_eq!(
        strings("refused"),
        Vec::<String>::new(),
        "Vagrant refuses keys it would log in with"
    );

    // Vagrant's own validation with the key branch taken (it checks that
    // every private_key_path exists).
    let out = vagrant_as_user(&folder, &home, &["validate", "-p"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("Vagrantfile validated successfully"),
        "vagrant validate -p with the lab key present: {}",
        show(&out)
    );
}
