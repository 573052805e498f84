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

// In-place tch ops (`f_add_`, …) return a handle to the tensor they changed; it is not needed.
#![allow(unused_must_use)]

mod adamw;
mod clip;
mod config;
mod error;
mod optimizer;
mod params;
mod schedule;
mod sgd;
mod state;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, grad_norm};
pub use config::{Algorithm, OptimConfig};
pub use error::{OptimError, Result};
pub use optimizer::Optimizer;
pub use params::{named_params, Param, NO_DECAY};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};
pub use state::OptimState;
