//! Seeded stratified splitting.

use std::collections::BTreeMap;
use std::path::Path;

use whetstone_data::{from_train_test, stratified_split, DataError, RawExample, Splits};

/// 300 "a", 100 "b", 17 "c" examples with unique texts.
fn examples() -> Vec<RawExample> {
    let mut out = Vec::new();
    for (label, n) in [("a", 300), ("b", 100), ("c", 17)] {
        for i in 0..n {
            out.push(RawExample {
                text: format!("{label}-{i}"),
                label: label.into(),
                line: out.len() + 2,
            });
        }
    }
    out
}

fn all_texts(s: &Splits) -> Vec<String> {
    let mut v: Vec<String> = [&s.train, &s.valid, &s.test]
        .iter()
        .flat_map(|p| p.texts.iter().cloned())
        .collect();
    v.sort();
    v
}

#[test]
fn proportions_are_stratified_within_one() {
    let s = stratified_split(examples(), 0.1, 0.2, 7).unwrap();
    assert_eq!(s.labels.names, ["a", "b", "c"]);
    for (class, n) in [300usize, 100, 17].into_iter().enumerate() {
        let test = s.test.class_counts(3)[class] as f64;
        let valid = s.valid.class_counts(3)[class] as f64;
        assert!(
            (test - n as f64 * 0.2).abs() <= 1.0,
            "class {class}: test {test}"
        );
        assert!(
            (valid - n as f64 * 0.1).abs() <= 1.0,
            "class {class}: valid {valid}"
        );
    }
    // Labels stay attached to their texts.
    for split in [&s.train, &s.valid, &s.test] {
        for (t, &l) in split.texts.iter().zip(&split.labels) {
            assert_eq!(s.labels.name(l).unwrap(), &t[..1]);
        }
    }
}

#[test]
fn no_overlap_and_union_is_everything() {
    let s = stratified_split(examples(), 0.1, 0.1, 1).unwrap();
    let mut expected: Vec<String> = examples().into_iter().map(|e| e.text).collect();
    expected.sort();
    let got = all_texts(&s);
    assert_eq!(got, expected); // sorted equality with the same length implies no duplicates
    assert_eq!(s.train.len() + s.valid.len() + s.test.len(), 417);
}

#[test]
fn deterministic_per_seed() {
    let a = stratified_split(examples(), 0.1, 0.1, 42).unwrap();
    let b = stratified_split(examples(), 0.1, 0.1, 42).unwrap();
    let c = stratified_split(examples(), 0.1, 0.1, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.test.texts, c.test.texts);
    // Order within a split is shuffled, not file order.
    let mut sorted = a.train.texts.clone();
    sorted.sort();
    assert_ne!(a.train.texts, sorted);
}

#[test]
fn bad_fractions_are_rejected() {
    for (v, t) in [(-0.1, 0.1), (0.1, 1.0), (0.6, 0.5), (f64::NAN, 0.1)] {
        let err = stratified_split(examples(), v, t, 0).unwrap_err();
        assert!(
            matches!(err, DataError::InvalidArgument(_)),
            "{v},{t}: {err:?}"
        );
    }
    assert!(stratified_split(Vec::new(), 0.1, 0.1, 0).is_err());
}

#[test]
fn train_test_carves_stratified_valid() {
    let test = vec![RawExample {
        text: "t".into(),
        label: "b".into(),
        line: 2,
    }];
    let s = from_train_test(
        examples(),
        test,
        0.1,
        3,
        Path::new("train.csv"),
        Path::new("test.csv"),
    )
    .unwrap();
    assert_eq!(s.test.texts, ["t"]);
    assert_eq!(s.valid.class_counts(3), [30, 10, 2]);
    assert_eq!(s.train.len() + s.valid.len(), 417);
    let counts: BTreeMap<i64, usize> = s.train.labels.iter().fold(BTreeMap::new(), |mut m, &l| {
        *m.entry(l).or_default() += 1;
        m
    });
    assert_eq!(counts[&0], 270);
}
