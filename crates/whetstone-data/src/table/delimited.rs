//! CSV and TSV reading via the `csv` crate.
//!
//! Records are read as raw bytes so that a bad byte is reported as invalid UTF-8 at its
//! own line instead of as an opaque parse failure of the whole file.

use csv::{ByteRecord, ReaderBuilder};

use super::{non_empty, LabelSink, RawExample, TableSpec};
use crate::error::{DataError, Result};
use crate::validate;

/// Reads a delimited table whose BOM has already been stripped.
pub(super) fn read(spec: &TableSpec, bytes: &[u8], delimiter: u8, labels: &mut LabelSink) -> Result<Vec<RawExample>> {
    if let Some((line, column)) = unterminated_quote(bytes, delimiter) {
        return Err(DataError::UnterminatedQuote {
            file: spec.path.clone(),
            line,
            column,
        });
    }
    let has_header = spec.columns.is_none();
    let mut reader = ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);

    let mut record = ByteRecord::new();
    let columns: Vec<String> = match &spec.columns {
        Some(cols) => cols.clone(),
        None => {
            if !next_record(spec, &mut reader, &mut record)? {
                return Ok(Vec::new());
            }
            (0..record.len())
                .map(|i| decode(spec, &record, i, 1, "header").map(|s| s.trim().to_string()))
                .collect::<Result<_>>()?
        }
    };
    validate::check_header(&spec.path, &columns)?;
    let index_of = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::MissingColumn {
                file: spec.path.clone(),
                column: name.to_string(),
                available: columns.clone(),
            })
    };
    let text_idx = index_of(&spec.text_col)?;
    let label_idx = index_of(&spec.label_col)?;
    let filter = match &spec.filter {
        Some(f) => Some((index_of(&f.column)?, f.equals.as_str())),
        None => None,
    };

    let mut out = Vec::new();
    while next_record(spec, &mut reader, &mut record)? {
        let line = start_line(&record, bytes);
        if is_blank(&record) {
            continue;
        }
        if record.len() != columns.len() {
            let origin = if has_header {
                "the header"
            } else {
                "the configured columns"
            };
            return Err(DataError::Malformed {
                file: spec.path.clone(),
                line,
                message: format!(
                    "expected {} fields as in {origin} ({}), found {}",
                    columns.len(),
                    columns.join(", "),
                    record.len()
                ),
            });
        }
        if let Some((idx, wanted)) = filter {
            if decode(spec, &record, idx, line, &columns[idx])?.trim() != wanted {
                continue;
            }
        }
        let label = decode(spec, &record, label_idx, line, &spec.label_col)?;
        let Some(label) = labels.accept(spec, Some(label), line)? else {
            continue;
        };
        let text = decode(spec, &record, text_idx, line, &spec.text_col)?;
        out.push(RawExample {
            text: non_empty(text, spec, line, &spec.text_col)?,
            label,
            line,
        });
    }
    Ok(out)
}

/// Reads the next record, turning parse errors into `Malformed` with their line.
fn next_record(
    spec: &TableSpec,
    reader: &mut csv::Reader<&[u8]>,
    record: &mut ByteRecord,
) -> Result<bool> {
    reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
        DataError::Malformed {
            file: spec.path.clone(),
            line,
            message: e.to_string(),
        }
    })
}

/// 1-based line where the record starts.
///
/// csv reports the position before the blank lines it skipped ahead of the record, so
/// step over those line breaks to land on the record's own first line.
fn start_line(record: &ByteRecord, bytes: &[u8]) -> usize {
    let Some(pos) = record.position() else {
        return 0;
    };
    let mut line = pos.line() as usize;
    let start = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    for &b in bytes.get(start..).unwrap_or_default() {
        match b {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
    }
    line
}

/// A line holding nothing but whitespace (e.g. a trailing "\r" or spaces).
fn is_blank(record: &ByteRecord) -> bool {
    record.len() <= 1
        && record
            .iter()
            .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}

/// Decodes field `idx` as UTF-8; on failure reports the exact line of the bad byte by
/// counting the newlines (kept inside quoted fields) that precede it in the record.
fn decode<'r>(
    spec: &TableSpec,
    record: &'r ByteRecord,
    idx: usize,
    line: usize,
    column: &str,
) -> Result<&'r str> {
    let field = record.get(idx).unwrap_or_default();
    std::str::from_utf8(field).map_err(|e| {
        let before: usize = record.iter().take(idx).map(count_newlines).sum::<usize>()
            + count_newlines(&field[..e.valid_up_to()]);
        let bad = &field[e.valid_up_to()..];
        DataError::InvalidUtf8 {
            file: spec.path.clone(),
            line: line + before,
            column: column.to_string(),
            hint: validate::encoding_hint(&spec.path, &bad[..bad.len().min(4)]),
        }
    })
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Where a quoted field that is never closed starts, as (1-based line, 1-based character
/// column), or `None` when every quote is closed.
///
/// Mirrors the `csv` crate's quoting rules: a quote opens a quoted field only as the field's
/// first byte; inside it `""` is a literal quote and a lone `"` closes it; line ends (`\n`,
/// `\r`) outside quotes end the record. Without this check the reader would silently put the
/// rest of the file into that one field and report a confusing field-count mismatch.
pub(super) fn unterminated_quote(bytes: &[u8], delimiter: u8) -> Option<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Start,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::Start;
    let mut line = 1;
    let mut line_start = 0;
    let mut opened = (1, 1);
    for (i, &b) in bytes.iter().enumerate() {
        let newline = b == b'\n' || b == b'\r';
        state = match state {
            State::Start | State::Unquoted if newline || b == delimiter => State::Start,
            State::Start if b == b'"' => {
                let column = bytes[line_start..i].iter().filter(|&&c| c & 0xC0 != 0x80).count() + 1;
                opened = (line, column);
                State::Quoted
            }
            State::Start | State::Unquoted => State::Unquoted,
            State::Quoted if b == b'"' => State::QuoteInQuoted,
            State::Quoted => State::Quoted,
            State::QuoteInQuoted if b == b'"' => State::Quoted,
            State::QuoteInQuoted if newline || b == delimiter => State::Start,
            State::QuoteInQuoted => State::Unquoted,
        };
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    (state == State::Quoted).then_some(opened)
}
