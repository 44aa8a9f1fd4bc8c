# Body of the node preparation script. src/kubeadm/prepare.rs prepends the
# shebang, `set -euo pipefail`, the quoted values NODE_NAME, K8S_MINOR,
# KEEP_CNI_FILE and LAB_HOSTS, and prepare-functions.sh. Runs as root on
# Ubuntu 22.04/24.04 (and Debian). Idempotent: every step checks before it changes, so running it
# again on a prepared node changes nothing and restarts nothing.

export DEBIAN_FRONTEND=noninteractive
K8S_PACKAGES=(kubelet kubeadm kubectl kubernetes-cni)
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
REPO_URL="https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/"
REPO_LINE="deb [signed-by=${KEYRING}] ${REPO_URL} /"
REPO_LIST=/etc/apt/sources.list.d/kubernetes.list
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

# --- packages: containerd, and what fetching the Kubernetes repo needs --
need=()
# conntrack and socat: kubeadm preflight and `kubectl port-forward` use them.
for pkg in ca-certificates curl gpg conntrack socat; do
  installed "$pkg" || need+=("$pkg")
done
# containerd.io (Docker's 2.x build) also provides the binary: keep it.
command -v containerd >/dev/null || need+=(containerd)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

# --- containerd with the systemd cgroup driver --------------------------
new_config=$(mktemp)
containerd config default >"$new_config"
set_systemd_cgroup "$new_config"
put_file "$CONTAINERD_CONFIG" "$(cat "$new_config")"
rm -f "$new_config"
if [ "$CHANGED" = 1 ]; then
  say "containerd: SystemdCgroup = true, restarting"
  systemctl restart containerd
fi
systemctl enable --now containerd >/dev/null 2>&1 || systemctl start containerd
# (Captured first: `grep -q` closing the pipe early would fail the pipeline.)
effective=$(containerd config dump 2>/dev/null || true)
grep -qE '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' <<<"$effective" ||
  fail "containerd does not use the systemd cgroup driver after configuring it (see $CONTAINERD_CONFIG)"
put_file /etc/crictl.yaml "runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock"

# --- the Kubernetes package repository for this minor -------------------
if [ ! -s "$KEYRING" ] || [ "$(cat "$REPO_LIST" 2>/dev/null || true)" != "$REPO_LINE" ]; then
  say "adding the Kubernetes v${K8S_MINOR} package repository"
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL "${REPO_URL}Release.key" | gpg --dearmor --batch --yes -o "${KEYRING}.new" ||
    fail "cannot fetch the signing key ${REPO_URL}Release.key"
  chmod 0644 "${KEYRING}.new"
  mv -f "${KEYRING}.new" "$KEYRING"
  put_file "$REPO_LIST" "$REPO_LINE"
  apt-get update -q
fi

# --- kubelet, kubeadm, kubectl, kubernetes-cni, held ---------------------
missing=0
for pkg in "${K8S_PACKAGES[@]}"; do
  installed "$pkg" || missing=1
done
for pkg in kubelet kubeadm kubectl; do
  [ "$(installed_minor "$pkg")" = "$K8S_MINOR" ] || missing=1
done
if [ "$missing" = 1 ]; then
  say "installing ${K8S_PACKAGES[*]} for Kubernetes v${K8S_MINOR}"
  apt-mark unhold "${K8S_PACKAGES[@]}" >/dev/null 2>&1 || true
  apt-get install -y -q --allow-change-held-packages "${K8S_PACKAGES[@]}"
fi
apt-mark hold "${K8S_PACKAGES[@]}" >/dev/null
for pkg in kubelet kubeadm kubectl; do
  [ "$(installed_minor "$pkg")" = "$K8S_MINOR" ] ||
    fail "$pkg is $(installed_minor "$pkg"), not the lab's v${K8S_MINOR}"
done
systemctl enable kubelet >/dev/null 2>&1 || true

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

say "ready for kubeadm (Kubernetes v${K8S_MINOR}, $(containerd --version))"
