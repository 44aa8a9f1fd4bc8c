# Functions of the node preparation script (see prepare-node.sh); kept
# apart so tests can run them on sample files.

say() { printf 'labctl prepare %s: %s\n' "$NODE_NAME" "$*"; }
fail() { printf 'labctl prepare %s: ERROR: %s\n' "$NODE_NAME" "$*" >&2; exit 1; }

# True when the Debian package $1 is installed.
installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Puts $2 and a newline into file $1 unless it holds exactly that already;
# sets CHANGED=1 when it wrote. Called as a plain command (never in a
# condition or a pipeline) so that `set -e` stops the script on errors.
put_file() {
  local target=$1 content=$2 tmp
  CHANGED=0
  tmp=$(mktemp)
  printf '%s\n' "$content" >"$tmp"
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m 0644 "$tmp" "$target"
  rm -f "$tmp"
  CHANGED=1
}

# Prints the hosts file $1 with this node's 127.0.1.1 line and the block of
# lab nodes (LAB_HOSTS) replaced by the current ones.
hosts_with_lab() {
  { grep -v -e '^127\.0\.1\.1[[:space:]]' "$1" || true; } |
    sed '/^# labctl lab nodes begin$/,/^# labctl lab nodes end$/d'
  printf '127.0.1.1 %s\n# labctl lab nodes begin\n%s\n# labctl lab nodes end\n' \
    "$NODE_NAME" "$LAB_HOSTS"
}

# Turns on SystemdCgroup in the runc options of containerd config $1 (as
# written by `containerd config default`). The table is named differently in
# containerd 1.x and 2.x, and 2.x's default omits the key.
set_systemd_cgroup() {
  local config=$1 runc_line
  local runc_1x='[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]'
  local runc_2x="[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]"
  runc_line=$(grep -nF -m1 -e "$runc_1x" -e "$runc_2x" "$config" | cut -d: -f1 || true)
  [ -n "$runc_line" ] ||
    fail "containerd's default config has no runc options table ($(containerd --version 2>&1 || true))"
  if grep -qE '^[[:space:]]*SystemdCgroup[[:space:]]*=' "$config"; then
    sed -i -E 's/^([[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*)false/\1true/' "$config"
  else
    sed -i "${runc_line}a\\            SystemdCgroup = true" "$config"
  fi
}

# apt-get that waits (up to APT_LOCK_TIMEOUT seconds) for the package lock
# instead of failing: unattended-upgrades holds it right after first boot.
# A changed conffile (containerd's config.toml, rewritten below) is kept
# without asking: nobody answers dpkg's question here.
apt_get() {
  apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# The installed version of Debian package $1 (empty when not installed).
installed_version() {
  installed "$1" || return 0
  # shellcheck disable=SC2016
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

# The value of field $1 (ID, VERSION_CODENAME, ...) in os-release file $2,
# without quotes; empty when absent.
os_release_value() {
  local value
  value=$({ grep -E "^$1=" "$2" || true; } | tail -n 1)
  value=${value#*=}
  value=${value#[\"\']}
  value=${value%[\"\']}
  printf '%s' "$value"
}

# Adds an apt source the way pkgs.k8s.io documents it: the signing key from
# $2, dearmored into keyring $3, and the one-line list $4 holding $5. Sets
# SOURCES_CHANGED=1 when it wrote anything.
add_apt_source() {
  local name=$1 key_url=$2 keyring=$3 list=$4 line=$5
  if [ -s "$keyring" ] && [ "$(cat "$list" 2>/dev/null || true)" = "$line" ]; then
    return 0
  fi
  say "adding the $name package repository"
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL "$key_url" | gpg --dearmor --batch --yes -o "${keyring}.new" ||
    fail "cannot fetch the signing key $key_url"
  chmod 0644 "${keyring}.new"
  mv -f "${keyring}.new" "$keyring"
  put_file "$list" "$line"
  SOURCES_CHANGED=1
}

# Reads `apt-cache madison PKG` on stdin; prints the newest version that
# starts with $1 (`1.37.` for a minor, `1.37.2-` for one release), or
# nothing.
newest_version() {
  awk -F'|' -v prefix="$1" \
    '{ v = $2; gsub(/[[:space:]]/, "", v); if (index(v, prefix) == 1) print v }' |
    sort -V | tail -n 1
}

# Sets K8S_DEB to the newest kubeadm package starting with $1 and
# CONTAINERD_DEB to the newest containerd.io 2.x in the package index
# (empty when there is none, also when apt does not know the package).
find_releases() {
  K8S_DEB=$({ apt-cache madison kubeadm 2>/dev/null || true; } | newest_version "$1")
  CONTAINERD_DEB=$({ apt-cache madison containerd.io 2>/dev/null || true; } | newest_version 2.)
}

# Reads `kubeadm config images list` on stdin; prints the pause image.
pause_image() {
  { grep -E '^[^[:space:]]+/pause:[^[:space:]]+$' || true; } | tail -n 1
}

# Sets the CRI sandbox (pause) image in containerd 2.x config $1 to $2, in
# the pinned_images table `containerd config default` writes.
set_sandbox_image() {
  local config=$1 image=$2 start line
  local table="[plugins.'io.containerd.cri.v1.images'.pinned_images]"
  [[ "$image" =~ ^[A-Za-z0-9._/:@-]+$ ]] || fail "the pause image name '$image' is not an image reference"
  start=$(grep -nF -m1 "$table" "$config" | cut -d: -f1 || true)
  [ -n "$start" ] ||
    fail "containerd's default config has no pinned_images table: containerd 2.x is needed ($(containerd --version 2>&1 || true))"
  line=$(awk -v s="$start" 'NR > s && /^[[:space:]]*\[/ { exit }
    NR > s && /^[[:space:]]*sandbox[[:space:]]*=/ { print NR; exit }' "$config")
  if [ -n "$line" ]; then
    sed -i -E "${line}s|=.*$|= '${image}'|" "$config"
  else
    sed -i "${start}a\\      sandbox = '${image}'" "$config"
  fi
}
