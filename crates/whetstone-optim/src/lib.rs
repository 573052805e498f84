//! Optimisers for tch models with their state owned in Rust, learning-rate schedules and
//! gradient clipping.
//!
//! State is plain data ([`OptimState`]: a step count and named tensors), so it can be written
//! to a checkpoint and restored for a bit-identical resume. The arithmetic follows
//! `torch.optim` so trajectories match PyTorch's.
//!
//! Two lines put it on any `VarStore`:
//!
//! ```
//! # use tch::{nn, Device};
//! # let vs = nn::VarStore::new(Device::Cpu);
//! # let _l = nn::linear(vs.root(), 3, 3, Default::default());
//! let mut opt = whetstone_optim::OptimConfig::default().build(&vs)?;
//! let lr = 3e-4 * whetstone_optim::Schedule::default().factor(10, 1000);
//! # let loss = _l.ws.sum(tch::Kind::Float); loss.backward();
//! opt.step(lr)?;
//! # Ok::<(), whetstone_optim::OptimError>(())
//! ```
//!
//! # Optimisers: transforms, chains, groups, flat buffers
//!
//! - **Transforms** ([`transform`]): optax-style gradient transformations with explicit state
//!   (`init` makes named per-parameter buffers and scalars, `update` turns gradients into
//!   updates). Reusable parts: [`transform::scale_by_adam`] (AMSGrad too),
//!   [`transform::scale_by_rms`], [`transform::scale_by_belief`],
//!   [`transform::scale_by_sign_momentum`] (Lion), [`transform::trace`] (momentum, Nesterov,
//!   dampening), [`transform::add_decayed_weights`] / [`transform::add_l2_decay`],
//!   [`transform::scale_by_trust_ratio`] (LAMB), clipping, and
//!   [`transform::scale_by_learning_rate`] last. [`transform::chain`] composes them and
//!   [`ChainOptimizer`] runs any chain as an [`Optimizer`].
//! - **Named optimisers** are short chains, one per file with a documented `XConfig`: [`Sgd`],
//!   [`Adam`], [`AdamW`], [`NAdam`], [`RAdam`], [`Adagrad`], [`Rmsprop`], [`Adamax`],
//!   [`AdaBelief`], [`Lion`], [`Lamb`], [`Adafactor`]; [`ScheduleFreeAdamW`] keeps its own
//!   state (it sets, rather than adds to, the parameters). Wrappers: [`Lookahead`],
//!   [`Accumulate`], [`SkipNonFinite`]. The torch ones reproduce `torch.optim` to ~1e-11
//!   relative in float64 over 100 steps (`tests/optim_parity.rs`).
//! - **Parameter groups** ([`groups`]): by name pattern ([`name_matches`]: substring, or glob
//!   with `*`), with per-group lr scale / absolute lr, weight decay and betas; no decay for
//!   biases and LayerNorm by default; layer-wise lr decay for Transformer layers.
//!   [`OptimConfig`] exposes all of it to recipes.
//! - **Flat buffers** ([`flat`]): each group's parameters (and gradients, and state) live in
//!   one contiguous buffer per dtype/device/weight decay, the variables being views of it, so a
//!   step is a few whole-buffer kernels; Adam, AdamW and SGD use a one-pass, vectorised CPU
//!   kernel ([`fused`]). State is still saved per parameter name, so checkpoints do not depend
//!   on the layout.
//! - **Kernels** ([`Kernel`], `optim.kernel`): `"whetstone"` (the above) or `"torch-fused"`,
//!   libtorch's fused Adam / AdamW / SGD kernels (CPU and CUDA) through `whetstone-torch-ext`,
//!   on either layout. Same state, same names: checkpoints move between kernels too.
//!
//! # The adaptive optimiser
//!
//! [`Adaptive`] ([`adaptive`], `kind = "adaptive"`) is RAdam with decoupled weight decay and
//! Nesterov momentum plus a per-tensor learning-rate multiplier α ∈ [1/κ, κ] that follows a
//! normalised hypergradient, `log α ← log α + μ·cos(gₜ, dₜ₋₁)` (Baydin et al. 2018): the
//! alignment of each gradient with the previous momentum step. Variance rectification replaces
//! warmup. A second adaptation, off by default since it measured no gain (setting `beta1_min`
//! below `betas.0` turns it on, [`AdaptiveConfig::momentum_adaptive`]), lowers β₁ from β₁max towards β₁min when
//! the gradient keeps pointing against its momentum (a smoothed cos(g, m) < 0: oscillation). The update, with equations and the reason
//! for each part, is in the [`adaptive`] module docs; `reports/optim.md` measures it.

mod accumulate;
mod adabelief;
pub mod adaptive;
mod adaptive_flat;
mod adaptive_kernel;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod adamw_schedule_free;
mod chain_optimizer;
pub mod flat;
pub mod fused;
pub mod groups;
mod kernel;
mod lamb;
mod lion;
mod lookahead;
mod nadam;
mod radam;
mod rmsprop;
mod skip_nonfinite;
pub mod transform;
mod adamw;
mod clip;
mod config;
mod error;
mod init;
mod optimizer;
mod params;
mod schedule;
mod sgd;
mod state;

pub use accumulate::Accumulate;
pub use adabelief::{AdaBelief, AdaBeliefConfig};
pub use adaptive::{Adaptive, AdaptiveConfig, MomentumRule, ScaleByAdaptive};
pub use adafactor::{Adafactor, AdafactorConfig, ScaleByAdafactor};
pub use adagrad::{Adagrad, AdagradConfig, ScaleByAdagrad};
pub use adam::{Adam, AdamConfig};
pub use adamax::{Adamax, AdamaxConfig, ScaleByAdamax};
pub use adamw_schedule_free::{ScheduleFreeAdamW, ScheduleFreeAdamWConfig};
pub use chain_optimizer::ChainOptimizer;
pub use clip::clip_grad_value;
pub use kernel::Kernel;
pub use groups::{layer_decay_scale, param_groups, GroupSpec, Grouped, ParamGroup};
pub use lamb::{Lamb, LambConfig};
pub use lion::{Lion, LionConfig};
pub use lookahead::{Lookahead, LookaheadConfig};
pub use nadam::{NAdam, NAdamConfig, ScaleByNadam};
pub use params::name_matches;
pub use radam::{RAdam, RAdamConfig, ScaleByRadam};
pub use rmsprop::{Rmsprop, RmspropConfig};
pub use skip_nonfinite::{grads_finite, SkipNonFinite};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, grad_norm};
pub use config::{Algorithm, OptimConfig};
pub use error::{OptimError, Result};
pub use init::{apply_init, bert_init, fan_in_fan_out, Assigned, FanMode, Init, InitReport, InitRule, Kaiming, Nonlinearity};
pub use optimizer::Optimizer;
pub use params::{named_params, Param, NO_DECAY};
pub use schedule::{Anneal, OneCycle, Plateau, PlateauConfig, PlateauMode, PlateauState, Schedule, Scheduler, ThresholdMode};
pub use sgd::{Sgd, SgdConfig};
pub use state::OptimState;
