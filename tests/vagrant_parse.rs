//! Recorded Vagrant outputs parsed exactly: `vagrant ssh-config` for
//! VirtualBox, libvirt, a WSL2 path with spaces and several keys; `vagrant
//! status --machine-readable`; the per-machine summary of `vagrant up`; and
//! the staging of private keys as 0600 files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use labctl::vagrant_cli::{self, ssh_config, status, SshConfigEntry, UpSummary};

fn recorded(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recorded")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn entry(host: &str, host_name: &str, port: u16, keys: &[&str]) -> SshConfigEntry {
    SshConfigEntry {
        host: host.into(),
        host_name: host_name.into(),
        user: "vagrant".into(),
        port,
        identity_files: keys.iter().map(PathBuf::from).collect(),
    }
}

#[test]
fn virtualbox_machines_share_localhost_on_forwarded_ports() {
    let entries = ssh_config::parse(&recorded("vagrant-ssh-config-virtualbox.txt")).unwrap();
    let dir = "/home/learner/.local/state/labctl/labs/flannel-vagrant/.vagrant/machines";
    let expected: Vec<SshConfigEntry> = [("master", 2222), ("worker1", 2200), ("worker2", 2201)]
        .iter()
        .map(|(m, port)| {
            entry(
                m,
                "127.0.0.1",
                *port,
                &[&format!("{dir}/{m}/virtualbox/private_key")],
            )
        })
        .collect();
    assert_eq!(entries.into_values().collect::<Vec<_>>(), expected);
}

#[test]
fn libvirt_machines_answer_on_their_management_ip_port_22() {
    let entries = ssh_config::parse(&recorded("vagrant-ssh-config-libvirt.txt")).unwrap();
    let dir = "/root/.local/state/labctl/labs/flannel-vm/.vagrant/machines";
    let hosts: Vec<(String, String, u16)> = entries
        .values()
        .map(|e| (e.host.clone(), e.host_name.clone(), e.port))
        .collect();
    assert_eq!(
        hosts,
        [
            ("master".into(), "192.168.121.87".into(), 22),
            ("worker1".into(), "192.168.121.143".into(), 22),
            ("worker2".into(), "192.168.121.22".into(), 22),
        ]
    );
    assert_eq!(
        entries["worker1"].identity_files,
        [PathBuf::from(format!("{dir}/worker1/libvirt/private_key"))]
    );
}

#[test]
fn quoted_paths_with_spaces_keep_their_spaces() {
    let entries = ssh_config::parse(&recorded("vagrant-ssh-config-wsl-spaces.txt")).unwrap();
    assert_eq!(entries.len(), 2);
    let dir = "/mnt/c/Users/Jane Doe/k8s labs/flannel/.vagrant/machines";
    assert_eq!(
        entries["master"],
        entry(
            "master",
            "127.0.0.1",
            2222,
            &[&format!("{dir}/master/virtualbox/private_key")]
        )
    );
    assert_eq!(entries["worker1"].port, 2200);
}

#[test]
fn several_identity_files_keep_vagrants_order() {
    let entries = ssh_config::parse(&recorded("vagrant-ssh-config-multiple-keys.txt")).unwrap();
    let keys = "/root/.vagrant.d/insecure_private_keys";
    assert_eq!(
        entries["master"],
        entry(
            "master",
            "192.168.121.10",
            22,
            &[
                &format!("{keys}/vagrant.key.ed25519"),
                &format!("{keys}/vagrant.key.rsa")
            ]
        )
    );
}

#[test]
fn an_entry_becomes_an_ssh_endpoint() {
    let entries = ssh_config::parse(&recorded("vagrant-ssh-config-virtualbox.txt")).unwrap();
    let ep = entries["worker2"].endpoint(Path::new("/lab/k"), Path::new("/lab/known_hosts"));
    assert_eq!(
        (ep.node.as_str(), ep.address(), ep.user.as_str()),
        ("worker2", "127.0.0.1:2201".into(), "vagrant")
    );
    assert_eq!(ep.key, PathBuf::from("/lab/k"));
}

#[test]
fn broken_output_names_the_line() {
    let bad = recorded("vagrant-ssh-config-virtualbox.txt").replace("Port 2200", "Port 22x0");
    let err = ssh_config::parse(&bad).unwrap_err();
    assert_eq!(err.line, 15);
    assert_eq!(
        err.to_string(),
        "`vagrant ssh-config` output, line 15: `Port 22x0` is not a TCP port number"
    );
    let bad =
        recorded("vagrant-ssh-config-wsl-spaces.txt").replacen("private_key\"", "private_key", 1);
    assert_eq!(ssh_config::parse(&bad).unwrap_err().line, 8);
    let twice = recorded("vagrant-ssh-config-libvirt.txt").replace("Host worker2", "Host master");
    assert!(ssh_config::parse(&twice)
        .unwrap_err()
        .problem
        .contains("appears twice"));
}

#[test]
fn machine_readable_status_per_machine() {
    let machines = status::parse_status(&recorded("vagrant-status-virtualbox.txt")).unwrap();
    let states: Vec<String> = machines
        .iter()
        .map(|(m, s)| format!("{m} {} {} {}", s.provider, s.state, s.is_running()))
        .collect();
    assert_eq!(
        states,
        [
            "master virtualbox running true",
            "worker1 virtualbox running true",
            "worker2 virtualbox poweroff false"
        ]
    );
    assert!(machines["master"]
        .description
        .contains("To stop this VM, you can run `vagrant halt` to\nshut it down"));

    let machines = status::parse_status(&recorded("vagrant-status-libvirt.txt")).unwrap();
    assert_eq!(machines["worker2"].state, "not_created");
    assert_eq!(machines["worker2"].state_short, "not created");
    assert_eq!(machines["master"].provider, "libvirt");
}

#[test]
fn status_error_exit_is_reported() {
    // Recorded for real: Vagrant 2.3.4 without any provider installed.
    let err = status::parse_status(&recorded("vagrant-status-no-provider.txt")).unwrap_err();
    assert_eq!(err.class, "Vagrant::Errors::NoDefaultProvider");
    assert!(err
        .message
        .starts_with("No usable default provider could be found for your system.\n\n"));
    assert!(
        err.message.contains("VirtualBox, VMware, Hyper-V."),
        "{}",
        err.message
    );
}

#[test]
fn up_log_is_summarised_per_machine() {
    let summary = UpSummary::from_log(&recorded("vagrant-up-virtualbox.log"));
    assert_eq!(
        summary.lines(),
        [
            "master: Configuring and enabling network interfaces...",
            "worker1: Configuring and enabling network interfaces...",
            "worker2: Waiting for machine to boot. This may take a few minutes...",
        ]
    );
}

/// A repeat `up` of running libvirt machines (recorded here): each ends with
/// a message Vagrant wraps over two `==>` lines. The summary is the
/// message, not its second half.
#[test]
fn repeat_up_summary_is_the_last_message_not_its_wrapped_tail() {
    let summary = UpSummary::from_log(&recorded("vagrant-up-libvirt-repeat.log"));
    let expected = "Machine already provisioned. Run `vagrant provision` or use the `--provision`";
    assert_eq!(
        summary.lines(),
        ["master", "worker1", "worker2"]
            .iter()
            .map(|m| format!("{m}: {expected}"))
            .collect::<Vec<_>>()
    );
}

/// vagrant-libvirt's domain settings (`==> NAME:  -- Cpus: 1`) and the
/// wrapped box-metadata notice are not steps.
#[test]
fn cold_up_details_and_wrapped_notices_are_not_steps() {
    let log = "Bringing machine 'master' up with 'libvirt' provider...
==> master: No version detected for labctl/bookworm, using timestamp to watch for modifications. Consider
==> master: generating a local metadata for the box with a version to allow better handling.
==> master: Creating domain with the following settings...
==> master:  -- Name:              labctl-flannel-vm-master
==> master:  -- Domain type:       qemu
";
    assert_eq!(
        UpSummary::from_log(log).lines(),
        ["master: Creating domain with the following settings..."]
    );
    let mut summary = UpSummary::default();
    assert_eq!(
        summary.observe("==> master: generating a local metadata for the box with a version."),
        None
    );
}

#[test]
fn keys_are_staged_as_0600_copies() {
    let dir = tempfile::tempdir().unwrap();
    // Like a key on /mnt/c under WSL2: readable by everyone, a space in the path.
    let src_dir = dir
        .path()
        .join("Jane Doe/.vagrant/machines/master/virtualbox");
    std::fs::create_dir_all(&src_dir).unwrap();
    let src = src_dir.join("private_key");
    std::fs::write(&src, "-----BEGIN OPENSSH PRIVATE KEY-----\nkey one\n").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    let other = dir.path().join("worker1_private_key");
    std::fs::write(&other, "key two\n").unwrap();

    let lab = dir.path().join("lab");
    let staged = vagrant_cli::stage_identity(&src, &lab).unwrap();
    assert!(staged.starts_with(lab.join(vagrant_cli::STAGED_KEYS_DIR)));
    assert!(staged
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("-private_key"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&staged), 0o600);
    assert_eq!(mode(&lab.join(vagrant_cli::STAGED_KEYS_DIR)), 0o700);
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        std::fs::read(&src).unwrap()
    );

    // Same source, same copy; a changed key is copied again; another key
    // gets another file.
    assert_eq!(vagrant_cli::stage_identity(&src, &lab).unwrap(), staged);
    std::fs::write(&src, "rotated\n").unwrap();
    assert_eq!(vagrant_cli::stage_identity(&src, &lab).unwrap(), staged);
    assert_eq!(std::fs::read_to_string(&staged).unwrap(), "rotated\n");
    let both = vagrant_cli::stage_identities(&[src.clone(), other], &lab).unwrap();
    assert_eq!(both.len(), 2);
    assert_ne!(both[0], both[1]);

    let err = vagrant_cli::stage_identity(&dir.path().join("missing"), &lab).unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot read the SSH private key"),
        "{err:#}"
    );
}
