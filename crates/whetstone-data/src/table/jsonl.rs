//! JSON-lines reading: one object per line, text and label taken from named fields.

use serde_json::{Map, Value};

use super::{non_empty, LabelSink, RawExample, TableSpec};
use crate::error::{DataError, Result};
use crate::validate;

/// Reads a JSON-lines table whose BOM has already been stripped.
pub(super) fn read(spec: &TableSpec, bytes: &[u8], labels: &mut LabelSink) -> Result<Vec<RawExample>> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = std::str::from_utf8(raw).map_err(|e| {
            let bad = &raw[e.valid_up_to()..];
            DataError::InvalidUtf8 {
                file: spec.path.clone(),
                line,
                column: "(record)".to_string(),
                hint: validate::encoding_hint(&spec.path, &bad[..bad.len().min(4)]),
            }
        })?;
        let malformed = |message: String| DataError::Malformed {
            file: spec.path.clone(),
            line,
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(malformed("expected a JSON object".to_string()));
        };
        if let Some(f) = &spec.filter {
            if field(spec, &obj, &f.column, line)?.trim() != f.equals {
                continue;
            }
        }
        let label = match obj.get(&spec.label_col) {
            // An absent field is a missing label only when dropping; otherwise the error
            // lists the fields the record has (a misspelt --label-col shows up there).
            None if labels.drop => None,
            Some(Value::Null) => None,
            _ => Some(field(spec, &obj, &spec.label_col, line)?),
        };
        let Some(label) = labels.accept(spec, label.as_deref(), line)? else {
            continue;
        };
        let text = field(spec, &obj, &spec.text_col, line)?;
        out.push(RawExample {
            text: non_empty(&text, spec, line, &spec.text_col)?,
            label,
            line,
        });
    }
    Ok(out)
}

/// A field as a string: strings as they are, numbers and booleans as JSON writes them
/// (`{"label": 1}`, `{"label": "1"}` and `{"label": 1.0}` then name the same class once
/// [`crate::labels::normalise`] has read `1.0` as `1`).
fn field(spec: &TableSpec, obj: &Map<String, Value>, name: &str, line: usize) -> Result<String> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(Value::Null) => Ok(String::new()),
        Some(other) => Err(DataError::Malformed {
            file: spec.path.clone(),
            line,
            message: format!("field `{name}` must be a string or number, found {other}"),
        }),
        None => Err(DataError::MissingField {
            file: spec.path.clone(),
            line,
            column: name.to_string(),
            available: obj.keys().cloned().collect(),
        }),
    }
}
