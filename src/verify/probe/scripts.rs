//! The constant `sh -c` scripts the probes run: on the nodes (node MTUs)
//! and inside the pods (any pod's shell: busybox's in a Kubernetes pod,
//! the node's under the agent's `pod-exec`, which enters a pod as `ip
//! netns exec` does). Lab values arrive only as positional arguments;
//! each prints tagged lines
//! [`super::output`] reads. They fork little (shell builtins where they do
//! the job): at 50 nodes every process a script starts is 50 processes on
//! the host of a netns lab.

/// The MTUs of the VXLAN device `$1` and cni0 on the node: `@mtu DEVICE
/// VALUE`.
pub(super) const NODE_MTU_SCRIPT: &str = r#"for d in "$1" cni0; do
  [ -r "/sys/class/net/$d/mtu" ] && read -r m < "/sys/class/net/$d/mtu" && printf '@mtu %s %s\n' "$d" "$m"
done
exit 0"#;

/// In a pod: the MTU of its eth0, `@mtu eth0 VALUE` (`pod-exec`, as
/// `ip netns exec`, mounts the pod's own /sys).
pub(super) const POD_MTU_SCRIPT: &str =
    r#"read -r m < /sys/class/net/eth0/mtu && printf '@mtu eth0 %s\n' "$m""#;

/// In a pod: its busybox's version line, the `@nameserver` lines of the
/// resolv.conf the pod sees (`pod-exec`, as `ip netns exec`, binds
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
