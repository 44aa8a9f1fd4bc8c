//! The whole node preparation script run twice by bash, as root, in a
//! private mount + UTS namespace where /etc is an overlay (every write lands
//! in a temporary folder) and the system tools it calls (apt-get,
//! dpkg-query, containerd, systemctl, sysctl, modprobe, ...) are stand-ins
//! that record their calls: nothing on this host changes, no package is
//! fetched. The first run does everything; the second must change nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use labctl::kubeadm::node_prepare_script;

/// Stand-ins, one per tool, in bash. `$S` is the state folder.
const STUBS: &[(&str, &str)] = &[
    (
        "hostname",
        r#"if [ $# -eq 0 ]; then cat "$S/hostname"; else echo "$1" > "$S/hostname"; fi"#,
    ),
    (
        "hostnamectl",
        r#"echo "hostnamectl $*" >> "$S/calls"; echo "$2" > "$S/hostname""#,
    ),
    ("modprobe", r#"echo "modprobe $*" >> "$S/calls""#),
    (
        "sysctl",
        r#"case "$1" in -n) echo 1 ;; *) echo "sysctl $*" >> "$S/calls" ;; esac"#,
    ),
    ("swapoff", r#"echo "swapoff $*" >> "$S/calls""#),
    ("swapon", r#"exit 0"#),
    ("systemctl", r#"echo "systemctl $*" >> "$S/calls""#),
    ("apt-mark", r#"echo "apt-mark $*" >> "$S/calls""#),
    (
        "curl",
        r#"echo "curl $*" >> "$S/calls"; echo 'fake signing key'"#,
    ),
    (
        "gpg",
        r#"echo "gpg $*" >> "$S/calls"; out=${*: -1}; cat > "$out""#,
    ),
    (
        "dpkg-query",
        r#"pkg=${*: -1}; [ -f "$S/pkgs/$pkg" ] || exit 1
case "$*" in *Status*) printf 'install ok installed' ;; *) cat "$S/pkgs/$pkg" ;; esac"#,
    ),
    (
        "apt-get",
        r#"echo "apt-get $*" >> "$S/calls"
[ "$1" = install ] || exit 0
for pkg in "$@"; do
  case "$pkg" in
    -*|install) ;;
    kubelet|kubeadm|kubectl) printf '1.37.2-1.1' > "$S/pkgs/$pkg" ;;
    containerd) printf '1.7.28' > "$S/pkgs/$pkg"; cp "$S/containerd" "$S/bin/containerd" ;;
    *) printf '1.0-1' > "$S/pkgs/$pkg" ;;
  esac
done"#,
    ),
];

/// Installed by the apt-get stand-in when the script asks for containerd.
const CONTAINERD_STUB: &str = r#"case "$*" in
  "config default") cat "$FIXTURE" ;;
  "config dump") cat /etc/containerd/config.toml ;;
  --version) echo 'containerd github.com/containerd/containerd 1.7.28' ;;
esac"#;

fn write_exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn prepare_script_runs_and_a_second_run_changes_nothing() {
    let test = "prepare_script_runs_and_a_second_run_changes_nothing";
    if !is_root() {
        labctl_testenv::skip(
            test,
            "needs root for a private mount namespace with an overlay on /etc",
        );
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("labs/vagrant.yaml")).unwrap();
    let lab = labctl_lab::parse("labs/vagrant.yaml", &text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path();
    for dir in ["stubs", "bin", "pkgs", "upper", "work"] {
        std::fs::create_dir(s.join(dir)).unwrap();
    }
    for (name, body) in STUBS {
        write_exe(&s.join("stubs").join(name), body);
    }
    write_exe(&s.join("containerd"), CONTAINERD_STUB);
    std::fs::write(s.join("hostname"), "vagrant\n").unwrap();
    let script = s.join("prepare.sh");
    std::fs::write(&script, node_prepare_script(&lab, &lab.nodes[1])).unwrap();

    // In the namespaces: overlay /etc, hide a containerd this host has
    // (a whiteout over it: the script must install the stand-in), plant a
    // swap line and a CNI leftover, run the script twice, print what /etc
    // ended up with.
    let harness = r#"set -eu
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$S/upper,workdir=$S/work" /etc
for c in $(type -ap containerd); do
  d=$(dirname "$(readlink -f "$c")"); h="$S/hide$d"; [ -d "$h" ] && continue
  mkdir -p "$h/up" "$h/work"; mknod "$h/up/containerd" c 0 0
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$h/up,workdir=$h/work" "$d"
done
printf '/swap.img none swap sw 0 0\n' >> /etc/fstab
mkdir -p /etc/cni/net.d
echo '{}' > /etc/cni/net.d/10-calico.conflist
echo '{}' > /etc/cni/net.d/10-flannel.conflist
export PATH="$S/stubs:$S/bin:$PATH"
echo '=== run 1'
bash "$1" 2>&1
echo '=== run 2'
bash "$1" 2>&1
echo '=== state'
tail -n 1 /etc/fstab
ls /etc/cni/net.d
cat /etc/apt/sources.list.d/kubernetes.list
grep -c 'SystemdCgroup = true' /etc/containerd/config.toml
grep -A3 '^127.0.1.1' /etc/hosts
cat "$S/hostname""#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "bash",
            "-c",
            harness,
            "harness",
        ])
        .arg(&script)
        .env("S", s)
        .env(
            "FIXTURE",
            repo.join("tests/fixtures/recorded/containerd-1.6-config-default.toml"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("mount: ") {
        labctl_testenv::skip(
            test,
            &format!("cannot mount an overlay on /etc here: {stderr}"),
        );
        return;
    }
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let calls = std::fs::read_to_string(s.join("calls")).unwrap();

    let run1 = stdout
        .split("=== run 1\n")
        .nth(1)
        .unwrap()
        .split("=== run 2\n")
        .next()
        .unwrap();
    let run2 = stdout
        .split("=== run 2\n")
        .nth(1)
        .unwrap()
        .split("=== state\n")
        .next()
        .unwrap();
    let state = stdout.split("=== state\n").nth(1).unwrap();
    for expected in [
        "labctl prepare worker1: hostname -> worker1",
        "labctl prepare worker1: installing ca-certificates curl gpg conntrack socat containerd",
        "labctl prepare worker1: containerd: SystemdCgroup = true, restarting",
        "labctl prepare worker1: adding the Kubernetes v1.37 package repository",
        "labctl prepare worker1: installing kubelet kubeadm kubectl kubernetes-cni for Kubernetes v1.37",
        "labctl prepare worker1: removing CNI leftover /etc/cni/net.d/10-calico.conflist",
    ] {
        assert!(run1.contains(expected), "run 1 lacks {expected:?}:\n{run1}");
    }
    assert_eq!(
        run2,
        "labctl prepare worker1: ready for kubeadm (Kubernetes v1.37, \
         containerd github.com/containerd/containerd 1.7.28)\n",
        "the second run changed something"
    );
    assert_eq!(
        state,
        "# labctl: swap off for the kubelet: /swap.img none swap sw 0 0\n\
         10-flannel.conflist\n\
         deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /\n\
         1\n\
         127.0.1.1 worker1\n\
         # labctl lab nodes begin\n\
         192.168.56.10 master\n\
         192.168.56.11 worker1\n\
         worker1\n"
    );
    assert!(calls.contains("curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.37/deb/Release.key"));
    assert!(calls.contains("apt-mark hold kubelet kubeadm kubectl kubernetes-cni"));
    assert!(calls.contains("modprobe br_netfilter"));
    assert_eq!(
        calls.matches("systemctl restart containerd").count(),
        1,
        "{calls}"
    );
    assert_eq!(calls.matches("apt-get install").count(), 2, "{calls}");
}
