//! The crate's single error type.
//!
//! Every variant that touches the filesystem carries the offending path, so a
//! failure deep inside a training run can be traced to a concrete file without
//! re-running anything.

use std::path::PathBuf;

/// Errors produced by `whetstone-eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// `labels` and `preds` passed to a metric had different lengths.
    #[error("length mismatch: {labels} labels but {preds} predictions")]
    LengthMismatch {
        /// Number of gold labels.
        labels: usize,
        /// Number of predictions.
        preds: usize,
    },

    /// A metric was asked to summarise zero examples; every ratio would be 0/0.
    #[error("cannot compute metrics over an empty set of examples")]
    Empty,

    /// No class names were given, so the label space is empty.
    #[error("label_names is empty: at least one class is required")]
    NoClasses,

    /// A gold label or prediction fell outside `0..n_classes`.
    #[error("{which}[{index}] = {value} is outside the class range 0..{n_classes}")]
    ClassOutOfRange {
        /// `"labels"` or `"preds"`.
        which: &'static str,
        /// Position of the bad value.
        index: usize,
        /// The bad value.
        value: i64,
        /// Number of classes (length of `label_names`).
        n_classes: usize,
    },

    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory being accessed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON line could not be parsed (`line` is 1-based).
    #[error("invalid JSON in {} at line {line}: {source}", path.display())]
    JsonLine {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line number of the bad record.
        line: usize,
        /// Underlying parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A record could not be serialised for writing to `path`.
    #[error("cannot serialise record for {}: {source}", path.display())]
    Serialize {
        /// Destination file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// Rendering a plot to `path` failed (plotters' error types are generic
    /// over the backend, so the message is captured as text).
    #[error("failed to draw plot {}: {message}", path.display())]
    Plot {
        /// Output image.
        path: PathBuf,
        /// Backend error message.
        message: String,
    },

    /// The embedded DejaVu font could not be registered with plotters.
    #[error("embedded font could not be registered with plotters")]
    Font,
}
