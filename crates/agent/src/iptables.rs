//! The two chains flannel owns (FLANNEL-POSTRTG in nat, FLANNEL-FWD in
//! filter) and their jump rules, and the plan's service chains
//! (`services`). State is read with ONE `iptables-save`
//! (started first, on a helper thread, while the agent reads netlink; one
//! process instead of an `iptables -t TABLE -S` per table) and compared as
//! text with the plan's rules, order included: `iptables-save` prints rules
//! exactly as `iptables -S` does, and its chain lines are turned into the
//! `-N`/`-P` lines `-S` would print. Changes go in ONE `iptables-restore
//! --noflush -w` payload: declaring `:CHAIN - [0:0]` creates or flushes just
//! that chain, so each table's chain is replaced atomically.
//!
//! `iptables-save` and `iptables-restore` are taken from PATH, so the same
//! frontend (nft or legacy) the node's other tools use is used for both.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use labctl_nodeplan::report::ShowIptables;
use labctl_nodeplan::{ChainPlan, NodePlan};

use crate::error::{describe_io, failed, AgentError, Result};
use crate::links::Mode;
use crate::report::{Action, Collector, Difference, ObjectKind};
use crate::ruleset::Verifier;

/// The nat chain flannel uses; removed when the plan has no nat chain.
const NAT_CHAIN: &str = "FLANNEL-POSTRTG";
const NAT_PARENT: &str = "POSTROUTING";

/// The iptables tools of this node.
pub struct Iptables {
    save: PathBuf,
    restore: PathBuf,
}

/// One chain's live state in a table.
#[derive(Debug, Default, Clone)]
pub struct ChainState {
    pub exists: bool,
    pub rules: Vec<String>,
    /// Rules in the parent chain that jump to this chain.
    pub jumps: Vec<String>,
}

/// The folders searched after PATH: sudo and non-login shells often
/// leave /sbin out.
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds the program `name` in PATH, then in the sbin and bin folders.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Iptables {
    /// Finds `iptables-save` and `iptables-restore`; their absence is an
    /// environment error.
    pub fn find() -> Result<Iptables> {
        let missing = |tool: &str| {
            AgentError::Environment(format!("iptables is not installed (no `{tool}` in PATH)"))
        };
        let save = which("iptables-save").ok_or_else(|| missing("iptables-save"))?;
        let restore = which("iptables-restore").ok_or_else(|| missing("iptables-restore"))?;
        Ok(Iptables { save, restore })
    }

    /// Starts `iptables-save` from a helper thread, so the caller reads
    /// netlink while it starts and runs (spawning blocks until the child
    /// has executed the program, which on a busy machine takes
    /// milliseconds). The thread, and so the listing, is in the calling
    /// thread's network namespace.
    pub fn start_listing(&self) -> Result<Listing> {
        let mut cmd = Command::new(&self.save);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let worker = std::thread::Builder::new()
            .name("iptables-save".into())
            .spawn(move || -> Result<(Vec<String>, Vec<String>)> {
                let out = cmd
                    .output()
                    .map_err(|e| failed("cannot run iptables-save", describe_io(&e)))?;
                if !out.status.success() {
                    return Err(AgentError::Failed(format!(
                        "iptables-save failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                let text = String::from_utf8_lossy(&out.stdout);
                Ok((table_lines(&text, "nat"), table_lines(&text, "filter")))
            })
            .map_err(|e| failed("cannot start a thread to list iptables", describe_io(&e)))?;
        Ok(Listing { worker })
    }

    /// The `iptables-save` this node uses.
    pub fn save_path(&self) -> &Path {
        &self.save
    }

    /// The nat and filter tables in `iptables -S` form.
    pub fn list_tables(&self) -> Result<(Vec<String>, Vec<String>)> {
        self.start_listing()?.wait()
    }

    /// Feeds `payload` to `iptables-restore --noflush -w`.
    pub fn restore(&self, payload: &str) -> Result<()> {
        let mut child = Command::new(&self.restore)
            .args(["--noflush", "-w"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed("cannot run iptables-restore", describe_io(&e)))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(payload.as_bytes())
                .map_err(|e| failed("cannot write to iptables-restore", describe_io(&e)))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed("iptables-restore did not finish", describe_io(&e)))?;
        if !out.status.success() {
            return Err(AgentError::Failed(format!(
                "iptables-restore --noflush rejected the rules ({}): {}\npayload was:\n{payload}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// The running `iptables-save`.
pub struct Listing {
    worker: std::thread::JoinHandle<Result<(Vec<String>, Vec<String>)>>,
}

impl Listing {
    /// Waits for the listing: (nat lines, filter lines), `-S` form.
    pub fn wait(self) -> Result<(Vec<String>, Vec<String>)> {
        self.worker
            .join()
            .map_err(|_| AgentError::Failed("the iptables listing thread panicked".into()))?
    }
}

/// Table `table` of `iptables-save` output as `iptables -t TABLE -S` would
/// print it: `:CHAIN - [0:0]` becomes `-N CHAIN`, `:CHAIN POLICY [p:b]`
/// becomes `-P CHAIN POLICY`, rules stay as they are. A table the output
/// does not mention has no lines.
pub fn table_lines(save: &str, table: &str) -> Vec<String> {
    let header = format!("*{table}");
    let mut lines = save.lines().map(str::trim_end);
    if !lines.any(|l| l == header) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for l in lines.take_while(|l| *l != "COMMIT") {
        if let Some(chain) = l.strip_prefix(':') {
            let mut words = chain.split(' ');
            match (words.next(), words.next()) {
                (Some(name), Some("-")) => out.push(format!("-N {name}")),
                (Some(name), Some(policy)) => out.push(format!("-P {name} {policy}")),
                _ => {}
            }
        } else if l.starts_with('-') {
            out.push(l.to_string());
        }
    }
    out
}

/// Extracts one chain's state from a table's `-S` output.
pub fn chain_state(lines: &[String], chain: &str, parent: &str) -> ChainState {
    ChainState {
        jumps: jumps_to(lines, chain, parent),
        ..owned_chain(lines, chain)
    }
}

/// Whether `chain` exists and its rules, in order (no jumps).
pub(crate) fn owned_chain(lines: &[String], chain: &str) -> ChainState {
    let rule_prefix = format!("-A {chain} ");
    ChainState {
        exists: lines.iter().any(|l| *l == format!("-N {chain}")),
        rules: lines
            .iter()
            .filter(|l| l.starts_with(&rule_prefix))
            .cloned()
            .collect(),
        jumps: Vec::new(),
    }
}

/// The rules of `parent` that jump to `chain`.
pub(crate) fn jumps_to(lines: &[String], chain: &str, parent: &str) -> Vec<String> {
    let parent_prefix = format!("-A {parent} ");
    let jump = format!(" -j {chain}");
    lines
        .iter()
        .filter(|l| {
            l.starts_with(&parent_prefix) && (l.ends_with(&jump) || l.contains(&format!("{jump} ")))
        })
        .cloned()
        .collect()
}

/// The rule spec of an `-A CHAIN spec` line.
pub(crate) fn spec<'a>(line: &'a str, chain: &str) -> &'a str {
    line.strip_prefix(&format!("-A {chain} ")).unwrap_or(line)
}

/// Compares one planned chain with the live one and appends the fix to
/// `payload` (a table section body).
fn converge_chain(
    table: &str,
    plan: &ChainPlan,
    live: &ChainState,
    payload: &mut String,
    out: &mut Collector,
) {
    converge_rules(table, &plan.chain, &plan.rules, live, payload, out);
    converge_jump(
        table,
        &plan.parent,
        &plan.chain,
        &plan.jump,
        &live.jumps,
        payload,
        out,
    );
}

/// Compares an owned chain's rules (`planned`, in order) with the live
/// chain and appends its replacement to `payload` when they differ.
pub(crate) fn converge_rules(
    table: &str,
    chain: &str,
    planned: &[String],
    live: &ChainState,
    payload: &mut String,
    out: &mut Collector,
) {
    let obj = format!("iptables -t {table} {chain}");
    if live.exists && live.rules == planned {
        out.unchanged(ObjectKind::Chain, obj);
        return;
    }
    let action = if live.exists {
        Action::Updated
    } else {
        Action::Created
    };
    let d = Difference::new(ObjectKind::Chain, &obj, chain)
        .table(table)
        .expected_lines(planned.to_vec())
        .actual_lines(live.exists.then(|| live.rules.clone()));
    out.object(ObjectKind::Chain, &obj, action, vec![d]);
    payload.push_str(&format!(":{chain} - [0:0]\n"));
    for r in planned {
        payload.push_str(r);
        payload.push('\n');
    }
}

/// Compares the jumps from `parent` to `chain` (`live`) with the one
/// planned and appends the fix to `payload`: one exact copy kept,
/// duplicates and foreign variants deleted.
pub(crate) fn converge_jump(
    table: &str,
    parent: &str,
    chain: &str,
    planned: &str,
    live: &[String],
    payload: &mut String,
    out: &mut Collector,
) {
    let obj = format!("iptables -t {table} {parent} jump to {chain}");
    if live.len() == 1 && live[0] == planned {
        out.unchanged(ObjectKind::Rule, obj);
        return;
    }
    let action = if live.is_empty() {
        Action::Created
    } else {
        Action::Updated
    };
    let d = Difference::new(ObjectKind::Rule, &obj, chain)
        .table(table)
        .expected_lines(vec![planned.to_string()])
        .actual_lines((!live.is_empty()).then(|| live.to_vec()));
    out.object(ObjectKind::Rule, &obj, action, vec![d]);
    let mut kept = false;
    for j in live {
        if j == planned && !kept {
            kept = true;
            continue;
        }
        payload.push_str(&format!("-D {parent} {}\n", spec(j, parent)));
    }
    if !kept {
        payload.push_str(planned);
        payload.push('\n');
    }
}

/// Appends the removal of `chain` and its jumps to `payload`.
fn remove_chain(chain: &str, parent: &str, live: &ChainState, payload: &mut String) -> bool {
    for j in &live.jumps {
        payload.push_str(&format!("-D {parent} {}\n", spec(j, parent)));
    }
    if live.exists {
        payload.push_str(&format!(":{chain} - [0:0]\n-X {chain}\n"));
    }
    live.exists || !live.jumps.is_empty()
}

fn section(table: &str, body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!("*{table}\n{body}COMMIT\n")
    }
}

/// Reports the chains and jumps of the plan unchanged: the ruleset stamp
/// proved that nothing touched them since they were last seen right.
fn report_verified(plan: &NodePlan, out: &mut Collector) {
    let chains = [
        ("nat", plan.iptables.nat.as_ref()),
        ("filter", Some(&plan.iptables.filter)),
    ];
    for (table, chain) in chains {
        if let Some(c) = chain {
            out.unchanged(
                ObjectKind::Chain,
                format!("iptables -t {table} {}", c.chain),
            );
            out.unchanged(
                ObjectKind::Rule,
                format!("iptables -t {table} {} jump to {}", c.parent, c.chain),
            );
        }
    }
    if let Some(services) = &plan.iptables.services {
        crate::services::report_verified(services, out);
    }
}

/// Converges both chains and jumps (apply) or only reports (check).
/// Without a listing (`verifier` proved the rules unchanged) everything is
/// reported unchanged; after a listing, `verifier` records what was found
/// or done (apply only: `check` writes nothing).
pub fn converge(
    ipt: &Iptables,
    listing: Option<Listing>,
    verifier: &Verifier,
    plan: &NodePlan,
    mode: Mode,
    out: &mut Collector,
) -> Result<()> {
    let Some(listing) = listing else {
        report_verified(plan, out);
        return Ok(());
    };
    let (nat_lines, filter_lines) = listing.wait()?;
    out.filter_rules = Some(filter_lines.clone());
    let mut nat = String::new();
    match &plan.iptables.nat {
        Some(chain) => {
            let live = chain_state(&nat_lines, &chain.chain, &chain.parent);
            converge_chain("nat", chain, &live, &mut nat, out);
        }
        None => {
            let live = chain_state(&nat_lines, NAT_CHAIN, NAT_PARENT);
            if remove_chain(NAT_CHAIN, NAT_PARENT, &live, &mut nat) {
                let obj = format!("iptables -t nat {NAT_CHAIN}");
                let actual = if live.exists {
                    live.rules.clone()
                } else {
                    live.jumps.clone()
                };
                let d = Difference::new(ObjectKind::Chain, &obj, NAT_CHAIN)
                    .table("nat")
                    .actual_lines(Some(actual));
                out.object(ObjectKind::Chain, &obj, Action::Removed, vec![d]);
            }
        }
    }
    if let Some(services) = &plan.iptables.services {
        crate::services::converge(services, &nat_lines, &mut nat, out);
    }
    let f = &plan.iptables.filter;
    let mut filter = String::new();
    converge_chain(
        "filter",
        f,
        &chain_state(&filter_lines, &f.chain, &f.parent),
        &mut filter,
        out,
    );
    let payload = section("nat", &nat) + &section("filter", &filter);
    if mode == Mode::Apply && payload.is_empty() {
        verifier.record_listed();
    }
    if mode == Mode::Apply && !payload.is_empty() {
        let sections = payload.matches("COMMIT\n").count();
        if let Err(e) = ipt.restore(&payload) {
            verifier.forget();
            out.errors.push(e.to_string());
            for o in out
                .objects
                .iter_mut()
                .filter(|o| matches!(o.kind, ObjectKind::Chain | ObjectKind::Rule))
            {
                if o.action != Action::Unchanged {
                    o.action = Action::Failed;
                }
            }
        } else {
            verifier.record_restored(sections);
        }
    }
    Ok(())
}

/// Removes both chains and their jumps; returns what was removed.
pub fn teardown(ipt: &Iptables, plan: &NodePlan) -> Result<Vec<String>> {
    let (nat_lines, filter_lines) = ipt.list_tables()?;
    let (nat_chain, nat_parent) = plan
        .iptables
        .nat
        .as_ref()
        .map_or((NAT_CHAIN, NAT_PARENT), |c| {
            (c.chain.as_str(), c.parent.as_str())
        });
    let f = &plan.iptables.filter;
    let mut removed = Vec::new();
    let mut nat = String::new();
    if remove_chain(
        nat_chain,
        nat_parent,
        &chain_state(&nat_lines, nat_chain, nat_parent),
        &mut nat,
    ) {
        removed.push(format!("iptables -t nat {nat_chain}"));
    }
    if let Some(services) = &plan.iptables.services {
        removed.extend(crate::services::teardown(services, &nat_lines, &mut nat));
    }
    let mut filter = String::new();
    if remove_chain(
        &f.chain,
        &f.parent,
        &chain_state(&filter_lines, &f.chain, &f.parent),
        &mut filter,
    ) {
        removed.push(format!("iptables -t filter {}", f.chain));
    }
    let payload = section("nat", &nat) + &section("filter", &filter);
    if !payload.is_empty() {
        ipt.restore(&payload)?;
    }
    Ok(removed)
}

/// The live lines of both chains and their jumps, for `show`.
pub fn show(ipt: &Iptables, plan: &NodePlan) -> Result<ShowIptables> {
    let (nat_lines, filter_lines) = ipt.list_tables()?;
    let pick = |lines: &[String], chain: &str, parent: &str| {
        let s = chain_state(lines, chain, parent);
        let mut all = s.jumps.clone();
        if s.exists {
            all.push(format!("-N {chain}"));
        }
        all.extend(s.rules);
        all
    };
    let (nc, np) = plan
        .iptables
        .nat
        .as_ref()
        .map_or((NAT_CHAIN, NAT_PARENT), |c| {
            (c.chain.as_str(), c.parent.as_str())
        });
    let f = &plan.iptables.filter;
    Ok(ShowIptables {
        nat: pick(&nat_lines, nc, np),
        filter: pick(&filter_lines, &f.chain, &f.parent),
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT
COMMIT
# Completed
*nat
:POSTROUTING ACCEPT [3:180]
-A POSTROUTING -j MASQUERADE
COMMIT
";

    #[test]
    fn save_output_becomes_dash_s_lines_per_table() {
        assert_eq!(
            table_lines(SAVE, "filter"),
            [
                "-P INPUT ACCEPT",
                "-P FORWARD DROP",
                "-N FLANNEL-FWD",
                "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD",
                "-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT",
            ]
        );
        assert_eq!(
            table_lines(SAVE, "nat"),
            ["-P POSTROUTING ACCEPT", "-A POSTROUTING -j MASQUERADE"]
        );
        assert!(table_lines(SAVE, "mangle").is_empty());
        let state = chain_state(&table_lines(SAVE, "filter"), "FLANNEL-FWD", "FORWARD");
        assert!(state.exists);
        assert_eq!(state.rules.len(), 1);
        assert_eq!(state.jumps.len(), 1);
    }
}
