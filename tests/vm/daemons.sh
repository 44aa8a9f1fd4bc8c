#!/usr/bin/env bash
# Start or stop virtlogd + libvirtd by hand (no systemd here) for the VM
# tests, with the "default" storage pool in a folder this script owns.
#
#   sudo tests/vm/daemons.sh start
#   sudo tests/vm/daemons.sh stop     # always: leaves the host as before
#
# libvirtd runs with its own configuration ($RUN/libvirtd.conf): members of
# the group $LABCTL_VM_GROUP (default libvirt) may use qemu:///system, so the
# tests run Vagrant and labctl as a normal user (no polkit here to ask).
#
# start records the LIBVIRT_* iptables chains that exist before libvirtd
# runs; stop kills only the daemons start recorded (by pid), destroys
# leftover libvirt networks, removes the LIBVIRT_* chains (v4 and v6, every
# table) that were not there at start, with the jumps to them, and
# /run/libvirt/network files: other tests on this machine compare the root
# namespace's iptables before and after. Chains that were there before
# (a libvirtd that ran earlier leaves its own behind) stay.
#
#   tests/vm/daemons.sh chains-record FILE      # what start runs
#   tests/vm/daemons.sh chains-remove-new FILE  # what stop runs
set -uo pipefail

STATE=${LABCTL_VM_STATE:-/var/lib/labctl/vm-test}
POOL_DIR=$STATE/pool
RUN=$STATE/run
POOL=${LABCTL_VM_POOL:-default}
GROUP=${LABCTL_VM_GROUP:-libvirt}
CHAINS_BEFORE=$RUN/libvirt-chains-before

log() { printf '[daemons %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf 'daemons: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: libvirtd (qemu:///system) needs it"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_socket() {
  for _ in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  getent group "$GROUP" >/dev/null || die "no group $GROUP (the libvirt-daemon-system package makes it)"
  mkdir -p "$RUN" "$POOL_DIR" /run/libvirt
  # Before libvirtd adds its own. Kept when a start's stop never ran: its
  # chains are leftovers, not the host's.
  if [ -f "$CHAINS_BEFORE" ]; then
    log "keeping the chain record of an earlier start ($CHAINS_BEFORE)"
  else
    record_chains "$CHAINS_BEFORE"
  fi
  # qemu (user libvirt-qemu) must traverse to the volumes.
  chmod 0711 "$STATE" "$POOL_DIR"
  if alive "$RUN/virtlogd.pid"; then
    log "virtlogd already running (pid $(cat "$RUN/virtlogd.pid"))"
  else
    virtlogd -d -p "$RUN/virtlogd.pid" || die "virtlogd did not start"
  fi
  # The Debian package autostarts a NAT network ("default", virbr0) that
  # would route guests off this host: never autostart it.
  rm -f /etc/libvirt/qemu/networks/autostart/*.xml
  if alive "$RUN/libvirtd.pid"; then
    log "libvirtd already running (pid $(cat "$RUN/libvirtd.pid"))"
  else
    # Its stderr (no D-Bus, no dmidecode: harmless) goes to a file.
    write_libvirtd_conf "$RUN/libvirtd.conf"
    libvirtd -d -p "$RUN/libvirtd.pid" --config "$RUN/libvirtd.conf" 2>>"$RUN/libvirtd.stderr" \
      || die "libvirtd did not start"
  fi
  wait_socket || die "libvirtd does not answer on qemu:///system (see $RUN/libvirtd.stderr)"
  if ! virsh -q pool-info "$POOL" >/dev/null 2>&1; then
    virsh -q pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null || die "cannot define pool $POOL"
  fi
  # The storage driver may still be starting right after the socket answers.
  for _ in $(seq 1 25); do
    virsh -q pool-info "$POOL" 2>/dev/null | grep 'State: *running' >/dev/null && break
    virsh -q pool-start "$POOL" >>"$RUN/pool-start.log" 2>&1 || sleep 0.4
  done
  virsh -q pool-info "$POOL" | grep 'State: *running' >/dev/null \
    || die "storage pool $POOL is not running: $(tail -n 2 "$RUN/pool-start.log")"
  log "libvirtd pid $(cat "$RUN/libvirtd.pid"), virtlogd pid $(cat "$RUN/virtlogd.pid"), pool $POOL in $POOL_DIR, socket for group $GROUP"
}

# The read-write socket for root and $GROUP only; no polkit (no D-Bus here):
# the socket's group is the permission, as on a distribution without polkit.
write_libvirtd_conf() {
  cat >"$1" <<EOF
unix_sock_group = "$GROUP"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
EOF
}

kill_pidfile() {
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "$name (pid $pid) ignores TERM: KILL"; kill -9 "$pid"; }
  fi
  rm -f "$file"
}

# One line per LIBVIRT_* chain: "iptables|ip6tables TABLE CHAIN".
libvirt_chains() {
  local ipt table
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      "$ipt" -t "$table" -S 2>/dev/null |
        awk -v ipt="$ipt" -v table="$table" '$1 == "-N" && $2 ~ /^LIBVIRT_/ { print ipt, table, $2 }' \
        || true # a table this kernel lacks holds no chains
    done
  done
}

record_chains() { # record_chains FILE
  if ! { libvirt_chains >"$1.tmp" && mv "$1.tmp" "$1"; }; then
    die "cannot record the LIBVIRT_* chains in $1"
  fi
}

# Removes the LIBVIRT_* chains not listed in FILE: first every rule of
# another chain that jumps to one (by number, last first: rules may carry
# quoted words), then their rules, then the chains.
remove_new_chains() { # remove_new_chains FILE
  local file=$1 line ipt table chain other n
  if [ ! -f "$file" ]; then
    log "no chain record ($file): leaving every LIBVIRT_* chain as it is"
    return 0
  fi
  local -a new=()
  mapfile -t new < <(libvirt_chains | grep -vxF -f "$file")
  [ "${#new[@]}" -gt 0 ] || return 0
  for line in "${new[@]}"; do
    read -r ipt table chain <<<"$line"
    for other in $("$ipt" -t "$table" -S | awk '$1 == "-N" || $1 == "-P" { print $2 }'); do
      [ "$other" = "$chain" ] && continue
      for n in $("$ipt" -t "$table" -S "$other" |
        awk -v c="$chain" '$1 == "-A" { i++; for (f = 3; f < NF; f++) if (($f == "-j" || $f == "-g") && $(f + 1) == c) { print i; break } }' | sort -rn); do
        "$ipt" -t "$table" -D "$other" "$n"
      done
    done
  done
  for line in "${new[@]}"; do
    read -r ipt table chain <<<"$line"
    "$ipt" -t "$table" -F "$chain"
  done
  for line in "${new[@]}"; do
    read -r ipt table chain <<<"$line"
    "$ipt" -t "$table" -X "$chain" && log "removed $ipt $table chain $chain"
  done
}

stop() {
  if alive "$RUN/libvirtd.pid"; then
    # Whatever the test left: domains, then networks (their dnsmasq and
    # bridges go with them), then the pool definition.
    for dom in $(virsh -q list --all --name 2>/dev/null); do
      virsh -q destroy "$dom" >/dev/null 2>&1
      virsh -q undefine "$dom" --nvram --remove-all-storage >/dev/null 2>&1 \
        || virsh -q undefine "$dom" >/dev/null 2>&1
      log "removed leftover domain $dom"
    done
    for net in $(virsh -q net-list --all --name 2>/dev/null); do
      virsh -q net-destroy "$net" >/dev/null 2>&1 && log "stopped leftover network $net"
      # The package's own "default" definition stays (never autostarted).
      [ "$net" = default ] || { virsh -q net-undefine "$net" >/dev/null 2>&1; log "removed network $net"; }
    done
    virsh -q pool-destroy "$POOL" >/dev/null 2>&1
    virsh -q pool-undefine "$POOL" >/dev/null 2>&1
  fi
  kill_pidfile "$RUN/libvirtd.pid" libvirtd
  kill_pidfile "$RUN/virtlogd.pid" virtlogd
  remove_new_chains "$CHAINS_BEFORE"
  rm -f "$CHAINS_BEFORE"
  rm -rf /run/libvirt/network/* 2>/dev/null
  rm -f /etc/libvirt/qemu/networks/autostart/*.xml 2>/dev/null
  log "stopped; new LIBVIRT_* chains and /run/libvirt/network cleared"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  chains-record) record_chains "${2:?usage: $0 chains-record FILE}" ;;
  chains-remove-new) remove_new_chains "${2:?usage: $0 chains-remove-new FILE}" ;;
  *) die "usage: $0 start|stop|chains-record FILE|chains-remove-new FILE" ;;
esac
