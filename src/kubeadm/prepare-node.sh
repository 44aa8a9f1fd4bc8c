# Body of the node preparation script. src/kubeadm/prepare.rs prepends the
# shebang, `set -euo pipefail`, the quoted values NODE_NAME, K8S_MINOR,
# K8S_VERSION (the exact release `1.N.P`, empty on the control plane, which
# picks it), KEEP_CNI_FILE and LAB_HOSTS, and prepare-functions.sh. Runs
# as root on Ubuntu 22.04/24.04 and Debian 12/13. Idempotent: every step
# checks before it changes, so running it again on a prepared node changes
# nothing and restarts nothing.

export DEBIAN_FRONTEND=noninteractive
# Held: an unattended upgrade must not move them under the cluster.
HELD_PACKAGES=(kubelet kubeadm kubectl kubernetes-cni containerd.io)
# Seconds apt waits for the package lock.
APT_LOCK_TIMEOUT=900
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
REPO_URL="https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/"
REPO_LINE="deb [signed-by=${KEYRING}] ${REPO_URL} /"
REPO_LIST=/etc/apt/sources.list.d/kubernetes.list
DOCKER_KEYRING=/etc/apt/keyrings/docker.gpg
DOCKER_LIST=/etc/apt/sources.list.d/docker.list
CONTAINERD_CONFIG=/etc/containerd/config.toml

# --- hostname and the lab's names --------------------------------------
if [ "$(hostname)" != "$NODE_NAME" ]; then
  say "hostname -> $NODE_NAME"
  hostnamectl set-hostname "$NODE_NAME" 2>/dev/null || {
    printf '%s\n' "$NODE_NAME" >/etc/hostname
    hostname "$NODE_NAME"
  }
fi
put_file /etc/hosts "$(hosts_with_lab /etc/hosts)"
[ "$CHANGED" = 0 ] || say "updated /etc/hosts"

# --- kernel modules and sysctls ----------------------------------------
put_file /etc/modules-load.d/labctl-k8s.conf "overlay
br_netfilter"
modprobe overlay
modprobe br_netfilter
put_file /etc/sysctl.d/99-labctl-k8s.conf "net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1"
sysctl -q -p /etc/sysctl.d/99-labctl-k8s.conf
[ "$(sysctl -n net.ipv4.ip_forward)" = 1 ] || fail "net.ipv4.ip_forward did not turn on"
[ "$(sysctl -n net.bridge.bridge-nf-call-iptables)" = 1 ] ||
  fail "net.bridge.bridge-nf-call-iptables did not turn on"

# --- swap off, now and after reboot -------------------------------------
swapoff -a
if grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  say "commenting out swap in /etc/fstab"
  sed -i -E 's|^([^#].*[[:space:]]swap[[:space:]].*)$|# labctl: swap off for the kubelet: \1|' /etc/fstab
fi
[ -z "$(swapon --noheadings --show 2>/dev/null || true)" ] || fail "swap is still on"

# --- package sources: Docker's (containerd 2.x) and Kubernetes' ----------
need=()
for pkg in ca-certificates curl gpg; do
  installed "$pkg" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  apt_get update -q
  apt_get install -y -q "${need[@]}"
fi
DISTRO=$(os_release_value ID /etc/os-release)
CODENAME=$(os_release_value VERSION_CODENAME /etc/os-release)
case "$DISTRO" in
  debian | ubuntu) ;;
  *) fail "this node runs '${DISTRO:-an unknown system}' (/etc/os-release ID): labctl prepares Debian and Ubuntu nodes only" ;;
esac
[ -n "$CODENAME" ] || fail "/etc/os-release has no VERSION_CODENAME: cannot pick Docker's package repository"
DOCKER_URL="https://download.docker.com/linux/${DISTRO}"
SOURCES_CHANGED=0
add_apt_source "Docker (containerd.io)" "${DOCKER_URL}/gpg" "$DOCKER_KEYRING" "$DOCKER_LIST" \
  "deb [signed-by=${DOCKER_KEYRING}] ${DOCKER_URL} ${CODENAME} stable"
add_apt_source "Kubernetes v${K8S_MINOR}" "${REPO_URL}Release.key" "$KEYRING" "$REPO_LIST" "$REPO_LINE"
[ "$SOURCES_CHANGED" = 0 ] || apt_get update -q

# --- packages: one Kubernetes release for all three, containerd 2.x -----
# The control plane (K8S_VERSION empty) keeps the release it has, else
# takes the newest of the lab's minor; workers get the control plane's.
want=$K8S_VERSION
if [ -z "$want" ]; then
  have=$(installed_version kubeadm)
  case "$have" in "$K8S_MINOR".*) want=${have%%-*} ;; esac
fi
k8s_ok=1
for pkg in kubelet kubeadm kubectl; do
  have=$(installed_version "$pkg")
  if [ -z "$want" ] || [ "${have%%-*}" != "$want" ]; then k8s_ok=0; fi
done
containerd_ok=0
case "$(installed_version containerd.io)" in 2.*) containerd_ok=1 ;; esac
need=()
if [ "$k8s_ok" = 0 ] || [ "$containerd_ok" = 0 ]; then
  prefix=${want:+${want}-}
  prefix=${prefix:-${K8S_MINOR}.}
  find_releases "$prefix"
  if [ -z "$K8S_DEB" ] || [ -z "$CONTAINERD_DEB" ]; then
    apt_get update -q
    find_releases "$prefix"
  fi
  [ -n "$K8S_DEB" ] || fail "kubeadm ${want:-v${K8S_MINOR}} is not in ${REPO_URL}"
  [ -n "$CONTAINERD_DEB" ] || fail "no containerd.io 2.x in ${DOCKER_URL}"
  [ "$k8s_ok" = 1 ] || need+=("kubelet=$K8S_DEB" "kubeadm=$K8S_DEB" "kubectl=$K8S_DEB")
  [ "$containerd_ok" = 1 ] || need+=("containerd.io=$CONTAINERD_DEB")
fi
# cri-tools: crictl; iptables: kubeadm's preflight (only Recommended);
# conntrack and socat: kube-proxy and `kubectl port-forward`.
for pkg in kubernetes-cni cri-tools iptables conntrack socat; do
  installed "$pkg" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  apt-mark unhold "${HELD_PACKAGES[@]}" >/dev/null 2>&1 || true
  apt_get install -y -q --allow-change-held-packages --allow-downgrades "${need[@]}"
fi
apt-mark hold "${HELD_PACKAGES[@]}" >/dev/null
K8S_DEB=$(installed_version kubeadm)
K8S_RELEASE=${K8S_DEB%%-*}
for pkg in kubelet kubectl; do
  [ "$(installed_version "$pkg")" = "$K8S_DEB" ] ||
    fail "$pkg is '$(installed_version "$pkg")', kubeadm is '$K8S_DEB': they must be one release"
done
case "$K8S_RELEASE" in
  "$K8S_MINOR".*) ;;
  *) fail "kubeadm is '$K8S_RELEASE', not the lab's v${K8S_MINOR}" ;;
esac
[ -z "$K8S_VERSION" ] || [ "$K8S_RELEASE" = "$K8S_VERSION" ] ||
  fail "kubeadm is $K8S_RELEASE, not the control plane's $K8S_VERSION"
case "$(installed_version containerd.io)" in
  2.*) ;;
  *) fail "containerd.io is '$(installed_version containerd.io)', not 2.x" ;;
esac
systemctl enable kubelet >/dev/null 2>&1 || true

# --- containerd: systemd cgroup driver, kubeadm's pause image ------------
PAUSE_IMAGE=$(kubeadm config images list --kubernetes-version "v${K8S_RELEASE}" | pause_image)
[ -n "$PAUSE_IMAGE" ] ||
  fail "\`kubeadm config images list --kubernetes-version v${K8S_RELEASE}\` names no pause image"
new_config=$(mktemp)
containerd config default >"$new_config"
set_systemd_cgroup "$new_config"
set_sandbox_image "$new_config" "$PAUSE_IMAGE"
put_file "$CONTAINERD_CONFIG" "$(cat "$new_config")"
rm -f "$new_config"
if [ "$CHANGED" = 1 ]; then
  say "containerd: SystemdCgroup = true, sandbox $PAUSE_IMAGE, restarting"
  systemctl restart containerd
fi
systemctl enable --now containerd >/dev/null 2>&1 || systemctl start containerd
# (Captured first: `grep -q` closing the pipe early would fail the pipeline.)
effective=$(containerd config dump 2>/dev/null || true)
grep -qE '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' <<<"$effective" ||
  fail "containerd does not use the systemd cgroup driver after configuring it (see $CONTAINERD_CONFIG)"
grep -qF -e "sandbox = '$PAUSE_IMAGE'" -e "sandbox = \"$PAUSE_IMAGE\"" <<<"$effective" ||
  fail "containerd's sandbox image is not $PAUSE_IMAGE after configuring it (see $CONTAINERD_CONFIG)"
put_file /etc/crictl.yaml "runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock"

# --- CNI: only labctl's config may stay ---------------------------------
# containerd reads just the first file in lexical order: a leftover from
# another CNI would win over labctl's.
install -d -m 0755 /etc/cni/net.d
for leftover in /etc/cni/net.d/*; do
  [ -e "$leftover" ] || continue
  [ "$(basename "$leftover")" = "$KEEP_CNI_FILE" ] && continue
  say "removing CNI leftover $leftover"
  rm -rf -- "$leftover"
done

say "ready for kubeadm (Kubernetes v${K8S_RELEASE}, $(containerd --version))"
