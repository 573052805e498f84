/// Errors from the extension's libtorch calls.
#[derive(Debug, thiserror::Error)]
pub enum ExtError {
    /// libtorch raised a C++ exception; its message (without the C++ backtrace).
    #[error("libtorch ({call}): {message}")]
    Torch {
        /// The entry point that failed.
        call: &'static str,
        /// The exception's message.
        message: String,
    },
    /// A collective or rendezvous of a process group failed or timed out.
    #[error("rank {rank} of {world}: {op} failed: {message}")]
    Collective {
        /// This process's rank.
        rank: usize,
        /// The world size.
        world: usize,
        /// The operation (e.g. `all_reduce`).
        op: String,
        /// What libtorch said.
        message: String,
    },
    /// The arguments were refused before calling libtorch.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ExtError>;
