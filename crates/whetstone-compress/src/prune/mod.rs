//! Pruning: unstructured (magnitude, movement), semi-structured N:M, and structured (heads and
//! neurons, physically removed).
//!
//! * [`MaskSet`] holds named 0/1 masks, applied in place and saved as safetensors.
//! * [`magnitude_masks`] / [`top_score_masks`]: one-shot masks, global or per layer.
//! * [`Masked`] wraps any optimiser to keep masks applied after every step, and to prune
//!   gradually on a [`CubicSchedule`] by magnitude or movement ([`Criterion`]).
//! * [`nm_masks`]: 2:4 and other N:M patterns.
//! * [`structured`]: [`Importance`] by magnitude or Taylor, a [`StructuredPlan`], its masks,
//!   and [`prune_structured`] to a smaller dense model.

mod magnitude;
mod mask;
mod masked;
mod method;
mod nm;
mod schedule;
mod structure;
pub mod structured;

pub use magnitude::{magnitude_masks, top_score_masks, Scope};
pub use mask::{MaskSet, MASK_PREFIX};
pub use masked::{Criterion, GradualPruning, Masked, SCORE_PREFIX};
pub use method::PruneMethod;
pub use nm::{is_nm_sparse, nm_masks};
pub use schedule::CubicSchedule;
pub use structure::{LayerUnits, Structured};
pub use structured::{magnitude_importance, prune_structured, taylor_importance, Importance, StructuredPlan, TaylorImportance};
