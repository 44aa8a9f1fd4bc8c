//! labctl's lab file: strict decoding of `labctl/v1alpha1` `Lab` documents,
//! defaults, semantic validation into one list of diagnostics, and the pure
//! per-node network plan.
//!
//! Nothing here does I/O: callers read the file and pass its text, so the
//! whole crate is unit-testable and `labctl validate` touches nothing.

pub mod diag;
pub mod flannel;
pub mod host_key;
pub mod model;
pub mod neighbour_limits;
pub mod plan;
mod positions;
mod raw;
mod schema;
pub mod services;
mod strict;
mod suggest;
mod validate;

pub use diag::{Diagnostic, LabError, Severity};
pub use host_key::HostKey;
pub use model::*;
pub use plan::{plan, plan_with_subnets, vtep_mac, STATE_DIR};
pub use validate::network::{MIN_UNDERLAY_MTU, VXLAN_OVERHEAD};
pub use validate::{
    is_lab_name, is_node_name, API_VERSION, LAB_NAME_RULE, MAX_LAB_NAME, MAX_NODE_NAME,
};

/// Decodes, defaults and validates a lab file.
///
/// `source_name` is what diagnostics call the file (usually its path);
/// `text` is its contents. On success the lab is complete (every default
/// filled, every node's IP assigned) and `Lab::warnings` holds non-fatal
/// findings. On failure every problem found is in the error, each with its
/// field path and, where known, line and column.
pub fn parse(source_name: &str, text: &str) -> Result<Lab, LabError> {
    model::decode(source_name, text)
}

pub use schema::json_schema;
