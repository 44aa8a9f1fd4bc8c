//! The pure network plan: one `NodePlan` per node, from a validated lab.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use labctl_nodeplan::NodePlan;

use crate::model::Lab;

/// One plan per node, in the lab file's node order. Node i gets the i-th
/// subnet of the pod network. Same lab, same plans, byte for byte.
pub fn plan(lab: &Lab) -> Vec<NodePlan> {
    let _ = lab;
    todo!("implemented by the lab crate work")
}

/// Like [`plan`], but with each node's pod subnet given (kubeadm labs: the
/// podCIDR the cluster assigned, read back from the API).
pub fn plan_with_subnets(lab: &Lab, subnets: &BTreeMap<String, Ipv4Net>) -> Vec<NodePlan> {
    let _ = (lab, subnets);
    todo!("implemented by the lab crate work")
}
