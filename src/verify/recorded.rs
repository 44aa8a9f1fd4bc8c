//! Test inputs for verify's unit tests: real command outputs recorded in
//! tests/fixtures/recorded (see its README for where each came from).

/// The recorded output `name`.
pub(crate) fn recorded(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/recorded/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
