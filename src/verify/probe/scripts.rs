//! The constant `sh -c` scripts the probes run: on the nodes (captures and
//! node MTUs) and inside the pods (any pod's shell: busybox's in a
//! Kubernetes pod, the node's under `ip netns exec`). Lab values arrive
//! only as positional arguments; each prints tagged lines
//! [`super::output`] reads. They fork little (shell builtins where they do
//! the job): at 50 nodes every process a script starts is 50 processes on
//! the host of a netns lab.

/// Starts the agent (`$1`, its plan in `$3`) capturing with the options
/// `$4…` (and `--ready-file`), detached, in a new folder under /tmp;
/// returns once its socket is open, printing `@dir FOLDER` for
/// [`COLLECT_SCRIPT`] and, when `$2` is an address, `@route` (the source
/// the node's routing picks for it: MASQUERADE's). Every node's capture is
/// open before any pod pings, so no packet crosses unseen.
pub(super) const ARM_SCRIPT: &str = r#"agent=$1; route=$2; plan=$3; shift 3
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
dir=$(mktemp -d /tmp/labctl-verify.XXXXXX) || exit 1
printf '%s' "$plan" > "$dir/plan.json"
if [ -n "$route" ]; then
  ip -4 route get "$route" > "$dir/route" 2>&1
  printf '@route '; oneline "$dir/route"; echo
fi
( "$agent" --plan "$dir/plan.json" capture "$@" --ready-file "$dir/ready" > "$dir/capture.json" 2> "$dir/capture.err"
  echo $? > "$dir/rc" ) < /dev/null > /dev/null 2>&1 &
i=0
while [ ! -e "$dir/ready" ] && [ ! -e "$dir/rc" ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
printf '@dir %s\n' "$dir""#;

/// Waits (at most `$2` seconds and one more, polling every 50 ms: at 50
/// nodes a finer poll's processes slow the pings it waits for) for the
/// capture [`ARM_SCRIPT`] started (its status file written, not just
/// created: the shell creates it before it writes) in folder `$1` and prints `@capture STATUS JSON`, removes the folder, and,
/// when `$3` is `log`, prints `@uptime` and the kernel log's tail.
pub(super) const COLLECT_SCRIPT: &str = r#"dir=$1; secs=$2; log=$3
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
case "$dir" in /tmp/labctl-verify.*) ;; *) echo "not a verify folder: $dir" >&2; exit 2 ;; esac
trap 'rm -rf "$dir"' EXIT
i=0
while [ ! -s "$dir/rc" ] && [ $i -lt $((secs * 20 + 20)) ]; do sleep 0.05; i=$((i + 1)); done
rc=no-status; [ -s "$dir/rc" ] && read -r rc < "$dir/rc"
printf '@capture %s ' "$rc"; oneline "$dir/capture.json"; oneline "$dir/capture.err"; echo
find /tmp -maxdepth 1 -name 'labctl-verify.*' -mmin +10 -exec rm -rf {} + 2>/dev/null
[ "$log" = log ] || exit 0
read -r up _ < /proc/uptime
printf '@uptime %s\n' "$up"
dmesg 2>/dev/null | tail -n 300"#;

/// The MTUs of the VXLAN device `$1` and cni0 on the node: `@mtu DEVICE
/// VALUE`.
pub(super) const NODE_MTU_SCRIPT: &str = r#"for d in "$1" cni0; do
  [ -r "/sys/class/net/$d/mtu" ] && read -r m < "/sys/class/net/$d/mtu" && printf '@mtu %s %s\n' "$d" "$m"
done
exit 0"#;

/// In a pod: the MTU of its eth0, `@mtu eth0 VALUE` (`ip netns exec`
/// mounts the pod's own /sys).
pub(super) const POD_MTU_SCRIPT: &str =
    r#"read -r m < /sys/class/net/eth0/mtu && printf '@mtu eth0 %s\n' "$m""#;

/// In a pod: its busybox's version line, the `@nameserver` lines of the
/// resolv.conf the pod sees (`ip netns exec` binds
/// /etc/netns/<pod>/resolv.conf over /etc/resolv.conf, kubelet writes a
/// Kubernetes pod's), then `busybox nslookup kubernetes.default` through
/// it, as the walkthrough asks.
pub(super) const POD_DNS_SCRIPT: &str = r#"busybox 2>/dev/null | { read -r v; printf '@version %s\n' "$v"; }
while read -r k v _; do [ "$k" = nameserver ] && printf '@nameserver %s\n' "$v"; done < /etc/resolv.conf
busybox nslookup kubernetes.default 2>&1"#;

/// In a busybox pod: pings every target (`$2…`, `$1` pings each) at once,
/// one line `@@ IP OUTPUT` per target (newlines turned into `|`).
pub(super) const POD_PING_SCRIPT: &str = r#"n=$1; shift
for ip in "$@"; do
  ( out=$(ping -c "$n" -W 1 -q "$ip" 2>&1)
    printf '@@ %s %s\n' "$ip" "$(printf '%s' "$out" | tr '\n' '|')" ) &
done
wait"#;
