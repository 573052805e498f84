//! Pruning methods by name, as a CLI or recipe gives them (`--method …`).

use crate::error::{CompressError, Result};
use std::str::FromStr;

/// A pruning method.
///
/// ```
/// use whetstone_compress::PruneMethod;
/// assert_eq!("2:4".parse::<PruneMethod>()?, PruneMethod::NM { n: 2, m: 4 });
/// assert_eq!("movement-hard".parse::<PruneMethod>()?, PruneMethod::MovementHard);
/// let e = "optimal-brain-surgeon".parse::<PruneMethod>().unwrap_err().to_string();
/// assert!(e.contains("unknown pruning method") && e.contains("magnitude"), "{e}");
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMethod {
    /// Unstructured magnitude pruning ([`crate::magnitude_masks`], [`crate::Masked`]).
    Magnitude,
    /// Hard movement pruning ([`crate::Criterion::MovementHard`]).
    MovementHard,
    /// Soft movement pruning ([`crate::Criterion::MovementSoft`]).
    MovementSoft,
    /// Second-order saliency w²·F/2 with a diagonal empirical Fisher
    /// ([`crate::Criterion::Fisher`], oBERT-style).
    Fisher,
    /// Semi-structured N:M ([`crate::nm_masks`]).
    NM {
        /// Weights kept per group.
        n: i64,
        /// Group size.
        m: i64,
    },
    /// Heads and neurons ranked by weight norm ([`crate::magnitude_importance`]).
    StructuredMagnitude,
    /// Heads and neurons ranked by |gradient × weight| ([`crate::taylor_importance`]).
    StructuredTaylor,
}

const METHODS: &str = "magnitude, movement-hard, movement-soft, fisher, N:M (e.g. 2:4), structured-magnitude, structured-taylor";

impl FromStr for PruneMethod {
    type Err = CompressError;
    fn from_str(s: &str) -> Result<Self> {
        let unknown = || CompressError::Unknown { what: "pruning method", name: s.into(), expected: METHODS.into() };
        Ok(match s {
            "magnitude" => PruneMethod::Magnitude,
            "movement-hard" | "movement" => PruneMethod::MovementHard,
            "movement-soft" => PruneMethod::MovementSoft,
            "fisher" | "obert" => PruneMethod::Fisher,
            "structured-magnitude" | "structured" => PruneMethod::StructuredMagnitude,
            "structured-taylor" => PruneMethod::StructuredTaylor,
            _ => {
                let (n, m) = s.split_once(':').ok_or_else(unknown)?;
                let (n, m) = (n.parse::<i64>().map_err(|_| unknown())?, m.parse::<i64>().map_err(|_| unknown())?);
                if !(0 < n && n < m) {
                    return Err(CompressError::Config(format!("N:M sparsity needs 0 < N < M, got {s}")));
                }
                PruneMethod::NM { n, m }
            }
        })
    }
}

impl std::fmt::Display for PruneMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PruneMethod::Magnitude => f.write_str("magnitude"),
            PruneMethod::MovementHard => f.write_str("movement-hard"),
            PruneMethod::MovementSoft => f.write_str("movement-soft"),
            PruneMethod::Fisher => f.write_str("fisher"),
            PruneMethod::NM { n, m } => write!(f, "{n}:{m}"),
            PruneMethod::StructuredMagnitude => f.write_str("structured-magnitude"),
            PruneMethod::StructuredTaylor => f.write_str("structured-taylor"),
        }
    }
}
