//! What labctl shows while it works, below everything that reports: the
//! per-node ✓/✗ step lines and spinners ([`progress`]) and Ctrl-C, which
//! those steps check between operations ([`interrupt`]); the wall time of
//! each phase of `up` ([`phases`]).

pub mod interrupt;
pub mod phases;
pub mod progress;
