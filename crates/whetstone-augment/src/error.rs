//! The one error type of whetstone-augment.

use std::path::PathBuf;

/// Everything that can go wrong while loading resources or augmenting text.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A resource file (WordNet, a vocabulary, …) is malformed at a given line.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// A configuration value is out of range; `field` names it.
    #[error("{field}: {message}")]
    Config {
        /// The offending field, e.g. `alpha_sr`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An augmentation method name that is not known.
    #[error("unknown augmentation method `{name}` (known: {})", known.join(", "))]
    UnknownMethod {
        /// The name given.
        name: String,
        /// The known names.
        known: Vec<String>,
    },
    /// A safetensors checkpoint that cannot serve as an embedding table.
    #[error("{path}: {message}")]
    Embeddings {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A caller-supplied argument or callback result that does not fit.
    #[error("{0}")]
    InvalidArgument(String),
    /// A whetstone-data error (tokenising, batching) in the `torch` feature.
    #[cfg(feature = "torch")]
    #[error(transparent)]
    Data(#[from] whetstone_data::DataError),
}

impl AugmentError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AugmentError::Io { path: path.into(), source }
    }

    /// A configuration error naming `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        AugmentError::Config { field: field.into(), message: message.into() }
    }
}

/// `Result` with [`AugmentError`].
pub type Result<T, E = AugmentError> = std::result::Result<T, E>;
