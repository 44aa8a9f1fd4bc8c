//! `nodes[].ssh.hostKey`: a `SHA256:` fingerprint or a public key line,
//! decoded strictly and checked with the field path and line on error.

use labctl_lab::{parse, Diagnostic, HostKey, LabError};

/// A key pair made with `ssh-keygen -t ed25519`: its public line and the
/// fingerprint `ssh-keygen -lf` printed for it.
const PUBLIC_LINE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJPgenuWz01PTj4mYCyJi4LIGJh7h5klsogZsvhrGsd8 host";
const FINGERPRINT: &str = "SHA256:b+NdmL3aurj8DBSX5dnKxWMjxtuKDoDQO4vqp45AyqE";

/// An ssh lab with one node whose ssh block ends with `extra`
/// (the block is on line 9).
fn lab(provider: &str, extra: &str) -> String {
    format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: hk\nprovider:\n  type: {provider}\n\
         kubernetes:\n  enabled: false\nnodes:\n\
         - {{name: master, role: control-plane, ssh: {{host: 10.0.0.5, user: root, key: /k{extra}}}}}\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse("lab.yaml", text) {
        Ok(lab) => panic!("should be refused: {lab:?}"),
        Err(LabError { diagnostics }) => diagnostics.iter().map(Diagnostic::to_string).collect(),
    }
}

#[test]
fn a_fingerprint_is_kept_as_written() {
    let lab = parse(
        "lab.yaml",
        &lab("ssh", &format!(", hostKey: '{FINGERPRINT}'")),
    )
    .unwrap();
    let ssh = lab.nodes[0].ssh.as_ref().unwrap();
    assert_eq!(ssh.host_key, Some(HostKey::Fingerprint(FINGERPRINT.into())));
    let json = serde_json::to_value(&lab).unwrap();
    assert_eq!(json["nodes"][0]["ssh"]["hostKey"], FINGERPRINT);
}

#[test]
fn a_public_key_line_is_decoded() {
    let lab = parse(
        "lab.yaml",
        &lab("ssh", &format!(", hostKey: '{PUBLIC_LINE}'")),
    )
    .unwrap();
    let Some(HostKey::PublicKey { key_type, blob }) = &lab.nodes[0].ssh.as_ref().unwrap().host_key
    else {
        panic!("not a public key: {lab:?}");
    };
    assert_eq!(key_type, "ssh-ed25519");
    assert_eq!(blob.len(), 51, "4 + 11 (type) + 4 + 32 (key)");
    // The comment is not part of the key.
    let json = serde_json::to_value(&lab).unwrap();
    assert_eq!(
        json["nodes"][0]["ssh"]["hostKey"],
        PUBLIC_LINE.trim_end_matches(" host")
    );
}

#[test]
fn without_a_host_key_there_is_none() {
    let lab = parse("lab.yaml", &lab("ssh", "")).unwrap();
    assert_eq!(lab.nodes[0].ssh.as_ref().unwrap().host_key, None);
    let json = serde_json::to_value(&lab).unwrap();
    assert!(json["nodes"][0]["ssh"].get("hostKey").is_none(), "{json}");
}

#[test]
fn malformed_host_keys_are_refused_with_path_and_line() {
    let cases = [
        (
            "SHA256:b+NdmL3aurj8DBSX5dnKxWMjxtuKDoDQO4vqp45Ay",
            "is not a SHA256 fingerprint",
        ),
        ("SHA256:not base64 at all!", "is not a SHA256 fingerprint"),
        (
            "MD5:b3:74:97:36:90:17:67:65:9d:80:04:18:14:1e:8f:84",
            "MD5 fingerprint",
        ),
        (
            "b3:74:97:36:90:17:67:65:9d:80:04:18:14:1e:8f:84",
            "MD5 fingerprint",
        ),
        (
            "ssh-ed25519",
            "neither a `SHA256:` fingerprint nor a public key line",
        ),
        (
            "ssh-dss AAAAB3NzaC1kc3M=",
            "`ssh-dss` is not an SSH host key type",
        ),
        ("ssh-ed25519 AAAA$$$", "is not valid base64"),
        // An RSA key's data under the ed25519 type.
        (
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB",
            "does not hold a `ssh-ed25519` key",
        ),
        ("", "neither a `SHA256:` fingerprint"),
    ];
    for (value, problem) in cases {
        let errs = errors(&lab("ssh", &format!(", hostKey: '{value}'")));
        assert_eq!(errs.len(), 1, "{value}: {errs:?}");
        assert!(
            errs[0].starts_with("lab.yaml:9:") && errs[0].contains("nodes[0].ssh.hostKey:"),
            "{value}: {errs:?}"
        );
        assert!(errs[0].contains(problem), "{value}: {errs:?}");
        assert!(errs[0].contains("ssh-keygen -l"), "hint: {errs:?}");
    }
}

#[test]
fn a_misspelled_key_is_refused_with_a_suggestion() {
    let errs = errors(&lab("ssh", &format!(", hostkey: '{FINGERPRINT}'")));
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown key `hostkey`") && e.contains("hostKey")),
        "{errs:?}"
    );
}

#[test]
fn host_key_belongs_to_ssh_labs_only() {
    let errs = errors(&lab("netns", &format!(", hostKey: '{FINGERPRINT}'")));
    assert!(
        errs.iter()
            .any(|e| e.contains("nodes[0].ssh") && e.contains("only for provider type ssh")),
        "{errs:?}"
    );
}
