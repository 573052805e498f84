//! Turning raw examples into seeded, stratified train/valid/test splits.
//!
//! Stratifying per label keeps rare classes (642 spam among 4,862 SMS) represented in
//! every split in their true proportion; seeding with ChaCha8 makes a split a pure
//! function of (data, fractions, seed) on every platform, so runs are comparable.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{LabelSet, Split, Splits};
use crate::error::{DataError, Result};
use crate::table::RawExample;

/// Splits `examples` into train/valid/test, stratified per label.
///
/// For each label its examples are shuffled, `round(n * test_frac)` go to test,
/// `round(n * valid_frac)` to valid and the rest to train; each split's order is then
/// shuffled. The same input and seed always give the same splits.
pub fn stratified_split(
    examples: Vec<RawExample>,
    valid_frac: f64,
    test_frac: f64,
    seed: u64,
) -> Result<Splits> {
    check_fractions(valid_frac, test_frac)?;
    if examples.is_empty() {
        return Err(DataError::InvalidArgument(
            "there are no examples to split".to_string(),
        ));
    }
    let labels = LabelSet::from_labels(examples.iter().map(|e| &e.label));
    let ids = class_ids(&examples, &labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [train_idx, valid_idx, test_idx] =
        stratify(&ids, labels.len(), [valid_frac, test_frac], &mut rng);
    Ok(Splits {
        train: gather(&examples, &ids, &train_idx),
        valid: gather(&examples, &ids, &valid_idx),
        test: gather(&examples, &ids, &test_idx),
        labels,
    })
}

/// Builds splits from three separate files, keeping each file's order.
///
/// The label set comes from the training file only: a class the model never sees in
/// training cannot be predicted, so a label that occurs only in valid or test is an error
/// naming the label, file and line.
pub fn from_files(
    train: Vec<RawExample>,
    valid: Vec<RawExample>,
    test: Vec<RawExample>,
    train_path: &Path,
    valid_path: &Path,
    test_path: &Path,
) -> Result<Splits> {
    let labels = train_labels(&train, train_path)?;
    Ok(Splits {
        train: in_order(&train, &labels, train_path, "train")?,
        valid: in_order(&valid, &labels, valid_path, "valid")?,
        test: in_order(&test, &labels, test_path, "test")?,
        labels,
    })
}

/// Builds splits from a training and a test file, carving a stratified validation split
/// of `valid_frac` out of the training file.
pub fn from_train_test(
    train: Vec<RawExample>,
    test: Vec<RawExample>,
    valid_frac: f64,
    seed: u64,
    train_path: &Path,
    test_path: &Path,
) -> Result<Splits> {
    check_fractions(valid_frac, 0.0)?;
    let labels = train_labels(&train, train_path)?;
    let test = in_order(&test, &labels, test_path, "test")?;
    let (train, valid) = carve(&train, &labels, valid_frac, seed);
    Ok(Splits {
        train,
        valid,
        test,
        labels,
    })
}

/// Builds splits from a training and a validation file, carving a stratified test split
/// of `test_frac` out of the training file.
pub fn from_train_valid(
    train: Vec<RawExample>,
    valid: Vec<RawExample>,
    test_frac: f64,
    seed: u64,
    train_path: &Path,
    valid_path: &Path,
) -> Result<Splits> {
    check_fractions(0.0, test_frac)?;
    let labels = train_labels(&train, train_path)?;
    let valid = in_order(&valid, &labels, valid_path, "valid")?;
    let (train, test) = carve(&train, &labels, test_frac, seed);
    Ok(Splits {
        train,
        valid,
        test,
        labels,
    })
}

/// Rejects fractions that would leave nothing (or less than nothing) for training.
fn check_fractions(valid_frac: f64, test_frac: f64) -> Result<()> {
    for (name, f) in [("valid", valid_frac), ("test", test_frac)] {
        if !(0.0..1.0).contains(&f) {
            return Err(DataError::InvalidArgument(format!(
                "{name} fraction must be in [0, 1), got {f}"
            )));
        }
    }
    if valid_frac + test_frac >= 1.0 {
        return Err(DataError::InvalidArgument(format!(
            "valid fraction {valid_frac} + test fraction {test_frac} must be below 1 to leave training data"
        )));
    }
    Ok(())
}

/// The label set of a non-empty training file.
fn train_labels(train: &[RawExample], train_path: &Path) -> Result<LabelSet> {
    if train.is_empty() {
        return Err(DataError::EmptyFile {
            file: train_path.to_path_buf(),
            reason: "the training split has no examples".to_string(),
        });
    }
    Ok(LabelSet::from_labels(train.iter().map(|e| &e.label)))
}

/// Class ids of examples whose labels are all in `labels` by construction.
fn class_ids(examples: &[RawExample], labels: &LabelSet) -> Vec<i64> {
    examples
        .iter()
        .map(|e| labels.id(&e.label).unwrap_or(-1))
        .collect()
}

/// Converts examples in file order, failing on a label outside `labels`.
fn in_order(examples: &[RawExample], labels: &LabelSet, path: &Path, split: &str) -> Result<Split> {
    let mut out = Split::default();
    for e in examples {
        let id = labels.id(&e.label).ok_or_else(|| DataError::UnknownLabel {
            label: e.label.clone(),
            file: path.to_path_buf(),
            line: e.line,
            split: split.to_string(),
            known: labels.names.clone(),
        })?;
        out.texts.push(e.text.clone());
        out.labels.push(id);
    }
    Ok(out)
}

/// Splits `examples` (all labels known) into (rest, carved) with `frac` stratified.
fn carve(examples: &[RawExample], labels: &LabelSet, frac: f64, seed: u64) -> (Split, Split) {
    let ids = class_ids(examples, labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [rest, carved, _] = stratify(&ids, labels.len(), [frac, 0.0], &mut rng);
    (
        gather(examples, &ids, &rest),
        gather(examples, &ids, &carved),
    )
}

/// Index sets `[train, valid, test]` for class ids in `0..n_classes`; `fracs` is
/// `[valid, test]`. Each returned set is shuffled.
fn stratify(
    ids: &[i64],
    n_classes: usize,
    fracs: [f64; 2],
    rng: &mut ChaCha8Rng,
) -> [Vec<usize>; 3] {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &c) in ids.iter().enumerate() {
        if let Some(members) = usize::try_from(c).ok().and_then(|c| by_class.get_mut(c)) {
            members.push(i);
        }
    }
    let [valid_frac, test_frac] = fracs;
    let mut out: [Vec<usize>; 3] = Default::default();
    for mut members in by_class {
        members.shuffle(rng);
        let n = members.len();
        let n_test = ((n as f64 * test_frac).round() as usize).min(n);
        let n_valid = ((n as f64 * valid_frac).round() as usize).min(n - n_test);
        out[2].extend_from_slice(&members[..n_test]);
        out[1].extend_from_slice(&members[n_test..n_test + n_valid]);
        out[0].extend_from_slice(&members[n_test + n_valid..]);
    }
    for part in &mut out {
        part.shuffle(rng);
    }
    out
}

/// The split made of `examples[idx]`, in `idx` order.
fn gather(examples: &[RawExample], ids: &[i64], idx: &[usize]) -> Split {
    Split {
        texts: idx.iter().map(|&i| examples[i].text.clone()).collect(),
        labels: idx.iter().map(|&i| ids[i]).collect(),
    }
}
