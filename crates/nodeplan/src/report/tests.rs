//! Reports round-trip through JSON; other versions, other commands and
//! unknown fields are refused, naming the node and the command.

use std::net::Ipv4Addr;

use super::*;

fn check_report() -> CheckReport {
    CheckReport {
        report_version: REPORT_VERSION,
        command: CheckReport::COMMAND.into(),
        node: "worker1".into(),
        in_sync: false,
        differences: vec![
            Difference::new(ObjectKind::Route, "route 10.244.2.0/24", "10.244.2.0/24")
                .peer("worker2")
                .expected(Some(
                    "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink".into(),
                )),
            Difference::new(ObjectKind::Link, "vxlan flannel.1 local", "flannel.1")
                .attribute("local")
                .expected(Some("192.168.56.11".into()))
                .actual(Some("10.0.2.15".into())),
            Difference::new(
                ObjectKind::Chain,
                "iptables -t nat FLANNEL-POSTRTG",
                "FLANNEL-POSTRTG",
            )
            .table("nat")
            .expected_lines(vec!["-A FLANNEL-POSTRTG -j RETURN".into()])
            .actual_lines(None),
        ],
    }
}

#[test]
fn a_check_report_round_trips_and_reads_as_people_expect() {
    let r = check_report();
    let json = serde_json::to_string_pretty(&r).unwrap();
    assert!(json.contains("\"reportVersion\": 1"), "{json}");
    assert!(json.contains("\"inSync\": false"), "{json}");
    assert!(json.contains("\"kind\": \"route\""), "{json}");
    assert!(json.contains("\"peer\": \"worker2\""), "{json}");
    // Absent optional fields are left out, not null.
    assert!(!json.contains("\"attribute\": null"), "{json}");
    assert_eq!(decode::<CheckReport>("worker1", &json).unwrap(), r);
    assert_eq!(
        r.differences[2].expected,
        Some(State::Lines(vec!["-A FLANNEL-POSTRTG -j RETURN".into()]))
    );
    assert_eq!(
        r.differences[1].actual.as_ref().unwrap().to_string(),
        "10.0.2.15"
    );
}

#[test]
fn every_report_round_trips() {
    let head = |c: &str| (REPORT_VERSION, c.to_string(), "n0".to_string());
    let (v, c, n) = head("apply");
    let apply = ApplyReport {
        report_version: v,
        command: c,
        node: n,
        created: 1,
        updated: 0,
        removed: 1,
        unchanged: 3,
        failed: 0,
        unchanged_by_kind: [(ObjectKind::Neighbour, 2), (ObjectKind::Link, 1)].into(),
        objects: vec![ObjectOutcome {
            kind: ObjectKind::Fdb,
            object: "fdb 0e:fa:0a:f4:00:01 dev flannel.1".into(),
            action: Action::Created,
            changes: vec![Difference::new(ObjectKind::Fdb, "fdb", "0e:fa:0a:f4:00:01")],
        }],
        errors: vec![],
    };
    let json = serde_json::to_string(&apply).unwrap();
    assert!(
        json.contains("\"unchangedByKind\":{\"link\":1,\"neighbour\":2}"),
        "{json}"
    );
    assert_eq!(decode::<ApplyReport>("n0", &json).unwrap(), apply);
    assert_eq!(apply.changes(), 2);

    let (v, c, n) = head("pod add");
    let pod = PodAddReport {
        report_version: v,
        command: c,
        node: n,
        name: "busybox".into(),
        namespace: "l-n0-busybox".into(),
        ip: Ipv4Addr::new(10, 244, 0, 2),
        mac: "0a:58:0a:f4:00:02".into(),
    };
    let json = serde_json::to_string(&pod).unwrap();
    assert_eq!(decode::<PodAddReport>("n0", &json).unwrap(), pod);

    let (v, c, n) = head("capture");
    let flow = |o: [u8; 4], packets| Flow {
        outer_src: o.into(),
        outer_dst: [192, 168, 56, 12].into(),
        inner_src: [10, 244, 1, 2].into(),
        inner_dst: [10, 244, 2, 2].into(),
        inner_protocol: 1,
        packets,
    };
    let capture = CaptureReport {
        report_version: v,
        command: c,
        node: n,
        interface: "eth1".into(),
        port: 8472,
        vni: 1,
        seconds: 4.0,
        packets: 5,
        other_vni: 0,
        flows: vec![flow([192, 168, 56, 11], 3), flow([10, 0, 2, 15], 2)],
    };
    let json = serde_json::to_string(&capture).unwrap();
    let back = decode::<CaptureReport>("n0", &json).unwrap();
    assert_eq!(back, capture);
    assert_eq!(
        back.flow_packets([10, 244, 1, 2].into(), [10, 244, 2, 2].into()),
        (5, vec![[192, 168, 56, 11].into(), [10, 0, 2, 15].into()])
    );
    assert_eq!(
        back.flow_packets([10, 244, 2, 2].into(), [10, 244, 1, 2].into())
            .0,
        0
    );

    let (v, c, n) = head("capture --icmp-to");
    let icmp = IcmpCaptureReport {
        report_version: v,
        command: c,
        node: n,
        icmp_to: [198, 18, 0, 1].into(),
        seconds: 5.0,
        packets: 2,
        departures: vec![Departure {
            interface: "eth1".into(),
            src: [192, 168, 56, 11].into(),
            packets: 2,
        }],
    };
    let json = serde_json::to_string(&icmp).unwrap();
    assert_eq!(decode::<IcmpCaptureReport>("n0", &json).unwrap(), icmp);
}

#[test]
fn another_version_is_named_with_the_node_not_misread() {
    let mut r = check_report();
    r.report_version = REPORT_VERSION + 1;
    let json = serde_json::to_string(&r).unwrap();
    let e = decode::<CheckReport>("worker1", &json).unwrap_err();
    assert_eq!(e.problem, ReportProblem::Version(REPORT_VERSION + 1));
    assert_eq!(
        e.to_string(),
        format!(
            "node worker1 runs agent report version {}, labctl expects {REPORT_VERSION}: run \
             `labctl up` to update it (`labctl-agent check`)",
            REPORT_VERSION + 1
        )
    );
    // An agent from before report versions: version 0, not a guess at its keys.
    let old = r#"{"command":"check","node":"worker1","in_sync":false,"differences":[]}"#;
    let e = decode::<CheckReport>("worker1", old).unwrap_err();
    assert_eq!(e.problem, ReportProblem::Version(0));
    assert!(e
        .to_string()
        .starts_with("node worker1 runs agent report version 0, labctl expects 1"));
    let e = decode::<CheckReport>("worker1", r#"[{"object":"route"}]"#).unwrap_err();
    assert!(matches!(e.problem, ReportProblem::Invalid(_)), "{e}");
}

#[test]
fn other_commands_unknown_fields_and_nothing_are_refused() {
    let json = serde_json::to_string(&check_report()).unwrap();
    let e = decode::<ApplyReport>("master", &json).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`labctl-agent apply` on node master printed a `check` report"
    );
    let extra = json.replacen("\"inSync\"", "\"drift\":[],\"inSync\"", 1);
    let e = decode::<CheckReport>("master", &extra).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "`labctl-agent check` on node master printed a report labctl cannot read: unknown field `drift`"
        ),
        "{e}"
    );
    let e = decode::<CheckReport>("master", " \n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`labctl-agent check` on node master printed no report"
    );
    let e = decode::<CheckReport>("master", "labctl-agent: not root").unwrap_err();
    assert!(matches!(e.problem, ReportProblem::Invalid(_)), "{e}");
}

#[test]
fn a_route_lookup_round_trips_and_names_the_matched_route() {
    let report = RouteGetReport {
        report_version: REPORT_VERSION,
        command: RouteGetReport::COMMAND.into(),
        node: "worker1".into(),
        lookups: vec![
            RouteLookup {
                dst: Ipv4Addr::new(10, 244, 2, 2),
                route: Some("10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink".into()),
                error: None,
            },
            RouteLookup {
                dst: Ipv4Addr::new(198, 18, 0, 1),
                route: None,
                error: Some("network unreachable".into()),
            },
        ],
    };
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("\"command\":\"route get\""), "{text}");
    let back = decode::<RouteGetReport>("worker1", &text).unwrap();
    assert_eq!(back, report);
    assert_eq!(
        back.route(Ipv4Addr::new(10, 244, 2, 2)),
        Some("10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink")
    );
    assert_eq!(back.route(Ipv4Addr::new(198, 18, 0, 1)), None);
    let err = decode::<ShowReport>("worker1", &text).unwrap_err();
    assert_eq!(err.problem, ReportProblem::Command("route get".into()));
}
