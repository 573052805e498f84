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
use crate::profile::DataWarning;
use crate::table::RawExample;
use crate::validate::check_classes;

/// Splits `examples` into train/valid/test, stratified per label.
///
/// For each label its examples are shuffled, `round(n * test_frac)` go to test,
/// `round(n * valid_frac)` to valid and the rest to train — but every class keeps at least
/// one example in each split with a non-zero fraction, and a class too small for that is an
/// error naming it ([`DataError::ClassTooSmall`]); fewer than two classes is an error too.
/// Each split's order is then shuffled. The same input and seed always give the same splits.
pub fn stratified_split(
    examples: Vec<RawExample>,
    valid_frac: f64,
    test_frac: f64,
    seed: u64,
) -> Result<Splits> {
    stratified_split_from(examples, valid_frac, test_frac, seed, "the examples", "label")
}

/// [`stratified_split`] with the examples' origin (a file or dataset) and label column for
/// the error messages.
pub(crate) fn stratified_split_from(
    examples: Vec<RawExample>,
    valid_frac: f64,
    test_frac: f64,
    seed: u64,
    origin: &str,
    column: &str,
) -> Result<Splits> {
    check_fractions(valid_frac, test_frac)?;
    if examples.is_empty() {
        return Err(DataError::InvalidArgument(
            "there are no examples to split".to_string(),
        ));
    }
    check_classes(origin, column, &examples)?;
    let labels = LabelSet::from_labels(examples.iter().map(|e| &e.label));
    let ids = class_ids(&examples, &labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [train_idx, valid_idx, test_idx] =
        stratify(&ids, &labels, [valid_frac, test_frac], &mut rng, origin)?;
    Ok(Splits {
        train: gather(&examples, &ids, &train_idx),
        valid: gather(&examples, &ids, &valid_idx),
        test: gather(&examples, &ids, &test_idx),
        labels,
        warnings: Vec::new(),
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
    let valid = in_order(&valid, &labels, valid_path, "valid")?;
    let test = in_order(&test, &labels, test_path, "test")?;
    let mut warnings = missing_classes(&valid, &labels, valid_path, "valid");
    warnings.extend(missing_classes(&test, &labels, test_path, "test"));
    Ok(Splits {
        train: in_order(&train, &labels, train_path, "train")?,
        valid,
        test,
        labels,
        warnings,
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
    let warnings = missing_classes(&test, &labels, test_path, "test");
    let (train, valid) = carve(&train, &labels, [valid_frac, 0.0], seed, train_path)?;
    Ok(Splits {
        train,
        valid,
        test,
        labels,
        warnings,
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
    let warnings = missing_classes(&valid, &labels, valid_path, "valid");
    let (train, test) = carve(&train, &labels, [0.0, test_frac], seed, train_path)?;
    Ok(Splits {
        train,
        valid,
        test,
        labels,
        warnings,
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

/// The label set of a non-empty training file with at least two classes.
fn train_labels(train: &[RawExample], train_path: &Path) -> Result<LabelSet> {
    if train.is_empty() {
        return Err(DataError::EmptyFile {
            file: train_path.to_path_buf(),
            reason: "the training split has no examples".to_string(),
        });
    }
    check_classes(&train_path.display().to_string(), "label", train)?;
    Ok(LabelSet::from_labels(train.iter().map(|e| &e.label)))
}

/// A [`DataWarning::ClassMissing`] for each training class without an example in `split`.
fn missing_classes(split: &Split, labels: &LabelSet, path: &Path, name: &str) -> Vec<DataWarning> {
    split
        .class_counts(labels.len())
        .iter()
        .zip(&labels.names)
        .filter(|(&n, _)| n == 0)
        .map(|(_, class)| DataWarning::ClassMissing {
            split: name.to_string(),
            class: class.clone(),
            file: path.display().to_string(),
        })
        .collect()
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

/// Splits `examples` (all labels known) into (rest, carved): `fracs` is `[valid, test]` with
/// one of them zero, and the carved part is the non-zero one.
fn carve(examples: &[RawExample], labels: &LabelSet, fracs: [f64; 2], seed: u64, origin: &Path) -> Result<(Split, Split)> {
    let ids = class_ids(examples, labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [rest, valid, test] = stratify(&ids, labels, fracs, &mut rng, &origin.display().to_string())?;
    let carved = if fracs[0] > 0.0 { valid } else { test };
    Ok((gather(examples, &ids, &rest), gather(examples, &ids, &carved)))
}

/// How many of a class's `n` examples go to (valid, test): `round(n * frac)`, but at least one
/// for a non-zero fraction, always leaving one for train; `None` when `n` is too small for that.
pub(crate) fn class_allocation(n: usize, fracs: [f64; 2]) -> Option<(usize, usize)> {
    let [valid_frac, test_frac] = fracs;
    let need_valid = usize::from(valid_frac > 0.0);
    let need_test = usize::from(test_frac > 0.0);
    if n < 1 + need_valid + need_test {
        return None;
    }
    let want = |f: f64| (n as f64 * f).round() as usize;
    let n_test = want(test_frac).max(need_test).min(n - 1 - need_valid);
    let n_valid = want(valid_frac).max(need_valid).min(n - 1 - n_test);
    Some((n_valid, n_test))
}

/// Index sets `[train, valid, test]` for class ids in `0..labels.len()`; `fracs` is
/// `[valid, test]`. Each returned set is shuffled.
fn stratify(
    ids: &[i64],
    labels: &LabelSet,
    fracs: [f64; 2],
    rng: &mut ChaCha8Rng,
    origin: &str,
) -> Result<[Vec<usize>; 3]> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
    for (i, &c) in ids.iter().enumerate() {
        if let Some(members) = usize::try_from(c).ok().and_then(|c| by_class.get_mut(c)) {
            members.push(i);
        }
    }
    let mut out: [Vec<usize>; 3] = Default::default();
    for (class, mut members) in by_class.into_iter().enumerate() {
        members.shuffle(rng);
        let n = members.len();
        let Some((n_valid, n_test)) = class_allocation(n, fracs) else {
            let needed = match (fracs[0] > 0.0, fracs[1] > 0.0) {
                (true, true) => "train, valid and test (at least one example each, so 3)",
                (true, false) => "train and valid (at least one example each, so 2)",
                (false, true) => "train and test (at least one example each, so 2)",
                (false, false) => "train",
            };
            return Err(DataError::ClassTooSmall {
                source_name: origin.to_string(),
                class: labels.names.get(class).cloned().unwrap_or_default(),
                n,
                needed: needed.to_string(),
            });
        };
        out[2].extend_from_slice(&members[..n_test]);
        out[1].extend_from_slice(&members[n_test..n_test + n_valid]);
        out[0].extend_from_slice(&members[n_test + n_valid..]);
    }
    for part in &mut out {
        part.shuffle(rng);
    }
    Ok(out)
}

/// The split made of `examples[idx]`, in `idx` order.
fn gather(examples: &[RawExample], ids: &[i64], idx: &[usize]) -> Split {
    Split {
        texts: idx.iter().map(|&i| examples[i].text.clone()).collect(),
        labels: idx.iter().map(|&i| ids[i]).collect(),
    }
}
