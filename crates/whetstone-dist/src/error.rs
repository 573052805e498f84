/// Errors of data-parallel training.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A torchrun environment variable is missing or malformed.
    #[error("data parallelism: {0}")]
    Env(String),
    /// A collective failed or timed out; `missing` names the ranks that did not answer the
    /// liveness probe that followed (they died or hung).
    #[error("rank {rank} of {world}: {op} failed: {message}{}", missing_text(.missing))]
    Peer { rank: usize, world: usize, op: String, message: String, missing: Missing },
    /// The replicas disagree about something that must be the same on all of them.
    #[error("rank {rank} of {world}: the {what} is not the same on every rank ({detail}); every process must run the same recipe on the same data")]
    Mismatch { rank: usize, world: usize, what: String, detail: String },
    /// Starting or watching local worker processes failed.
    #[error("launch: {0}")]
    Launch(String),
    /// An error of the libtorch extension (argument checks).
    #[error(transparent)]
    Ext(#[from] whetstone_torch_ext::ExtError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Which ranks a failed collective's liveness probe could not reach.
#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    /// Not probed (the failure was not a lost peer).
    Unknown,
    /// Every rank answered (the failure has another cause).
    None,
    /// These ranks did not answer within the probe window.
    Ranks(Vec<usize>, f64),
    /// The rendezvous store, which rank 0 serves, is unreachable: rank 0 is gone.
    StoreHost,
}

fn missing_text(m: &Missing) -> String {
    match m {
        Missing::Unknown | Missing::None => String::new(),
        Missing::Ranks(r, s) => {
            let list = r.iter().map(|r| format!("rank {r}")).collect::<Vec<_>>().join(", ");
            format!(" — no answer from {list} within {s:.0} s: that process died or hung")
        }
        Missing::StoreHost => " — rank 0 (which serves the rendezvous store) is gone: that process died or its machine is unreachable".into(),
    }
}

impl From<DistError> for whetstone_train::TrainError {
    fn from(e: DistError) -> Self {
        whetstone_train::TrainError::Strategy(Box::new(e))
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DistError>;
