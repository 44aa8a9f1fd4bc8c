//! The `vagrant` runner: process handling, logging and error messages with
//! a stand-in `vagrant` script replaying recorded output (no VMs can boot
//! here), then the real Vagrant on a Vagrantfile rendered by labctl
//! (`vagrant validate -p` and `vagrant status`, which need no VM).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use labctl::vagrant_cli::Vagrant;

fn recorded_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recorded")
        .join(name)
}

/// A stand-in `vagrant` in `dir` running `body` (bash; `$1` is the command).
/// Every call appends `PWD ARGS VAGRANT_CWD` to `dir/calls`.
fn fake_vagrant(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("vagrant");
    let calls = dir.join("calls");
    let script = format!(
        "#!/bin/bash\nprintf '%s %s cwd=%s\\n' \"$PWD\" \"$*\" \"${{VAGRANT_CWD-unset}}\" >> '{}'\n{body}\n",
        calls.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
}

#[test]
fn up_logs_output_reports_steps_and_summarises_machines() {
    let tools = tempfile::tempdir().unwrap();
    let lab = tempfile::tempdir().unwrap();
    let log_fixture = recorded_path("vagrant-up-virtualbox.log");
    // Replays the recorded run minus labctl's header, the final complaint
    // on stderr, and fails like Vagrant does on a boot timeout.
    let body = format!(
        "tail -n +2 '{0}' | grep -v '^Timed out\\|^Vagrant was\\|^the configured'\n\
         grep '^Timed out\\|^Vagrant was\\|^the configured' '{0}' >&2\nexit 1",
        log_fixture.display()
    );
    let vagrant = Vagrant::new(lab.path())
        .with_program(fake_vagrant(tools.path(), &body))
        .with_provider("virtualbox");
    let log = lab.path().join("logs/vagrant-up.log");
    let mut steps = Vec::new();
    let err = vagrant
        .up_watching(&log, &mut |m, s| steps.push(format!("{m}: {s}")))
        .unwrap_err();
    let message = format!("{err:#}");

    assert!(
        message.contains("vagrant up --no-color --provider=virtualbox` in"),
        "{message}"
    );
    assert!(
        message.contains(
            "failed (exit status 1); machines: master: Configuring and enabling network interfaces...; \
             worker1: Configuring and enabling network interfaces...; \
             worker2: Waiting for machine to boot. This may take a few minutes...; last lines of"
        ),
        "{message}"
    );
    assert!(
        message.contains("  the configured (\"config.vm.boot_timeout\" value) time period."),
        "{message}"
    );
    assert_eq!(
        steps.first().unwrap(),
        "master: queued (virtualbox provider)"
    );
    assert!(steps
        .contains(&"worker1: Fixed port collision for 22 => 2222. Now on port 2200.".to_string()));

    // The log holds everything: a header naming the command, stdout, stderr.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.starts_with("### labctl ran: "), "{logged}");
    assert!(logged.contains("    worker2: SSH address: 127.0.0.1:2201\n"));
    assert!(logged.contains("Timed out while waiting for the machine to boot."));
    assert!(calls(tools.path()).starts_with(&format!(
        "{} up --no-color --provider=virtualbox",
        lab.path().display()
    )));
}

#[test]
fn a_successful_up_returns_the_summary_and_a_second_run_appends_to_the_log() {
    let tools = tempfile::tempdir().unwrap();
    let lab = tempfile::tempdir().unwrap();
    let body = "echo \"Bringing machine 'master' up with 'libvirt' provider...\"\necho '==> master: Machine booted and ready!'";
    let vagrant = Vagrant::new(lab.path()).with_program(fake_vagrant(tools.path(), body));
    let log = lab.path().join("vagrant-up.log");
    let summary = vagrant.up(&log).unwrap();
    assert_eq!(summary.lines(), ["master: Machine booted and ready!"]);
    vagrant.up(&log).unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("### labctl ran: ").count(), 2, "{logged}");
    assert!(calls(tools.path())
        .lines()
        .all(|l| l.contains(" up --no-color cwd=")));
}

#[test]
fn ssh_config_status_and_destroy_through_the_runner() {
    let tools = tempfile::tempdir().unwrap();
    let lab = tempfile::tempdir().unwrap();
    let body = format!(
        "case \"$1\" in\n\
         ssh-config) cat '{}' ;;\n\
         status) cat '{}'; exit 1 ;;\n\
         destroy) echo '==> worker2: Destroying VM and associated drives...' ;;\n\
         esac",
        recorded_path("vagrant-ssh-config-libvirt.txt").display(),
        recorded_path("vagrant-status-no-provider.txt").display()
    );
    // A learner's VAGRANT_CWD must not redirect labctl to another project.
    std::env::set_var("VAGRANT_CWD", "/somewhere/else");
    let vagrant = Vagrant::new(lab.path()).with_program(fake_vagrant(tools.path(), &body));
    let entries = vagrant.ssh_config().unwrap();
    assert_eq!(entries["worker2"].host_name, "192.168.121.22");
    vagrant.ssh_config_of(&["worker1", "worker2"]).unwrap();

    let err = format!("{:#}", vagrant.status().unwrap_err());
    assert!(
        err.contains("vagrant status --machine-readable` in"),
        "{err}"
    );
    assert!(
        err.contains("(Vagrant::Errors::NoDefaultProvider): No usable default provider"),
        "{err}"
    );

    let log = lab.path().join("vagrant-destroy.log");
    vagrant.destroy(&log).unwrap();
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("Destroying VM"));
    let calls = calls(tools.path());
    assert!(calls.lines().all(|l| l.ends_with("cwd=unset")), "{calls}");
    assert!(calls.contains(" destroy -f cwd="), "{calls}");
    assert!(
        calls.contains(" ssh-config worker1 worker2 cwd="),
        "{calls}"
    );
}

#[test]
fn failing_ssh_config_shows_what_vagrant_said() {
    let tools = tempfile::tempdir().unwrap();
    let lab = tempfile::tempdir().unwrap();
    let body = "echo 'The provider for this Vagrant-managed machine is reporting that it' >&2\n\
                echo 'is not yet ready for SSH.' >&2\nexit 1";
    let vagrant = Vagrant::new(lab.path()).with_program(fake_vagrant(tools.path(), body));
    let err = format!("{:#}", vagrant.ssh_config().unwrap_err());
    assert!(err.contains("vagrant ssh-config` in"), "{err}");
    assert!(
        err.contains("failed (exit status 1); it printed:\n  The provider"),
        "{err}"
    );
    assert!(err.ends_with("  is not yet ready for SSH."), "{err}");
}

#[test]
fn missing_vagrant_is_an_environment_error() {
    let lab = tempfile::tempdir().unwrap();
    let vagrant = Vagrant::new(lab.path()).with_program("/nonexistent/vagrant");
    let err = vagrant.version().unwrap_err();
    assert!(
        format!("{err:#}").contains("Vagrant is not installed"),
        "{err:#}"
    );
    assert_eq!(labctl::exit::exit_code_for(&err), labctl::exit::ENVIRONMENT);
}

/// The real Vagrant, or why the test cannot use it (fails in CI).
fn real_vagrant() -> bool {
    if labctl::hostcmd::have_program("vagrant") {
        return true;
    }
    labctl_testenv::skip(
        "real_vagrant",
        "`vagrant` is not installed (Debian package `vagrant`)",
    )
}

fn render_vagrantfile(dir: &Path, provider: labctl_lab::VagrantProvider) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("labs/vagrant.yaml");
    let mut lab =
        labctl_lab::parse("labs/vagrant.yaml", &std::fs::read_to_string(path).unwrap()).unwrap();
    lab.provider.vagrant_provider = provider;
    let text = labctl::render::vagrantfile(&lab).unwrap();
    std::fs::write(dir.join("Vagrantfile"), text).unwrap();
}

#[test]
fn real_vagrant_validates_rendered_vagrantfiles() {
    if !real_vagrant() {
        return;
    }
    for provider in [
        labctl_lab::VagrantProvider::Virtualbox,
        labctl_lab::VagrantProvider::Libvirt,
    ] {
        let dir = tempfile::tempdir().unwrap();
        render_vagrantfile(dir.path(), provider);
        let vagrant = Vagrant::new(dir.path());
        println!("{}", vagrant.version().unwrap());
        vagrant
            .validate()
            .unwrap_or_else(|e| panic!("{provider:?}: {e:#}"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Vagrantfile"),
        "Vagrant.configure(\"2\") do |config|\n  config.vm.bogus = 1\nend\n",
    )
    .unwrap();
    let err = format!("{:#}", Vagrant::new(dir.path()).validate().unwrap_err());
    assert!(err.contains("`vagrant validate -p` in"), "{err}");
    assert!(err.contains("failed (exit status 1); it printed:"), "{err}");
}

#[test]
fn real_vagrant_status_of_a_rendered_lab() {
    if !real_vagrant() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    render_vagrantfile(dir.path(), labctl_lab::VagrantProvider::Libvirt);
    // `vagrant status` needs a usable provider: with one, every machine is
    // not created yet; without one (as on a bare CI machine), Vagrant says
    // so and the error carries its message.
    match Vagrant::new(dir.path()).status() {
        Ok(machines) => {
            println!("vagrant status with a provider: {machines:?}");
            assert_eq!(
                machines.keys().collect::<Vec<_>>(),
                ["master", "worker1", "worker2"]
            );
            assert!(
                machines.values().all(|m| m.state == "not_created"),
                "{machines:?}"
            );
        }
        Err(err) => {
            let err = format!("{err:#}");
            println!("vagrant status without a usable provider: {err}");
            assert!(
                err.contains("vagrant status --machine-readable` in"),
                "{err}"
            );
            assert!(err.contains("Errors::"), "{err}");
        }
    }
}
