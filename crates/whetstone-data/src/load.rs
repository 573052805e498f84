//! One entry point from a recipe's data section to ready [`Splits`].

use serde::{Deserialize, Serialize};

use crate::cache::{cache_dir, obtain};
use crate::dataset::Splits;
use crate::error::{DataError, Result};
use crate::manifest::Manifest;
use crate::profile::split_warnings;
use crate::split::{from_files, from_train_test, from_train_valid, stratified_split_from};
use crate::table::{read_table_with, RawExample, ReadOptions, TableSpec};
use crate::validate::check_classes;

/// Where a task's data comes from.
// Built once per run from a recipe, so the size gap between variants costs nothing and
// keeping `TableSpec`s unboxed keeps the enum easy to construct and match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataSource {
    /// A dataset listed in the builtin manifest, fetched into [`cache_dir`] on first use (or
    /// found there, without the `fetch` feature).
    Named {
        /// The manifest name, e.g. `rotten-tomatoes`.
        name: String,
    },
    /// The user's own files. Missing valid/test splits are carved from train, stratified.
    Files {
        /// Training data (always required).
        train: TableSpec,
        /// Validation data, if the user has a fixed one.
        valid: Option<TableSpec>,
        /// Test data, if the user has a fixed one.
        test: Option<TableSpec>,
    },
}

/// How [`load_splits_with`] splits and checks the data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Share of the data carved out for validation when no file gives it.
    pub valid_frac: f64,
    /// Share carved out for testing when no file gives it.
    pub test_frac: f64,
    /// Seed of the carving.
    pub seed: u64,
    /// Drop rows with a missing, empty, null or NaN-like label instead of failing (the count
    /// is reported as a warning); see [`ReadOptions`].
    pub drop_bad_labels: bool,
}

impl LoadOptions {
    /// Options with the given fractions and seed, refusing bad labels.
    pub fn new(valid_frac: f64, test_frac: f64, seed: u64) -> Self {
        LoadOptions { valid_frac, test_frac, seed, drop_bad_labels: false }
    }
}

/// Loads the splits for `src`, refusing bad labels; see [`load_splits_with`].
///
/// `valid_frac` and `test_frac` apply only to splits that have to be carved: a named
/// dataset or a lone training file is split three ways; with train+test only valid is
/// carved from train, with train+valid only test; with all three files the fractions
/// and seed are unused.
pub fn load_splits(src: &DataSource, valid_frac: f64, test_frac: f64, seed: u64) -> Result<Splits> {
    load_splits_with(src, &LoadOptions::new(valid_frac, test_frac, seed))
}

/// Loads and validates the splits for `src`.
///
/// Every file is read with [`read_table_with`] (so bad labels, repeated columns, the same
/// column for text and label, unterminated quotes and wrong encodings fail with file and
/// line); the training data must hold at least two classes; each class must be large enough
/// to appear in every carved split; no split may end up empty. What does not stop the run —
/// rows dropped, label spellings merged, extreme imbalance, texts shared between train and
/// valid/test, very short texts — is returned in [`Splits::warnings`].
pub fn load_splits_with(src: &DataSource, opts: &LoadOptions) -> Result<Splits> {
    let read_opts = ReadOptions { drop_bad_labels: opts.drop_bad_labels };
    let mut warnings = Vec::new();
    let mut read = |spec: &TableSpec| -> Result<Vec<RawExample>> {
        let table = read_table_with(spec, &read_opts)?;
        warnings.extend(table.warnings);
        Ok(table.rows)
    };
    let (valid_frac, test_frac, seed) = (opts.valid_frac, opts.test_frac, opts.seed);
    let mut splits = match src {
        DataSource::Named { name } => {
            let manifest = Manifest::builtin()?;
            let entry = manifest.get(name)?;
            let file = obtain(entry, &cache_dir())?;
            let spec = entry.table_spec(file)?;
            let examples = read(&spec)?;
            let origin = format!("dataset `{name}` ({})", spec.path.display());
            stratified_split_from(examples, valid_frac, test_frac, seed, &origin, &spec.label_col)?
        }
        DataSource::Files { train, valid, test } => {
            let train_rows = read(train)?;
            check_classes(&train.path.display().to_string(), &train.label_col, &train_rows)?;
            let origin = train.path.display().to_string();
            match (valid, test) {
                (None, None) => stratified_split_from(train_rows, valid_frac, test_frac, seed, &origin, &train.label_col)?,
                (Some(v), Some(t)) => {
                    let (v_rows, t_rows) = (read(v)?, read(t)?);
                    from_files(train_rows, v_rows, t_rows, &train.path, &v.path, &t.path)?
                }
                (None, Some(t)) => {
                    let t_rows = read(t)?;
                    from_train_test(train_rows, t_rows, valid_frac, seed, &train.path, &t.path)?
                }
                (Some(v), None) => {
                    let v_rows = read(v)?;
                    from_train_valid(train_rows, v_rows, test_frac, seed, &train.path, &v.path)?
                }
            }
        }
    };
    check_not_empty(&splits, src, opts)?;
    warnings.append(&mut splits.warnings);
    warnings.extend(split_warnings(&splits));
    splits.warnings = warnings;
    Ok(splits)
}

/// No split may be empty: training needs examples, validation selects the checkpoint and the
/// test split is what the run reports.
fn check_not_empty(splits: &Splits, src: &DataSource, opts: &LoadOptions) -> Result<()> {
    let (has_valid_file, has_test_file) = match src {
        DataSource::Files { valid, test, .. } => (valid.is_some(), test.is_some()),
        DataSource::Named { .. } => (false, false),
    };
    for (name, split, frac, has_file, flag) in [
        ("valid", &splits.valid, opts.valid_frac, has_valid_file, "--valid"),
        ("test", &splits.test, opts.test_frac, has_test_file, "--test"),
        ("train", &splits.train, 1.0, true, "--data"),
    ] {
        if !split.is_empty() {
            continue;
        }
        let (why, fix) = if has_file {
            (format!("its file has no examples"), format!("check the file given with {flag}"))
        } else {
            (
                format!("data.{name}_fraction is {frac} and no {name} file is given"),
                format!("set a fraction above 0 (--set data.{name}_fraction=0.1) or give a fixed {name} file with {flag} FILE"),
            )
        };
        return Err(DataError::EmptySplit { split: name.to_string(), why, fix });
    }
    Ok(())
}
