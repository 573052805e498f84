//! Data-parallel training for whetstone on libtorch's own distributed engine, c10d: the
//! TCPStore rendezvous and the Gloo (CPU) or NCCL (CUDA) process groups that PyTorch DDP runs
//! on, bound by whetstone-torch-ext. Launched the torchrun way.
//!
//! Data parallelism is not a second training loop: it is [`DataParallel`], an implementation of
//! [`whetstone_train::Replicas`] that the one loop calls (rank 0's state broadcast at the start,
//! gradients averaged each step, rank 0 alone writing), plus a sharded batch source
//! ([`whetstone_data::ShardedSource`]: every rank derives the same global plan from
//! `(seed, epoch)` and takes its own share of each global batch).
//!
//! - [`Rendezvous`]: torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//!   `MASTER_PORT`, plus `WHETSTONE_DIST_TIMEOUT` (default 60 s).
//! - [`DataParallel`]: joins the run; gradients are all-reduced in buckets over the optimiser's
//!   flat gradient buffers, weighted by each rank's examples. A failed or timed-out collective
//!   is an error naming this rank, the operation and the rank that stopped answering.
//! - [`LocalLaunch`]: `whetstone train --nproc N`, N workers on this machine.
//!
//! ```no_run
//! # fn demo(model: &dyn whetstone_models::TextClassifier, vs: &tch::nn::VarStore, train: &whetstone_data::Encoded, valid: &whetstone_data::Encoded) -> Result<(), Box<dyn std::error::Error>> {
//! use whetstone_data::{BucketedSource, ShardedSource};
//! use whetstone_dist::{DataParallel, Rendezvous};
//! use whetstone_train::Trainer;
//! let rdv = Rendezvous::from_env()?.expect("launched with WORLD_SIZE > 1");
//! let mut dp = DataParallel::join(&rdv, vs.device())?;
//! // Global batches of world × 32 examples; this rank takes its share of each.
//! let global = BucketedSource::new(train, 32 * rdv.world, 50);
//! let shard = ShardedSource::new(&global, rdv.rank, rdv.world)?;
//! let optim = whetstone_optim::OptimConfig::default().build(vs)?;
//! let mut trainer = Trainer::new(model, vs, optim, 1e-3, "runs/dp").replicas(&mut dp);
//! trainer.fit(&shard, valid, false)?;
//! # Ok(()) }
//! ```

mod error;
mod launch;
mod parallel;
mod rendezvous;

pub use error::{DistError, Missing, Result};
pub use launch::{free_port, LocalLaunch};
pub use parallel::{CommStats, DataParallel, DEFAULT_BUCKET_BYTES};
pub use rendezvous::{Rendezvous, DEFAULT_TIMEOUT};
pub use whetstone_torch_ext::c10d::{nccl_compiled, Backend};
