//! The node preparation script: syntax (`bash -n`, shellcheck when
//! installed), LF endings, quoted values, and its functions run for real by
//! bash on recorded containerd configs and sample files.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use labctl::kubeadm::node_prepare_script;
use labctl::kubeadm::prepare::{self, FUNCTIONS};
use support::fixtures::{recorded, vagrant_lab};

/// Runs `body` with bash after `set -euo pipefail`, the given variables and
/// the script's functions. Returns (success, stdout, stderr).
fn run_functions(vars: &[(&str, &str)], body: &str) -> (bool, String, String) {
    let script = format!(
        "set -euo pipefail\n{}\n{FUNCTIONS}\n{body}\n",
        prepare::variables(vars)
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_script(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("prepare-node.sh");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn script_is_valid_bash_with_lf_endings_and_quoted_values() {
    let lab = vagrant_lab();
    let worker = &lab.nodes[1];
    let script = node_prepare_script(&lab, worker, Some("1.37.2"));
    assert!(script.starts_with("#!/usr/bin/env bash\n"));
    assert!(!script.contains('\r'), "the script has CR characters");
    assert!(script.contains("\nset -euo pipefail\n"));
    for line in [
        "NODE_NAME='worker1'",
        "K8S_MINOR='1.37'",
        "K8S_VERSION='1.37.2'",
        "KEEP_CNI_FILE='10-flannel.conflist'",
        "LAB_HOSTS='192.168.56.10 master\n192.168.56.11 worker1\n192.168.56.12 worker2'",
    ] {
        assert!(script.contains(line), "missing {line:?}");
    }
    for needed in [
        "modprobe br_netfilter",
        "swapoff -a",
        "apt-mark hold",
        "kubernetes-cni",
        "pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/",
        "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
        "set_systemd_cgroup",
        "containerd config dump",
        "hostnamectl set-hostname",
        "https://download.docker.com/linux/${DISTRO}",
        "/etc/apt/keyrings/docker.gpg",
        "containerd.io",
        "cri-tools iptables",
        "set_sandbox_image",
        "kubeadm config images list --kubernetes-version",
    ] {
        assert!(script.contains(needed), "the script lacks {needed:?}");
    }
    // Every apt-get waits for the package lock (unattended-upgrades).
    let apt_lines: Vec<&str> = script
        .lines()
        .filter(|l| l.contains("apt-get ") && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(
        apt_lines,
        ["  apt-get -o DPkg::Lock::Timeout=\"$APT_LOCK_TIMEOUT\" \\"]
    );
    assert!(script.contains("apt_get() {\n  apt-get -o DPkg::Lock::Timeout="));
    assert!(script.contains("\nAPT_LOCK_TIMEOUT=900\n"));
    // The control plane picks the release itself.
    let cp = node_prepare_script(&lab, &lab.nodes[0], None);
    assert!(cp.contains("\nK8S_VERSION=''\n"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_script(dir.path(), &script);
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shellcheck_finds_nothing() {
    if !labctl::hostcmd::have_program("shellcheck") {
        support::skip(
            "shellcheck_finds_nothing",
            "shellcheck is not installed (Debian package `shellcheck`)",
        );
        return;
    }
    let lab = vagrant_lab();
    let dir = tempfile::tempdir().unwrap();
    for (node, release) in [(&lab.nodes[0], None), (&lab.nodes[1], Some("1.37.2"))] {
        let path = write_script(dir.path(), &node_prepare_script(&lab, node, release));
        let out = Command::new("shellcheck")
            .args(["-s", "bash", "-S", "style"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck ({}):\n{}",
            node.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn values_stay_literal_in_bash() {
    let nasty = "a'b $(touch /tmp/labctl-pwned) `id` \"q\" \\";
    let (ok, stdout, stderr) = run_functions(&[("NODE_NAME", nasty)], "printf '%s' \"$NODE_NAME\"");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, nasty);
}

/// The config after `set_systemd_cgroup`, or the error output.
fn systemd_cgroup(config: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let body = format!(
        "set_systemd_cgroup {}",
        prepare::single_quote(path.to_str().unwrap())
    );
    let (ok, _, stderr) = run_functions(&[("NODE_NAME", "master")], &body);
    if ok {
        Ok(std::fs::read_to_string(&path).unwrap())
    } else {
        Err(stderr)
    }
}

/// Lines of `after` that differ from `before` (same length expected, or one
/// inserted line).
fn changed_lines(before: &str, after: &str) -> Vec<String> {
    let before: Vec<&str> = before.lines().collect();
    after
        .lines()
        .enumerate()
        .filter(|(i, line)| before.get(*i) != Some(line))
        .map(|(i, line)| format!("{}:{line}", i + 1))
        .collect()
}

#[test]
fn containerd_1x_config_turns_systemd_cgroup_on() {
    let before = recorded("containerd-1.6-config-default.toml");
    let after = systemd_cgroup(&before).unwrap();
    assert_eq!(
        changed_lines(&before, &after),
        ["125:            SystemdCgroup = true"]
    );
    assert_eq!(after.lines().count(), before.lines().count());
    // Running it again changes nothing (idempotent).
    assert_eq!(systemd_cgroup(&after).unwrap(), after);
}

#[test]
fn containerd_2x_config_without_the_key_gets_it_in_the_runc_table() {
    let before = recorded("containerd-2.0-config-default.toml");
    let after = systemd_cgroup(&before).unwrap();
    let lines: Vec<&str> = after.lines().collect();
    let table = lines
        .iter()
        .position(|l| {
            l.trim() == "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]"
        })
        .unwrap();
    assert_eq!(lines[table + 1].trim(), "SystemdCgroup = true");
    assert_eq!(after.lines().count(), before.lines().count() + 1);
    assert_eq!(systemd_cgroup(&after).unwrap(), after);
}

#[test]
fn containerd_2x_config_with_the_key_false_flips_it() {
    let before = recorded("containerd-2.0-config-default.toml").replace(
        "ShimCgroup = ''\n",
        "ShimCgroup = ''\n            SystemdCgroup = false\n",
    );
    let after = systemd_cgroup(&before).unwrap();
    assert_eq!(
        after,
        before.replace("SystemdCgroup = false", "SystemdCgroup = true")
    );
}

#[test]
fn unknown_containerd_config_is_refused_with_a_reason() {
    let err = systemd_cgroup("version = 9\n[plugins.other]\n").unwrap_err();
    assert!(err.contains("labctl prepare master: ERROR"), "{err}");
    assert!(err.contains("no runc options table"), "{err}");
}

#[test]
fn edited_containerd_config_is_what_containerd_reads() {
    if !labctl::hostcmd::have_program("containerd") {
        support::skip(
            "edited_containerd_config_is_what_containerd_reads",
            "containerd is not installed (Debian package `containerd`), so `containerd config \
             dump` cannot confirm the edit",
        );
        return;
    }
    let after = systemd_cgroup(&recorded("containerd-1.6-config-default.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, after).unwrap();
    let out = Command::new("containerd")
        .arg("--config")
        .arg(&path)
        .args(["config", "dump"])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.lines().any(|l| l.trim() == "SystemdCgroup = true"),
        "{dump}"
    );
}

#[test]
fn hosts_file_gets_the_node_name_and_the_lab_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.1.1 vagrant\n::1 ip6-localhost\n\
         # labctl lab nodes begin\n10.0.0.1 old\n# labctl lab nodes end\n",
    )
    .unwrap();
    let vars = [
        ("NODE_NAME", "worker1"),
        ("LAB_HOSTS", "192.168.56.10 master\n192.168.56.11 worker1"),
    ];
    let path = prepare::single_quote(hosts.to_str().unwrap());
    let body = format!("put_file {path} \"$(hosts_with_lab {path})\"; echo \"$CHANGED\"");
    let (ok, changed, stderr) = run_functions(&vars, &body);
    assert!(ok, "{stderr}");
    assert_eq!(changed.trim(), "1");
    let first = std::fs::read_to_string(&hosts).unwrap();
    assert_eq!(
        first,
        "127.0.0.1 localhost\n::1 ip6-localhost\n127.0.1.1 worker1\n\
         # labctl lab nodes begin\n192.168.56.10 master\n192.168.56.11 worker1\n# labctl lab nodes end\n"
    );
    let (ok, changed, stderr) = run_functions(&vars, &body);
    assert!(ok, "{stderr}");
    assert_eq!(changed.trim(), "0", "a second run rewrote /etc/hosts");
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), first);
}

#[test]
fn put_file_writes_only_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub/dir/file.conf");
    let path = prepare::single_quote(target.to_str().unwrap());
    let body =
        format!("put_file {path} 'a = 1'; echo $CHANGED; put_file {path} 'a = 1'; echo $CHANGED");
    let (ok, stdout, stderr) = run_functions(&[("NODE_NAME", "n")], &body);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "1\n0\n");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "a = 1\n");
}

/// `body` with `fixture` (tests/fixtures/recorded) on stdin: stdout, or
/// the error output.
fn with_recorded_stdin(body: &str, fixture: &str) -> Result<String, String> {
    let path = support::fixtures::repo()
        .join("tests/fixtures/recorded")
        .join(fixture);
    let body = format!("{body} < {}", prepare::single_quote(path.to_str().unwrap()));
    let (ok, stdout, stderr) = run_functions(&[("NODE_NAME", "master")], &body);
    if ok {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

#[test]
fn newest_release_is_picked_by_version_not_by_text() {
    let madison = "apt-cache-madison-kubeadm.txt";
    let newest = |prefix: &str| with_recorded_stdin(&format!("newest_version '{prefix}'"), madison);
    // 1.37.10 is newer than 1.37.9 (a text sort would say otherwise).
    assert_eq!(newest("1.37.").unwrap(), "1.37.10-1.1\n");
    // A worker asks for the control plane's exact release.
    assert_eq!(newest("1.37.2-").unwrap(), "1.37.2-1.1\n");
    assert_eq!(newest("1.37.1-").unwrap(), "1.37.1-1.1\n");
    assert_eq!(newest("1.36.").unwrap(), "");
    let containerd =
        with_recorded_stdin("newest_version 2.", "apt-cache-madison-containerd.io.txt");
    assert_eq!(containerd.unwrap(), "2.2.1-1~ubuntu.24.04~noble\n");
}

#[test]
fn pause_image_is_the_one_kubeadm_lists() {
    let image = with_recorded_stdin("pause_image", "kubeadm-config-images-list.txt");
    assert_eq!(image.unwrap(), "registry.k8s.io/pause:3.10.1\n");
}

#[test]
fn distribution_and_codename_come_from_os_release() {
    for (field, value) in [
        ("ID", "ubuntu"),
        ("VERSION_CODENAME", "noble"),
        ("VERSION_ID", "24.04"),
        ("NOPE", ""),
    ] {
        let got = with_recorded_stdin(
            &format!("os_release_value {field} /dev/stdin"),
            "os-release-ubuntu-24.04",
        );
        assert_eq!(got.unwrap(), value, "{field}");
    }
}

/// The config after `set_sandbox_image CONFIG IMAGE`, or the error output.
fn sandbox_image(config: &str, image: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let body = format!(
        "set_sandbox_image {} {}",
        prepare::single_quote(path.to_str().unwrap()),
        prepare::single_quote(image)
    );
    let (ok, _, stderr) = run_functions(&[("NODE_NAME", "master")], &body);
    if ok {
        Ok(std::fs::read_to_string(&path).unwrap())
    } else {
        Err(stderr)
    }
}

#[test]
fn containerd_2x_sandbox_image_is_kubeadms_pause_image() {
    let before = recorded("containerd-2.0-config-default.toml");
    let image = "registry.k8s.io/pause:3.10.1";
    let after = sandbox_image(&before, image).unwrap();
    assert_eq!(
        changed_lines(&before, &after),
        ["33:      sandbox = 'registry.k8s.io/pause:3.10.1'"]
    );
    assert_eq!(sandbox_image(&after, image).unwrap(), after);
    // A default without the key gets it in the pinned_images table.
    let without = before.replace("      sandbox = 'registry.k8s.io/pause:3.10'\n", "");
    let added = sandbox_image(&without, image).unwrap();
    assert_eq!(added, after);
}

#[test]
fn sandbox_image_refuses_containerd_1x_and_odd_names() {
    let old = recorded("containerd-1.6-config-default.toml");
    let err = sandbox_image(&old, "registry.k8s.io/pause:3.10.1").unwrap_err();
    assert!(
        err.contains("no pinned_images table: containerd 2.x is needed"),
        "{err}"
    );
    let config = recorded("containerd-2.0-config-default.toml");
    let err = sandbox_image(&config, "pause:1|x").unwrap_err();
    assert!(err.contains("is not an image reference"), "{err}");
}

#[test]
fn a_package_apt_does_not_know_is_no_release_rather_than_an_abort() {
    let body = "apt-cache() { echo 'N: Unable to locate package' >&2; return 100; }\n\
                find_releases 1.37.\n\
                echo \"[$K8S_DEB][$CONTAINERD_DEB]\"";
    let (ok, stdout, stderr) = run_functions(&[("NODE_NAME", "master")], body);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "[][]\n");
}
