//! Host snapshots: what a netns lab could change on this host, taken before
//! a test and again after `destroy`, which must find them equal. Each part
//! is restricted to what the lab could create (other tests, and other labs,
//! may change the rest of the host meanwhile): its namespaces, its host
//! links with their addresses and routes (and any in the lab's networks),
//! the whole iptables ruleset, processes naming the lab, mounts naming it,
//! /etc/netns/<lab>*, the files under /run a netns lab could leave there,
//! and whether the lab's state folder exists.
//!
//! Not compared: the host folders netns labs share (/run/flannel, /run/sshd,
//! ...), which exist while any lab on the host is up.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ipnet::Ipv4Net;

use super::netns::{host, iptables_rules};

/// What a snapshot looks at.
pub struct Scope<'a> {
    pub lab: &'a str,
    /// True for a host link the lab could create.
    pub link: &'a dyn Fn(&str) -> bool,
    /// The lab's networks: host addresses and routes in them count too.
    pub nets: Vec<Ipv4Net>,
}

/// What destroy must restore.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub addresses: Vec<String>,
    pub routes: Vec<String>,
    pub iptables: Vec<String>,
    pub processes: Vec<String>,
    pub mounts: Vec<String>,
    pub etc_netns: Vec<String>,
    pub run_files: Vec<String>,
    pub state_folder: Vec<String>,
}

/// Host folders no lab may write into on the host itself (each node has
/// its own, bound over them): anything found below them leaked.
const NODE_ONLY_FOLDERS: &[&str] = &["/run/flannel/", "/run/labctl-agent/"];

impl Snapshot {
    /// A snapshot for lab `lab`, counting every `lc*` host link (any netns
    /// lab's) and no networks.
    pub fn take(lab: &str) -> Snapshot {
        Snapshot::scoped(&Scope {
            lab,
            link: &|n| n.starts_with("lc"),
            nets: Vec::new(),
        })
    }

    pub fn scoped(scope: &Scope) -> Snapshot {
        let lab = scope.lab;
        let netns = host("ip", &["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(lab))
            .map(str::to_string)
            .collect();
        let links = host("ip", &["-o", "link"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| (scope.link)(n))
            .collect();
        let processes = host("ps", &["-eo", "pid,args"])
            .lines()
            .filter(|l| l.contains(lab))
            .map(str::to_string)
            .collect();
        // The lab's folder, and what a removal of it left (`.<lab>.removing`).
        let mut state_folder = Vec::new();
        if let Ok(root) = labctl::state::labs_root() {
            walk(&root, &mut state_folder, &|_| true);
            state_folder.retain(|p| p.contains(lab));
            state_folder.sort();
        }
        Snapshot {
            netns,
            links,
            addresses: addresses(scope),
            routes: routes(scope),
            iptables: iptables_rules(&host("iptables-save", &[])),
            processes,
            mounts: mounts(lab),
            etc_netns: etc_netns(lab),
            run_files: run_files(lab),
            state_folder,
        }
    }

    /// Each part that differs, as `-` (only before) and `+` (only now)
    /// lines; empty when equal.
    pub fn diff(&self, now: &Snapshot) -> String {
        let mut out = String::new();
        let parts: [(&str, &Vec<String>, &Vec<String>); 10] = [
            ("namespaces", &self.netns, &now.netns),
            ("links", &self.links, &now.links),
            ("addresses", &self.addresses, &now.addresses),
            ("routes", &self.routes, &now.routes),
            ("iptables", &self.iptables, &now.iptables),
            ("processes", &self.processes, &now.processes),
            ("mounts", &self.mounts, &now.mounts),
            ("/etc/netns", &self.etc_netns, &now.etc_netns),
            ("files under /run", &self.run_files, &now.run_files),
            ("state folder", &self.state_folder, &now.state_folder),
        ];
        for (what, before, after) in parts {
            if before == after {
                continue;
            }
            out.push_str(&format!("{what}:\n"));
            let (b, a): (BTreeSet<_>, BTreeSet<_>) =
                (before.iter().collect(), after.iter().collect());
            for gone in b.difference(&a) {
                out.push_str(&format!("  - {gone}\n"));
            }
            for new in a.difference(&b) {
                out.push_str(&format!("  + {new}\n"));
            }
            if a == b {
                out.push_str("  (same lines, another order)\n");
            }
        }
        out
    }
}

/// Asserts two snapshots are equal, showing only what differs.
#[track_caller]
pub fn assert_same_host(before: &Snapshot, now: &Snapshot, when: &str) {
    let diff = before.diff(now);
    assert!(
        diff.is_empty(),
        "host differs {when} (- before, + now):\n{diff}"
    );
    assert_eq!(before, now);
}

fn in_nets(scope: &Scope, word: &str) -> bool {
    let net = word
        .parse::<Ipv4Net>()
        .ok()
        .or_else(|| word.parse::<Ipv4Addr>().ok().map(Ipv4Net::from));
    net.is_some_and(|n| {
        scope
            .nets
            .iter()
            .any(|lab| lab.contains(&n) || n.contains(lab))
    })
}

/// `DEV FAMILY ADDRESS` of host addresses on the lab's links or in its
/// networks.
fn addresses(scope: &Scope) -> Vec<String> {
    host("ip", &["-o", "addr", "show"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dev = f.get(1)?.split('@').next()?;
            let (family, addr) = (*f.get(2)?, *f.get(3)?);
            ((scope.link)(dev) || in_nets(scope, addr)).then(|| format!("{dev} {family} {addr}"))
        })
        .collect()
}

/// Host routes (every table, IPv4 and IPv6) through the lab's links or
/// to, from or via its networks.
fn routes(scope: &Scope) -> Vec<String> {
    let mut routes = Vec::new();
    for family in ["-4", "-6"] {
        for line in host("ip", &[family, "-o", "route", "show", "table", "all"]).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let on_link = words
                .windows(2)
                .any(|w| w[0] == "dev" && (scope.link)(w[1]));
            if on_link || words.iter().any(|w| in_nets(scope, w)) {
                routes.push(format!("{family} {line}"));
            }
        }
    }
    routes
}

/// `MOUNT-POINT FSTYPE SOURCE` of this mount namespace's mounts that name
/// the lab (its /run/netns files, anything under its state folder).
fn mounts(lab: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines()
        .filter(|l| l.contains(lab))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|w| *w == "-")?;
            Some(format!(
                "{} {} {}",
                f.get(4)?,
                f.get(dash + 1)?,
                f.get(dash + 2)?
            ))
        })
        .collect()
}

/// Every path under `root` (not following links), not descending into
/// folders `skip` says.
fn walk(root: &Path, out: &mut Vec<String>, skip: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let shown = path.display().to_string();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !skip(&shown) {
            walk(&path, out, skip);
        }
        out.push(shown);
    }
}

/// /etc/netns/<lab>* and everything in them.
fn etc_netns(lab: &str) -> Vec<String> {
    let mut all = Vec::new();
    walk(Path::new("/etc/netns"), &mut all, &|_| false);
    let mut own: Vec<String> = all
        .into_iter()
        .filter(|p| p.trim_start_matches("/etc/netns/").starts_with(lab))
        .collect();
    own.sort();
    own
}

/// Paths under /run naming the lab (/run/netns/<lab>-*, ...) and anything
/// in the folders only nodes may write to.
fn run_files(lab: &str) -> Vec<String> {
    let mut all = Vec::new();
    walk(Path::new("/run"), &mut all, &|_| false);
    let mut found: Vec<String> = all
        .into_iter()
        .filter(|p| p.contains(lab) || NODE_ONLY_FOLDERS.iter().any(|f| p.starts_with(f)))
        .collect();
    found.sort();
    found
}

/// Inodes of the lab's network namespaces now (`/run/netns/<lab>*`).
pub fn lab_netns_inodes(lab: &str) -> BTreeSet<u64> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(lab))
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| m.ino())
        .collect()
}

/// `PID COMMAND` of every process in one of the network namespaces
/// `inodes` (a namespace lives on while a process is in it, even once its
/// /run/netns file is gone).
pub fn processes_in(inodes: &BTreeSet<u64>) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if inodes.contains(&meta.ino()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            found.push(format!("{pid} {}", cmd.trim()));
        }
    }
    found
}
