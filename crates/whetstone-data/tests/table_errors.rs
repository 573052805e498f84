//! Bad input files give the specific error, naming the file and the right line.

use std::path::{Path, PathBuf};

use whetstone_data::{
    from_files, read_table, verify_sha256, DataError, Filter, Format, RawExample, TableSpec,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn spec(path: &Path) -> TableSpec {
    TableSpec::new(path, "text", "label")
}

#[test]
fn missing_column_lists_existing_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "reviews.csv", b"sentence,label\nhello,1\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("reviews.csv"), "{msg}");
    assert!(msg.contains("`text`"), "{msg}");
    assert!(msg.contains("sentence, label"), "{msg}");
}

#[test]
fn empty_file_and_header_only_and_filtered_out() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.csv", b"");
    let err = read_table(&spec(&empty)).unwrap_err();
    assert!(matches!(err, DataError::EmptyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.csv"), "{err}");

    let header = write(dir.path(), "header.csv", b"text,label\n");
    let err = read_table(&spec(&header)).unwrap_err();
    assert!(matches!(err, DataError::EmptyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("header.csv"), "{err}");

    let mixed = write(dir.path(), "mixed.csv", b"text,label,source\nhi,1,a\n");
    let mut s = spec(&mixed);
    s.filter = Some(Filter {
        column: "source".into(),
        equals: "b".into(),
    });
    let err = read_table(&s).unwrap_err();
    assert!(matches!(err, DataError::EmptyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("source = b"), "{err}");
}

#[test]
fn empty_text_names_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "data.csv",
        b"text,label\ngood,1\nfine,0\n\"   \",1\n",
    );
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::EmptyText { line: 4, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("data.csv:4"), "{err}");

    let jsonl = write(
        dir.path(),
        "data.jsonl",
        b"{\"text\":\"ok\",\"label\":1}\n{\"text\":\" \",\"label\":0}\n",
    );
    let err = read_table(&spec(&jsonl)).unwrap_err();
    assert!(err.to_string().contains("data.jsonl:2"), "{err}");
}

#[test]
fn invalid_utf8_names_line() {
    let dir = tempfile::tempdir().unwrap();
    // Latin-1 "é" (0xE9) on line 3.
    let path = write(dir.path(), "latin1.csv", b"text,label\ncafe,1\ncaf\xE9,0\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidUtf8 { line: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("latin1.csv:3"), "{msg}");
    assert!(msg.contains("UTF-8"), "{msg}");

    // The bad byte on the second line of a multi-line field is reported at that line.
    let path = write(dir.path(), "multi.csv", b"text,label\n\"one\ntw\xE9\",1\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidUtf8 { line: 3, .. }),
        "{err:?}"
    );

    let path = write(
        dir.path(),
        "bad.jsonl",
        b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"\xFF\",\"label\":1}\n",
    );
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidUtf8 { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_field_count_is_malformed_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ragged.csv", b"text,label\na,1\nb,1,extra\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::Malformed { line: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ragged.csv:3"), "{err}");
}

#[test]
fn quoted_multiline_csv_reads_and_counts_lines() {
    let dir = tempfile::tempdir().unwrap();
    let body = "\u{feff}text,label\n\"first line\nsecond, with comma\nthird \"\"quoted\"\"\",pos\nplain,neg\n\n\"\",neg\n";
    let path = write(dir.path(), "multi.csv", body.as_bytes());
    let err = read_table(&spec(&path)).unwrap_err();
    // Records start at lines 2 and 5; the empty text one starts at line 7.
    assert!(
        matches!(err, DataError::EmptyText { line: 7, .. }),
        "{err:?}"
    );

    let body = "\u{feff}text,label\n\"first line\nsecond, with comma\nthird \"\"quoted\"\"\",pos\nplain,neg\n\n";
    let path = write(dir.path(), "ok.csv", body.as_bytes());
    let rows = read_table(&spec(&path)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].text,
        "first line\nsecond, with comma\nthird \"quoted\""
    );
    assert_eq!(rows[0].label, "pos");
    assert_eq!(rows[0].line, 2);
    assert_eq!(
        rows[1],
        RawExample {
            text: "plain".into(),
            label: "neg".into(),
            line: 5
        }
    );
}

#[test]
fn headerless_tsv_with_quotes_and_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let body = "ham\tsee you \"soon\"\nspam\t\"Text \"\"WIN\"\" now\"\nham\tok\n";
    let path = write(dir.path(), "sms.txt", body.as_bytes());
    let s = TableSpec {
        format: Some(Format::Tsv),
        columns: Some(vec!["label".into(), "text".into()]),
        ..spec(&path)
    };
    let rows = read_table(&s).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].text, "see you \"soon\"");
    assert_eq!(rows[1].text, "Text \"WIN\" now");
    assert_eq!(rows[2].line, 3);
}

#[test]
fn jsonl_numeric_labels_become_strings() {
    let dir = tempfile::tempdir().unwrap();
    let body = "{\"text\": \" great \", \"label\": 1}\n\n{\"text\": \"bad\", \"label\": 0}\n{\"text\": \"meh\", \"label\": \"0\"}\n";
    let path = write(dir.path(), "d.jsonl", body.as_bytes());
    let rows = read_table(&spec(&path)).unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["1", "0", "0"]);
    assert_eq!(rows[0].text, "great");
    assert_eq!(rows[1].line, 3);

    let path = write(
        dir.path(),
        "missing.jsonl",
        b"{\"text\":\"a\",\"label\":1}\n{\"txt\":\"b\",\"label\":1}\n",
    );
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(
        matches!(err, DataError::MissingField { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.jsonl:2"), "{err}");
}

#[test]
fn unknown_format_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "data.xlsx", b"x");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err:?}");
}

#[test]
fn label_in_test_not_in_train() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", b"text,label\na,pos\nb,neg\n");
    let valid = write(dir.path(), "valid.csv", b"text,label\nc,pos\n");
    let test = write(dir.path(), "test.csv", b"text,label\nd,neg\ne,neutral\n");
    let err = from_files(
        read_table(&spec(&train)).unwrap(),
        read_table(&spec(&valid)).unwrap(),
        read_table(&spec(&test)).unwrap(),
        &train,
        &valid,
        &test,
    )
    .unwrap_err();
    assert!(
        matches!(err, DataError::UnknownLabel { line: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("test.csv:3"), "{msg}");
    assert!(msg.contains("`neutral`"), "{msg}");
    assert!(msg.contains("test split"), "{msg}");
}

#[test]
fn checksum_mismatch_names_file_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "pkg.whl", b"hello");
    let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    verify_sha256(&path, good).unwrap();
    let wrong = "0".repeat(64);
    let err = verify_sha256(&path, &wrong).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("pkg.whl"), "{msg}");
    assert!(msg.contains(good) && msg.contains(&wrong), "{msg}");
}

#[test]
fn a_json_list_reads_like_json_lines_and_errors_name_the_object_line() {
    let dir = tempfile::tempdir().unwrap();
    // The layout of weaviate's jeopardy_10k.json: a list of objects, fields of other types,
    // a string holding `,`, `]`, an escaped quote and a `\\`.
    let list = "[\n  {\"Question\": \"a, b] \\\"c\\\" \\\\\", \"Category\": \"SCIENCE\", \"Value\": 200},\n  {\"Question\": \"second\",\n   \"Category\": \"HISTORY\"}, {\"Question\": \"third\", \"Category\": \"SCIENCE\"}\n]\n";
    let lines = "{\"Question\": \"a, b] \\\"c\\\" \\\\\", \"Category\": \"SCIENCE\", \"Value\": 200}\n{\"Question\": \"second\", \"Category\": \"HISTORY\"}\n{\"Question\": \"third\", \"Category\": \"SCIENCE\"}\n";
    let read = |name: &str, body: &str| {
        let path = write(dir.path(), name, body.as_bytes());
        read_table(&TableSpec::new(&path, "Question", "Category"))
    };
    let from_list = read("q.json", list).unwrap();
    let from_lines = read("q.jsonl", lines).unwrap();
    let pairs = |rows: &[RawExample]| rows.iter().map(|r| (r.text.clone(), r.label.clone())).collect::<Vec<_>>();
    assert_eq!(pairs(&from_list), pairs(&from_lines));
    assert_eq!(from_list[0].text, "a, b] \"c\" \\");
    // Each record's line is where its object starts.
    assert_eq!(from_list.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3, 4]);

    // A missing field names the line of its object; so does a non-object element.
    let err = read("missing.json", "[{\"Question\": \"a\", \"Category\": \"X\"},\n {\"Q\": \"b\", \"Category\": \"Y\"}]").unwrap_err();
    assert!(matches!(err, DataError::MissingField { line: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("missing.json:2"), "{err}");
    let err = read("scalar.json", "[\n{\"Question\": \"a\", \"Category\": \"X\"},\n\n 7]").unwrap_err();
    assert!(matches!(err, DataError::Malformed { line: 4, .. }), "{err:?}");
    // Broken JSON is reported at serde's line.
    let err = read("broken.json", "[\n{\"Question\": \"a\", \"Category\": \"X\"},\n{\"Question\": }\n]").unwrap_err();
    assert!(matches!(err, DataError::Malformed { line: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("invalid JSON list"), "{err}");
    // Filters apply to list records too.
    let path = write(dir.path(), "f.json", list.as_bytes());
    let spec = TableSpec { filter: Some(Filter { column: "Category".into(), equals: "SCIENCE".into() }), ..TableSpec::new(&path, "Question", "Category") };
    assert_eq!(read_table(&spec).unwrap().len(), 2);
}
