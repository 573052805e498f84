//! The body of `POST /predict`, checked: `{"text": "…"}` or `{"texts": ["…", …]}`, within
//! the server's limits. Every refusal is an [`ApiError`] naming what is wrong.

use crate::options::Limits;
use axum::http::StatusCode;
use serde_json::Value;

/// An HTTP error answered as `{"error": message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The texts of a request; `single` when it gave `text` (answered with one object).
#[derive(Debug, PartialEq)]
pub struct Texts {
    pub texts: Vec<String>,
    pub single: bool,
}

/// Parse and check a request body.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Texts, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(ApiError::bad(format!(r#"the body must be a JSON object {{"text": "..."}} or {{"texts": ["...", ...]}}, not {}"#, kind(&value))));
    };
    if let Some(k) = obj.keys().find(|k| *k != "text" && *k != "texts") {
        return Err(ApiError::bad(format!("unknown field `{k}` (expected `text` or `texts`)")));
    }
    let (texts, single) = match (obj.remove("text"), obj.remove("texts")) {
        (Some(_), Some(_)) => return Err(ApiError::bad("give `text` or `texts`, not both")),
        (None, None) => return Err(ApiError::bad(r#"missing field `text` (one string) or `texts` (a list of strings)"#)),
        (Some(Value::String(t)), None) => (vec![t], true),
        (Some(v), None) => return Err(ApiError::bad(format!("`text` must be a string, not {}", kind(&v)))),
        (None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err(ApiError::bad("`texts` is empty"));
            }
            if items.len() > limits.max_texts {
                return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{} texts in one request; at most {} (--max-texts)", items.len(), limits.max_texts)));
            }
            let mut texts = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                match v {
                    Value::String(t) => texts.push(t),
                    other => return Err(ApiError::bad(format!("`texts[{i}]` must be a string, not {}", kind(&other)))),
                }
            }
            (texts, false)
        }
        (None, Some(v)) => return Err(ApiError::bad(format!("`texts` must be a list of strings, not {}", kind(&v)))),
    };
    for (i, t) in texts.iter().enumerate() {
        // Counting stops at the limit: O(max_chars) whatever the text.
        if t.chars().nth(limits.max_chars).is_some() {
            let what = if single { "`text`".to_string() } else { format!("`texts[{i}]`") };
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{what} has more than {} characters (--max-chars)", limits.max_chars)));
        }
    }
    Ok(Texts { texts, single })
}

/// A JSON value's kind, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_body_bytes: 1000, max_texts: 3, max_chars: 5 };

    fn err(body: &str) -> ApiError {
        parse(body.as_bytes(), &LIMITS).unwrap_err()
    }

    #[test]
    fn accepts_one_text_or_a_list() {
        assert_eq!(parse(br#"{"text": "good"}"#, &LIMITS).unwrap(), Texts { texts: vec!["good".into()], single: true });
        assert_eq!(parse(br#"{"texts": ["a", ""]}"#, &LIMITS).unwrap(), Texts { texts: vec!["a".into(), "".into()], single: false });
    }

    #[test]
    fn names_what_is_wrong() {
        for (body, want) in [
            ("{", "not valid JSON"),
            ("[1]", "not a list"),
            (r#"{"txt": "a"}"#, "unknown field `txt`"),
            ("{}", "missing field `text`"),
            (r#"{"text": "a", "texts": ["b"]}"#, "not both"),
            (r#"{"text": 3}"#, "`text` must be a string, not a number"),
            (r#"{"texts": "a"}"#, "`texts` must be a list of strings, not a string"),
            (r#"{"texts": ["a", null]}"#, "`texts[1]` must be a string, not null"),
            (r#"{"texts": []}"#, "`texts` is empty"),
        ] {
            let e = err(body);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
    }

    #[test]
    fn too_many_texts_or_characters_is_413() {
        let e = err(r#"{"texts": ["a", "b", "c", "d"]}"#);
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("--max-texts"), "{}", e.message);
        let e = err(r#"{"texts": ["a", "abcdef"]}"#);
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("`texts[1]`") && e.message.contains("--max-chars"), "{}", e.message);
        assert!(parse(r#"{"text": "ébcdé"}"#.as_bytes(), &LIMITS).is_ok(), "characters, not bytes");
    }
}
