//! JSON reading: one object per line (JSON lines), or one JSON list of objects (as many
//! datasets ship, e.g. `jeopardy_10k.json`); text and label taken from named fields.

use serde_json::{Map, Value};

use super::{non_empty, LabelSink, RawExample, TableSpec};
use crate::error::{DataError, Result};
use crate::validate;

/// Reads a JSON table whose BOM has already been stripped: a JSON list of objects when its
/// first non-blank character is `[`, JSON lines otherwise.
pub(super) fn read(
    spec: &TableSpec,
    bytes: &[u8],
    labels: &mut LabelSink,
) -> Result<Vec<RawExample>> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return read_list(spec, bytes, labels);
    }
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = utf8(spec, raw, line)?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| malformed(spec, line, format!("invalid JSON: {e}")))?;
        if let Some(ex) = record(spec, value, line, labels)? {
            out.push(ex);
        }
    }
    Ok(out)
}

/// A JSON list of objects. Errors name the line where the offending object starts.
fn read_list(spec: &TableSpec, bytes: &[u8], labels: &mut LabelSink) -> Result<Vec<RawExample>> {
    let text = utf8(spec, bytes, 1)?;
    let values: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| malformed(spec, e.line(), format!("invalid JSON list: {e}")))?;
    let starts = element_lines(bytes);
    let mut out = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let line = starts.get(i).copied().unwrap_or(1);
        if let Some(ex) = record(spec, value, line, labels)? {
            out.push(ex);
        }
    }
    Ok(out)
}

/// The 1-based line on which each element of the top-level JSON list in `bytes` starts (the
/// list already parsed, so it is well formed).
fn element_lines(bytes: &[u8]) -> Vec<usize> {
    let (mut line, mut depth, mut in_string, mut escaped, mut expect) =
        (1usize, 0usize, false, false, false);
    let mut starts = Vec::new();
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            if b == b'\n' {
                line += 1;
            }
            continue;
        }
        if expect && !b.is_ascii_whitespace() && b != b']' {
            starts.push(line);
            expect = false;
        }
        match b {
            b'\n' => line += 1,
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                expect = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    starts
}

fn utf8<'a>(spec: &TableSpec, raw: &'a [u8], line: usize) -> Result<&'a str> {
    std::str::from_utf8(raw).map_err(|e| {
        let bad = &raw[e.valid_up_to()..];
        // In a whole list, the line of the first bad byte.
        let line = line
            + raw[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
        DataError::InvalidUtf8 {
            file: spec.path.clone(),
            line,
            column: "(record)".to_string(),
            hint: validate::encoding_hint(&spec.path, &bad[..bad.len().min(4)]),
        }
    })
}

fn malformed(spec: &TableSpec, line: usize, message: String) -> DataError {
    DataError::Malformed {
        file: spec.path.clone(),
        line,
        message,
    }
}

/// One record (a JSON object starting on `line`): `None` when the filter or a dropped label
/// leaves it out.
fn record(
    spec: &TableSpec,
    value: Value,
    line: usize,
    labels: &mut LabelSink,
) -> Result<Option<RawExample>> {
    let Value::Object(obj) = value else {
        return Err(malformed(spec, line, "expected a JSON object".to_string()));
    };
    if let Some(f) = &spec.filter {
        if field(spec, &obj, &f.column, line)?.trim() != f.equals {
            return Ok(None);
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
        return Ok(None);
    };
    let text = field(spec, &obj, &spec.text_col, line)?;
    Ok(Some(RawExample {
        text: non_empty(&text, spec, line, &spec.text_col)?,
        label,
        line,
    }))
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
