//! The drill table: every drill is complete and its templates fill from a
//! real plan (the planner's, for a three-node lab).

use std::collections::BTreeSet;

use super::table::{self, DRILLS};
use super::values::{self, fill, fill_argv};

fn plan() -> labctl_nodeplan::NodePlan {
    let lab = labctl_lab::parse(
        "lab.yaml",
        "apiVersion: labctl/v1alpha1\nkind: Lab\nname: d1\nnetwork:\n  underlay: 192.168.77.0/24\n  podNetwork: 10.77.0.0/16\nnodes:\n  - name: cp\n    role: control-plane\n  - name: w1\n    role: worker\n  - name: w2\n    role: worker\n",
    )
    .expect("the lab parses");
    labctl_lab::plan(&lab).remove(1)
}

#[test]
fn every_drill_has_a_symptom_a_ladder_a_cause_and_commands() {
    let mut names = BTreeSet::new();
    for d in DRILLS {
        assert!(names.insert(d.name), "{} twice", d.name);
        assert!(
            labctl_lab::is_lab_name(d.name),
            "{}: not a plain name",
            d.name
        );
        assert!(!d.title.is_empty() && !d.symptom.is_empty(), "{}", d.name);
        assert!(!d.cause.is_empty(), "{}: no cause", d.name);
        assert!(!d.fault.is_empty() && !d.fix.is_empty(), "{}", d.name);
        assert!(
            d.hints.len() >= 3,
            "{}: a ladder of {} rungs",
            d.name,
            d.hints.len()
        );
    }
    assert_eq!(DRILLS.len(), 10);
}

#[test]
fn templates_fill_from_the_plan_and_the_ladder_ends_with_the_fix() {
    let plan = plan();
    let v = values::values("d1", &plan, None).unwrap();
    assert_eq!(v["node"], "w1");
    assert_eq!(v["peer"], plan.peers[0].node);
    assert_eq!(v["pod_ns"], "d1-w1-busybox");
    for d in DRILLS {
        let symptom = fill(d.symptom, &v).unwrap();
        assert!(!symptom.contains('{'), "{}: {symptom}", d.name);
        // The symptom never gives the cause away.
        assert!(!symptom.contains(d.cause), "{}: {symptom}", d.name);
        for argv in d
            .fault
            .iter()
            .chain(d.fix)
            .chain(d.undo.iter().map(|u| &u.run))
        {
            let words = fill_argv(argv, &v).unwrap();
            assert!(
                words.iter().all(|w| !w.contains('{')),
                "{}: {words:?}",
                d.name
            );
        }
        let ladder = table::ladder(d, &v).unwrap();
        assert_eq!(ladder.len(), d.hints.len() + 1);
        let last = ladder.last().unwrap();
        for argv in d.fix {
            let words = fill_argv(argv, &v).unwrap();
            let line = format!("labctl exec w1 -- {}", table::shell_words(&words));
            assert!(last.contains(&line), "{}: {last} lacks {line}", d.name);
        }
        // Only the last rung gives the fix away.
        for rung in &ladder[..ladder.len() - 1] {
            assert!(!rung.starts_with("Fix"), "{}: {rung}", d.name);
        }
    }
}

#[test]
fn values_come_from_the_named_peer_and_unknown_names_are_refused() {
    let plan = plan();
    let v = values::values("d1", &plan, Some("w2")).unwrap();
    let w2 = plan.peers.iter().find(|p| p.node == "w2").unwrap();
    assert_eq!(v["peer_subnet"], w2.subnet.to_string());
    assert_eq!(v["peer_mac"], w2.vtep_mac.to_string());
    assert!(v["wrong_subnet_line"].starts_with("FLANNEL_SUBNET=10.77."));
    assert_ne!(v["wrong_subnet_line"], v["subnet_line"]);
    let err = values::values("d1", &plan, Some("nope")).unwrap_err();
    assert!(format!("{err}").contains("no peer nope"), "{err}");
    let err = fill("{missing}", &v).unwrap_err();
    assert!(
        format!("{err}").contains("unknown value {missing}"),
        "{err}"
    );
}

#[test]
fn a_host_gw_node_is_refused_naming_its_backend() {
    let mut plan = plan();
    plan.backend = labctl_nodeplan::Backend::HostGw;
    plan.vxlan = None;
    let err = values::values("d1", &plan, None).unwrap_err();
    let text = format!("{err}");
    assert!(
        text.contains("uses flannel's host-gw backend") && text.contains("type: vxlan"),
        "{text}"
    );
}

#[test]
fn shell_words_quote_what_a_shell_would_split() {
    let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(table::shell_words(&w(&["ip", "route"])), "ip route");
    assert_eq!(
        table::shell_words(&w(&["--comment", "flanneld masq", "s|a|b|"])),
        "--comment 'flanneld masq' 's|a|b|'"
    );
}
