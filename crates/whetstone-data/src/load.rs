//! One entry point from a recipe's data section to ready [`Splits`].

use serde::{Deserialize, Serialize};

use crate::dataset::Splits;
use crate::error::Result;
use crate::cache::{cache_dir, obtain};
use crate::manifest::Manifest;
use crate::split::{from_files, from_train_test, from_train_valid, stratified_split};
use crate::table::{read_table, TableSpec};

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

/// Loads the splits for `src`.
///
/// `valid_frac` and `test_frac` apply only to splits that have to be carved: a named
/// dataset or a lone training file is split three ways; with train+test only valid is
/// carved from train, with train+valid only test; with all three files the fractions
/// and seed are unused.
pub fn load_splits(src: &DataSource, valid_frac: f64, test_frac: f64, seed: u64) -> Result<Splits> {
    match src {
        DataSource::Named { name } => {
            let manifest = Manifest::builtin()?;
            let entry = manifest.get(name)?;
            let file = obtain(entry, &cache_dir())?;
            let examples = read_table(&entry.table_spec(file)?)?;
            stratified_split(examples, valid_frac, test_frac, seed)
        }
        DataSource::Files { train, valid, test } => {
            let train_rows = read_table(train)?;
            match (valid, test) {
                (None, None) => stratified_split(train_rows, valid_frac, test_frac, seed),
                (Some(v), Some(t)) => from_files(
                    train_rows,
                    read_table(v)?,
                    read_table(t)?,
                    &train.path,
                    &v.path,
                    &t.path,
                ),
                (None, Some(t)) => from_train_test(
                    train_rows,
                    read_table(t)?,
                    valid_frac,
                    seed,
                    &train.path,
                    &t.path,
                ),
                (Some(v), None) => from_train_valid(
                    train_rows,
                    read_table(v)?,
                    test_frac,
                    seed,
                    &train.path,
                    &v.path,
                ),
            }
        }
    }
}
