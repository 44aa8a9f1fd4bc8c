//! The two chains flannel owns (FLANNEL-POSTRTG in nat, FLANNEL-FWD in
//! filter) and their jump rules. State is read with `iptables -t TABLE -S`
//! (one call per table, both run at once) and compared as text with the
//! plan's rules, order included. Changes go in ONE `iptables-restore
//! --noflush -w` payload: declaring `:CHAIN - [0:0]` creates or flushes just
//! that chain, so each table's chain is replaced atomically.
//!
//! `iptables` and `iptables-restore` are taken from PATH, so the same
//! frontend (nft or legacy) the node's other tools use is used for both.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use labctl_nodeplan::{ChainPlan, NodePlan};

use crate::error::{describe_io, failed, AgentError, Result};
use crate::links::Mode;
use crate::report::{Action, Collector, Difference};
use serde_json::Value;

/// The nat chain flannel uses; removed when the plan has no nat chain.
const NAT_CHAIN: &str = "FLANNEL-POSTRTG";
const NAT_PARENT: &str = "POSTROUTING";

/// The iptables tools of this node.
pub struct Iptables {
    iptables: PathBuf,
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

/// Finds `name` in PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Iptables {
    /// Finds `iptables` and `iptables-restore`; their absence is an
    /// environment error.
    pub fn find() -> Result<Iptables> {
        let iptables = which("iptables").ok_or_else(|| {
            AgentError::Environment("iptables is not installed (no `iptables` in PATH)".into())
        })?;
        let restore = which("iptables-restore").ok_or_else(|| {
            AgentError::Environment("iptables-restore is not installed (not in PATH)".into())
        })?;
        Ok(Iptables { iptables, restore })
    }

    fn spawn_list(&self, table: &str) -> Result<Child> {
        Command::new(&self.iptables)
            .args(["-w", "-t", table, "-S"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                failed(
                    format!("cannot run iptables -t {table} -S"),
                    describe_io(&e),
                )
            })
    }

    /// Starts `iptables -t nat -S` and `iptables -t filter -S` (both at
    /// once, so they run while the caller reads netlink).
    pub fn start_listing(&self) -> Result<Listing> {
        Ok(Listing {
            nat: self.spawn_list("nat")?,
            filter: self.spawn_list("filter")?,
        })
    }

    /// `iptables -t nat -S` and `iptables -t filter -S`, run concurrently.
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

/// Running `iptables -S` listings of the nat and filter tables.
pub struct Listing {
    nat: Child,
    filter: Child,
}

impl Listing {
    /// Waits for both listings: (nat lines, filter lines).
    pub fn wait(self) -> Result<(Vec<String>, Vec<String>)> {
        Ok((
            wait_lines(self.nat, "nat")?,
            wait_lines(self.filter, "filter")?,
        ))
    }
}

fn wait_lines(child: Child, table: &str) -> Result<Vec<String>> {
    let out = child.wait_with_output().map_err(|e| {
        failed(
            format!("iptables -t {table} -S did not finish"),
            describe_io(&e),
        )
    })?;
    if !out.status.success() {
        return Err(AgentError::Failed(format!(
            "iptables -t {table} -S failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect())
}

/// Extracts one chain's state from a table's `-S` output.
pub fn chain_state(lines: &[String], chain: &str, parent: &str) -> ChainState {
    let rule_prefix = format!("-A {chain} ");
    let parent_prefix = format!("-A {parent} ");
    let jump = format!(" -j {chain}");
    ChainState {
        exists: lines.iter().any(|l| *l == format!("-N {chain}")),
        rules: lines
            .iter()
            .filter(|l| l.starts_with(&rule_prefix))
            .cloned()
            .collect(),
        jumps: lines
            .iter()
            .filter(|l| {
                l.starts_with(&parent_prefix)
                    && (l.ends_with(&jump) || l.contains(&format!("{jump} ")))
            })
            .cloned()
            .collect(),
    }
}

fn list(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// The rule spec of an `-A CHAIN spec` line.
fn spec<'a>(line: &'a str, chain: &str) -> &'a str {
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
    let obj = format!("iptables -t {table} {}", plan.chain);
    if live.exists && live.rules == plan.rules {
        out.unchanged(obj);
    } else {
        let action = if live.exists {
            Action::Updated
        } else {
            Action::Created
        };
        let actual = if live.exists {
            list(&live.rules)
        } else {
            Value::Null
        };
        out.object(
            &obj,
            action,
            vec![Difference {
                object: obj.clone(),
                expected: list(&plan.rules),
                actual,
            }],
        );
        payload.push_str(&format!(":{} - [0:0]\n", plan.chain));
        for r in &plan.rules {
            payload.push_str(r);
            payload.push('\n');
        }
    }
    let obj = format!("iptables -t {table} {} jump to {}", plan.parent, plan.chain);
    if live.jumps.len() == 1 && live.jumps[0] == plan.jump {
        out.unchanged(obj);
        return;
    }
    let action = if live.jumps.is_empty() {
        Action::Created
    } else {
        Action::Updated
    };
    let actual = if live.jumps.is_empty() {
        Value::Null
    } else {
        list(&live.jumps)
    };
    let expected = list(std::slice::from_ref(&plan.jump));
    out.object(
        &obj,
        action,
        vec![Difference {
            object: obj.clone(),
            expected,
            actual,
        }],
    );
    // Keep one exact copy in place; delete duplicates and foreign variants.
    let mut kept = false;
    for j in &live.jumps {
        if *j == plan.jump && !kept {
            kept = true;
            continue;
        }
        payload.push_str(&format!("-D {} {}\n", plan.parent, spec(j, &plan.parent)));
    }
    if !kept {
        payload.push_str(&plan.jump);
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

/// Converges both chains and jumps (apply) or only reports (check).
pub fn converge(
    ipt: &Iptables,
    listing: Listing,
    plan: &NodePlan,
    mode: Mode,
    out: &mut Collector,
) -> Result<()> {
    let (nat_lines, filter_lines) = listing.wait()?;
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
                    list(&live.rules)
                } else {
                    list(&live.jumps)
                };
                out.object(
                    &obj,
                    Action::Removed,
                    vec![Difference {
                        object: obj.clone(),
                        expected: Value::Null,
                        actual,
                    }],
                );
            }
        }
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
    if mode == Mode::Apply && !payload.is_empty() {
        if let Err(e) = ipt.restore(&payload) {
            out.errors.push(e.to_string());
            for o in out
                .objects
                .iter_mut()
                .filter(|o| o.object.starts_with("iptables "))
            {
                if o.action != Action::Unchanged {
                    o.action = Action::Failed;
                }
            }
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
pub fn show(ipt: &Iptables, plan: &NodePlan) -> Result<Value> {
    let (nat_lines, filter_lines) = ipt.list_tables()?;
    let pick = |lines: &[String], chain: &str, parent: &str| {
        let s = chain_state(lines, chain, parent);
        let mut all = s.jumps.clone();
        if s.exists {
            all.push(format!("-N {chain}"));
        }
        all.extend(s.rules);
        list(&all)
    };
    let (nc, np) = plan
        .iptables
        .nat
        .as_ref()
        .map_or((NAT_CHAIN, NAT_PARENT), |c| {
            (c.chain.as_str(), c.parent.as_str())
        });
    let f = &plan.iptables.filter;
    Ok(serde_json::json!({
        "nat": pick(&nat_lines, nc, np),
        "filter": pick(&filter_lines, &f.chain, &f.parent),
    }))
}
