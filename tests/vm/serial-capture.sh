#!/usr/bin/env bash
# Copy every libvirt domain's serial console (a pty: vagrant-libvirt's
# default) to OUT_DIR/serial-<domain>.log while the test runs, so failures
# can show what the guests printed. Runs until killed; the copies end when
# their domain goes.
#
#   tests/vm/serial-capture.sh /tmp/labctl-vm-e2e &
set -uo pipefail
OUT_DIR=${1:?usage: serial-capture.sh OUT_DIR}
mkdir -p "$OUT_DIR"
declare -A seen=()
trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM INT EXIT
while sleep 0.5; do
  for dom in $(virsh -c qemu:///system list --name 2>/dev/null); do
    pty=$(virsh -c qemu:///system ttyconsole "$dom" 2>/dev/null) || continue
    [ -c "$pty" ] || continue
    [ "${seen[$dom]:-}" = "$pty" ] && continue
    seen[$dom]=$pty
    cat "$pty" >>"$OUT_DIR/serial-$dom.log" 2>/dev/null &
  done
done
