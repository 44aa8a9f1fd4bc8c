# Functions of the node preparation script (see prepare-node.sh); kept
# apart so tests can run them on sample files.

say() { printf 'labctl prepare %s: %s\n' "$NODE_NAME" "$*"; }
fail() { printf 'labctl prepare %s: ERROR: %s\n' "$NODE_NAME" "$*" >&2; exit 1; }

# True when the Debian package $1 is installed.
installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# The `1.N` of an installed package's version (`1.37.1-1.1` -> `1.37`).
installed_minor() {
  # shellcheck disable=SC2016
  { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; } | cut -d. -f1,2
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
