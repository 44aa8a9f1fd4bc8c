//! The node-level commands: `apply` and `check` (one comparison, with or
//! without changes), `teardown` and `show`.

use std::path::Path;

use labctl_nodeplan::report::{ShowBridge, ShowIptables, ShowReport, ShowVxlan, TeardownReport};
use labctl_nodeplan::{Backend, NodePlan};

use crate::error::{failed, AgentError, Result};
use crate::iptables::{self, Iptables};
use crate::links::{self, Mode};
use crate::netlink::Netlink;
use crate::observe::{fdb_text, neighbour_text, route_text, Kernel, Link, MAIN_TABLE};
use crate::report::{header, Collector};
use crate::{bridge_nf, files, hostgw, nlops, peers, pod, ruleset, sysctl};

fn open_netlink() -> Result<Netlink> {
    Netlink::open().map_err(|e| AgentError::Environment(e.to_string()))
}

/// Links, addresses, main-table routes and the VXLAN device's neighbours
/// and FDB entries (none with host-gw).
fn read_kernel(plan: &NodePlan) -> Result<Kernel> {
    Kernel::read_with_peers(plan.vxlan.as_ref().map(|v| v.name.as_str()), &plan.peers)
        .map_err(|e| failed("cannot read the network state over netlink", e))
}

/// The interface holding the plan's underlay IP (found by address).
pub fn underlay(k: &Kernel, plan: &NodePlan) -> Result<Link> {
    k.link_with_address(plan.underlay_ip)
        .cloned()
        .ok_or_else(|| {
            AgentError::Environment(format!(
            "underlay IP {} of node {} is not on any interface of this host (wrong node, or its \
             lab network is not up)",
            plan.underlay_ip, plan.node
        ))
        })
}

/// Compares the node with the plan and, in `Mode::Apply`, converges it.
/// With `verbose`, the collector lists unchanged objects by name too.
pub fn converge(plan: &NodePlan, mode: Mode, verbose: bool) -> Result<Collector> {
    let lap = crate::timing::lap;
    let ipt = Iptables::find()?;
    let verifier = ruleset::Verifier::new(ipt.save_path(), plan);
    let listing = if verifier.unchanged() {
        None
    } else {
        Some(ipt.start_listing()?)
    };
    lap("iptables started");
    let nl = open_netlink()?;
    lap("netlink open");
    let k = read_kernel(plan)?;
    lap("read kernel");
    let lower = underlay(&k, plan)?;
    if mode == Mode::Apply {
        files::ensure_state_dir(Path::new(&plan.state_dir))?;
    }
    let mut out = Collector::new(verbose);
    // Another backend's (or VNI's) device first: its routes go with it.
    hostgw::remove_other_vxlan(&nl, &k, plan, mode, &mut out);
    if plan.vxlan.is_some() {
        links::converge_vxlan(&nl, &k, plan, &lower, mode, &mut out);
    }
    links::converge_bridge(&nl, &k, plan, mode, &mut out);
    let links_changed = out.changed();
    let k = if mode == Mode::Apply && links_changed {
        read_kernel(plan)?
    } else {
        k
    };
    lap("links");
    if plan.backend == Backend::Vxlan {
        peers::converge_peers(&nl, &k, plan, mode, &mut out);
    }
    hostgw::converge_routes(&nl, &k, plan, &lower, mode, &mut out);
    lap("peers");
    // The module first: it makes the bridge sysctl exist.
    bridge_nf::converge(plan, mode, &mut out);
    sysctl::converge(plan, mode, &mut out);
    lap("sysctls");
    iptables::converge(&ipt, listing, &verifier, plan, mode, &mut out)?;
    lap("iptables");
    files::converge(plan, mode, &mut out);
    lap("files");
    Ok(out)
}

/// Removes everything the agent owns; keeps going past errors.
pub fn teardown(plan: &NodePlan) -> TeardownReport {
    let (report_version, command) = header::<TeardownReport>();
    let mut r = TeardownReport {
        report_version,
        command,
        node: plan.node.clone(),
        removed: Vec::new(),
        kept: Vec::new(),
        errors: Vec::new(),
    };
    pod::teardown_all(plan, &mut r.removed, &mut r.errors);
    let links =
        Kernel::read_links().map_err(|e| failed("cannot read the network state over netlink", e));
    match open_netlink().and_then(|nl| links.map(|k| (nl, k))) {
        Ok((nl, k)) => {
            // host-gw's routes (any backend's: a node may have switched).
            if let Some(lower) = k.link_with_address(plan.underlay_ip) {
                match read_kernel(plan) {
                    Ok(full) => {
                        let (removed, errors) = hostgw::teardown_routes(&nl, &full, plan, lower);
                        r.removed.extend(removed);
                        r.errors.extend(errors);
                    }
                    Err(e) => r.errors.push(e.to_string()),
                }
            }
            let vxlan = plan.vxlan.as_ref().map(|v| (&v.name, "vxlan"));
            for (name, kind) in vxlan.into_iter().chain([(&plan.bridge.name, "bridge")]) {
                let Some(link) = k.link(name) else { continue };
                if link.kind != kind {
                    r.errors.push(format!(
                        "left {name} alone: it is a {:?} device, not a {kind}",
                        link.kind
                    ));
                    continue;
                }
                match nl.run(nlops::delete_link(link.index)) {
                    Ok(()) => r.removed.push(format!("{kind} {name}")),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => r.errors.push(format!("cannot delete {kind} {name}: {e}")),
                }
            }
        }
        Err(e) => r.errors.push(e.to_string()),
    }
    match Iptables::find().and_then(|ipt| iptables::teardown(&ipt, plan)) {
        Ok(removed) => r.removed.extend(removed),
        Err(e) => r.errors.push(e.to_string()),
    }
    files::teardown(plan, &mut r.removed, &mut r.errors);
    bridge_nf::teardown(plan, &mut r.removed, &mut r.kept);
    files::remove_state(plan, &mut r.removed, &mut r.kept, &mut r.errors);
    r
}

/// The node's live flannel state, for people.
pub fn show(plan: &NodePlan) -> Result<ShowReport> {
    let k = read_kernel(plan)?;
    let dev = plan.vxlan.as_ref().map_or("", |v| v.name.as_str());
    let vx = plan.vxlan.as_ref().and_then(|v| k.link(&v.name));
    let br = k.link(&plan.bridge.name);
    let vx_index = vx.map(|l| l.index);
    // host-gw's routes are on the underlay; only those into the pod network.
    let lower = k.link_with_address(plan.underlay_ip).map(|l| l.index);
    let addresses = |l: &Link| -> Vec<String> {
        k.addresses_of(l.index)
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let on = |i: u32| Some(i) == vx_index;
    let routes: Vec<String> = k
        .routes
        .iter()
        .filter(|r| {
            r.table == MAIN_TABLE
                && r.oif.is_some_and(|o| {
                    on(o)
                        || Some(o) == br.map(|b| b.index)
                        || (Some(o) == lower && plan.network.contains(&r.dst))
                })
        })
        .map(|r| route_text(r, &k.link_name(r.oif.unwrap_or(0))))
        .collect();
    let files = plan
        .files
        .iter()
        .map(|f| {
            let contents = files::read(Path::new(&f.path)).map(|(c, _)| c);
            (f.path.clone(), contents)
        })
        .collect();
    let sysctls = sysctl::wanted(plan)
        .into_iter()
        .map(|key| (key.to_string(), sysctl::read(key)))
        .collect();
    let iptables = Iptables::find()
        .and_then(|i| iptables::show(&i, plan))
        .unwrap_or_else(|e| ShowIptables {
            nat: Vec::new(),
            filter: Vec::new(),
            error: Some(e.to_string()),
        });
    let (report_version, command) = header::<ShowReport>();
    Ok(ShowReport {
        report_version,
        command,
        node: plan.node.clone(),
        underlay: k
            .link_with_address(plan.underlay_ip)
            .map(|l| l.name.clone()),
        vxlan: vx.map(|l| ShowVxlan {
            link: links::live_vxlan_text(&k, l),
            addresses: addresses(l),
        }),
        bridge: br.map(|l| ShowBridge {
            kind: l.kind.clone(),
            mtu: l.mtu,
            up: l.up,
            addresses: addresses(l),
        }),
        neighbours: k
            .neighbours
            .iter()
            .filter(|n| on(n.index))
            .map(|n| neighbour_text(n, dev))
            .collect(),
        fdb: k
            .fdb
            .iter()
            .filter(|f| on(f.index))
            .map(|f| fdb_text(f, dev))
            .collect(),
        routes,
        iptables,
        sysctls,
        files,
    })
}
