//! `verify.egressTarget`: decoded strictly, validated against the lab's
//! networks and nodes, with file:line:column and the field path.

use labctl_lab::{parse, Diagnostic, LabError};

/// An ssh lab on 192.168.60.0/24 (pods 10.244.0.0/16, services
/// 10.96.0.0/12) whose `verify:` block is `verify`.
fn ssh_lab(provider: &str, verify: &str) -> String {
    let ssh = if provider == "ssh" {
        ", ssh: {host: 192.168.60.10, user: root, key: /k}"
    } else {
        ""
    };
    format!(
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: eg\nprovider:\n  type: {provider}\n\
         kubernetes:\n  enabled: false\nnetwork:\n  underlay: 192.168.60.0/24\nnodes:\n\
         - {{name: master, role: control-plane, ip: 192.168.60.10{ssh}}}\n\
         verify:\n{verify}"
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse("lab.yaml", text) {
        Ok(lab) => panic!("should be refused: {lab:?}"),
        Err(LabError { diagnostics }) => diagnostics.iter().map(Diagnostic::to_string).collect(),
    }
}

#[test]
fn a_target_outside_the_lab_is_kept() {
    let lab = parse(
        "lab.yaml",
        &ssh_lab("ssh", "  egressTarget: 192.168.60.200\n"),
    )
    .unwrap();
    assert_eq!(
        lab.verify.egress_target,
        Some("192.168.60.200".parse().unwrap())
    );
    assert!(lab.warnings.is_empty(), "{:?}", lab.warnings);
    let json = serde_json::to_value(&lab).unwrap();
    assert_eq!(json["verify"]["egressTarget"], "192.168.60.200");
    let lab = parse(
        "lab.yaml",
        &ssh_lab("vagrant", "  egressTarget: ' 198.18.0.1 '\n"),
    )
    .unwrap();
    assert_eq!(
        lab.verify.egress_target,
        Some("198.18.0.1".parse().unwrap())
    );
}

#[test]
fn without_a_target_there_is_none() {
    let lab = parse("lab.yaml", &ssh_lab("ssh", "  image: busybox:1.28\n")).unwrap();
    assert_eq!(lab.verify.egress_target, None);
    let json = serde_json::to_value(&lab).unwrap();
    assert_eq!(json["verify"], serde_json::json!({"image": "busybox:1.28"}));
}

#[test]
fn bad_targets_are_refused_with_position_and_reason() {
    let cases = [
        ("nonsense", "lab.yaml:13:17: error: verify.egressTarget: `nonsense` is not an IPv4 address (hint: write one IPv4 address outside the lab, e.g. 198.18.0.1)"),
        ("198.18.0.0/24", "lab.yaml:13:17: error: verify.egressTarget: `198.18.0.0/24` is not an IPv4 address (hint: write one address without a prefix length, e.g. 198.18.0.1)"),
        ("10.244.1.5", "lab.yaml:13:17: error: verify.egressTarget: 10.244.1.5 is inside the pod network 10.244.0.0/16: pinging it never leaves the cluster, so it proves nothing about MASQUERADE (hint: pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router)"),
        ("10.96.0.10", "lab.yaml:13:17: error: verify.egressTarget: 10.96.0.10 is inside the service network 10.96.0.0/12: pinging it never leaves the cluster, so it proves nothing about MASQUERADE (hint: pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router)"),
        ("192.168.60.10", "lab.yaml:13:17: error: verify.egressTarget: 192.168.60.10 is node master's own address: the egress check needs a far end outside the cluster (hint: pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router)"),
        ("127.0.0.1", "lab.yaml:13:17: error: verify.egressTarget: 127.0.0.1 is not a unicast address another machine can own (hint: pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router)"),
        ("224.0.0.1", "lab.yaml:13:17: error: verify.egressTarget: 224.0.0.1 is not a unicast address another machine can own (hint: pick an address outside the lab that answers ping, e.g. a host on the underlay that is not a node, or a router)"),
    ];
    for (value, expected) in cases {
        let text = ssh_lab("ssh", &format!("  egressTarget: {value}\n"));
        assert_eq!(errors(&text), [expected], "{value}");
    }
}

#[test]
fn a_misspelled_or_mistyped_field_is_a_decoding_error() {
    let got = errors(&ssh_lab("ssh", "  egresTarget: 198.18.0.1\n"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("lab.yaml:13:3: error: verify.egresTarget: unknown key")
            && got[0].contains("egressTarget"),
        "{got:?}"
    );
    let got = errors(&ssh_lab("ssh", "  egressTarget: [198.18.0.1]\n"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("lab.yaml:13:17: error: verify.egressTarget:"),
        "{got:?}"
    );
}

#[test]
fn netns_labs_warn_that_the_target_is_not_used() {
    let lab = parse(
        "lab.yaml",
        &ssh_lab("netns", "  egressTarget: 198.18.0.1\n"),
    )
    .unwrap();
    assert_eq!(lab.verify.egress_target, None);
    let warnings: Vec<String> = lab.warnings.iter().map(Diagnostic::to_string).collect();
    assert_eq!(
        warnings,
        ["lab.yaml:13:17: warning: verify.egressTarget: netns labs do not use egressTarget: their egress check pings the lab's own outside namespace (198.18.0.1); it is ignored here (hint: remove it; it is for vagrant and ssh labs)"]
    );
}
