//! The two kernel switches a flannel node needs: IPv4 forwarding, and,
//! where the bridge netfilter module is loaded, iptables for bridged
//! traffic. Both live under /proc/sys/net, which belongs to the network
//! namespace of the process reading it.

use std::path::Path;

use crate::links::Mode;
use crate::report::{Action, Collector, Difference};

const FORWARD: &str = "net.ipv4.ip_forward";
const BRIDGE_NF: &str = "net.bridge.bridge-nf-call-iptables";

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// The sysctls this node needs.
pub fn wanted() -> Vec<&'static str> {
    let mut keys = vec![FORWARD];
    if Path::new("/proc/sys/net/bridge").is_dir() {
        keys.push(BRIDGE_NF);
    }
    keys
}

/// Reads a sysctl (None when it does not exist).
pub fn read(key: &str) -> Option<String> {
    std::fs::read_to_string(path(key))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sets each wanted sysctl to 1.
pub fn converge(mode: Mode, out: &mut Collector) {
    for key in wanted() {
        let obj = format!("sysctl {key}");
        let have = read(key);
        if have.as_deref() == Some("1") {
            out.unchanged(obj);
            continue;
        }
        out.object(
            &obj,
            Action::Updated,
            vec![Difference::new(&obj, Some("1".into()), have)],
        );
        if mode == Mode::Apply {
            if let Err(e) = std::fs::write(path(key), "1\n") {
                out.fail(
                    &obj,
                    format!("cannot set {key}=1: {}", crate::error::describe_io(&e)),
                );
            }
        }
    }
}
