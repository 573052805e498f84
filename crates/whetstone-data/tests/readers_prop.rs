//! Property tests of the table readers: whatever the bytes (arbitrary, quoted, with BOMs,
//! CRLF/CR line ends, embedded NULs, huge fields), reading returns `Ok` or a clean error that
//! names the file — never a panic. Bounded so that the whole file runs in seconds.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use whetstone_data::{load_splits_with, read_table_with, DataSource, LoadOptions, ReadOptions, TableSpec};

const EXTENSIONS: [&str; 3] = ["csv", "tsv", "jsonl"];

/// Pieces that exercise the parsers' corners.
const PIECES: &[&[u8]] = &[
    b"text", b"label", b"a", b"b c", b"1", b"0", b"1.0", b"\"1\"", b"NaN", b"null", b"N/A", b"pos",
    b"\"", b"\"\"", b",", b"\t", b"\n", b"\r\n", b"\r", b"\0", b" ", "é".as_bytes(), b"\xE9", b"\xFF\xFE",
    b"\xEF\xBB\xBF", b"{", b"}", b":", b"\"text\"", b"\"label\"", b"[", b"]", b"true", b"1e999", b"-", b"\\",
];

fn pieces() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(PIECES), 0..80).prop_map(|v| v.concat())
}

/// A header, then rows assembled from pieces, with an optional BOM and a huge field.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![&b""[..], b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"]),
        prop::sample::select(vec![&b"text,label\n"[..], b"text\tlabel\r\n", b"label,text,label\n", b"{\"text\":\"a\",\"label\":1}\n", b""]),
        pieces(),
        prop::option::of((0usize..70_000, prop::sample::select(vec![b'x', b'"', b'\0', b'\n']))),
        pieces(),
    )
        .prop_map(|(bom, header, body, huge, tail)| {
            let mut out = [bom, header, &body[..]].concat();
            if let Some((n, byte)) = huge {
                out.extend(std::iter::repeat_n(byte, n));
            }
            out.extend(tail);
            out
        })
}

/// Reads `bytes` as every format, with and without dropping bad labels, and loads them as
/// training data; checks that errors name the file.
fn read_all_ways(dir: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    for ext in EXTENSIONS {
        let path: PathBuf = dir.join(format!("case.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        for drop in [false, true] {
            let spec = TableSpec::new(&path, "text", "label");
            match read_table_with(&spec, &ReadOptions { drop_bad_labels: drop }) {
                Ok(t) => {
                    prop_assert!(!t.rows.is_empty());
                    for r in &t.rows {
                        prop_assert!(!r.text.trim().is_empty() && !r.label.trim().is_empty());
                        prop_assert!(r.line >= 1);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.contains("case."), "error does not name the file: {}", msg);
                }
            }
            let src = DataSource::Files { train: spec, valid: None, test: None };
            let _ = load_splits_with(&src, &LoadOptions { drop_bad_labels: drop, ..LoadOptions::new(0.1, 0.1, 1) });
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        read_all_ways(dir.path(), &bytes)?;
    }

    #[test]
    fn structured_tables_never_panic(bytes in structured()) {
        let dir = tempfile::tempdir().unwrap();
        read_all_ways(dir.path(), &bytes)?;
    }

    /// Well-formed CSV written by the `csv` crate reads back exactly, whatever the text.
    #[test]
    fn csv_round_trips(rows in prop::collection::vec(("[^\u{0}]{1,40}", prop::sample::select(vec!["pos", "neg", "1", "0"])), 1..30)) {
        let rows: Vec<(String, &str)> = rows.into_iter().filter(|(t, _)| !t.trim().is_empty()).collect();
        prop_assume!(!rows.is_empty());
        let words = rows.iter().any(|(_, l)| l.starts_with(|c: char| c.is_alphabetic()));
        let numbers = rows.iter().any(|(_, l)| l.starts_with(|c: char| c.is_ascii_digit()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.csv");
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(["text", "label"]).unwrap();
        for (t, l) in &rows {
            w.write_record([t.as_str(), l]).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let got = read_table_with(&TableSpec::new(&path, "text", "label"), &ReadOptions::default());
        if words && numbers {
            prop_assert!(got.unwrap_err().to_string().contains("mixes numeric and non-numeric labels"));
        } else {
            let got = got.unwrap();
            let texts: Vec<String> = got.rows.iter().map(|r| r.text.clone()).collect();
            let want: Vec<String> = rows.iter().map(|(t, _)| t.trim().to_string()).collect();
            prop_assert_eq!(texts, want);
        }
    }
}
