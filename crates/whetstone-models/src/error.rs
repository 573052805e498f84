/// Errors raised while building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A `--device` string could not be parsed or the device is unavailable.
    #[error("invalid device `{0}`: expected cpu, cuda, cuda:N or auto")]
    Device(String),
    /// A checkpoint does not fit the model.
    #[error("checkpoint {path} does not match the model:\n{details}")]
    Mismatch { path: String, details: String },
    /// A checkpoint file cannot be read as safetensors (truncated, damaged, or another format).
    #[error("checkpoint {path} is not a readable safetensors file (truncated or damaged?): {details}")]
    Corrupt { path: String, details: String },
    /// A pretrained checkpoint folder is incomplete or its `config.json` is unusable.
    #[error("pretrained checkpoint {path}: {message}")]
    Pretrained { path: String, message: String },
    /// A strategy needs a capability (see [`crate::capability`]) the model does not have.
    #[error("{needed_by} needs a model with {capability}; a {model} model does not provide it")]
    Capability {
        /// The model's [`crate::TextClassifier::kind`].
        model: &'static str,
        /// What is missing, e.g. "input embeddings (embed / forward_embedded)".
        capability: &'static str,
        /// The strategy or step that needs it, e.g. "FGM".
        needed_by: String,
    },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
