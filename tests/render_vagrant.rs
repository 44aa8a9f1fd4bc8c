//! Every rendered Vagrantfile passes `vagrant validate -p` (Vagrant's own
//! check, without any provider installed). Needs the `vagrant` package:
//! without it the test says why and fails in CI (CI=true) instead of
//! passing silently.

mod common;

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
