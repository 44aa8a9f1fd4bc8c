//! `tests/vm/daemons.sh` leaves the LIBVIRT_* iptables chains that were
//! there before it started libvirtd, and removes the ones that came after
//! (with every jump to them). Run for real in a fresh network namespace,
//! whose iptables are its own: chains that "were there" (v4 filter, v6
//! nat), the record `start` makes, chains libvirtd would add (v4 filter,
//! nat and mangle, v6 filter; one of them jumped to from a chain that was
//! there, and from a rule with a quoted comment), then what `stop` removes.
//! The namespace's whole ruleset must be as it was at the record.

mod support;

use std::path::PathBuf;
use std::process::Command;

const SCENARIO: &str = r#"set -euo pipefail
daemons=$1 dir=$2
save() { { iptables-save; ip6tables-save; } | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]//'; }

# There before: a libvirtd that ran earlier left these.
iptables -N LIBVIRT_INP
iptables -A INPUT -j LIBVIRT_INP
iptables -A LIBVIRT_INP -p udp --dport 53 -j ACCEPT
ip6tables -t nat -N LIBVIRT_PRT
ip6tables -t nat -A POSTROUTING -j LIBVIRT_PRT

"$daemons" chains-record "$dir/record"
save >"$dir/before"

# What this libvirtd adds.
iptables -N LIBVIRT_FWO
iptables -A LIBVIRT_FWO -i virbr9 -j REJECT
iptables -A FORWARD -j LIBVIRT_FWO
iptables -I INPUT 1 -m comment --comment "two words" -j LIBVIRT_FWO
iptables -A LIBVIRT_INP -j LIBVIRT_FWO
iptables -t nat -N LIBVIRT_PRT
iptables -t nat -A POSTROUTING -j LIBVIRT_PRT
iptables -t mangle -N LIBVIRT_PRT
iptables -t mangle -A POSTROUTING -j LIBVIRT_PRT
ip6tables -N LIBVIRT_INP
ip6tables -A INPUT -j LIBVIRT_INP
save >"$dir/during"

"$daemons" chains-remove-new "$dir/record"
save >"$dir/after"
# Without a record nothing is removed.
"$daemons" chains-remove-new "$dir/no-such-record"
save >"$dir/after-no-record"
"#;

/// iptables-save output without empty tables (built-in chains with policy
/// ACCEPT and nothing else): iptables-nft makes a table on first use and
/// never removes it, so an empty one and none are the same ruleset.
fn without_empty_tables(save: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    for line in save.lines() {
        block.push(line);
        if line == "COMMIT" {
            let empty = block[1..block.len() - 1]
                .iter()
                .all(|l| l.starts_with(':') && l.contains(" ACCEPT"));
            if !empty {
                for l in &block {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            block.clear();
        }
    }
    out
}

fn tool_missing(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
}

#[test]
fn daemons_stop_removes_only_the_libvirt_chains_that_came_after_start() {
    let test = "daemons_stop_removes_only_the_libvirt_chains_that_came_after_start";
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        support::skip(test, "needs root (a network namespace and its iptables)");
        return;
    }
    for tool in [
        "unshare",
        "iptables",
        "ip6tables",
        "iptables-save",
        "ip6tables-save",
    ] {
        if tool_missing(tool) {
            support::skip(test, &format!("{tool} is missing"));
            return;
        }
    }
    let daemons = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vm/daemons.sh");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("scenario.sh");
    std::fs::write(&script, SCENARIO).unwrap();

    let out = Command::new("unshare")
        .arg("--net")
        .arg("bash")
        .arg(&script)
        .arg(&daemons)
        .arg(dir.path())
        .output()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "the scenario failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let record = read("record");
    assert_eq!(
        record, "iptables filter LIBVIRT_INP\nip6tables nat LIBVIRT_PRT\n",
        "the record holds the chains there at start, one per family and table"
    );
    let (before, during, after) = (
        without_empty_tables(&read("before")),
        read("during"),
        without_empty_tables(&read("after")),
    );
    assert!(
        before.contains("-A INPUT -j LIBVIRT_INP")
            && before.contains("-A POSTROUTING -j LIBVIRT_PRT"),
        "the chains there before are missing from the snapshot:\n{before}"
    );
    assert!(
        during.contains("LIBVIRT_FWO") && during.contains("two words"),
        "the added chains did not take:\n{during}"
    );
    assert_eq!(
        after, before,
        "after chains-remove-new the ruleset differs from the one at the record"
    );
    assert_eq!(
        without_empty_tables(&read("after-no-record")),
        after,
        "without a record chains-remove-new must remove nothing"
    );
}
