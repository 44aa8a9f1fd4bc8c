//! labctl: build, verify and tear down Kubernetes pod-network labs.
fn main() {}
