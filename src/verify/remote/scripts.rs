//! The constant `sh -c` scripts the network-only probes run on the nodes
//! (see [`super::probes`]): lab values arrive only as their positional
//! arguments, and each prints tagged lines [`super::output`] reads.

/// The MTUs of the VXLAN device `$3`, cni0 and pod `$1`'s eth0 as `@mtu
/// DEVICE VALUE`; then the agent (`$4`) pings each target (`$5…`) from the
/// pod with don't-fragment at `$2` and `$2`+1 bytes of payload, both at
/// once: `@@ BYTES STATUS OUTPUT` (the report, or stderr; newlines turned
/// into `|`).
pub(super) const MTU_SCRIPT: &str = r#"ns=$1; size=$2; dev=$3; agent=$4; shift 4
for d in "$dev" cni0; do
  [ -r "/sys/class/net/$d/mtu" ] && printf '@mtu %s %s\n' "$d" "$(cat "/sys/class/net/$d/mtu")"
done
printf '@mtu eth0 %s\n' "$(ip netns exec "$ns" cat /sys/class/net/eth0/mtu 2>/dev/null)"
for s in "$size" $((size + 1)); do
  ( out=$("$agent" --netns "$ns" ping --count 2 --interval-ms 20 --timeout-ms 600 --dont-fragment --payload "$s" "$@" 2>&1); rc=$?
    printf '@@ %s %s %s\n' "$s" "$rc" "$(printf '%s' "$out" | tr '\n' '|')" ) &
done
wait"#;

/// `busybox nslookup kubernetes.default` in pod `$1` (through the pod's
/// resolv.conf, i.e. the cluster DNS service IP), after the node's busybox
/// version line and the pod resolv.conf's `@nameserver` lines. netns labs
/// run it on the host, whose /etc/netns is the nodes'.
pub(crate) const DNS_SCRIPT: &str = r#"ns=$1
printf '@version %s\n' "$(busybox 2>/dev/null | head -n 1)"
ip netns exec "$ns" sed -n 's/^nameserver[[:space:]]*/@nameserver /p' /etc/resolv.conf
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

/// How long each node's agent captures; the pings start one second in.
pub(super) const CAPTURE_SECONDS: &str = "4";
