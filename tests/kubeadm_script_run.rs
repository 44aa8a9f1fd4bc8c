//! The whole node preparation script run twice by bash, as root, in a
//! private mount + UTS namespace where /etc is an overlay (every write lands
//! in a temporary folder) and the system tools it calls (apt-get,
//! dpkg-query, containerd, systemctl, sysctl, modprobe, ...) are stand-ins
//! that record their calls: nothing on this host changes, no package is
//! fetched. The first run does everything; the second must change nothing.
//! apt-cache, kubeadm and containerd answer with recorded outputs
//! (tests/fixtures/recorded) and /etc/os-release is Ubuntu 24.04's.

mod support;

use std::path::Path;
use std::process::Command;

use labctl::kubeadm::node_prepare_script;
use support::fixtures::{repo, vagrant_lab};

/// Stand-ins, one per tool, in bash. `$S` is the state folder, `$R` the
/// recorded outputs.
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
        "apt-cache",
        r#"echo "apt-cache $*" >> "$S/calls"
[ "$1" = madison ] && cat "$R/apt-cache-madison-$2.txt""#,
    ),
    (
        "apt-get",
        r#"echo "apt-get $*" >> "$S/calls"
while [ "$1" = -o ]; do shift 2; done
[ "$1" = install ] || exit 0
for pkg in "$@"; do
  case "$pkg" in
    -*|install) ;;
    *=*) printf '%s' "${pkg#*=}" > "$S/pkgs/${pkg%%=*}" ;;
    *) printf '1.0-1' > "$S/pkgs/$pkg" ;;
  esac
  [ "${pkg%%=*}" != containerd.io ] || cp "$S/containerd" "$S/bin/containerd"
done"#,
    ),
    (
        "kubeadm",
        r#"echo "kubeadm $*" >> "$S/calls"
[ "$*" = "config images list --kubernetes-version v$(cut -d- -f1 "$S/pkgs/kubeadm")" ] || exit 1
cat "$R/kubeadm-config-images-list.txt""#,
    ),
];

/// Installed by the apt-get stand-in when the script asks for containerd.io.
const CONTAINERD_STUB: &str = r#"case "$*" in
  "config default") cat "$R/containerd-2.0-config-default.toml" ;;
  "config dump") cat /etc/containerd/config.toml ;;
  --version) echo 'containerd containerd.io v2.2.1 dea7da592f5d1d2b7755e3a161be07f43fad8f75' ;;
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

/// What two runs of one node's script did.
struct Runs {
    /// Both runs and the state listing succeeded.
    ok: bool,
    /// The harness's whole output (stdout, then stderr).
    output: String,
    run1: String,
    run2: String,
    /// What /etc ended up with (see the harness).
    state: String,
    /// The stand-ins' record of their calls.
    calls: String,
}

/// Runs node `index`'s script (release `release`) twice in the sandbox;
/// None when this machine cannot build it (and not in CI).
fn run_twice(test: &str, index: usize, release: Option<&str>) -> Option<Runs> {
    if !is_root() {
        support::skip(
            test,
            "needs root for a private mount namespace with an overlay on /etc",
        );
        return None;
    }
    let lab = vagrant_lab();
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
    let text = node_prepare_script(&lab, &lab.nodes[index], release);
    std::fs::write(&script, text).unwrap();

    // In the namespaces: overlay /etc, hide a containerd this host has
    // (a whiteout over it: the script must install the stand-in), make /etc
    // Ubuntu 24.04's, plant a swap line and a CNI leftover, run the script
    // twice, print what /etc ended up with.
    let harness = r#"set -eu
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$S/upper,workdir=$S/work" /etc
for c in $(type -ap containerd); do
  d=$(dirname "$(readlink -f "$c")"); h="$S/hide$d"; [ -d "$h" ] && continue
  mkdir -p "$h/up" "$h/work"; mknod "$h/up/containerd" c 0 0
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$h/up,workdir=$h/work" "$d"
done
rm -f /etc/os-release
cp "$R/os-release-ubuntu-24.04" /etc/os-release
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
cat /etc/apt/sources.list.d/kubernetes.list /etc/apt/sources.list.d/docker.list
grep -c 'SystemdCgroup = true' /etc/containerd/config.toml
grep -F 'sandbox = ' /etc/containerd/config.toml
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
        .env("R", repo().join("tests/fixtures/recorded"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("mount: ") {
        support::skip(
            test,
            &format!("cannot mount an overlay on /etc here: {stderr}"),
        );
        return None;
    }
    let part = |from: &str, to: &str| {
        let rest = stdout.split(from).nth(1).unwrap_or_default();
        rest.split(to).next().unwrap_or_default().to_string()
    };
    Some(Runs {
        ok: out.status.success(),
        output: format!("stdout:\n{stdout}\nstderr:\n{stderr}"),
        run1: part("=== run 1\n", "=== run 2\n"),
        run2: part("=== run 2\n", "=== state\n"),
        state: part("=== state\n", "\0"),
        calls: std::fs::read_to_string(s.join("calls")).unwrap(),
    })
}

/// What every node's runs share: sources, containerd, held packages, apt
/// waiting for its lock, and a second run that changes nothing.
fn assert_common(node: &str, release: &str, runs: &Runs) {
    assert!(runs.ok, "{}", runs.output);
    let Runs {
        ok: _,
        output: _,
        run1,
        run2,
        state,
        calls,
    } = runs;
    for expected in [
        format!("labctl prepare {node}: hostname -> {node}"),
        format!("labctl prepare {node}: installing ca-certificates curl gpg\n"),
        format!("labctl prepare {node}: adding the Docker (containerd.io) package repository"),
        format!("labctl prepare {node}: adding the Kubernetes v1.37 package repository"),
        format!(
            "labctl prepare {node}: installing kubelet={release}-1.1 kubeadm={release}-1.1 \
             kubectl={release}-1.1 containerd.io=2.2.1-1~ubuntu.24.04~noble \
             kubernetes-cni cri-tools iptables conntrack socat"
        ),
        format!(
            "labctl prepare {node}: containerd: SystemdCgroup = true, \
             sandbox registry.k8s.io/pause:3.10.1, restarting"
        ),
        format!("labctl prepare {node}: removing CNI leftover /etc/cni/net.d/10-calico.conflist"),
    ] {
        assert!(
            run1.contains(&expected),
            "run 1 lacks {expected:?}:\n{run1}"
        );
    }
    assert_eq!(
        run2,
        &format!(
            "labctl prepare {node}: ready for kubeadm (Kubernetes v{release}, \
             containerd containerd.io v2.2.1 dea7da592f5d1d2b7755e3a161be07f43fad8f75)\n"
        ),
        "the second run changed something"
    );
    assert_eq!(
        state,
        &format!(
            "# labctl: swap off for the kubelet: /swap.img none swap sw 0 0\n\
             10-flannel.conflist\n\
             deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /\n\
             deb [signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu noble stable\n\
             1\n\
             \x20     sandbox = 'registry.k8s.io/pause:3.10.1'\n\
             127.0.1.1 {node}\n\
             # labctl lab nodes begin\n\
             192.168.56.10 master\n\
             192.168.56.11 worker1\n\
             {node}\n"
        )
    );
    assert!(calls.contains("curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.37/deb/Release.key"));
    assert!(calls.contains("curl -fsSL https://download.docker.com/linux/ubuntu/gpg"));
    assert!(calls.contains("apt-mark hold kubelet kubeadm kubectl kubernetes-cni containerd.io"));
    assert!(calls.contains("modprobe br_netfilter"));
    assert!(calls.contains(&format!(
        "kubeadm config images list --kubernetes-version v{release}"
    )));
    assert_eq!(
        calls.matches("systemctl restart containerd").count(),
        1,
        "{calls}"
    );
    let apt: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("apt-get "))
        .collect();
    // Every apt-get waits for the lock and keeps changed conffiles.
    let options = "apt-get -o DPkg::Lock::Timeout=900 \
                   -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ";
    assert!(apt.iter().all(|l| l.starts_with(options)), "{calls}");
    let installs = calls.matches(&format!("{options}install")).count();
    assert_eq!(installs, 2, "{calls}");
}

#[test]
fn control_plane_script_picks_the_newest_release_and_a_second_run_changes_nothing() {
    let Some(runs) = run_twice("control_plane_script", 0, None) else {
        return;
    };
    // 1.37.10 is the newest in the recorded index (not 1.37.9).
    assert_common("master", "1.37.10", &runs);
}

#[test]
fn worker_script_installs_the_control_planes_release_and_a_second_run_changes_nothing() {
    let Some(runs) = run_twice("worker_script", 1, Some("1.37.2")) else {
        return;
    };
    assert_common("worker1", "1.37.2", &runs);
}

#[test]
fn worker_script_stops_when_the_control_planes_release_is_not_in_the_repository() {
    let Some(runs) = run_twice("worker_script_missing_release", 1, Some("1.37.5")) else {
        return;
    };
    assert!(!runs.ok, "{}", runs.output);
    assert!(
        runs.run1.contains(
            "labctl prepare worker1: ERROR: kubeadm 1.37.5 is not in \
             https://pkgs.k8s.io/core:/stable:/v1.37/deb/"
        ),
        "{}",
        runs.output
    );
    // It refreshed the package index once more before giving up, and
    // installed nothing of Kubernetes.
    assert_eq!(
        runs.calls.matches(" update -q").count(),
        3,
        "{}",
        runs.calls
    );
    assert!(!runs.calls.contains("kubeadm="), "{}", runs.calls);
    assert!(runs.run2.is_empty(), "{}", runs.output);
}
