//! Checks before a netns lab creates anything: root, host tools (exit 3
//! naming the missing ones and their packages; `--install-deps` installs
//! them), and networks that would clash with the host's routes or another
//! lab (exit 2).

use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;
use labctl_lab::Lab;

use crate::exit::ExitError;
use crate::hostcmd;
use crate::state::LabDir;

/// A host tool and the packages that provide it (apt, dnf).
pub struct Tool {
    pub program: &'static str,
    pub apt: &'static str,
    pub dnf: &'static str,
}

/// What the netns provider runs on the host (the nodes share its files).
pub const TOOLS: &[Tool] = &[
    Tool {
        program: "ip",
        apt: "iproute2",
        dnf: "iproute",
    },
    Tool {
        program: "iptables",
        apt: "iptables",
        dnf: "iptables-nft",
    },
    Tool {
        program: "iptables-restore",
        apt: "iptables",
        dnf: "iptables-nft",
    },
    Tool {
        program: "/usr/sbin/sshd",
        apt: "openssh-server",
        dnf: "openssh-server",
    },
    Tool {
        program: "ssh-keygen",
        apt: "openssh-client",
        dnf: "openssh-clients",
    },
    Tool {
        program: "ssh",
        apt: "openssh-client",
        dnf: "openssh-clients",
    },
    Tool {
        program: "busybox",
        apt: "busybox-static",
        dnf: "busybox",
    },
    Tool {
        program: "dnsmasq",
        apt: "dnsmasq-base",
        dnf: "dnsmasq",
    },
];

/// Exit 3 unless running as root.
pub fn check_root() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ExitError::environment(anyhow!(
            "the netns provider creates network namespaces and needs root: run it with sudo"
        )));
    }
    Ok(())
}

fn missing_tools() -> Vec<&'static Tool> {
    TOOLS
        .iter()
        .filter(|t| !hostcmd::have_program(t.program))
        .collect()
}

/// Exit 3 naming missing tools; with `install`, installs them first.
pub fn check_tools(install: bool) -> Result<()> {
    let missing = missing_tools();
    if missing.is_empty() {
        return Ok(());
    }
    if install {
        install_packages(&missing)?;
        let still = missing_tools();
        if still.is_empty() {
            return Ok(());
        }
        return Err(ExitError::environment(anyhow!(
            "still missing after installing: {}",
            still
                .iter()
                .map(|t| t.program)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let list: Vec<String> = missing
        .iter()
        .map(|t| format!("{} (apt: {}, dnf: {})", t.program, t.apt, t.dnf))
        .collect();
    let mut apt: Vec<&str> = missing.iter().map(|t| t.apt).collect();
    apt.dedup();
    Err(ExitError::environment(anyhow!(
        "the netns provider needs tools this host lacks: {}; install them (e.g. `apt-get install {}`) \
         or run `labctl up --install-deps`",
        list.join(", "),
        apt.join(" ")
    )))
}

fn install_packages(missing: &[&Tool]) -> Result<()> {
    let (manager, mut packages): (&str, Vec<&str>) =
        if hostcmd::have_program("apt-get") {
            ("apt-get", missing.iter().map(|t| t.apt).collect())
        } else if hostcmd::have_program("dnf") {
            ("dnf", missing.iter().map(|t| t.dnf).collect())
        } else {
            return Err(ExitError::environment(anyhow!(
            "--install-deps knows apt-get and dnf, and this host has neither; install {} by hand",
            missing.iter().map(|t| t.program).collect::<Vec<_>>().join(", ")
        )));
        };
    packages.sort();
    packages.dedup();
    eprintln!("Installing {} with {manager}", packages.join(" "));
    if manager == "apt-get" {
        hostcmd::run("apt-get", &["update", "-q"]).map_err(ExitError::environment)?;
    }
    let mut args = vec!["install", "-y", "-q"];
    args.extend(packages.iter());
    let out = std::process::Command::new(manager)
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .with_context(|| format!("cannot run {manager}"))?;
    if !out.status.success() {
        return Err(ExitError::environment(hostcmd::failure(
            &hostcmd::display(manager, &args),
            &out,
        )));
    }
    Ok(())
}

/// A lab network and what it is, for messages.
fn lab_networks(lab: &Lab) -> Vec<(&'static str, Ipv4Net)> {
    vec![
        ("underlay", lab.network.underlay),
        ("pod network", lab.network.pod_network),
        ("service network", lab.network.service_network),
    ]
}

/// IPv4 destinations of the host's routes (all tables), except default
/// routes, broadcast/multicast entries and routes via this lab's own bridge.
pub fn host_routes(own_bridge: &str) -> Result<Vec<(Ipv4Net, String)>> {
    let text = hostcmd::run("ip", &["-4", "-j", "route", "show", "table", "all"])?;
    let routes: Vec<serde_json::Value> =
        serde_json::from_str(&text).context("`ip -j route show table all` printed invalid JSON")?;
    let mut out = Vec::new();
    for r in routes {
        let kind = r.get("type").and_then(|v| v.as_str()).unwrap_or("unicast");
        let dev = r.get("dev").and_then(|v| v.as_str()).unwrap_or("");
        let Some(dst) = r.get("dst").and_then(|v| v.as_str()) else {
            continue;
        };
        if matches!(kind, "broadcast" | "multicast") || dst == "default" || dev == own_bridge {
            continue;
        }
        let net = match dst.parse::<Ipv4Net>() {
            Ok(n) => n,
            Err(_) => match dst.parse::<Ipv4Addr>() {
                Ok(a) => Ipv4Net::from(a),
                Err(_) => continue,
            },
        };
        out.push((net, format!("{dst} dev {dev}")));
    }
    Ok(out)
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Exit 2 when the lab's networks overlap a host route or another lab's
/// underlay or pod network. (Service networks only exist inside nodes, so
/// labs may share one; they must still not overlap host routes.)
pub fn check_conflicts(lab: &Lab, dir: &LabDir, own_bridge: &str) -> Result<()> {
    let mut problems = Vec::new();
    for other in crate::state::lab_names() {
        if other == lab.name {
            continue;
        }
        let Ok(other_dir) = LabDir::new(&other) else {
            continue;
        };
        let Ok(st) = other_dir.load() else { continue };
        for (what, net) in lab_networks(lab) {
            for (their_what, theirs) in [("underlay", st.underlay), ("pod network", st.pod_network)]
            {
                if let Some(theirs) = theirs {
                    if what != "service network" && overlaps(net, theirs) {
                        problems.push(format!(
                            "the {what} {net} overlaps lab {other}'s {their_what} {theirs}"
                        ));
                    }
                }
            }
        }
    }
    let _ = dir;
    for (net_route, shown) in host_routes(own_bridge)? {
        for (what, net) in lab_networks(lab) {
            if overlaps(net, net_route) {
                problems.push(format!(
                    "the {what} {net} overlaps the host route `{shown}`"
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ExitError::usage(anyhow!(
        "lab {} cannot be created on this host: {}; choose other networks in the lab file",
        lab.name,
        problems.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.244.3.0/24".parse().unwrap();
        let c: Ipv4Net = "10.245.0.0/16".parse().unwrap();
        assert!(overlaps(a, b) && overlaps(b, a));
        assert!(!overlaps(a, c));
    }
}
