//! What labctl shows while it works, below everything that reports: the
//! per-node ✓/✗ step lines and spinners ([`progress`]) and Ctrl-C, which
//! those steps check between operations ([`interrupt`]).

pub mod interrupt;
pub mod progress;
