#!/usr/bin/env bash
# End to end on real Vagrant + libvirt VMs (qemu software emulation):
# labctl up -> verify -> damage one VM -> verify names it -> up repairs ->
# verify -> destroy twice -> the host is as before.
#
#   sudo tests/vm/e2e.sh                 # LAB=labs/vagrant-netonly.yaml
#   LABCTL=target/debug/labctl sudo -E tests/vm/e2e.sh
#
# Root only prepares the host: the box, the libvirt daemons, and a normal
# user ($E2E_USER, default labctl-e2e: made if missing, in the libvirt
# group) with the box in their Vagrant. Vagrant and every labctl command run
# as that user with a clean environment, as the people labctl is for run
# them; the lab's state is in that user's XDG state folder. Afterwards no
# file of the vagrant packages may have changed owner or mode.
#
# Needs the packages in tests/vm/README.md. Starts libvirtd/virtlogd itself
# and always stops them (trap), so nothing libvirt is left running.
# LIBVIRT_DAEMONS=system (a host where systemd runs libvirtd, as on a GitHub
# runner): uses that daemon, leaves it running, and checks only that the
# lab's domains and networks are gone (the host's own libvirt networks and
# their iptables chains were there before).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB=${LAB:-$ROOT/labs/vagrant-netonly.yaml}
LAB_NAME=${LAB_NAME:-flannel-vm}
LABCTL=${LABCTL:-$ROOT/target/debug/labctl}
OUT=${E2E_OUT:-/tmp/labctl-vm-e2e}
E2E_USER=${E2E_USER:-labctl-e2e}
# On a host where other tests make and remove links meanwhile: an extended
# regex of their names, left out of the before/after comparison (empty: none).
E2E_OTHER_LINKS=${E2E_OTHER_LINKS:-}
# What the user runs: copies of the binary and the lab file (the clone may
# sit in root's 0700 home).
USER_WORK=$OUT/user
USER_LABCTL=$USER_WORK/labctl
USER_LAB=$USER_WORK/$(basename "$LAB")
# The damaged node and the peer subnet whose route it loses (worker2's).
DAMAGE_NODE=worker1
DAMAGE_ROUTE=10.244.2.0/24

LIBVIRT_DAEMONS=${LIBVIRT_DAEMONS:-own}
T_BOX=${T_BOX:-900} T_UP=${T_UP:-600} T_VERIFY=${T_VERIFY:-240} T_DESTROY=${T_DESTROY:-180}

[ "$(id -u)" = 0 ] || { echo "e2e: SKIP: needs root (libvirtd, qemu:///system, debootstrap)" >&2; exit 77; }
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.txt

# The test's user: made once, with a home, in the group libvirtd lets in.
prepare_user() {
  getent group libvirt >/dev/null || { echo "e2e: no group libvirt (libvirt-daemon-system makes it)"; return 1; }
  if ! id -u "$E2E_USER" >/dev/null 2>&1; then
    useradd --create-home --user-group --shell /bin/sh --comment "labctl VM end-to-end test" "$E2E_USER"
    echo "e2e: made user $E2E_USER"
  fi
  usermod -a -G libvirt "$E2E_USER"
  E2E_HOME=$(getent passwd "$E2E_USER" | cut -d: -f6)
  [ -d "$E2E_HOME" ] || install -d -m 0750 -o "$E2E_USER" -g "$(id -g "$E2E_USER")" "$E2E_HOME"
  # Only HOME, USER, LOGNAME, PATH and LANG: nothing of root's (XDG_*,
  # VAGRANT_*, SUDO_*) may leak in.
  AS_USER=(setpriv --reuid "$E2E_USER" --regid "$(id -g "$E2E_USER")" --init-groups
    env -i HOME="$E2E_HOME" USER="$E2E_USER" LOGNAME="$E2E_USER"
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8)
  # Debian's vagrant-libvirt is every user's; HashiCorp's Vagrant keeps
  # plugins per user.
  local plugins
  plugins=$(cd "$E2E_HOME" && "${AS_USER[@]}" vagrant plugin list 2>&1) || true
  if ! grep -q '^vagrant-libvirt ' <<<"$plugins"; then
    echo "e2e: $E2E_USER's Vagrant has no vagrant-libvirt (sudo -u $E2E_USER -H vagrant plugin install vagrant-libvirt)"
    return 1
  fi
  LAB_DIR=$E2E_HOME/.local/state/labctl/labs/$LAB_NAME
  install -d -m 0755 "$USER_WORK"
  install -m 0755 "$LABCTL" "$USER_LABCTL"
  install -m 0644 "$LAB" "$USER_LAB"
}

declare -a TIMES=()
phase() { # phase NAME TIMEOUT CMD...: run, log to $OUT/NAME.log, time it
  local name=$1 limit=$2 start rc
  shift 2
  printf '\n=== %s (timeout %ss): %s\n' "$name" "$limit" "$*"
  start=$(date +%s.%N)
  set +e
  timeout --kill-after=30 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  local took
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  TIMES+=("$(printf '%-16s %7ss  rc=%s' "$name" "$took" "$rc")")
  [ "$rc" = 124 ] && echo "e2e: $name did not finish within ${limit}s (software emulation is slow: raise T_* if the host is busy)"
  return "$rc"
}

# iptables-save without counters and without empty tables (built-in chains
# with policy ACCEPT only): iptables-nft makes a table on first use and
# never removes it, so an empty one and none are the same ruleset.
ruleset() { # ruleset iptables-save|ip6tables-save
  "$1" | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//' | awk '
    /^\*/ { block = $0 "\n"; keep = 0; next }
    /^COMMIT/ { if (keep) printf "%s%s\n", block, $0; block = ""; next }
    block != "" { block = block $0 "\n"; if ($0 !~ /^:[^ ]+ ACCEPT *$/) keep = 1; next }
    { print }'
}

snapshot_host() { # what must be the same before and after
  {
    echo "## iptables"; ruleset iptables-save
    echo "## ip6tables"; ruleset ip6tables-save
    echo "## links"
    ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | { grep -Ev "${E2E_OTHER_LINKS:-^$}" || true; } | sort
    echo "## ip_forward"; cat /proc/sys/net/ipv4/ip_forward
    # Vagrant chmods a key it is handed that is not 0600 (as root even one
    # it does not own): the packaged insecure key must stay as shipped.
    echo "## vagrant packages' files (owner, mode)"
    dpkg -L vagrant vagrant-libvirt 2>/dev/null | sed '/^$/d' | sort -u | xargs -r -d '\n' stat -c '%U:%G %a %n'
  } >"$1"
}

libvirt_chains_in() { # "ipt table chain" per LIBVIRT_* chain in a snapshot
  awk '/^## / { family = $2 } /^\*/ { table = $1 } /^:LIBVIRT_/ { print family, table, substr($1, 2) }' "$1" | sort
}

print_times() {
  printf '\n=== phase times\n'
  printf '%s\n' "${TIMES[@]}"
}

on_failure() {
  echo
  echo "######## e2e FAILED: diagnostics ########"
  for f in /var/log/libvirt/qemu/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 40 lines)"; tail -n 40 "$f"
  done
  for f in "$OUT"/serial-*.log; do
    [ -f "$f" ] || continue
    echo "--- serial console $f (last 80 lines)"; tail -n 80 "$f"
  done
  for f in "${LAB_DIR:-/nonexistent}"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "--- labctl log $f (last 80 lines)"; tail -n 80 "$f"
  done
  virsh -c qemu:///system list --all 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  [ -n "${SERIAL_PID:-}" ] && kill "$SERIAL_PID" 2>/dev/null
  if [ "$rc" != 0 ]; then
    on_failure
    # Best effort: no VM may outlive the test.
    [ -d "${LAB_DIR:-}" ] && timeout 180 "${AS_USER[@]}" "$USER_LABCTL" destroy "$USER_LAB" >/dev/null 2>&1
  fi
  stop_daemons
  print_times
  exit "$rc"
}

stop_daemons() {
  [ "$LIBVIRT_DAEMONS" = system ] || "$HERE/daemons.sh" stop
  rm -f "$USER_LABCTL" # the copy the user ran (the logs stay)
}

check_host_clean() {
  local bad=0
  pgrep -a qemu-system && { echo "e2e: qemu is still running"; bad=1; }
  if [ "$LIBVIRT_DAEMONS" = system ]; then
    virsh -c qemu:///system list --all --name | grep "labctl-$LAB_NAME-" \
      && { echo "e2e: the lab's domains are left"; bad=1; }
    virsh -c qemu:///system net-list --all --name | grep "labctl-$LAB_NAME" \
      && { echo "e2e: the lab's libvirt networks are left"; bad=1; }
  else
    pgrep -a -f 'dnsmasq.*libvirt' && { echo "e2e: libvirt's dnsmasq is still running"; bad=1; }
    ip -o link show | grep -E 'virbr|vnet' && { echo "e2e: libvirt links left"; bad=1; }
    compgen -G '/run/libvirt/network/*' >/dev/null && { echo "e2e: /run/libvirt/network not empty"; bad=1; }
  fi
  [ -d "$LAB_DIR" ] && { echo "e2e: lab folder $LAB_DIR left"; bad=1; }
  snapshot_host "$OUT/host-after.txt"
  # Chains a libvirtd that ran before this test left are the host's.
  local left
  left=$(comm -13 <(libvirt_chains_in "$OUT/host-before.txt") <(libvirt_chains_in "$OUT/host-after.txt"))
  [ -n "$left" ] && { printf 'e2e: LIBVIRT_* chains left that were not there before:\n%s\n' "$left"; bad=1; }
  diff -u "$OUT/host-before.txt" "$OUT/host-after.txt" || { echo "e2e: host state differs (above)"; bad=1; }
  return "$bad"
}

[ -x "$LABCTL" ] || phase build 1200 cargo build -p labctl --manifest-path "$ROOT/Cargo.toml"
prepare_user
snapshot_host "$OUT/host-before.txt"
trap cleanup EXIT

phase box "$T_BOX" env BOX_USER="$E2E_USER" "$HERE/build-box.sh"
if [ "$LIBVIRT_DAEMONS" = system ]; then
  phase daemons 60 virsh -c qemu:///system version
else
  phase daemons 60 "$HERE/daemons.sh" start
fi
"$HERE/serial-capture.sh" "$OUT" >/dev/null 2>&1 &
SERIAL_PID=$!

# From here on everything runs as the user, in a folder they can read.
cd "$USER_WORK"
LABCTL_AS_USER=("${AS_USER[@]}" "$USER_LABCTL")
phase up "$T_UP" "${LABCTL_AS_USER[@]}" up "$USER_LAB"
[ -f "$LAB_DIR/state.json" ] || { echo "e2e: no lab state in the user's folder $LAB_DIR"; exit 1; }
phase verify "$T_VERIFY" "${LABCTL_AS_USER[@]}" verify "$USER_LAB"
# The box does not load br_netfilter; the agent must have (bridgeNetfilter).
# shellcheck disable=SC2016 # expanded on the VM, not here
phase br-netfilter 60 "${LABCTL_AS_USER[@]}" exec --lab "$LAB_NAME" master -- \
  sh -c 'grep -q "^br_netfilter " /proc/modules && [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" = 1 ]'

phase damage 60 "${LABCTL_AS_USER[@]}" exec --lab "$LAB_NAME" "$DAMAGE_NODE" -- sudo -n ip route del "$DAMAGE_ROUTE"
if phase verify-broken "$T_VERIFY" "${LABCTL_AS_USER[@]}" verify "$USER_LAB"; then
  echo "e2e: verify passed although $DAMAGE_NODE lost its route to $DAMAGE_ROUTE"; exit 1
fi
grep -q "missing-route on $DAMAGE_NODE" "$OUT/verify-broken.log" \
  || { echo "e2e: verify failed but did not name missing-route on $DAMAGE_NODE"; exit 1; }
echo "e2e: verify named missing-route on $DAMAGE_NODE: ok"

phase repair "$T_UP" "${LABCTL_AS_USER[@]}" up "$USER_LAB"
phase verify-again "$T_VERIFY" "${LABCTL_AS_USER[@]}" verify "$USER_LAB"

phase destroy "$T_DESTROY" "${LABCTL_AS_USER[@]}" destroy "$USER_LAB"
phase destroy-again "$T_DESTROY" "${LABCTL_AS_USER[@]}" destroy "$USER_LAB"

trap - EXIT
kill "$SERIAL_PID" 2>/dev/null
stop_daemons
check_host_clean || { print_times; echo "e2e: FAILED: host not as before"; exit 1; }
print_times
echo "e2e: PASSED"
echo "vm-e2e: 1 passed, 0 failed"
