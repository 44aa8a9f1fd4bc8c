#!/usr/bin/env bash
# Start or stop virtlogd + libvirtd by hand (no systemd here) for the VM
# tests, with the "default" storage pool in a folder this script owns.
#
#   sudo tests/vm/daemons.sh start
#   sudo tests/vm/daemons.sh stop     # always: leaves the host as before
#
# stop kills only the daemons start recorded (by pid), destroys leftover
# libvirt networks, removes the LIBVIRT_* iptables chains libvirt leaves
# behind (v4 and v6, every table) and /run/libvirt/network files: other tests
# on this machine compare the root namespace's iptables before and after.
set -uo pipefail

STATE=${LABCTL_VM_STATE:-/var/lib/labctl/vm-test}
POOL_DIR=$STATE/pool
RUN=$STATE/run
POOL=${LABCTL_VM_POOL:-default}

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
  mkdir -p "$RUN" "$POOL_DIR" /run/libvirt
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
    libvirtd -d -p "$RUN/libvirtd.pid" 2>>"$RUN/libvirtd.stderr" || die "libvirtd did not start"
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
  log "libvirtd pid $(cat "$RUN/libvirtd.pid"), virtlogd pid $(cat "$RUN/virtlogd.pid"), pool $POOL in $POOL_DIR"
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

remove_libvirt_chains() {
  local ipt table chains chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      chains=$("$ipt" -t "$table" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^LIBVIRT_/ {print $2}')
      [ -n "$chains" ] || continue
      # Jumps from built-in chains first, then the chains themselves.
      "$ipt" -t "$table" -S 2>/dev/null | awk '$1=="-A" && $2 !~ /^LIBVIRT_/ && / -j LIBVIRT_/' |
        while read -r rule; do
          # shellcheck disable=SC2086
          "$ipt" -t "$table" ${rule/-A/-D}
        done
      for chain in $chains; do "$ipt" -t "$table" -F "$chain"; done
      for chain in $chains; do "$ipt" -t "$table" -X "$chain"; done
    done
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
  remove_libvirt_chains
  rm -rf /run/libvirt/network/* 2>/dev/null
  rm -f /etc/libvirt/qemu/networks/autostart/*.xml 2>/dev/null
  log "stopped; LIBVIRT_* chains and /run/libvirt/network cleared"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
