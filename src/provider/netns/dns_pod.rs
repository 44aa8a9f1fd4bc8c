//! The cluster DNS server of a netns lab (see [`crate::provider::dns`]):
//! dnsmasq started from this host inside the DNS pod's namespace, as a
//! tracked process.

use std::fs;

use anyhow::{Context, Result};

use super::launch::{self, Placement};
use crate::provider::dns_records::{config, DNSMASQ};
use crate::provider::DnsRecords;
use crate::state::{write_mode, LabDir, TrackedProcess};

/// Starts dnsmasq with `dns`'s records unless one with exactly this
/// configuration is already running. Returns the process to record and
/// whether anything changed.
pub fn ensure(
    dir: &LabDir,
    running: Option<&TrackedProcess>,
    dns: &DnsRecords,
) -> Result<(TrackedProcess, bool)> {
    let path = dir.path.join("dnsmasq.conf");
    let wanted = config(dns, "-");
    let same = fs::read_to_string(&path).is_ok_and(|old| old == wanted);
    let conf = path.to_string_lossy().into_owned();
    if let Some(p) = running {
        if same && p.is_running() {
            return Ok((p.clone(), false));
        }
        super::procs::stop_tracked(p).context("stopping the old DNS server")?;
    }
    // Started by an `up` killed before it recorded it: kept when its
    // configuration is the one wanted, stopped otherwise (a second could
    // not bind the DNS address, and this one would answer from old records).
    let mut strays = super::procs::unrecorded("dnsmasq", &conf).into_iter();
    let keep = if same { strays.next() } else { None };
    for p in strays {
        super::procs::stop_tracked(&p).context("stopping an unrecorded DNS server")?;
    }
    if let Some(p) = keep {
        return Ok((p, true));
    }
    write_mode(&path, wanted.as_bytes(), 0o644)?;
    let argv = vec![
        DNSMASQ.to_string(),
        "--keep-in-foreground".into(),
        format!("--conf-file={conf}"),
    ];
    fs::create_dir_all(dir.logs())?;
    let placement = Placement {
        netns: dns.server_netns.clone(),
        node: None,
        hostname: None,
    };
    let pid = launch::spawn(&argv, &placement, &dir.logs().join("dnsmasq.log"))
        .context("starting the cluster DNS server (dnsmasq)")?;
    Ok((
        TrackedProcess {
            pid,
            cmdline_contains: conf,
        },
        true,
    ))
}
