//! labctl-agent: converges one Linux node to flannel's VXLAN data plane.
fn main() {}
