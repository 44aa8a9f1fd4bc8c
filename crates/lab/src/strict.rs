//! Strict decoding of the lab file into the raw schema, and translation of
//! serde-saphyr's first decoding error into a diagnostic with the field
//! path, the position and, for a misspelled key or value, the nearest
//! known one.

use serde_saphyr::{Error as YamlError, Options};

use crate::positions::{Pos, PositionIndex};
use crate::raw::RawLab;
use crate::suggest::nearest;

/// What went wrong while decoding, before any defaults apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeProblem {
    pub path: String,
    pub pos: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
}

/// Decodes `text` into the raw schema; unknown keys, wrong types and
/// duplicate keys are errors.
pub fn decode_raw(text: &str, index: &PositionIndex) -> Result<RawLab, DecodeProblem> {
    let mut options = Options::default();
    // The diagnostic carries the position; a rendered snippet would repeat it.
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<RawLab>(text, options)
        .map_err(|err| translate(&err, index))
}

fn translate(err: &YamlError, index: &PositionIndex) -> DecodeProblem {
    let err = err.without_snippet();
    let pos = err.location().and_then(|loc| {
        let (line, column) = (loc.line(), loc.column());
        (line > 0).then(|| Pos {
            line: line as usize,
            column: column.max(1) as usize,
        })
    });
    let key_path = pos
        .and_then(|p| index.path_of_key_at(p))
        .map(str::to_string);
    let value_path = pos
        .and_then(|p| index.path_of_value_at(p))
        .map(str::to_string);
    let value_entry = value_path.as_deref().and_then(|p| index.get(p));
    let value_text = value_entry.and_then(|e| e.scalar.clone());
    let found = match (&value_text, value_entry) {
        (Some(text), _) => format!("`{text}`"),
        (None, Some(entry)) => entry.shape.to_string(),
        (None, None) => "something else".to_string(),
    };
    let problem = |path: Option<String>, message: String, hint: Option<String>| DecodeProblem {
        path: path.unwrap_or_default(),
        pos,
        message,
        hint,
    };

    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let hint = match nearest(field, expected) {
                Some(known) => format!("did you mean `{known}`?"),
                None => format!("known keys here: {}", expected.join(", ")),
            };
            problem(key_path, format!("unknown key `{field}`"), Some(hint))
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let hint = nearest(variant, expected).map(|known| format!("did you mean `{known}`?"));
            problem(
                value_path,
                format!("`{variant}` is not one of: {}", expected.join(", ")),
                hint,
            )
        }
        YamlError::DuplicateMappingKey { key, .. } => problem(
            key_path,
            format!("duplicate key `{}`", key.as_deref().unwrap_or("?")),
            Some("keep only one of them".to_string()),
        ),
        YamlError::InvalidScalar { ty, .. } => problem(
            value_path,
            match &value_text {
                Some(text) => format!("`{text}` is not {}", describe_type(ty)),
                None => format!("expected {}", describe_type(ty)),
            },
            None,
        ),
        YamlError::InvalidBooleanStrict { .. } => problem(
            value_path,
            match &value_text {
                Some(text) => format!("`{text}` is not {}", describe_type("bool")),
                None => format!("expected {}", describe_type("bool")),
            },
            None,
        ),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => problem(
            value_path,
            format!("expected {expected}, found {unexpected}"),
            None,
        ),
        YamlError::Unexpected { expected, .. } => problem(
            value_path,
            format!("expected {}, found {found}", describe_expected(expected)),
            None,
        ),
        YamlError::MultipleDocuments { .. } => problem(
            None,
            "the file holds more than one YAML document; a lab file is one document".to_string(),
            Some("remove the `---` separators and the extra documents".to_string()),
        ),
        other => problem(value_path, strip_location(&other.to_string()), None),
    }
}

/// serde-saphyr appends ` at line L, column C`; the diagnostic says it once.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn describe_type(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "bool" | "boolean" => "a boolean (true or false)".to_string(),
        "string" | "str" | "String" => "a string".to_string(),
        other => format!("a valid {other}"),
    }
}

fn describe_expected(expected: &str) -> &str {
    match expected {
        "mapping start" => "a mapping (`key: value` lines or `{...}`)",
        "sequence start" => "a list (`- item` lines or `[...]`)",
        "string scalar" | "scalar" => "a single value",
        other => other,
    }
}
