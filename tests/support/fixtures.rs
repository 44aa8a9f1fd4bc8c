//! The repository's own files as test inputs: the checkout, the lab files
//! in labs/, and the recorded command outputs in tests/fixtures/recorded.

use std::path::PathBuf;

/// The checkout (the labctl package's folder).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// labs/vagrant.yaml, parsed.
pub fn vagrant_lab() -> labctl_lab::Lab {
    let text = std::fs::read_to_string(repo().join("labs/vagrant.yaml")).unwrap();
    labctl_lab::parse("labs/vagrant.yaml", &text).unwrap()
}

/// A recorded output from tests/fixtures/recorded.
pub fn recorded(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/recorded").join(name)).unwrap()
}
