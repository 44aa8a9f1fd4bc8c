//! The lab file's JSON Schema (draft 2020-12), derived by schemars from the
//! very types [`crate::parse`] decodes into (`raw.rs`), so it names exactly
//! the keys labctl accepts and cannot drift from them. Semantic rules (one
//! control plane, addresses inside the underlay, ...) stay with `labctl
//! validate`.
//!
//! One change after deriving: every field is an `Option` (so that defaults
//! and "missing" diagnostics happen later), which schemars writes as "this
//! or null". Editors then report a mistake inside `provider:` as "matches
//! none of anyOf" on the whole block instead of at the key, and complete
//! nothing useful for null. The schema drops the null alternative: a key
//! left empty, which labctl reads as "use the default", is flagged by
//! editors (write the value or delete the key).

use serde_json::Value;

pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(crate::raw::RawLab).to_value();
    drop_null_alternatives(&mut schema);
    if let Some(top) = schema.as_object_mut() {
        top.insert("title".into(), "labctl lab file".into());
    }
    schema
}

/// `{"anyOf": [S, {"type": "null"}]}` becomes `S` (keeping any sibling
/// keys, such as the field's description), `"type": [T, "null"]` becomes
/// `"type": T`; everywhere in the document.
fn drop_null_alternatives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            let null = serde_json::json!({"type": "null"});
            if let Some(Value::Array(alternatives)) = map.get("anyOf") {
                if alternatives.len() == 2 && alternatives[1] == null {
                    if let Some(Value::Object(inner)) = alternatives.first().cloned() {
                        map.remove("anyOf");
                        for (k, v) in inner {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null_alternatives);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_alternatives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_alternatives_go_and_descriptions_stay() {
        let mut v = serde_json::json!({
            "properties": {
                "a": {"description": "A", "anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]},
                "b": {"type": ["integer", "null"], "minimum": 0},
                "c": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            }
        });
        drop_null_alternatives(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "properties": {
                    "a": {"description": "A", "$ref": "#/$defs/A"},
                    "b": {"type": "integer", "minimum": 0},
                    "c": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                }
            })
        );
    }

    #[test]
    fn the_schema_has_no_null_left() {
        let text = json_schema().to_string();
        assert!(!text.contains("\"null\""), "{text}");
        assert!(text.contains("\"additionalProperties\":false"), "{text}");
    }
}
