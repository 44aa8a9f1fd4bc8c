//! The constant `sh -c` scripts the network-only probes run on the nodes
//! (see [`super::probes`]): lab values arrive only as their positional
//! arguments, and each prints tagged lines [`super::output`] reads. They
//! fork little (shell builtins where they do the job): at 50 nodes every
//! process a script starts is 50 processes on the host of a netns lab.

/// The MTUs of the VXLAN device `$3`, cni0 and pod `$1`'s eth0 as `@mtu
/// DEVICE VALUE`; then the agent (`$4`) pings each target (`$5…`) from the
/// pod (from the node itself when `$1` is empty) with don't-fragment at
/// `$2` and `$2`+1 bytes of payload, both at once: `@@ BYTES STATUS
/// OUTPUT` (the report, or stderr, on one line).
pub(super) const MTU_SCRIPT: &str = r#"ns=$1; size=$2; dev=$3; agent=$4; shift 4
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
for d in "$dev" cni0; do
  [ -r "/sys/class/net/$d/mtu" ] && read -r m < "/sys/class/net/$d/mtu" && printf '@mtu %s %s\n' "$d" "$m"
done
[ -n "$ns" ] && printf '@mtu eth0 %s\n' "$(ip -n "$ns" -o link show eth0 2>/dev/null | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
over=$((size + 1))
"$agent" ${ns:+--netns "$ns"} ping --count 2 --interval-ms 20 --timeout-ms 600 --dont-fragment --payload "$size" "$@" > "$dir/fit" 2>&1 &
fit=$!
"$agent" ${ns:+--netns "$ns"} ping --count 2 --interval-ms 20 --timeout-ms 600 --dont-fragment --payload "$over" "$@" > "$dir/over" 2>&1
rc=$?
wait "$fit"; fit=$?
printf '@@ %s %s ' "$size" "$fit"; oneline "$dir/fit"; echo
printf '@@ %s %s ' "$over" "$rc"; oneline "$dir/over"; echo"#;

/// `busybox nslookup kubernetes.default` in pod `$1` (through the pod's
/// resolv.conf, i.e. the cluster DNS service IP), after the node's busybox
/// version line and the `@nameserver` lines of the resolv.conf the pod
/// sees (`ip netns exec` binds /etc/netns/<pod>/resolv.conf, when there is
/// one, over /etc/resolv.conf).
pub(crate) const DNS_SCRIPT: &str = r#"ns=$1
busybox 2>/dev/null | { read -r v; printf '@version %s\n' "$v"; }
f=/etc/netns/$ns/resolv.conf; [ -e "$f" ] || f=/etc/resolv.conf
while read -r k v _; do [ "$k" = nameserver ] && printf '@nameserver %s\n' "$v"; done < "$f"
t=; command -v timeout >/dev/null 2>&1 && t="timeout 10"
$t ip netns exec "$ns" busybox nslookup kubernetes.default 2>&1"#;

/// Captures with the agent (`$1`, plan on stdin) for `$3` seconds while pod
/// `$2` pings `$4` (when given); prints `@ping`, `@capture STATUS JSON`,
/// `@uptime` and the kernel log's tail.
pub(crate) const VXLAN_SCRIPT: &str = r#"agent=$1; ns=$2; secs=$3; target=$4
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
cat > "$dir/plan.json"
"$agent" --plan "$dir/plan.json" capture --seconds "$secs" > "$dir/capture.json" 2> "$dir/capture.err" &
cap=$!
sleep 1
if [ -n "$target" ]; then
  out=$(ip netns exec "$ns" busybox ping -c 3 -W 1 -q "$target" 2>&1)
  printf '@ping %s\n' "$(printf '%s' "$out" | tr '\n' '|')"
fi
wait "$cap"; rc=$?
printf '@capture %s ' "$rc"; tr '\n' ' ' < "$dir/capture.json"; tr '\n' ' ' < "$dir/capture.err"; echo
printf '@uptime %s\n' "$(cut -d ' ' -f 1 /proc/uptime)"
dmesg 2>/dev/null | tail -n 300"#;

/// Starts the agent (`$1`, plan on stdin) capturing VXLAN on the underlay
/// for at most `$2` seconds or `$3` packets, detached, in a new folder
/// under /tmp; returns once its socket is open (`--ready-file`), printing
/// `@dir FOLDER` for [`VXLAN_PING_SCRIPT`]. Every node's capture is open
/// before any pod pings, so no packet crosses unseen.
pub(super) const VXLAN_ARM_SCRIPT: &str = r#"agent=$1; secs=$2; count=$3
dir=$(mktemp -d /tmp/labctl-verify.XXXXXX) || exit 1
cat > "$dir/plan.json"
( "$agent" --plan "$dir/plan.json" capture --seconds "$secs" --count "$count" --ready-file "$dir/ready" > "$dir/capture.json" 2> "$dir/capture.err"
  echo $? > "$dir/rc" ) < /dev/null > /dev/null 2>&1 &
i=0
while [ ! -e "$dir/ready" ] && [ ! -e "$dir/rc" ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
printf '@dir %s\n' "$dir""#;

/// The agent (`$1`) pings `$4` (when given) from pod `$3`: `@agentping
/// STATUS REPORT`; then waits for the capture [`VXLAN_ARM_SCRIPT`] started
/// in folder `$2` and prints `@capture STATUS JSON`, removes the folder,
/// and, when `$5` is `log`, prints `@uptime` and the kernel log's tail.
pub(super) const VXLAN_PING_SCRIPT: &str = r#"agent=$1; dir=$2; ns=$3; target=$4; log=$5
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
case "$dir" in /tmp/labctl-verify.*) ;; *) echo "not a verify folder: $dir" >&2; exit 2 ;; esac
trap 'rm -rf "$dir"' EXIT
if [ -n "$target" ]; then
  "$agent" --netns "$ns" ping --count 3 --interval-ms 20 --timeout-ms 1000 "$target" > "$dir/ping" 2>&1
  printf '@agentping %s ' "$?"; oneline "$dir/ping"; echo
fi
i=0
while [ ! -e "$dir/rc" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
rc=no-status; [ -e "$dir/rc" ] && read -r rc < "$dir/rc"
printf '@capture %s ' "$rc"; oneline "$dir/capture.json"; oneline "$dir/capture.err"; echo
[ "$log" = log ] || exit 0
read -r up _ < /proc/uptime
printf '@uptime %s\n' "$up"
dmesg 2>/dev/null | tail -n 300"#;

/// How long each node's agent captures at most: a healthy ring ends it
/// early, when the node has seen its [`VXLAN_PACKETS`].
pub(super) const CAPTURE_SECONDS: &str = "2";

/// VXLAN packets a node of a healthy ring sees: as sender, 3 requests out
/// and 3 replies in; as receiver, 3 requests in and 3 replies out.
pub(super) const VXLAN_PACKETS: &str = "12";

/// Captures with the agent (`$1`, plan on stdin) for at most `$3` seconds
/// the echo requests to `$4` leaving the node while the agent pings `$4`
/// from pod `$2` once the capture is open (it ends after the 3 requests).
/// Prints `@route` (the source `ip route get` picks: MASQUERADE's),
/// `@agentping STATUS REPORT` and `@capture STATUS JSON`.
pub(super) const EGRESS_PING_SCRIPT: &str = r#"agent=$1; ns=$2; secs=$3; target=$4
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
cat > "$dir/plan.json"
ip -4 route get "$target" > "$dir/route" 2>&1
printf '@route '; oneline "$dir/route"; echo
"$agent" --plan "$dir/plan.json" capture --icmp-to "$target" --seconds "$secs" --count 3 --ready-file "$dir/ready" > "$dir/capture.json" 2> "$dir/capture.err" &
cap=$!
i=0
while [ ! -e "$dir/ready" ] && kill -0 "$cap" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
"$agent" --netns "$ns" ping --count 3 --interval-ms 20 --timeout-ms 1000 "$target" > "$dir/ping" 2>&1
printf '@agentping %s ' "$?"; oneline "$dir/ping"; echo
wait "$cap"; rc=$?
printf '@capture %s ' "$rc"; oneline "$dir/capture.json"; oneline "$dir/capture.err"; echo"#;
