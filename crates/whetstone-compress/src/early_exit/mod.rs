//! Early exit for the Transformer classifier (DeeBERT, Xin et al. 2020; PABEE, Zhou et al.
//! 2020): an internal classifier after each layer, and inference that stops at the first layer
//! whose prediction a policy accepts, so easy sentences cost fewer layers.
//!
//! * [`ExitHeads`] and [`ExitObjective`]: the internal classifiers and their loss, trained on
//!   the one training loop with the backbone frozen or jointly; validation (best-checkpoint
//!   selection) scores the exits being trained ([`ExitScores`]), not the backbone.
//! * [`ExitPolicy`]: confidence (max probability), entropy, or patience.
//! * [`EarlyExit::forward`]: layer-by-layer inference; [`sweep`]: accuracy, mean exit layer and
//!   measured batch-1 latency per policy.
//!
//! ```
//! use whetstone_compress::{EarlyExit, ExitHeads, ExitPolicy};
//! use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
//! use tch::{nn::VarStore, Device, Tensor};
//! let vs = VarStore::new(Device::Cpu);
//! let cfg = TransformerClassifierConfig { encoder: TransformerConfig { layers: 3, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() }, ..Default::default() };
//! let model = TransformerClassifier::new(&vs.root(), 50, 2, &cfg)?;
//! let exits_vs = VarStore::new(Device::Cpu);
//! let heads = ExitHeads::new(&exits_vs.root(), &model)?;
//! let ee = EarlyExit::new(&model, &heads)?;
//! let ids = Tensor::from_slice(&[2i64, 7, 9, 3]).view([1, 4]);
//! let (_, layer) = ee.forward(&ids, &ids.ones_like(), ExitPolicy::Confidence(0.0))?;
//! assert_eq!(layer, 1);
//! # Ok::<(), whetstone_compress::CompressError>(())
//! ```

mod heads;
mod policy;
mod sweep;

pub use heads::{ExitHeads, ExitObjective, ExitScores};
pub use policy::{EarlyExit, ExitPolicy};
pub use sweep::{sweep, SweepRow};
