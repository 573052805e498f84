//! The small trait through which structured pruning sees a model's heads and neurons.
//!
//! [`Structured`] and [`LayerUnits`] are defined in `whetstone-models` (a model capability,
//! implemented there for whetstone's Transformer) and re-exported here, so
//! `whetstone_compress::prune::{LayerUnits, Structured}` keep working.

pub use whetstone_models::{LayerUnits, Structured};
