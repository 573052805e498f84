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
use crate::profile::DataWarning;
use crate::validate;

/// The on-disk layout of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with RFC 4180 quoting (multi-line fields allowed).
    Csv,
    /// Tab-separated values; fields may be CSV-quoted (`"..."` with `""` escapes), as
    /// pandas writes them, which is how the SMS spam file is stored.
    Tsv,
    /// One JSON object per line, or one JSON list of objects (`format = "json"` names the
    /// same reader).
    #[serde(alias = "json")]
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

/// How strictly [`read_table_with`] treats bad labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Drop rows whose label is missing (a JSON record without the field), empty, null or
    /// NaN-like (`NaN`, `N/A`, `null`, ...) instead of failing on the first; the count dropped
    /// is reported as a [`DataWarning::DroppedBadLabels`].
    pub drop_bad_labels: bool,
}

/// A table as read: its examples and what was noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The examples, labels normalised ([`crate::labels::canonical`]).
    pub rows: Vec<RawExample>,
    /// Rows dropped, label spellings merged.
    pub warnings: Vec<DataWarning>,
}

/// Reads every example of a table.
///
/// Texts and labels are trimmed; an empty text, a missing, empty or NaN-like label,
/// undecodable bytes, a missing or repeated column, an unterminated quote or a file without
/// rows is an error naming the file and line. A UTF-8 byte-order mark and blank lines are
/// skipped. Numeric labels are normalised by value (`1`, `1.0` and `"1"` are one class).
pub fn read_table(spec: &TableSpec) -> Result<Vec<RawExample>> {
    Ok(read_table_with(spec, &ReadOptions::default())?.rows)
}

/// [`read_table`] with options, also returning the warnings (rows dropped, label spellings
/// merged).
///
/// Before anything is read the path must be a file (not a directory), in a known format and
/// small enough for the available memory; a UTF-16 file is recognised and refused with the
/// command that converts it.
pub fn read_table_with(spec: &TableSpec, opts: &ReadOptions) -> Result<Table> {
    validate::check_spec(spec)?;
    let size = validate::check_file(&spec.path)?;
    let format = spec.resolved_format()?;
    validate::check_memory(&spec.path, size, validate::mem_available())?;
    let mut bytes = std::fs::read(&spec.path).map_err(|e| DataError::io(&spec.path, e))?;
    validate::check_not_utf16(&spec.path, &bytes)?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::EmptyFile {
            file: spec.path.clone(),
            reason: "the file is empty".to_string(),
        });
    }
    let mut labels = LabelSink::new(opts.drop_bad_labels);
    let mut examples = match format {
        Format::Csv => delimited::read(spec, &bytes, b',', &mut labels)?,
        Format::Tsv => delimited::read(spec, &bytes, b'\t', &mut labels)?,
        Format::Jsonl => jsonl::read(spec, &bytes, &mut labels)?,
    };
    if examples.is_empty() {
        let reason = if labels.dropped > 0 {
            format!("all {} rows were dropped for a missing, empty or NaN-like `{}` label", labels.dropped, spec.label_col)
        } else {
            match &spec.filter {
                Some(f) => format!("no row has {} = {}", f.column, f.equals),
                None => "only a header, no rows".to_string(),
            }
        };
        return Err(DataError::EmptyFile {
            file: spec.path.clone(),
            reason,
        });
    }
    let mut warnings = Vec::new();
    if let Some((first_line, first_what)) = labels.first.take() {
        warnings.push(DataWarning::DroppedBadLabels {
            file: spec.path.display().to_string(),
            column: spec.label_col.clone(),
            count: labels.dropped,
            first_line,
            first_what,
        });
    }
    warnings.extend(crate::labels::normalise(&mut examples, &spec.path, &spec.label_col)?);
    Ok(Table { rows: examples, warnings })
}

/// Collects the rows dropped for bad labels (or refuses them).
struct LabelSink {
    drop: bool,
    dropped: usize,
    first: Option<(usize, String)>,
}

impl LabelSink {
    fn new(drop: bool) -> Self {
        LabelSink { drop, dropped: 0, first: None }
    }

    /// The trimmed label, `None` for a row to drop, or the error for a bad label.
    fn accept(&mut self, spec: &TableSpec, raw: Option<&str>, line: usize) -> Result<Option<String>> {
        let Some(what) = crate::labels::label_problem(raw) else {
            return Ok(raw.map(|r| r.trim().to_string()));
        };
        if !self.drop {
            return Err(DataError::BadLabel {
                file: spec.path.clone(),
                line,
                column: spec.label_col.clone(),
                what,
            });
        }
        self.dropped += 1;
        self.first.get_or_insert((line, what));
        Ok(None)
    }
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
