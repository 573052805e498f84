//! Reading labelled text tables (CSV, TSV, JSON lines) into [`RawExample`]s.
//!
//! The readers are strict on purpose: a silently skipped row or a mangled character
//! changes an experiment's numbers without anyone noticing, so every problem becomes a
//! [`DataError`] that names the file and line.

mod delimited;
mod jsonl;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The on-disk layout of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with RFC 4180 quoting (multi-line fields allowed).
    Csv,
    /// Tab-separated values; fields may be CSV-quoted (`"..."` with `""` escapes), as
    /// pandas writes them, which is how the SMS spam file is stored.
    Tsv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Infers the format from a file extension (`.csv`, `.tsv`, `.jsonl`, `.json`);
    /// `None` when the extension is missing or unknown.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Keep only rows whose `column` equals `equals` (after trimming), e.g. one source of a
/// file that combines several corpora.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The column to test.
    pub column: String,
    /// The value a row must have to be kept.
    pub equals: String,
}

/// Where a table is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    /// The file to read.
    pub path: PathBuf,
    /// The layout; `None` infers it from the extension.
    pub format: Option<Format>,
    /// The column (or JSON field) holding the text.
    pub text_col: String,
    /// The column (or JSON field) holding the label.
    pub label_col: String,
    /// Column names for header-less CSV/TSV files; `None` means the first line is a header.
    pub columns: Option<Vec<String>>,
    /// Optional row filter.
    pub filter: Option<Filter>,
}

impl TableSpec {
    /// A spec with the format taken from the extension, a header line, and no filter.
    pub fn new(path: impl Into<PathBuf>, text_col: &str, label_col: &str) -> Self {
        TableSpec {
            path: path.into(),
            format: None,
            text_col: text_col.to_string(),
            label_col: label_col.to_string(),
            columns: None,
            filter: None,
        }
    }

    /// The explicit format, or the one the extension implies.
    pub fn resolved_format(&self) -> Result<Format> {
        match self.format {
            Some(f) => Ok(f),
            None => Format::from_path(&self.path).ok_or_else(|| DataError::UnknownFormat {
                file: self.path.clone(),
            }),
        }
    }
}

/// One labelled example as read from a file, before labels become class ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExample {
    /// The trimmed text.
    pub text: String,
    /// The trimmed label, as written in the file (numbers are kept as their digits).
    pub label: String,
    /// 1-based line where the record starts, for error messages further down the line.
    pub line: usize,
}

/// Reads every example of a table.
///
/// Texts and labels are trimmed; an empty text or label, undecodable bytes, a missing
/// column or a file without rows is an error naming the file and line. A UTF-8 byte-order
/// mark and blank lines are skipped.
pub fn read_table(spec: &TableSpec) -> Result<Vec<RawExample>> {
    let format = spec.resolved_format()?;
    let mut bytes = std::fs::read(&spec.path).map_err(|e| DataError::io(&spec.path, e))?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::EmptyFile {
            file: spec.path.clone(),
            reason: "the file is empty".to_string(),
        });
    }
    let examples = match format {
        Format::Csv => delimited::read(spec, &bytes, b',')?,
        Format::Tsv => delimited::read(spec, &bytes, b'\t')?,
        Format::Jsonl => jsonl::read(spec, &bytes)?,
    };
    if examples.is_empty() {
        let reason = match &spec.filter {
            Some(f) => format!("no row has {} = {}", f.column, f.equals),
            None => "only a header, no rows".to_string(),
        };
        return Err(DataError::EmptyFile {
            file: spec.path.clone(),
            reason,
        });
    }
    Ok(examples)
}

/// Trims a decoded field and rejects it when nothing is left.
fn non_empty(value: &str, spec: &TableSpec, line: usize, column: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DataError::EmptyText {
            file: spec.path.clone(),
            line,
            column: column.to_string(),
        });
    }
    Ok(trimmed.to_string())
}
