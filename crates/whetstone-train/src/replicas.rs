//! Data parallelism as the loop sees it: the other replicas of this run.
//!
//! With [`crate::Trainer::replicas`], the one training loop runs as one replica of several
//! (processes or machines), each on its own share of every global batch (a sharded
//! [`whetstone_data::BatchSource`], e.g. [`whetstone_data::ShardedSource`]). The loop then
//!
//! 1. at the start of every [`crate::Trainer::fit`] (after a resume has loaded its
//!    checkpoint), overwrites its parameters, optimiser state and strategy state with rank
//!    0's ([`Replicas::broadcast`]), so every replica starts identical whatever its seed;
//! 2. after the backward passes of each step, before loss-scaling, the strategy's
//!    `before_update`, clipping and the optimiser, averages the gradients over the replicas,
//!    weighted by each replica's examples ([`Replicas::reduce_gradients`]): every replica
//!    then takes the same step, the step of the global batch;
//! 3. writes checkpoints, the metrics log and the best model on rank 0 only
//!    ([`Replicas::rank`]`() == 0`); the others validate (to take the same early-stopping
//!    decisions) but write nothing.
//!
//! whetstone-dist implements this over libtorch's c10d (Gloo on CPU, NCCL on CUDA).

use crate::error::Result;
use tch::Tensor;

/// What [`Replicas::reduce_gradients`] agreed on, over all replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reduced {
    /// Examples in the global step.
    pub examples: usize,
    /// Mean loss over the global step's examples.
    pub loss: f64,
    /// Whether any replica raised the flag (an overflow under loss scaling).
    pub flag: bool,
    /// Whether any replica was asked to stop ([`crate::request_stop`]): all stop after this step.
    pub stop: bool,
}

/// The other replicas of a data-parallel run.
pub trait Replicas {
    /// This replica's rank (0 writes the run's files).
    fn rank(&self) -> usize;
    /// Number of replicas.
    fn world_size(&self) -> usize;
    /// Overwrite `tensors` (in place, the same list on every replica) with rank 0's.
    fn broadcast(&mut self, tensors: &[Tensor]) -> Result<()>;
    /// Replace the local gradients `grads` (means over this replica's `examples`) with the
    /// example-weighted mean over all replicas, in place; also agree on the global loss (from
    /// this replica's mean `loss`), on `flag` and on `stop`.
    fn reduce_gradients(&mut self, grads: &[Tensor], examples: usize, loss: f64, flag: bool, stop: bool) -> Result<Reduced>;
}
