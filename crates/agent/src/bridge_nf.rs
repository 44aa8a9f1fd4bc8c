//! Bridge netfilter: the `br_netfilter` kernel module, which sends traffic
//! bridged on cni0 through iptables. Without it a pod's DNS query to a DNS
//! pod on the same node is DNATed on the way out but its reply, bridged
//! straight back, is never un-DNATed, and the pod drops it.
//!
//! The plan decides (`bridgeNetfilter`): a node that is a machine of its
//! own gets the module; a netns node shares this host's kernel, where
//! loading it would send every bridge's traffic on the host through
//! iptables, so it never does.
//!
//! The module is loaded with `modprobe` rather than `finit_module(2)` on a
//! file from /lib/modules: modprobe resolves the module's dependencies
//! (`bridge`) from modules.dep, decompresses the .ko.xz/.ko.zst that
//! Debian and Ubuntu ship, and honours the node's blacklists; the agent
//! would otherwise re-implement all three. Unloading is the
//! `delete_module(2)` call itself, non-blocking: `modprobe -r` would also
//! remove `bridge` when it became unused, which the agent did not load.
//!
//! When the agent loads the module it records that in its state folder;
//! teardown unloads only then, only when nothing uses it, and never fails
//! over it.

use std::ffi::CString;
use std::path::Path;
use std::process::{Command, Stdio};

use labctl_nodeplan::NodePlan;
use nix::kmod::{delete_module, DeleteModuleFlags};

use crate::error::describe_io;
use crate::links::Mode;
use crate::report::{Action, Collector, Difference, ObjectKind};

/// The module's name.
pub const MODULE: &str = "br_netfilter";

/// The file in the state folder saying the agent loaded the module.
const LOADED_MARKER: &str = "loaded-br_netfilter";

/// The sysctl folder the module registers in every network namespace
/// (also there when the module is built into the kernel).
const SYSCTL_DIR: &str = "/proc/sys/net/bridge";

/// The report's name for the module.
fn object() -> String {
    format!("kernel module {MODULE}")
}

/// True when the module is loaded or built in.
pub fn present() -> bool {
    Path::new(SYSCTL_DIR).is_dir()
}

/// What `apply` has to do about the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The plan does not ask for it (netns labs): leave the kernel alone.
    NotWanted,
    /// Wanted and already there (loaded by someone, or built in).
    Present,
    /// Wanted and missing: load it.
    Load,
}

/// Decides from the plan's wish and whether the module is there.
pub fn need(wanted: bool, present: bool) -> Need {
    match (wanted, present) {
        (false, _) => Need::NotWanted,
        (true, true) => Need::Present,
        (true, false) => Need::Load,
    }
}

/// Compares (and in `Mode::Apply` loads) the module.
pub fn converge(plan: &NodePlan, mode: Mode, out: &mut Collector) {
    let obj = object();
    match need(plan.bridge_netfilter, present()) {
        Need::NotWanted => {}
        Need::Present => out.unchanged(ObjectKind::Module, obj),
        Need::Load => {
            let d =
                Difference::new(ObjectKind::Module, &obj, MODULE).expected(Some("loaded".into()));
            out.object(ObjectKind::Module, &obj, Action::Created, vec![d]);
            if mode == Mode::Apply {
                match load() {
                    Ok(()) => remember_loaded(plan, &obj, out),
                    Err(e) => out.fail(&obj, e),
                }
            }
        }
    }
}

/// `modprobe br_netfilter`.
fn load() -> Result<(), String> {
    let modprobe = crate::iptables::which("modprobe").ok_or_else(|| {
        format!(
            "cannot load kernel module {MODULE}: `modprobe` is not installed (package kmod); \
             without the module a pod's DNS reply from a DNS pod on the same node is dropped"
        )
    })?;
    let out = Command::new(&modprobe)
        .arg(MODULE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {}", modprobe.display(), describe_io(&e)))?;
    if !out.status.success() {
        return Err(format!(
            "cannot load kernel module {MODULE}: `modprobe {MODULE}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !present() {
        return Err(format!(
            "`modprobe {MODULE}` succeeded but {SYSCTL_DIR} did not appear"
        ));
    }
    Ok(())
}

fn remember_loaded(plan: &NodePlan, obj: &str, out: &mut Collector) {
    let marker = Path::new(&plan.state_dir).join(LOADED_MARKER);
    if let Err(e) = std::fs::write(&marker, format!("{MODULE}\n")) {
        out.fail(
            obj,
            format!(
                "loaded {MODULE} but cannot record it in {} (teardown will leave it loaded): {}",
                marker.display(),
                describe_io(&e)
            ),
        );
    }
}

/// What teardown does about the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtTeardown {
    /// Not loaded by the agent: not its to remove (nothing to say).
    NotOurs,
    /// Loaded by the agent but still in use (or its use count is
    /// unreadable): left loaded, with the reason.
    Keep(String),
    /// Loaded by the agent and unused: unload it.
    Unload,
}

/// Decides from whether the agent loaded the module and its use count
/// (None: unknown, e.g. the module is gone or built in).
pub fn unload_decision(loaded_by_agent: bool, use_count: Option<u32>) -> AtTeardown {
    match (loaded_by_agent, use_count) {
        (false, _) => AtTeardown::NotOurs,
        (true, Some(0)) => AtTeardown::Unload,
        (true, Some(n)) => AtTeardown::Keep(format!("{MODULE} is in use ({n} users): left loaded")),
        (true, None) => AtTeardown::Keep(format!(
            "{MODULE}: no use count in /sys/module/{MODULE}/refcnt (built in or already \
             unloaded): left as it is"
        )),
    }
}

fn use_count() -> Option<u32> {
    std::fs::read_to_string(format!("/sys/module/{MODULE}/refcnt"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Unloads the module when the agent loaded it and nothing uses it. What
/// it could not do goes to `kept`, never to the errors: the data plane is
/// gone either way, and a loaded module harms nothing the lab owns.
pub fn teardown(plan: &NodePlan, removed: &mut Vec<String>, kept: &mut Vec<String>) {
    let marker = Path::new(&plan.state_dir).join(LOADED_MARKER);
    let ours = marker.is_file();
    match unload_decision(ours, if ours { use_count() } else { None }) {
        AtTeardown::NotOurs => {}
        AtTeardown::Keep(why) => kept.push(format!("{}: {why}", object())),
        AtTeardown::Unload => {
            let name = CString::new(MODULE).unwrap_or_default();
            match delete_module(&name, DeleteModuleFlags::O_NONBLOCK) {
                Ok(()) => removed.push(object()),
                Err(e) => kept.push(format!("{}: cannot unload it: {}", object(), e.desc())),
            }
        }
    }
    // The marker goes with the state folder; remove it here too, so a
    // state folder that stays (a mount point) does not claim it later.
    let _ = std::fs::remove_file(&marker);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_is_loaded_only_when_the_plan_asks_and_it_is_missing() {
        assert_eq!(need(false, false), Need::NotWanted, "netns: never load");
        assert_eq!(need(false, true), Need::NotWanted);
        assert_eq!(need(true, true), Need::Present);
        assert_eq!(need(true, false), Need::Load);
    }

    #[test]
    fn teardown_unloads_only_what_the_agent_loaded_and_nobody_uses() {
        assert_eq!(unload_decision(false, Some(0)), AtTeardown::NotOurs);
        assert_eq!(unload_decision(false, None), AtTeardown::NotOurs);
        assert_eq!(unload_decision(true, Some(0)), AtTeardown::Unload);
        assert!(
            matches!(unload_decision(true, Some(2)), AtTeardown::Keep(w) if w.contains("in use"))
        );
        assert!(matches!(unload_decision(true, None), AtTeardown::Keep(_)));
    }
}
