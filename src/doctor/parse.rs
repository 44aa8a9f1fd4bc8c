//! Reading the host's answers (no I/O): /proc/meminfo, `ip -j route`,
//! `iptables -V`, `iptables-save`, /etc/vbox/networks.conf, Vagrant's
//! version and plugin list.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

/// One IPv4 route of the host, as `ip route` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRoute {
    pub dst: Ipv4Net,
    pub dev: String,
    /// `192.0.2.0/24 dev eth0 table main`, for messages.
    pub shown: String,
}

/// The routes of `ip -4 -j route show table all`, except default routes
/// and broadcast/multicast entries.
pub fn routes(json: &str) -> Option<Vec<HostRoute>> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for r in routes {
        let text = |key: &str| {
            r.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let kind = r.get("type").and_then(|v| v.as_str()).unwrap_or("unicast");
        let (dst, dev, table) = (text("dst"), text("dev"), text("table"));
        if matches!(kind, "broadcast" | "multicast") || dst.is_empty() || dst == "default" {
            continue;
        }
        let Some(net) = dst
            .parse::<Ipv4Net>()
            .ok()
            .or_else(|| dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
        else {
            continue;
        };
        let mut shown = if kind == "unicast" {
            dst.clone()
        } else {
            format!("{kind} {dst}")
        };
        if !dev.is_empty() {
            shown.push_str(&format!(" dev {dev}"));
        }
        if !table.is_empty() && table != "main" {
            shown.push_str(&format!(" table {table}"));
        }
        out.push(HostRoute {
            dst: net,
            dev,
            shown,
        });
    }
    Some(out)
}

/// Whether two networks share any address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A /proc/meminfo field in MiB.
pub fn meminfo_mib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024)
    })
}

/// The backend in `iptables -V` (`iptables v1.8.9 (nf_tables)`).
pub fn iptables_backend(version: &str) -> Option<&'static str> {
    if version.contains("(nf_tables)") {
        Some("nf_tables")
    } else if version.contains("(legacy)") {
        Some("legacy")
    } else {
        None
    }
}

/// How many rules an `iptables-save` dump holds.
pub fn rule_count(save: &str) -> usize {
    save.lines().filter(|l| l.starts_with("-A ")).count()
}

/// The IPv4 ranges /etc/vbox/networks.conf allows (`* 10.0.0.0/8 ...`
/// lines); None when the file lists none.
pub fn vbox_ranges(conf: &str) -> Vec<Ipv4Net> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix('*'))
        .flat_map(|rest| rest.split_whitespace())
        .filter_map(|word| word.parse::<Ipv4Net>().ok())
        .collect()
}

/// `2.4.9` from `Vagrant 2.4.9`.
pub fn vagrant_version(text: &str) -> Option<&str> {
    text.trim().strip_prefix("Vagrant ").map(str::trim)
}

/// `(major, minor, patch)` of a version like `7.0.20r163906`.
pub fn version_triple(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    Some((next()?, next()?, next().unwrap_or(0)))
}
