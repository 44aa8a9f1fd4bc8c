//! The vagrant provider's whole path after the VMs exist, run for real:
//! a stand-in `vagrant` program (first on PATH) plays Vagrant — it answers
//! `--version`, `up` and `destroy` with recorded-style output and prints a
//! `vagrant ssh-config` whose machines are three "existing hosts" on this
//! machine (namespaces with their own sshd, tests/support/hosts.rs), with
//! the key on a path with spaces and mode 0644 as under WSL2. So labctl's
//! rendering, logging, ssh-config parsing, key staging, hostname over SSH,
//! agent, pods, DNS and destroy all run against real sshd hosts; only the
//! VMs themselves are stood in for; `status` says every machine runs, or
//! that those in `LABCTL_TEST_VAGRANT_NOT_CREATED` do not exist, so the
//! test can replace a "VM" (a new host key at the same address) behind
//! Vagrant's back, or as Vagrant re-creating it. Needs root: skipped
//! otherwise.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::hosts::Hosts;
use support::netns::{can_run, in_netns, show};
use support::sshd::{fingerprint_of, keygen, public_line, KeyKind};

/// The stand-in: logs each call's arguments, then acts like Vagrant.
const STAND_IN: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$LABCTL_TEST_VAGRANT_CALLS"
case "$1" in
  --version) echo "Vagrant 2.4.9" ;;
  up)
    echo "Bringing machine 'master' up with 'libvirt' provider..."
    for m in master worker1 worker2; do
      echo "==> $m: Creating domain with the following settings..."
      echo "==> $m: Machine booted and ready!"
    done ;;
  ssh-config) cat "$LABCTL_TEST_VAGRANT_SSH_CONFIG" ;;
  status)
    for m in master worker1 worker2; do
      s=running
      case " $LABCTL_TEST_VAGRANT_NOT_CREATED " in *" $m "*) s=not_created ;; esac
      echo "1700000000,$m,provider-name,libvirt"
      echo "1700000000,$m,state,$s"
    done ;;
  destroy)
    for m in worker2 worker1 master; do echo "==> $m: Removing domain..."; done ;;
  *) echo "stand-in vagrant: unexpected command $*" >&2; exit 1 ;;
esac
"#;

fn labctl(env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_labctl"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("labctl runs")
}

/// `vagrant ssh-config` as vagrant-libvirt prints it, for the hosts.
fn ssh_config(hosts: &Hosts, key: &Path) -> String {
    let mut text = String::new();
    for h in &hosts.hosts {
        text.push_str(&format!(
            "Host {}\n  HostName {}\n  User root\n  Port 22\n  UserKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile \"{}\"\n  \
             IdentitiesOnly yes\n  LogLevel FATAL\n\n",
            h.name,
            h.ip,
            key.display()
        ));
    }
    text
}

#[test]
fn vagrant_provider_after_boot_runs_for_real_against_sshd_hosts() {
    if !can_run("vagrant_provider_after_boot_runs_for_real_against_sshd_hosts")
        || !support::hosts::bridge_netfilter_present_or_skip(
            "vagrant_provider_after_boot_runs_for_real_against_sshd_hosts",
        )
    {
        return;
    }
    let tag = format!("tv{}", std::process::id() % 100_000);
    let mut hosts = Hosts::start(&tag, [192, 168, 72], &["master", "worker1", "worker2"]);
    let base = hosts.dir.path();

    // Vagrant's per-machine key, world-readable on a path with spaces.
    let key_dir = base.join("machines dir");
    std::fs::create_dir_all(&key_dir).unwrap();
    let key = key_dir.join("private_key");
    std::fs::copy(&hosts.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let recorded = base.join("ssh-config.txt");
    std::fs::write(&recorded, ssh_config(&hosts, &key)).unwrap();
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("vagrant"), STAND_IN).unwrap();
    std::fs::set_permissions(bin.join("vagrant"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let calls = base.join("calls.txt");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        ("LABCTL_TEST_VAGRANT_CALLS", calls.display().to_string()),
        (
            "LABCTL_TEST_VAGRANT_SSH_CONFIG",
            recorded.display().to_string(),
        ),
    ];

    let lab = base.join("lab.yaml");
    let mut text = format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: {tag}\nprovider:\n  type: vagrant\n  \
         box: labctl/bookworm\n  vagrantProvider: libvirt\n  libvirtDriver: qemu\n  isolated: true\n\
         kubernetes:\n  enabled: false\nnetwork:\n  underlay: 192.168.72.0/24\n  podNetwork: 10.72.0.0/16\nnodes:\n"
    );
    for (i, h) in hosts.hosts.iter().enumerate() {
        let role = if i == 0 { "control-plane" } else { "worker" };
        text.push_str(&format!(
            "  - name: {}\n    role: {role}\n    ip: {}\n",
            h.name, h.ip
        ));
    }
    std::fs::write(&lab, text).unwrap();
    let lab = lab.to_str().unwrap();

    // Destroys the lab whatever happens (before the hosts go).
    struct Guard<'a>(&'a [(&'a str, String)], String);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let out = labctl(self.0, &["destroy", "--name", &self.1]);
            if !out.status.success() {
                eprintln!("cleanup failed: {}", show(&out));
            }
        }
    }
    let _guard = Guard(&env, tag.clone());

    let out = labctl(&env, &["up", lab]);
    assert!(out.status.success(), "up: {}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master: Machine booted and ready!"),
        "per-machine summary: {stderr}"
    );

    // What labctl asked Vagrant, and what it made of the answers.
    let called = std::fs::read_to_string(&calls).unwrap();
    assert!(
        called.contains("up --no-color --provider=libvirt"),
        "{called}"
    );
    assert!(
        called.contains("ssh-config master worker1 worker2"),
        "{called}"
    );
    let lab_dir = Path::new("/var/lib/labctl/labs").join(&tag);
    let vagrantfile = std::fs::read_to_string(lab_dir.join("vagrant/Vagrantfile")).unwrap();
    assert!(
        vagrantfile.contains("lv.driver = \"qemu\""),
        "{vagrantfile}"
    );
    assert!(
        vagrantfile.contains("lv.management_network_mode = \"none\""),
        "{vagrantfile}"
    );
    let log = std::fs::read_to_string(lab_dir.join("logs/vagrant.log")).unwrap();
    assert!(
        log.contains("==> worker2: Machine booted and ready!"),
        "{log}"
    );
    // The lab's own key pair is made before `vagrant up`. This stand-in's
    // ssh-config does not list it first (like a Vagrantfile that does not
    // know it), so labctl uses Vagrant's key, staged, and swaps nothing:
    // the swap would edit root's real ~/.ssh/authorized_keys here
    // (src/provider/vagrant/key_swap.rs tests its script; tests/vm/e2e.sh
    // runs it on real VMs).
    let keys = lab_dir.join("vagrant-keys");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys.join("lab_ed25519")), 0o600, "lab key mode");
    assert!(keys.join("lab_ed25519.pub").is_file());
    let staged: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with("lab_ed25519"))
        .collect();
    assert_eq!(staged.len(), 1, "one staged key");
    assert_eq!(mode(&staged[0].path()), 0o600, "staged key mode");

    // Hostnames were set over SSH, in each host's own files.
    let out = labctl(&env, &["exec", "--lab", &tag, "--all", "--", "hostname"]);
    assert!(out.status.success(), "{}", show(&out));
    for h in &hosts.hosts {
        let hosts_file = std::fs::read_to_string(h.bound("/etc/hosts")).unwrap();
        assert!(
            hosts_file.contains(&format!("127.0.1.1 {}", h.name)),
            "{hosts_file}"
        );
    }

    // The data plane and pods work across the "VMs".
    let out = labctl(
        &env,
        &[
            "exec",
            "--lab",
            &tag,
            "--all",
            "--",
            "cat",
            "/run/flannel/subnet.env",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("worker2: FLANNEL_SUBNET=10.72.2.1/24"),
        "{}",
        show(&out)
    );
    let out = in_netns(
        &format!("{tag}-worker2-busybox"),
        &[
            "busybox",
            "nslookup",
            "kube-dns.kube-system.svc.cluster.local",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10.96.0.10"),
        "DNS: {}",
        show(&out)
    );

    let out = labctl(&env, &["up", lab]);
    assert!(out.status.success(), "second up: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "second up: {}",
        show(&out)
    );

    // worker2 replaced behind Vagrant's back (another host key at the same
    // address): `up` did not create that machine, so it refuses the key.
    let known_hosts = lab_dir.join("known_hosts");
    let old_pin = format!(
        "{} {}",
        hosts.by_name("worker2").ip,
        public_line(&hosts.host_key("worker2"))
    );
    assert!(std::fs::read_to_string(&known_hosts)
        .unwrap()
        .contains(&old_pin));
    let new_key = keygen(&base.join("worker2_new_host_key"), KeyKind::Ed25519);
    let new_fp = fingerprint_of(&new_key);
    hosts.replace_host_key("worker2", &new_key);
    let out = labctl(&env, &["up", lab]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "up, changed key: {}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("worker2") && stderr.contains(&new_fp) && stderr.contains("did not create"),
        "{stderr}"
    );
    assert!(std::fs::read_to_string(&known_hosts)
        .unwrap()
        .contains(&old_pin));
    // Vagrant reports the machine gone, so `vagrant up` makes a new one:
    // labctl drops the old machine's pin and pins the new machine's key.
    let mut recreate = env.to_vec();
    recreate.push(("LABCTL_TEST_VAGRANT_NOT_CREATED", "worker2".to_string()));
    let out = labctl(&recreate, &["up", lab]);
    assert!(
        out.status.success(),
        "up re-creating worker2: {}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("worker2: host key {new_fp}")),
        "{stderr}"
    );
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(!pins.contains(&old_pin), "{pins}");
    assert!(
        pins.contains(&format!(
            "{} {}",
            hosts.by_name("worker2").ip,
            public_line(&new_key)
        )),
        "{pins}"
    );
    assert!(std::fs::read_to_string(&calls)
        .unwrap()
        .contains("status --machine-readable"));

    // destroy needs neither the lab file nor the machines' SSH.
    std::fs::remove_file(lab).unwrap();
    let out = labctl(&env, &["destroy", "--name", &tag]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert!(std::fs::read_to_string(&calls)
        .unwrap()
        .contains("destroy -f"));
    assert!(!lab_dir.exists(), "the lab folder is gone");
}
