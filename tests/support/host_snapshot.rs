//! What the test hosts of [`super::hosts`] look like, as far as a lab
//! could change them: taken before `up`, compared after `destroy`.

use super::hosts::Hosts;
use super::netns::{in_netns, iptables_rules};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip netns exec NS ARGS` and returns stdout.
fn inside(ns: &str, args: &[&str]) -> String {
    stdout(&in_netns(ns, args))
}

/// What a host looks like, as far as a lab could change it.
pub fn snapshot(hosts: &Hosts) -> Vec<String> {
    let mut out = Vec::new();
    for h in &hosts.hosts {
        let ns = h.netns.as_str();
        let links: Vec<String> = inside(ns, &["ip", "-o", "link"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        out.push(format!("{}: links {links:?}", h.name));
        out.push(format!(
            "{}: routes {}",
            h.name,
            inside(ns, &["ip", "route"])
        ));
        let rules = iptables_rules(&inside(ns, &["iptables-save"]));
        out.push(format!("{}: iptables {rules:?}", h.name));
        for dir in ["/run/flannel", "/etc/cni/net.d", "/run/labctl-agent"] {
            let files: Vec<String> = walk(&h.bound(dir));
            out.push(format!("{}: {dir} {files:?}", h.name));
        }
        for file in ["/etc/hostname", "/etc/hosts"] {
            let text = std::fs::read_to_string(h.bound(file)).unwrap_or_default();
            out.push(format!("{}: {file} {text:?}", h.name));
        }
    }
    let prefix = format!("{}-", hosts.tag);
    let namespaces: Vec<String> = stdout(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap(),
    )
    .lines()
    .filter_map(|l| l.split_whitespace().next())
    .filter(|n| n.starts_with(&prefix))
    .map(str::to_string)
    .collect();
    out.push(format!("namespaces {namespaces:?}"));
    out
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.display().to_string());
        if path.is_dir() {
            out.extend(walk(&path));
        }
    }
    out.sort();
    out
}
