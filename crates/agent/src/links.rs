//! Converges the two devices the agent owns: the `flannel.<VNI>` VXLAN
//! device (vxlan backend only) and the `cni0` bridge, with their addresses. Settings the kernel
//! cannot change on a live device (VNI, port, local address, lower device,
//! kind) make the agent recreate the device; everything else is fixed in
//! place.

use ipnet::Ipv4Net;
use labctl_nodeplan::{NodePlan, VxlanPlan};

use crate::netlink::{Netlink, Op};
use crate::nlops;
use crate::observe::{vxlan_text, Kernel, Link};
use crate::report::{Action, Collector, Difference, ObjectKind};

/// Whether to change the node or only compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Check,
}

/// The VXLAN device text the plan asks for, in [`vxlan_text`] form.
pub fn desired_vxlan_text(plan: &NodePlan, vx: &VxlanPlan, lower: &str) -> String {
    format!(
        "vxlan id {} local {} dev {} dstport {} nolearning ttl auto mtu {} address {} up",
        vx.vni, plan.underlay_ip, lower, vx.port, vx.mtu, vx.mac
    )
}

fn opt<T: ToString>(v: Option<T>) -> Option<String> {
    Some(v.map_or("none".to_string(), |v| v.to_string()))
}

/// A difference in attribute `attr` of device `dev` (report label `obj`).
fn link_diff(
    obj: &str,
    dev: &str,
    attr: &str,
    want: Option<String>,
    have: Option<String>,
) -> Difference {
    Difference::new(ObjectKind::Link, format!("{obj} {attr}"), dev)
        .attribute(attr)
        .expected(want)
        .actual(have)
}

/// Differences that can only be fixed by recreating the VXLAN device.
fn vxlan_identity_diffs(
    plan: &NodePlan,
    vx: &VxlanPlan,
    link: &Link,
    k: &Kernel,
    lower: &Link,
) -> Vec<Difference> {
    let dev = vx.name.as_str();
    let obj = format!("vxlan {dev}");
    let mut d = Vec::new();
    if link.kind != "vxlan" {
        d.push(link_diff(
            &obj,
            dev,
            "type",
            Some("vxlan".into()),
            Some(link.kind.clone()),
        ));
        return d;
    }
    let v = link.vxlan.clone().unwrap_or_default();
    if v.id != Some(vx.vni) {
        d.push(link_diff(
            &obj,
            dev,
            "id",
            Some(vx.vni.to_string()),
            opt(v.id),
        ));
    }
    if v.port != Some(vx.port) {
        d.push(link_diff(
            &obj,
            dev,
            "dstport",
            Some(vx.port.to_string()),
            opt(v.port),
        ));
    }
    if v.local != Some(plan.underlay_ip) {
        d.push(link_diff(
            &obj,
            dev,
            "local",
            Some(plan.underlay_ip.to_string()),
            opt(v.local),
        ));
    }
    if v.lower_index != Some(lower.index) {
        d.push(link_diff(
            &obj,
            dev,
            "dev",
            Some(lower.name.clone()),
            Some(v.lower_index.map_or("none".into(), |i| k.link_name(i))),
        ));
    }
    if let Some(g) = v.group {
        d.push(link_diff(&obj, dev, "group", None, Some(g.to_string())));
    }
    d
}

/// Differences that can be fixed on the live VXLAN device.
fn vxlan_inplace_diffs(vx: &VxlanPlan, link: &Link) -> Vec<Difference> {
    let dev = vx.name.as_str();
    let obj = format!("vxlan {dev}");
    let v = link.vxlan.clone().unwrap_or_default();
    let mut d = Vec::new();
    if link.mtu != vx.mtu {
        d.push(link_diff(
            &obj,
            dev,
            "mtu",
            Some(vx.mtu.to_string()),
            Some(link.mtu.to_string()),
        ));
    }
    if link.mac != Some(vx.mac) {
        d.push(link_diff(
            &obj,
            dev,
            "address",
            Some(vx.mac.to_string()),
            opt(link.mac),
        ));
    }
    if v.learning != Some(false) {
        d.push(link_diff(
            &obj,
            dev,
            "learning",
            Some("nolearning".into()),
            Some("learning".into()),
        ));
    }
    if v.ttl.unwrap_or(0) != 0 {
        d.push(link_diff(&obj, dev, "ttl", Some("auto".into()), opt(v.ttl)));
    }
    if !link.up {
        d.push(link_diff(
            &obj,
            dev,
            "state",
            Some("up".into()),
            Some("down".into()),
        ));
    }
    d
}

/// Converges `flannel.<VNI>` (nothing without one: host-gw). Returns true
/// when the device was created or recreated (its neighbours, FDB entries
/// and routes are then gone).
pub fn converge_vxlan(
    nl: &Netlink,
    k: &Kernel,
    plan: &NodePlan,
    lower: &Link,
    mode: Mode,
    out: &mut Collector,
) -> bool {
    let Some(vx) = plan.vxlan.as_ref() else {
        return false;
    };
    let name = &vx.name;
    let obj = format!("vxlan {name}");
    let spec = nlops::VxlanSpec {
        name: name.clone(),
        vni: vx.vni,
        port: vx.port,
        local: plan.underlay_ip,
        lower_index: lower.index,
        mtu: vx.mtu,
        mac: vx.mac,
    };
    let existing = k.link(name);
    let (action, changes, ops, fresh) = match existing {
        None => {
            let d = Difference::new(ObjectKind::Link, obj.clone(), name)
                .expected(Some(desired_vxlan_text(plan, vx, &lower.name)));
            (
                Action::Created,
                vec![d],
                vec![nlops::create_vxlan(&spec)],
                true,
            )
        }
        Some(link) => {
            let identity = vxlan_identity_diffs(plan, vx, link, k, lower);
            if !identity.is_empty() {
                let ops = vec![nlops::delete_link(link.index), nlops::create_vxlan(&spec)];
                (Action::Updated, identity, ops, true)
            } else {
                let d = vxlan_inplace_diffs(vx, link);
                let mut ops = Vec::new();
                let vxlan_only = |x: &Difference| {
                    matches!(x.attribute.as_deref(), Some("learning") | Some("ttl"))
                };
                let fix_link = d.iter().any(|x| !vxlan_only(x));
                if fix_link {
                    let mtu = (link.mtu != vx.mtu).then_some(vx.mtu);
                    let mac = (link.mac != Some(vx.mac)).then_some(vx.mac);
                    ops.push(nlops::set_link(link.index, mtu, mac, true));
                }
                if d.iter().any(vxlan_only) {
                    ops.push(nlops::set_vxlan_nolearning(link.index));
                }
                (in_place_action(&d), d, ops, false)
            }
        }
    };
    let change = LinkChange {
        object: &obj,
        dev: name,
        action,
        changes,
        ops,
        fresh,
    };
    finish_link(nl, k, existing, change, vx.address, mode, out);
    fresh
}

/// Converges `cni0`: a bridge with the gateway address, the plan's MTU, up.
pub fn converge_bridge(nl: &Netlink, k: &Kernel, plan: &NodePlan, mode: Mode, out: &mut Collector) {
    let b = &plan.bridge;
    let obj = format!("bridge {}", b.name);
    let existing = k.link(&b.name);
    let (action, changes, ops, fresh) = match existing {
        None => {
            let d = Difference::new(ObjectKind::Link, obj.clone(), &b.name)
                .expected(Some(format!("bridge mtu {} up", b.mtu)));
            (
                Action::Created,
                vec![d],
                vec![nlops::create_bridge(&b.name, b.mtu)],
                true,
            )
        }
        Some(link) if link.kind != "bridge" => {
            let d = link_diff(
                &obj,
                &b.name,
                "type",
                Some("bridge".into()),
                Some(link.kind.clone()),
            );
            let ops = vec![
                nlops::delete_link(link.index),
                nlops::create_bridge(&b.name, b.mtu),
            ];
            (Action::Updated, vec![d], ops, true)
        }
        Some(link) => {
            let mut d = Vec::new();
            if link.mtu != b.mtu {
                d.push(link_diff(
                    &obj,
                    &b.name,
                    "mtu",
                    Some(b.mtu.to_string()),
                    Some(link.mtu.to_string()),
                ));
            }
            if !link.up {
                d.push(link_diff(
                    &obj,
                    &b.name,
                    "state",
                    Some("up".into()),
                    Some("down".into()),
                ));
            }
            let ops = if d.is_empty() {
                Vec::new()
            } else {
                vec![nlops::set_link(
                    link.index,
                    (link.mtu != b.mtu).then_some(b.mtu),
                    None,
                    true,
                )]
            };
            (in_place_action(&d), d, ops, false)
        }
    };
    let change = LinkChange {
        object: &obj,
        dev: &b.name,
        action,
        changes,
        ops,
        fresh,
    };
    finish_link(nl, k, existing, change, b.address, mode, out);
}

/// The outcome of fixing a device in place: unchanged when nothing differs.
fn in_place_action(differences: &[Difference]) -> Action {
    if differences.is_empty() {
        Action::Unchanged
    } else {
        Action::Updated
    }
}

/// What converging one device decided: its outcome, the netlink operations
/// that fix it, and whether it is (re)created (its old addresses then went
/// with it).
struct LinkChange<'a> {
    /// The report name, e.g. `bridge cni0`.
    object: &'a str,
    /// The device name, e.g. `cni0`.
    dev: &'a str,
    action: Action,
    changes: Vec<Difference>,
    ops: Vec<Op>,
    fresh: bool,
}

/// The common end of converging a device: records the outcome, runs the
/// operations in `Mode::Apply`, then converges the device's address to
/// `want` (starting from none when the device is fresh).
fn finish_link(
    nl: &Netlink,
    k: &Kernel,
    existing: Option<&Link>,
    change: LinkChange<'_>,
    want: Ipv4Net,
    mode: Mode,
    out: &mut Collector,
) {
    out.object(
        ObjectKind::Link,
        change.object,
        change.action,
        change.changes,
    );
    if mode == Mode::Apply {
        run_ops(nl, change.ops, change.object, out);
    }
    let current: Vec<Ipv4Net> = match existing {
        Some(l) if !change.fresh => k.addresses_of(l.index),
        _ => Vec::new(),
    };
    converge_addresses(nl, change.dev, &current, want, mode, out);
}

/// Makes `want` the only IPv4 address of device `dev`.
fn converge_addresses(
    nl: &Netlink,
    dev: &str,
    current: &[Ipv4Net],
    want: Ipv4Net,
    mode: Mode,
    out: &mut Collector,
) {
    // The device may have just been (re)created, so its index is read
    // fresh, but only when there is an address to change.
    let index = if mode == Mode::Apply && current != [want] {
        index_of(dev)
    } else {
        None
    };
    for net in current.iter().filter(|n| **n != want) {
        let obj = format!("address {net} dev {dev}");
        out.object(
            ObjectKind::Address,
            &obj,
            Action::Removed,
            vec![Difference::new(ObjectKind::Address, &obj, net.to_string())
                .actual(Some(net.to_string()))],
        );
        if let Some(i) = index {
            run_ops(nl, vec![nlops::delete_address(i, *net)], &obj, out);
        }
    }
    let obj = format!("address {want} dev {dev}");
    if current.contains(&want) {
        out.unchanged(ObjectKind::Address, obj);
    } else {
        out.object(
            ObjectKind::Address,
            &obj,
            Action::Created,
            vec![Difference::new(ObjectKind::Address, &obj, want.to_string())
                .expected(Some(want.to_string()))],
        );
        if mode == Mode::Apply {
            match index {
                Some(i) => run_ops(nl, vec![nlops::add_address(i, want)], &obj, out),
                None => out.fail(
                    &obj,
                    format!("cannot add address {want}: device {dev} does not exist"),
                ),
            }
        }
    }
}

/// The index of device `name`, read fresh from the kernel (links only:
/// no address dump).
pub fn index_of(name: &str) -> Option<u32> {
    let mut socket = crate::dump::DumpSocket::open().ok()?;
    crate::decode::dump_links(&mut socket)
        .ok()?
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.index)
}

/// Runs `ops` in order; the first failure marks `object` failed.
pub fn run_ops(nl: &Netlink, ops: Vec<Op>, object: &str, out: &mut Collector) {
    for result in nl.run_all(ops) {
        if let Err(e) = result {
            out.fail(object, format!("{object}: {e}"));
            return;
        }
    }
}

/// Renders the live VXLAN device for reports.
pub fn live_vxlan_text(k: &Kernel, link: &Link) -> String {
    let lower = link
        .vxlan
        .as_ref()
        .and_then(|v| v.lower_index)
        .map_or("none".into(), |i| k.link_name(i));
    vxlan_text(link, &lower)
}
