//! `route get ADDR...`: the routing table entry each address matches, as
//! the kernel answers `ip route get fibmatch`, in the `ip route` form
//! `show` uses; `labctl explain` names the route of each route lookup.

use std::net::Ipv4Addr;

use labctl_nodeplan::report::{RouteGetReport, RouteLookup};
use labctl_nodeplan::NodePlan;

use crate::decode::route_get;
use crate::dump::DumpSocket;
use crate::error::{AgentError, Result};
use crate::observe::{route_text, Kernel};
use crate::report::header;

/// Looks every address up in this network namespace's routing tables.
pub fn run(plan: &NodePlan, targets: &[Ipv4Addr]) -> Result<RouteGetReport> {
    let failed = |e: crate::netlink::NlError| AgentError::Failed(format!("route get: {e}"));
    let k = Kernel::read_links().map_err(failed)?;
    let mut socket = DumpSocket::open().map_err(failed)?;
    let lookups = targets
        .iter()
        .map(|&dst| match route_get(&mut socket, dst) {
            Ok(Some(r)) => RouteLookup {
                dst,
                route: Some(route_text(&r, &k.link_name(r.oif.unwrap_or(0)))),
                error: None,
            },
            Ok(None) => RouteLookup {
                dst,
                route: None,
                error: Some("the kernel answered without a route".into()),
            },
            Err(e) => RouteLookup {
                dst,
                route: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    let (report_version, command) = header::<RouteGetReport>();
    Ok(RouteGetReport {
        report_version,
        command,
        node: plan.node.clone(),
        lookups,
    })
}
