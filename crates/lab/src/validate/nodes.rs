//! Defaults and checks for `nodes`: names, roles, underlay addresses and
//! the per-provider fields (ssh targets, VirtualBox's host-only range).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::network::NetworkDraft;
use super::{is_node_name, Checker};
use crate::host_key::HostKey;
use crate::model::{Node, Provider, ProviderType, Role, SshTarget, VagrantProvider};
use crate::raw::{RawNode, RawSsh};

pub const DEFAULT_CPUS: u32 = 2;
pub const DEFAULT_MEMORY_MIB: u32 = 2048;
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Node `i` defaults to the underlay's network address + this + i.
pub const FIRST_NODE_OFFSET: u32 = 10;
/// VirtualBox (>= 6.1.28) refuses host-only addresses outside this range
/// unless /etc/vbox/networks.conf allows them.
pub const VIRTUALBOX_HOST_ONLY: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 56, 0), 21);

pub(crate) fn nodes(
    check: &mut Checker,
    raw: Option<Vec<RawNode>>,
    provider: &Provider,
    network: &NetworkDraft,
) -> Vec<Node> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        check.error(
            "nodes",
            "the lab has no nodes",
            "add a `nodes:` list with one `role: control-plane` node and any number of workers",
        );
        return Vec::new();
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut control_plane: Option<usize> = None;
    let mut out = Vec::with_capacity(raw.len());

    for (i, node) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("nodes[{i}].{field}");

        let name = node.name.unwrap_or_default();
        if name.is_empty() {
            check.error(
                &at("name"),
                "missing: every node needs a name",
                "add `name: ...`, e.g. worker1",
            );
        } else if !is_node_name(&name) {
            check.error(
                &at("name"),
                format!("`{name}` is not a valid node name"),
                "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            );
        } else if let Some(first) = names.get(&name) {
            check.error(
                &at("name"),
                format!("`{name}` is already the name of nodes[{first}]"),
                "give every node its own name",
            );
        } else {
            names.insert(name.clone(), i);
        }

        let role = node.role.unwrap_or(Role::Worker);
        if role == Role::ControlPlane {
            match control_plane {
                None => control_plane = Some(i),
                Some(first) => check.error(
                    &at("role"),
                    format!("a second control-plane (nodes[{first}] is one already)"),
                    "a lab has exactly one control-plane; make the others workers",
                ),
            }
        }

        let ip = node_ip(check, i, node.ip, network);
        if let Some(ip) = ip {
            if let Some(first) = ips.get(&ip) {
                check.error(
                    &at("ip"),
                    format!("{ip} is already the address of nodes[{first}]"),
                    "give every node its own address",
                );
            } else {
                ips.insert(ip, i);
            }
            if provider.kind == ProviderType::Vagrant
                && provider.vagrant_provider == VagrantProvider::Virtualbox
                && !VIRTUALBOX_HOST_ONLY.contains(&ip)
            {
                check.warning(
                    &at("ip"),
                    format!("{ip} is outside {VIRTUALBOX_HOST_ONLY}, the only host-only range VirtualBox allows by default"),
                    "allow the range in /etc/vbox/networks.conf, or use an underlay inside 192.168.56.0/21",
                );
            }
        }

        let cpus = node.cpus.unwrap_or(u64::from(DEFAULT_CPUS));
        if cpus == 0 || cpus > 1024 {
            check.error(
                &at("cpus"),
                format!("{cpus} CPUs is not a usable count"),
                "use 1 to 1024 (2 is usual)",
            );
        }
        let memory = node.memory.unwrap_or(u64::from(DEFAULT_MEMORY_MIB));
        if memory == 0 || memory > u64::from(u32::MAX) {
            check.error(
                &at("memory"),
                format!("{memory} MiB is not a usable memory size"),
                format!("give MiB, e.g. {DEFAULT_MEMORY_MIB}"),
            );
        }

        let ssh = ssh_target(check, i, node.ssh, provider.kind);

        out.push(Node {
            name,
            role,
            ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            cpus: u32::try_from(cpus).unwrap_or(DEFAULT_CPUS),
            memory: u32::try_from(memory).unwrap_or(DEFAULT_MEMORY_MIB),
            ssh,
        });
    }

    if control_plane.is_none() {
        check.error(
            "nodes",
            "no node has role control-plane",
            "mark exactly one node with `role: control-plane`",
        );
    }
    out
}

/// The node's underlay address: given or defaulted, and checked against the
/// underlay.
fn node_ip(
    check: &mut Checker,
    i: usize,
    raw: Option<String>,
    network: &NetworkDraft,
) -> Option<Ipv4Addr> {
    let path = format!("nodes[{i}].ip");
    let (ip, given) = match raw {
        Some(text) => match text.trim().parse::<Ipv4Addr>() {
            Ok(ip) => (ip, true),
            Err(_) => {
                check.error(
                    &path,
                    format!("`{text}` is not an IPv4 address"),
                    "write it like 192.168.56.10",
                );
                return None;
            }
        },
        None => {
            let underlay = network.underlay?;
            let offset = u32::try_from(i)
                .ok()
                .and_then(|i| i.checked_add(FIRST_NODE_OFFSET))
                .and_then(|o| u32::from(underlay.network()).checked_add(o));
            match offset {
                Some(ip) => (Ipv4Addr::from(ip), false),
                None => {
                    check.error(
                        &path,
                        format!("the underlay {underlay} has no room for a default address"),
                        "set `ip` for this node",
                    );
                    return None;
                }
            }
        }
    };
    let Some(underlay) = network.underlay else {
        return Some(ip);
    };
    let problem = if !underlay.contains(&ip) && network.host_gw() {
        Some(format!(
            "{ip} is outside the underlay {underlay}: the host-gw backend needs every node on \
             that one L2 segment (its routes go via the peers' node IPs), or use backend vxlan"
        ))
    } else if !underlay.contains(&ip) {
        Some(format!("{ip} is outside the underlay {underlay}"))
    } else if ip == underlay.network() {
        Some(format!("{ip} is the underlay's network address"))
    } else if ip == underlay.broadcast() {
        Some(format!("{ip} is the underlay's broadcast address"))
    } else if u32::from(ip) == u32::from(underlay.network()) + 1 {
        Some(format!(
            "{ip} is reserved: the underlay's .1 is the host's side of the lab network"
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        let hint = if given {
            let first = Ipv4Addr::from(u32::from(underlay.network()).saturating_add(2));
            let last = Ipv4Addr::from(u32::from(underlay.broadcast()).saturating_sub(1));
            format!("use a free address from {first} to {last}")
        } else {
            format!("this is the default (underlay .10 + position {i}); set `ip`, or use a larger underlay")
        };
        let message = if given {
            problem
        } else {
            format!("default address {problem}")
        };
        check.error(&path, message, hint);
        return None;
    }
    Some(ip)
}

fn ssh_target(
    check: &mut Checker,
    i: usize,
    raw: Option<RawSsh>,
    provider: ProviderType,
) -> Option<SshTarget> {
    let path = format!("nodes[{i}].ssh");
    if provider != ProviderType::Ssh {
        if raw.is_some() || check.given(&path) {
            check.error(
                &path,
                "ssh is only for provider type ssh",
                "remove it, or set `provider.type: ssh`",
            );
        }
        return None;
    }
    let Some(raw) = raw else {
        check.error(
            &path,
            "missing: the ssh provider needs an ssh block for every node",
            "add `ssh: {host: ..., user: ..., key: ...}`",
        );
        return None;
    };
    let mut required = |field: &str, value: Option<String>, what: &str| {
        let value = value.unwrap_or_default();
        if value.trim().is_empty() {
            check.error(
                &format!("{path}.{field}"),
                format!("missing: the ssh provider needs {what}"),
                format!("add `{field}: ...` to this node's ssh block"),
            );
        }
        value
    };
    let host = required("host", raw.host, "the host name or address to connect to");
    let user = required("user", raw.user, "the user to log in as");
    let key = required("key", raw.key, "the path of the private key to log in with");
    let port = raw.port.unwrap_or(u64::from(DEFAULT_SSH_PORT));
    if !(1..=65535).contains(&port) {
        check.error(
            &format!("{path}.port"),
            format!("port {port} is outside 1..65535"),
            "SSH listens on 22 unless configured otherwise",
        );
    }
    let host_key = raw
        .host_key
        .and_then(|text| match HostKey::parse(&text) {
            Ok(key) => Some(key),
            Err(problem) => {
                check.error(
                    &format!("{path}.hostKey"),
                    problem,
                    "give the fingerprint `ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub` prints on the host (SHA256:...), or that .pub file's line",
                );
                None
            }
        });
    Some(SshTarget {
        host,
        port: u16::try_from(port).unwrap_or(DEFAULT_SSH_PORT),
        user,
        key,
        host_key,
    })
}
