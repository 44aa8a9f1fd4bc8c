//! `labctl-agent links NS...`: the links of each named network namespace
//! (a node's pods: name, MTU, up, IPv4 addresses) as one
//! `labctl_nodeplan::report::LinksReport`. verify asks it for the pods'
//! addresses and eth0 MTUs. It only enters each network namespace: `ip -n
//! NS` or `ip netns exec` also unshare a mount namespace (a copy of every
//! mount), which on a large netns lab is most of their cost.

use labctl_nodeplan::report::{LinkFacts, LinksReport, NamespaceLinks, REPORT_VERSION};

use crate::decode;
use crate::dump::DumpSocket;
use crate::error::{AgentError, Result};

/// Refuses a name that is not a plain entry of /run/netns (exit 2, before
/// any is read).
pub fn validate(names: &[&str]) -> Result<()> {
    for name in names {
        if !crate::netns::is_plain_name(name) {
            return Err(AgentError::Input(format!(
                "namespace {name:?} is not a plain name under /run/netns"
            )));
        }
    }
    Ok(())
}

/// Reads every namespace of `names`; one entry each, in order.
pub fn run(names: &[&str]) -> LinksReport {
    let found = crate::netns::each_entered(names, |name| name, |_| read());
    LinksReport {
        report_version: REPORT_VERSION,
        command: "links".into(),
        node: crate::report::hostname(),
        namespaces: names
            .iter()
            .zip(found)
            .map(|(name, links)| {
                let (links, error) = match links {
                    Ok(links) => (links, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                NamespaceLinks {
                    netns: name.to_string(),
                    links,
                    error,
                }
            })
            .collect(),
    }
}

/// The links of the namespace this thread is in.
fn read() -> std::result::Result<Vec<LinkFacts>, String> {
    let read = |what: &str, e: crate::netlink::NlError| format!("reading the {what}: {e}");
    let mut socket = DumpSocket::open().map_err(|e| read("links", e))?;
    let links = decode::dump_links(&mut socket).map_err(|e| read("links", e))?;
    let addresses = decode::dump_addresses(&mut socket).map_err(|e| read("addresses", e))?;
    Ok(links
        .into_iter()
        .map(|l| LinkFacts {
            addresses: addresses
                .iter()
                .filter(|a| a.index == l.index)
                .map(|a| a.net)
                .collect(),
            name: l.name,
            mtu: l.mtu,
            up: l.up,
        })
        .collect())
}
