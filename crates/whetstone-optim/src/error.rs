/// Errors from building or restoring an optimiser.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter is out of range.
    #[error("invalid optimiser setting: {0}")]
    Config(String),
    /// Saved state does not fit the parameters.
    #[error("optimiser state does not match the parameters: {0}")]
    State(String),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// libtorch's fused optimiser kernels (`optim.kernel = "torch-fused"`) refused their
    /// inputs or failed.
    #[error("torch-fused kernel: {0}")]
    Kernel(#[from] whetstone_torch_ext::ExtError),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, OptimError>;
