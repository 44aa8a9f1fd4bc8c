//! Pods for namespace labs, made the way the CNI bridge plugin makes them:
//! a network namespace `<lab>-<node>-<pod>`, a veth pair with the host end
//! on cni0 and `eth0` inside, an address from the node subnet (leases under
//! `<state_dir>/pods/`), a default route via the cni0 gateway, loopback up,
//! and `/etc/netns/<namespace>/resolv.conf` (which `ip netns exec` binds
//! over /etc/resolv.conf) pointing at the cluster DNS service.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use labctl_nodeplan::report::{PodAddReport, PodDelReport};
use labctl_nodeplan::NodePlan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{describe_io, failed, AgentError, Result};
use crate::netlink::Netlink;
use crate::observe::Kernel;
use crate::report::header;
use crate::{files, netns, nlops};

/// A pod's lease, stored in the state folder (what `pod add` reports).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub node: String,
}

impl Pod {
    /// `pod add`'s report of this pod.
    pub fn report(self) -> PodAddReport {
        let (report_version, command) = header::<PodAddReport>();
        PodAddReport {
            report_version,
            command,
            node: self.node,
            name: self.name,
            namespace: self.namespace,
            ip: self.ip,
            mac: self.mac,
        }
    }
}

/// `pod del`'s report: what was removed.
pub fn del_report(plan: &NodePlan, name: &str, removed: Vec<String>) -> PodDelReport {
    let (report_version, command) = header::<PodDelReport>();
    PodDelReport {
        report_version,
        command,
        node: plan.node.clone(),
        name: name.to_string(),
        namespace: namespace(plan, name),
        removed,
    }
}

fn pods_dir(plan: &NodePlan) -> PathBuf {
    Path::new(&plan.state_dir).join("pods")
}

fn lease_path(plan: &NodePlan, name: &str) -> PathBuf {
    pods_dir(plan).join(format!("{name}.json"))
}

/// The namespace name of pod `name`.
pub fn namespace(plan: &NodePlan, name: &str) -> String {
    format!("{}-{}-{}", plan.lab, plan.node, name)
}

/// The host end of the pod's veth: `veth` + 8 hex digits of a hash of the
/// namespace name (stable, and within the 15-character limit).
pub fn host_veth(ns: &str) -> String {
    let digest = Sha256::digest(ns.as_bytes());
    format!(
        "veth{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

fn resolv_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// The resolv.conf of a pod, as kubelet writes it for ClusterFirst pods.
pub fn resolv_conf(plan: &NodePlan) -> String {
    let d = &plan.dns_domain;
    format!(
        "nameserver {}\nsearch default.svc.{d} svc.{d} {d}\noptions ndots:5\n",
        plan.dns_service_ip
    )
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(AgentError::Input(format!(
            "pod name {name:?} is not valid: use 1-63 lowercase letters, digits and dashes"
        )))
    }
}

fn read_lease(path: &Path) -> Option<Pod> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn leases(plan: &NodePlan) -> Vec<Pod> {
    let Ok(entries) = fs::read_dir(pods_dir(plan)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| read_lease(&e.path()))
        .collect()
}

/// Serialises pod commands of one node (flock on a file in the state dir).
fn lock(plan: &NodePlan) -> Result<nix::fcntl::Flock<fs::File>> {
    let dir = pods_dir(plan);
    let created = files::create_dirs(&dir)?;
    files::remember_dirs(Path::new(&plan.state_dir), &created)?;
    let path = dir.join(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed(format!("cannot open {}", path.display()), describe_io(&e)))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| failed(format!("cannot lock {}", path.display()), e.desc()))
}

/// The first free address from .2 upward (the gateway is .1).
fn allocate(plan: &NodePlan, taken: &[Ipv4Addr]) -> Result<Ipv4Addr> {
    plan.subnet
        .hosts()
        .filter(|ip| *ip != plan.bridge.address.addr())
        .skip_while(|ip| u32::from(*ip) < u32::from(plan.subnet.network()) + 2)
        .find(|ip| !taken.contains(ip))
        .ok_or_else(|| AgentError::Failed(format!("no free address left in {}", plan.subnet)))
}

/// `pod add NAME`: creates the pod, or returns it when it already exists.
pub fn add(plan: &NodePlan, name: &str) -> Result<Pod> {
    check_name(name)?;
    let ns = namespace(plan, name);
    files::ensure_state_dir(Path::new(&plan.state_dir))?;
    let _lock = lock(plan)?;
    let nl = Netlink::open().map_err(|e| AgentError::Environment(e.to_string()))?;
    let k = Kernel::read_links().map_err(|e| failed("cannot read links", e))?;
    let bridge = k.link(&plan.bridge.name).ok_or_else(|| {
        AgentError::Environment(format!(
            "bridge {} does not exist on node {}: run apply first",
            plan.bridge.name, plan.node
        ))
    })?;
    let veth = host_veth(&ns);
    let existing = read_lease(&lease_path(plan, name));
    if let Some(pod) = &existing {
        if let (Some(fd), Some(port)) = (netns::open(&ns), k.link(&veth)) {
            // The pod stands; its port's hairpin flag and its resolv.conf
            // are things anyone may change, and its MTU follows the plan's
            // (a node switched between vxlan and host-gw changes it).
            set_hairpin(&nl, port.index, name)?;
            if port.mtu != plan.bridge.mtu {
                set_pod_mtu(&nl, &fd, port.index, plan.bridge.mtu, name)?;
            }
            ensure_resolv_conf(plan, &ns)?;
            return Ok(pod.clone());
        }
    }
    // Only a pod still to be made needs a namespace that outlives us.
    if netns::mount_namespace_is_private() {
        return Err(AgentError::Environment(format!(
            "cannot create pod namespace {ns}: this process has a private mount namespace (as under \
             `ip netns exec`), so the namespace would vanish when the agent exits; run \
             `labctl-agent --netns NODE pod add ...` (or nsenter --net) instead"
        )));
    }
    // Start clean: leftovers of a half-made pod go first.
    remove_parts(&nl, &k, &ns, &veth)?;
    let taken: Vec<Ipv4Addr> = leases(plan)
        .iter()
        .filter(|p| p.name != name)
        .map(|p| p.ip)
        .collect();
    let ip = match &existing {
        Some(p) if !taken.contains(&p.ip) => p.ip,
        _ => allocate(plan, &taken)?,
    };
    let fd = netns::create(&ns)?;
    nl.run(nlops::create_veth(
        &veth,
        "eth0",
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        plan.bridge.mtu,
        bridge.index,
    ))
    .map_err(|e| {
        failed(
            format!("cannot create veth pair {veth}/eth0 for pod {name}"),
            e,
        )
    })?;
    let port = Kernel::read_links()
        .map_err(|e| failed("cannot read links", e))?
        .link(&veth)
        .map(|l| l.index)
        .ok_or_else(|| AgentError::Failed(format!("veth {veth} of pod {name} vanished")))?;
    set_hairpin(&nl, port, name)?;
    let addr =
        Ipv4Net::new(ip, plan.subnet.prefix_len()).map_err(|e| failed("bad pod address", e))?;
    let gateway = plan.bridge.address.addr();
    let mac = netns::run_in(&fd, move || configure_inside(addr, gateway))?;
    ensure_resolv_conf(plan, &ns)?;
    let pod = Pod {
        name: name.to_string(),
        namespace: ns,
        ip,
        mac,
        node: plan.node.clone(),
    };
    let json = serde_json::to_string_pretty(&pod).map_err(|e| failed("cannot encode lease", e))?;
    files::write_atomic(&lease_path(plan, name), &json, 0o644)?;
    Ok(pod)
}

/// Sets the MTU of both ends of a standing pod's veth pair: the bridge
/// port here and eth0 inside the pod.
fn set_pod_mtu(nl: &Netlink, fd: &OwnedFd, port: u32, mtu: u32, pod: &str) -> Result<()> {
    nl.run(nlops::set_link(port, Some(mtu), None, true))
        .map_err(|e| failed(format!("cannot set the MTU of pod {pod}'s bridge port"), e))?;
    let pod = pod.to_string();
    netns::run_in(fd, move || {
        let nl = Netlink::open().map_err(|e| failed("cannot open netlink inside the pod", e))?;
        let k = Kernel::read_links().map_err(|e| failed("cannot read the pod's links", e))?;
        let eth0 = k
            .link("eth0")
            .ok_or_else(|| AgentError::Failed(format!("pod {pod} has no eth0")))?;
        nl.run(nlops::set_link(eth0.index, Some(mtu), None, true))
            .map_err(|e| failed(format!("cannot set the MTU of pod {pod}'s eth0"), e))
    })
}

/// Hairpin on the pod's bridge port, as the CNI bridge plugin sets it.
fn set_hairpin(nl: &Netlink, port: u32, pod: &str) -> Result<()> {
    nl.run(nlops::set_bridge_port_hairpin(port)).map_err(|e| {
        failed(
            format!("cannot set hairpin mode on pod {pod}'s bridge port"),
            e,
        )
    })
}

/// Writes the pod's resolv.conf unless it already holds [`resolv_conf`].
fn ensure_resolv_conf(plan: &NodePlan, ns: &str) -> Result<()> {
    let resolv = resolv_dir(ns).join("resolv.conf");
    let wanted = resolv_conf(plan);
    if fs::read_to_string(&resolv).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    let created = files::write_atomic(&resolv, &wanted, 0o644)?;
    files::remember_dirs(Path::new(&plan.state_dir), &created)
}

/// Inside the pod: loopback up, eth0 addressed and up, default route.
/// Returns eth0's MAC address.
fn configure_inside(addr: Ipv4Net, gateway: Ipv4Addr) -> Result<String> {
    let nl = Netlink::open().map_err(|e| failed("cannot open netlink inside the pod", e))?;
    let k = Kernel::read_links().map_err(|e| failed("cannot read the pod's links", e))?;
    let lo = k
        .link("lo")
        .ok_or_else(|| AgentError::Failed("the pod has no loopback device".into()))?;
    let eth0 = k
        .link("eth0")
        .ok_or_else(|| AgentError::Failed("eth0 did not arrive in the pod".into()))?;
    let ops = vec![
        nlops::link_up(lo.index),
        nlops::add_address(eth0.index, addr),
        nlops::link_up(eth0.index),
    ];
    for r in nl.run_all(ops) {
        r.map_err(|e| failed("cannot configure eth0 in the pod", e))?;
    }
    nl.run(nlops::add_default_route(gateway)).map_err(|e| {
        failed(
            format!("cannot add the default route via {gateway} in the pod"),
            e,
        )
    })?;
    Ok(eth0.mac.map_or(String::new(), |m| m.to_string()))
}

/// Removes the pod's host veth and namespace registration, if present.
fn remove_parts(nl: &Netlink, k: &Kernel, ns: &str, veth: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Some(l) = k.link(veth) {
        match nl.run(nlops::delete_link(l.index)) {
            Ok(()) => removed.push(format!("veth {veth}")),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(failed(format!("cannot delete {veth}"), e)),
        }
    }
    if netns::delete(ns)? {
        removed.push(format!("netns {ns}"));
    }
    Ok(removed)
}

/// `pod del NAME`: removes the pod's namespace, veth, lease and resolv.conf.
pub fn del(plan: &NodePlan, name: &str) -> Result<Vec<String>> {
    check_name(name)?;
    let ns = namespace(plan, name);
    let nl = Netlink::open().map_err(|e| AgentError::Environment(e.to_string()))?;
    let k = Kernel::read_links().map_err(|e| failed("cannot read links", e))?;
    let mut removed = remove_parts(&nl, &k, &ns, &host_veth(&ns))?;
    let dir = resolv_dir(&ns);
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .map_err(|e| failed(format!("cannot remove {}", dir.display()), describe_io(&e)))?;
        removed.push(format!("directory {}", dir.display()));
    }
    let lease = lease_path(plan, name);
    if lease.exists() {
        fs::remove_file(&lease).map_err(|e| {
            failed(
                format!("cannot remove {}", lease.display()),
                describe_io(&e),
            )
        })?;
        removed.push(format!("lease {}", lease.display()));
    }
    Ok(removed)
}

/// Removes every pod this node's agent created (teardown).
pub fn teardown_all(plan: &NodePlan, removed: &mut Vec<String>, errors: &mut Vec<String>) {
    for pod in leases(plan) {
        match del(plan, &pod.name) {
            Ok(r) => removed.extend(r),
            Err(e) => errors.push(format!("pod {}: {e}", pod.name)),
        }
    }
}
