//! Wrong data is refused at load time, naming file, line and column; what does not stop a run
//! comes back as warnings.

use std::path::{Path, PathBuf};

use whetstone_data::{
    load_splits, load_splits_with, read_table, read_table_with, DataError, DataProfile, DataSource, DataWarning,
    LoadOptions, ReadOptions, TableSpec,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn spec(path: &Path) -> TableSpec {
    TableSpec::new(path, "text", "label")
}

fn files(path: &Path) -> DataSource {
    DataSource::Files { train: spec(path), valid: None, test: None }
}

/// `n` rows per label, texts unique and several words long.
fn csv_rows(labels: &[(&str, usize)]) -> String {
    let mut s = String::from("text,label\n");
    for (l, n) in labels {
        for i in 0..*n {
            s.push_str(&format!("review number {i} of class {l} is here,{l}\n"));
        }
    }
    s
}

#[test]
fn duplicate_header_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "dup.csv", b"id,text,label,text\n1,good film,pos,x\n2,bad film,neg,y\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::DuplicateColumn { first: 2, second: 4, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("dup.csv:1:") && msg.contains("`text`") && msg.contains("fields 2 and 4"), "{msg}");
    // Also when the repeated column is not one the recipe uses: the file is ambiguous.
    let path = write(dir.path(), "dup2.tsv", b"text\tlabel\tnote\tnote\na\t1\tx\ty\n");
    assert!(matches!(read_table(&spec(&path)).unwrap_err(), DataError::DuplicateColumn { .. }));
    // Header-less files: the configured names must be unique too.
    let path = write(dir.path(), "plain.tsv", b"1\thello\n");
    let s = TableSpec { columns: Some(vec!["label".into(), "label".into()]), text_col: "label".into(), label_col: "x".into(), ..spec(&path) };
    assert!(matches!(read_table(&s).unwrap_err(), DataError::DuplicateColumn { .. }));
}

#[test]
fn same_column_for_text_and_label_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.csv", csv_rows(&[("a", 3), ("b", 3)]).as_bytes());
    let err = read_table(&TableSpec::new(&path, "label", "label")).unwrap_err();
    assert!(matches!(err, DataError::SameColumn { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("d.csv") && msg.contains("`label`") && msg.contains("--text-col"), "{msg}");
}

#[test]
fn one_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "one.csv", csv_rows(&[("pos", 40)]).as_bytes());
    let err = load_splits(&files(&path), 0.1, 0.1, 1).unwrap_err();
    assert!(matches!(err, DataError::TooFewClasses { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("one.csv") && msg.contains("only one class, `pos` (40 examples)") && msg.contains("column `label`"), "{msg}");
    // With fixed valid/test files too.
    let t = write(dir.path(), "t.csv", b"text,label\nx y z,pos\n");
    let src = DataSource::Files { train: spec(&path), valid: Some(spec(&t)), test: Some(spec(&t)) };
    assert!(matches!(load_splits(&src, 0.1, 0.1, 1).unwrap_err(), DataError::TooFewClasses { .. }));
}

#[test]
fn bad_labels_are_refused_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, line, what) in [
        ("nan.csv", "text,label\ngood one,1\nbad one,NaN\n", 3, "`NaN` is a missing-value marker"),
        ("na.csv", "text,label\ngood one,1\nmeh,N/A\n", 3, "`N/A`"),
        ("null.tsv", "text\tlabel\ngood one\t1\nx\tnull\n", 3, "`null`"),
        ("empty.csv", "text,label\ngood one,1\nbad one, \n", 3, "the label is empty"),
        ("null.jsonl", "{\"text\":\"a b\",\"label\":1}\n{\"text\":\"c d\",\"label\":null}\n", 2, "missing (absent or null)"),
        ("nanstr.jsonl", "{\"text\":\"a b\",\"label\":\"nan\"}\n", 1, "`nan`"),
    ] {
        let path = write(dir.path(), name, body.as_bytes());
        let err = read_table(&spec(&path)).unwrap_err();
        assert!(matches!(&err, DataError::BadLabel { line: l, .. } if *l == line), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{name}:{line}: column `label`")), "{msg}");
        assert!(msg.contains(what) && msg.contains("--drop-bad-labels"), "{msg}");
    }
    // An absent JSON field keeps the error that lists the fields (a misspelt --label-col).
    let path = write(dir.path(), "absent.jsonl", b"{\"text\":\"a b\",\"lable\":1}\n");
    assert!(matches!(read_table(&spec(&path)).unwrap_err(), DataError::MissingField { line: 1, .. }));
}

#[test]
fn bad_labels_can_be_dropped_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = csv_rows(&[("0", 10), ("1", 10)]);
    body.push_str("unlabelled one,NaN\nunlabelled two,\nunlabelled three,null\n");
    let path = write(dir.path(), "d.csv", body.as_bytes());
    let t = read_table_with(&spec(&path), &ReadOptions { drop_bad_labels: true }).unwrap();
    assert_eq!(t.rows.len(), 20);
    assert!(t.rows.iter().all(|r| r.label == "0" || r.label == "1"));
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    let DataWarning::DroppedBadLabels { count, first_line, .. } = &t.warnings[0] else { panic!("{:?}", t.warnings) };
    assert_eq!((*count, *first_line), (3, 22));
    assert!(t.warnings[0].to_string().contains("dropped 3 row(s)"), "{}", t.warnings[0]);

    // Through load_splits_with the count reaches Splits::warnings.
    let opts = LoadOptions { drop_bad_labels: true, ..LoadOptions::new(0.1, 0.1, 3) };
    let s = load_splits_with(&files(&path), &opts).unwrap();
    assert_eq!(s.train.len() + s.valid.len() + s.test.len(), 20);
    assert!(s.warnings.iter().any(|w| matches!(w, DataWarning::DroppedBadLabels { count: 3, .. })), "{:?}", s.warnings);
    // Without the option the same file is refused.
    assert!(matches!(load_splits(&files(&path), 0.1, 0.1, 3).unwrap_err(), DataError::BadLabel { line: 22, .. }));

    // Absent JSON fields are dropped too, and a file of nothing but bad labels is empty.
    let path = write(dir.path(), "all.jsonl", b"{\"text\":\"a\"}\n{\"text\":\"b\",\"label\":null}\n");
    let err = read_table_with(&spec(&path), &ReadOptions { drop_bad_labels: true }).unwrap_err();
    assert!(err.to_string().contains("all 2 rows were dropped"), "{err}");
}

#[test]
fn numeric_labels_are_one_class_per_value() {
    let dir = tempfile::tempdir().unwrap();
    let body = "{\"text\":\"a b c\",\"label\":1}\n{\"text\":\"d e f\",\"label\":\"1\"}\n{\"text\":\"g h i\",\"label\":1.0}\n{\"text\":\"j k l\",\"label\":0}\n{\"text\":\"m n o\",\"label\":\"0.0\"}\n";
    let path = write(dir.path(), "n.jsonl", body.as_bytes());
    let t = read_table_with(&spec(&path), &ReadOptions::default()).unwrap();
    let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["1", "1", "1", "0", "0"]);
    let notes: Vec<String> = t.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("`1` (2×), `1.0` (1×)") && n.contains("one class `1`")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("`0.0` (1×)")), "{notes:?}");

    // CSV spellings too, and train/test agree on the class after normalisation.
    let train = write(dir.path(), "train.csv", csv_rows(&[("1", 5), ("0", 5)]).as_bytes());
    let test = write(dir.path(), "test.csv", b"text,label\nfirst test text,1.0\nsecond test text,00\n");
    let src = DataSource::Files { train: spec(&train), valid: None, test: Some(spec(&test)) };
    let s = load_splits(&src, 0.2, 0.0, 1).unwrap();
    assert_eq!(s.labels.names, ["0", "1"]);
    assert_eq!(s.test.labels, [1, 0]);
}

#[test]
fn mixed_label_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.jsonl", b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":\"pos\"}\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::MixedLabels { number_line: 1, word_line: 2, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("m.jsonl") && msg.contains("`1` (line 1)") && msg.contains("`pos` (line 2)"), "{msg}");
}

#[test]
fn tiny_files_and_rare_classes_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // The user's 4-row file: 2 per class cannot fill train, valid and test.
    let path = write(dir.path(), "four.csv", b"text,label\na,1\nb,0\nc,1\nd,0\n");
    let err = load_splits(&files(&path), 0.1, 0.1, 42).unwrap_err();
    assert!(matches!(err, DataError::ClassTooSmall { n: 2, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("four.csv") && msg.contains("train, valid and test") && msg.contains("data.valid_fraction") && msg.contains("--valid FILE"), "{msg}");

    // A rare class of 3 examples reaches every split, although 3 × 0.1 rounds to 0.
    let path = write(dir.path(), "rare.csv", csv_rows(&[("common", 50), ("rare", 3)]).as_bytes());
    let s = load_splits(&files(&path), 0.1, 0.1, 7).unwrap();
    let rare = s.labels.id("rare").unwrap() as usize;
    for split in [&s.train, &s.valid, &s.test] {
        assert_eq!(split.class_counts(2)[rare], 1);
    }
    assert_eq!(s.valid.class_counts(2)[1 - rare], 5);
    // A rare class of 2 with valid and test carved: refused, naming the class.
    let path = write(dir.path(), "rare2.csv", csv_rows(&[("common", 50), ("rare", 2)]).as_bytes());
    let msg = load_splits(&files(&path), 0.1, 0.1, 7).unwrap_err().to_string();
    assert!(msg.contains("class `rare` has 2 example(s)"), "{msg}");
}

#[test]
fn an_empty_split_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.csv", csv_rows(&[("a", 20), ("b", 20)]).as_bytes());
    let err = load_splits(&files(&path), 0.1, 0.0, 1).unwrap_err();
    assert!(matches!(&err, DataError::EmptySplit { split, .. } if split == "test"), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("the test split is empty") && msg.contains("--set data.test_fraction=0.1") && msg.contains("--test FILE"), "{msg}");
    let msg = load_splits(&files(&path), 0.0, 0.1, 1).unwrap_err().to_string();
    assert!(msg.contains("the valid split is empty") && msg.contains("--valid FILE"), "{msg}");
}

#[test]
fn unterminated_quote_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "quote.csv", b"text,label\nfine,pos\n\"good film,pos\nbad,neg\n");
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::UnterminatedQuote { line: 3, column: 1, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}:3: unterminated quote", path.display())), "{msg}");
    // The column is the character position of the opening quote.
    let path = write(dir.path(), "q.tsv", "label\ttext\n1\tok\n0\t\"é never closed\n".as_bytes());
    assert!(matches!(read_table(&spec(&path)).unwrap_err(), DataError::UnterminatedQuote { line: 3, column: 3, .. }));
    // Closed quotes, escaped quotes and quotes inside unquoted fields are fine.
    let path = write(dir.path(), "ok.csv", b"text,label\n\"a \"\"b\"\" c\",1\nsay \"hi,0\n");
    assert_eq!(read_table(&spec(&path)).unwrap().len(), 2);
}

#[test]
fn directory_is_not_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["data.csv", "folder"] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let err = read_table(&spec(&sub)).unwrap_err();
        assert!(matches!(err, DataError::IsDirectory { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("is a directory, not a data file") && !msg.contains("os error"), "{msg}");
    }
}

#[test]
fn io_errors_print_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_table(&spec(&dir.path().join("absent.csv"))).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(msg.matches("os error").count(), 1, "{msg}");
    // And not again in the source chain, which `{:#}` printers append.
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn wrong_encodings_are_named_with_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "latin1.csv", b"text,label\ncaf\xE9 cr\xE8me,1\n");
    let msg = read_table(&spec(&path)).unwrap_err().to_string();
    assert!(msg.contains("latin1.csv:2") && msg.contains("Latin-1") && msg.contains("iconv -f LATIN1 -t UTF-8"), "{msg}");
    let path = write(dir.path(), "cp1252.csv", b"text,label\n\x93quoted\x94,1\n");
    let msg = read_table(&spec(&path)).unwrap_err().to_string();
    assert!(msg.contains("Windows-1252") && msg.contains("iconv -f WINDOWS-1252"), "{msg}");
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain("text,label\nhi,1\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let path = write(dir.path(), "u16.csv", &utf16);
    let err = read_table(&spec(&path)).unwrap_err();
    assert!(matches!(err, DataError::InvalidUtf8 { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("UTF-16 little-endian") && err.to_string().contains("iconv -f UTF-16 -t UTF-8"), "{err}");
    // Without a BOM the NULs give it away; JSONL too.
    let utf16: Vec<u8> = "{\"text\":\"hi\",\"label\":1}\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let path = write(dir.path(), "u16.jsonl", &utf16);
    assert!(read_table(&spec(&path)).unwrap_err().to_string().contains("UTF-16"));
}

#[test]
fn warnings_for_imbalance_leakage_and_short_texts() {
    let dir = tempfile::tempdir().unwrap();
    // 200 vs 10 (ratio 20): extreme imbalance.
    let path = write(dir.path(), "imb.csv", csv_rows(&[("ham", 200), ("spam", 10)]).as_bytes());
    let s = load_splits(&files(&path), 0.1, 0.1, 1).unwrap();
    let imb = s.warnings.iter().find(|w| matches!(w, DataWarning::Imbalance { .. })).expect("imbalance warning");
    let msg = imb.to_string();
    assert!(msg.contains("`ham`") && msg.contains("macro_f1") && msg.contains("0.95"), "{msg}");
    assert!(!s.warnings.iter().any(|w| matches!(w, DataWarning::Leakage { .. } | DataWarning::ShortTexts { .. })), "{:?}", s.warnings);

    // Balanced data: no imbalance warning.
    let path = write(dir.path(), "bal.csv", csv_rows(&[("a", 50), ("b", 40)]).as_bytes());
    assert!(load_splits(&files(&path), 0.1, 0.1, 1).unwrap().warnings.is_empty());

    // Every text twice (case and spacing differ): test examples leak from train.
    let mut body = String::from("text,label\n");
    for i in 0..30 {
        let l = i % 2;
        body.push_str(&format!("the same review {i} here,{l}\nThe  same review {i} HERE,{l}\n"));
    }
    let path = write(dir.path(), "dups.csv", body.as_bytes());
    let s = load_splits(&files(&path), 0.2, 0.2, 1).unwrap();
    let leak = s.warnings.iter().find_map(|w| match w {
        DataWarning::Leakage { split, leaked, total } if split == "test" => Some((*leaked, *total)),
        _ => None,
    });
    let (leaked, total) = leak.expect("test leakage warning");
    assert!(leaked > 0 && leaked <= total && total == s.test.len(), "{leaked}/{total}");
    let profile = DataProfile::new(&s, None, None);
    assert_eq!(profile.test_leaked, leaked);
    assert!(profile.train_duplicates > 0);

    // An id column as text: one word per example.
    let mut body = String::from("id,label\n");
    for i in 0..40 {
        body.push_str(&format!("{i},{}\n", i % 2));
    }
    let path = write(dir.path(), "ids.csv", body.as_bytes());
    let s = load_splits(&DataSource::Files { train: TableSpec::new(&path, "id", "label"), valid: None, test: None }, 0.1, 0.1, 1).unwrap();
    let short = s.warnings.iter().find(|w| matches!(w, DataWarning::ShortTexts { .. })).expect("short-text warning");
    assert!(short.to_string().contains("1.0 words"), "{short}");
}

#[test]
fn profile_markdown_has_counts_lengths_truncation_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.csv", csv_rows(&[("a", 30), ("b", 10)]).as_bytes());
    let s = load_splits(&files(&path), 0.1, 0.1, 1).unwrap();
    let lengths = |n: usize, long: usize| -> Vec<usize> { (0..n).map(|i| if i < long { 16 } else { 5 }).collect() };
    let (tr, va, te) = (lengths(s.train.len(), s.train.len() / 2), lengths(s.valid.len(), 0), lengths(s.test.len(), 1));
    let p = DataProfile::new(&s, Some([&tr, &va, &te]), Some(16));
    assert_eq!(p.splits[0].truncated, Some(0.5));
    assert_eq!(p.splits[1].truncated, Some(0.0));
    assert_eq!(p.splits[0].class_counts, [24, 8]);
    let md = p.to_markdown(Some(&["alpha".to_string(), "beta".to_string()]));
    for needle in ["| alpha | 24 (75.0%) | 3 (75.0%) | 3 (75.0%) |", "| **total** | 32 | 4 | 4 |", "at max_len (16 tokens, truncated)", "| train | ", "50.0%", "0 within train; 0 valid and 0 test"] {
        assert!(md.contains(needle), "lacks {needle:?}:\n{md}");
    }
}

#[test]
fn fixed_files_warn_about_classes_missing_from_test() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", csv_rows(&[("a", 10), ("b", 10), ("c", 10)]).as_bytes());
    let valid = write(dir.path(), "valid.csv", csv_rows(&[("a", 2), ("b", 2), ("c", 2)]).as_bytes());
    let test = write(dir.path(), "test.csv", b"text,label\nsomething entirely new,a\nanother thing new,b\n");
    let src = DataSource::Files { train: spec(&train), valid: Some(spec(&valid)), test: Some(spec(&test)) };
    let s = load_splits(&src, 0.1, 0.1, 1).unwrap();
    let missing: Vec<String> = s.warnings.iter().filter(|w| matches!(w, DataWarning::ClassMissing { .. })).map(ToString::to_string).collect();
    assert_eq!(missing.len(), 1, "{:?}", s.warnings);
    assert!(missing[0].contains("class `c` has no example in the test split"), "{}", missing[0]);
}
