//! The lab file's JSON Schema: `schema/lab.schema.json` is exactly what
//! `labctl schema` prints (UPDATE_GOLDEN=1 rewrites it, never under CI),
//! every file in labs/ names it on its first line and validates against it
//! with a real JSON Schema validator, and a misspelled key fails it.

mod common;

use common::*;

const SCHEMA_LINE: &str = "# yaml-language-server: $schema=../schema/lab.schema.json";

fn printed_schema() -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(dir.path(), &["schema"]);
    assert_eq!(run.code, 0, "{run}");
    run.stdout
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&printed_schema()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

/// The YAML lab as the JSON value an editor's schema check sees.
fn as_json(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    validator
        .iter_errors(&as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn committed_schema_is_what_labctl_schema_prints() {
    let path = repo_root().join("schema/lab.schema.json");
    let printed = printed_schema();
    if labctl_testenv::update_golden() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &printed).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        committed == printed,
        "{} is stale: run `UPDATE_GOLDEN=1 cargo test --test schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_is_valid_draft_2020_12_and_closed() {
    let schema: serde_json::Value = serde_json::from_str(&printed_schema()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("not a valid schema: {e}"));
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys refused"
    );
    let props = schema["properties"].as_object().unwrap();
    for key in [
        "apiVersion",
        "kind",
        "name",
        "provider",
        "network",
        "kubernetes",
        "nodes",
        "verify",
    ] {
        assert!(props.contains_key(key), "{key} missing");
    }
    assert!(
        props["name"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("20 characters")),
        "field docs reach editors: {}",
        props["name"]
    );
}

#[test]
fn every_lab_names_the_schema_and_validates_against_it() {
    let validator = validator();
    let labs = all_labs();
    assert!(labs.len() >= 5, "{labs:?}");
    for lab in labs {
        let text = std::fs::read_to_string(&lab).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(SCHEMA_LINE),
            "first line of {}",
            lab.display()
        );
        let found = errors(&validator, &text);
        assert!(found.is_empty(), "{}: {found:#?}", lab.display());
    }
}

#[test]
fn misspelled_keys_and_bad_values_fail_the_schema() {
    let validator = validator();
    let good = std::fs::read_to_string(lab_path("vagrant.yaml")).unwrap();
    for (from, to, at) in [
        ("kind: Lab\n", "kind: Lab\nnmae: x\n", ""),
        (
            "  vagrantProvider: virtualbox",
            "  vagrantprovider: virtualbox",
            "/provider",
        ),
        ("    cpus: 2", "    cpu: 2", "/nodes/0"),
        (
            "  vagrantProvider: virtualbox",
            "  vagrantProvider: kvm",
            "/provider/vagrantProvider",
        ),
        (
            "    role: control-plane",
            "    role: master",
            "/nodes/0/role",
        ),
        ("    memory: 2048", "    memory: lots", "/nodes/0/memory"),
    ] {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        let found = errors(&validator, &bad);
        assert!(
            found.iter().any(|e| e.ends_with(&format!(" at {at}"))),
            "{to:?} should fail at {at:?}: {found:#?}"
        );
    }
}

#[test]
fn labs_written_by_init_validate_against_the_schema() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    for provider in ["netns", "vagrant", "ssh"] {
        let run = run_in(dir.path(), &["init", "--provider", provider, "-o", "-"]);
        assert_eq!(run.code, 0, "{run}");
        let found = errors(&validator, &run.stdout);
        assert!(found.is_empty(), "{provider}: {found:#?}");
    }
}
