//! Sharding a batch source across data-parallel replicas.
//!
//! Every replica derives the same *global* epoch plan from `(seed, epoch)` (its batches are
//! global batches, of `world × batch_size` examples) and takes its own contiguous share of
//! each global batch: with `n` examples in a global batch and `W` replicas, replica `r` gets
//! `n / W` examples, one more when `r < n % W`, starting at `r·(n / W) + min(r, n % W)`. Across
//! replicas every example of the epoch is seen exactly once, and step `k` of every replica
//! belongs to the same global batch, so averaging the replicas' gradients (weighted by their
//! share) gives the gradient of the global batch.
//!
//! **Remainder policy.** A global batch with fewer examples than replicas (the short last batch
//! of an epoch, say) would leave a replica without work. It is merged into the global batch
//! before it (of the same stream), so no example is dropped or repeated; a stream whose whole
//! epoch holds fewer examples than replicas is an error.

use crate::batch::Batch;
use crate::error::{DataError, Result};
use crate::source::{BatchSource, PlanEntry};
use tch::Device;

/// Replica `rank`'s share of the global batches of `inner` (see the module docs).
pub struct ShardedSource<'a> {
    inner: &'a dyn BatchSource,
    rank: usize,
    world: usize,
}

impl<'a> ShardedSource<'a> {
    /// Replica `rank` of `world` over `inner`, whose plan holds the global batches.
    pub fn new(inner: &'a dyn BatchSource, rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(DataError::InvalidArgument(format!("replica {rank} is not in a world of {world}")));
        }
        Ok(Self { inner, rank, world })
    }

    /// This replica's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of replicas.
    pub fn world_size(&self) -> usize {
        self.world
    }
}

/// `(start, len)` of replica `rank`'s contiguous share of `n` items among `world`.
pub fn shard_range(n: usize, rank: usize, world: usize) -> (usize, usize) {
    let (base, extra) = (n / world, n % world);
    (rank * base + rank.min(extra), base + usize::from(rank < extra))
}

/// The global plan of `inner` with every global batch of fewer than `world` examples merged
/// into the one before it of the same stream.
pub fn merge_short(plan: Vec<PlanEntry>, world: usize) -> Result<Vec<PlanEntry>> {
    let mut out: Vec<PlanEntry> = Vec::with_capacity(plan.len());
    let mut short: Vec<PlanEntry> = Vec::new();
    for e in plan {
        if e.indices.len() >= world {
            out.push(e);
        } else {
            short.push(e);
        }
    }
    for e in short {
        match out.iter_mut().rev().find(|o| o.stream == e.stream) {
            Some(prev) => prev.indices.extend(e.indices),
            None => {
                return Err(DataError::InvalidArgument(format!(
                    "stream {} has only {} example(s) in this epoch's plan, fewer than the {world} data-parallel replicas: use fewer processes or more data",
                    e.stream,
                    e.indices.len()
                )))
            }
        }
    }
    Ok(out)
}

impl BatchSource for ShardedSource<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn epoch_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>> {
        let global = self.global_plan(seed, epoch)?;
        Ok(global
            .into_iter()
            .map(|e| {
                let (start, len) = shard_range(e.indices.len(), self.rank, self.world);
                PlanEntry { indices: e.indices[start..start + len].to_vec(), stream: e.stream, key: e.key }
            })
            .collect())
    }

    fn global_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>> {
        merge_short(self.inner.global_plan(seed, epoch)?, self.world)
    }

    fn batch(&self, entry: &PlanEntry, device: Device) -> Result<Batch> {
        self.inner.batch(entry, device)
    }

    fn fingerprint(&self) -> u64 {
        self.inner.fingerprint()
    }

    fn padding_fraction(&self, plan: &[PlanEntry]) -> Option<f64> {
        self.inner.padding_fraction(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Encoded;
    use crate::source::BucketedSource;
    use proptest::prelude::*;

    fn encoded(n: usize) -> Encoded {
        Encoded { ids: (0..n).map(|i| vec![2; 3 + i % 7]).collect(), labels: (0..n).map(|i| (i % 2) as i64).collect(), pad_id: 0 }
    }

    proptest! {
        /// Every example is seen exactly once per epoch across replicas; every replica has the
        /// same number of steps, each with at least one example; step k of every replica comes
        /// from the same global batch.
        #[test]
        fn every_example_exactly_once(n in 1usize..300, batch in 1usize..40, world in 1usize..6, factor in 1usize..4, seed in 0u64..1000, epoch in 0u64..3) {
            let enc = encoded(n);
            let inner = BucketedSource::new(&enc, batch * world, factor);
            let shards: Vec<ShardedSource> = (0..world).map(|r| ShardedSource::new(&inner, r, world).unwrap()).collect();
            let plans: Vec<_> = shards.iter().map(|s| s.epoch_plan(seed, epoch)).collect();
            if n < world {
                prop_assert!(plans.iter().all(|p| p.is_err()));
                return Ok(());
            }
            let plans: Vec<Vec<PlanEntry>> = plans.into_iter().map(|p| p.unwrap()).collect();
            let global = shards[0].global_plan(seed, epoch).unwrap();
            let mut seen = vec![0usize; n];
            for p in &plans {
                prop_assert_eq!(p.len(), global.len());
                for (k, e) in p.iter().enumerate() {
                    prop_assert!(!e.indices.is_empty());
                    prop_assert!(e.indices.iter().all(|i| global[k].indices.contains(i)));
                    e.indices.iter().for_each(|&i| seen[i] += 1);
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1), "{:?}", seen);
            // A pure function of (seed, epoch), the same on every call.
            prop_assert_eq!(&plans[0], &shards[0].epoch_plan(seed, epoch).unwrap());
        }
    }

    #[test]
    fn one_replica_is_the_inner_source() {
        let enc = encoded(50);
        let inner = BucketedSource::new(&enc, 8, 2);
        let s = ShardedSource::new(&inner, 0, 1).unwrap();
        assert_eq!(s.epoch_plan(3, 1).unwrap(), inner.epoch_plan(3, 1).unwrap());
        assert!(ShardedSource::new(&inner, 2, 2).is_err());
    }

    #[test]
    fn shares_follow_the_documented_split() {
        assert_eq!((0..3).map(|r| shard_range(10, r, 3)).collect::<Vec<_>>(), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!((0..4).map(|r| shard_range(2, r, 4).1).collect::<Vec<_>>(), vec![1, 1, 0, 0]);
    }
}
