//! Batch sources: what the training loop draws its batches from.
//!
//! A [`BatchSource`] plans each epoch as a pure function of `(seed, epoch)` and builds the
//! batch of any entry of that plan on demand. The loop only ever stores a position in the
//! plan, so a run resumes exactly wherever it stopped.
//!
//! [`BucketedSource`] is the length-bucketed source over one tokenised split. Other sources
//! implement the same trait: one that transforms raw text with a seeded transform before
//! tokenising (augmentation: each entry carries a random `key`, so an epoch's augmentations
//! are fresh, reproducible and resumable), or one that samples several tasks (each entry names
//! its `stream`).
//!
//! ```
//! use whetstone_data::{BatchSource, BucketedSource, Encoded};
//! let enc = Encoded { ids: vec![vec![2, 5, 3], vec![2, 6, 7, 3], vec![2, 3]], labels: vec![0, 1, 0], pad_id: 0 };
//! let source = BucketedSource::new(&enc, 2, 1);
//! let plan = source.epoch_plan(7, 0)?;
//! assert_eq!(plan.iter().map(|e| e.indices.len()).sum::<usize>(), 3); // every example once
//! assert_eq!(plan, source.epoch_plan(7, 0)?); // a pure function of (seed, epoch)
//! let batch = source.batch(&plan[0], tch::Device::Cpu)?;
//! assert_eq!(batch.indices, plan[0].indices);
//! # Ok::<(), whetstone_data::DataError>(())
//! ```

use crate::batch::{make_batch, padding_fraction, Batch, BucketBatcher, Encoded};
use crate::error::{DataError, Result};
use tch::Device;

/// One entry of an epoch plan: the examples of one micro-batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// Example indices, into the source's examples (of `stream`).
    pub indices: Vec<usize>,
    /// The stream (task) of a multi-stream source; 0 for a single stream.
    pub stream: usize,
    /// A random key fixed by `(seed, epoch, position)`: seeded transforms of the batch
    /// (text augmentation, say) draw from it.
    pub key: u64,
}

/// Where the training loop's batches come from.
pub trait BatchSource: Send + Sync {
    /// Number of examples (over all streams).
    fn len(&self) -> usize;

    /// Whether the source has no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The micro-batches of epoch `epoch`, a pure function of `(seed, epoch)`.
    fn epoch_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>>;

    /// The plan of epoch `epoch` across all data-parallel replicas: the same on every replica.
    /// A source that is not sharded is its own global plan (the default); a
    /// [`crate::ShardedSource`] returns the global batches it takes its share of. The loop
    /// fingerprints this plan, so a checkpoint resumes only at the same world size.
    fn global_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>> {
        self.epoch_plan(seed, epoch)
    }

    /// The batch of one plan entry, on `device`. Its `indices` and `stream` are the entry's.
    fn batch(&self, entry: &PlanEntry, device: Device) -> Result<Batch>;

    /// A fingerprint of the source's content (examples, labels, and anything else that
    /// changes what it yields). A resumed run checks it against its checkpoint's.
    fn fingerprint(&self) -> u64;

    /// Share of padding positions in `plan`'s batches, where the source can tell.
    fn padding_fraction(&self, _plan: &[PlanEntry]) -> Option<f64> {
        None
    }
}

/// The random key of the entry at `position` of epoch `epoch`'s plan.
pub fn entry_key(seed: u64, epoch: u64, position: usize) -> u64 {
    let mut h = Fingerprint::new();
    h.write_u64(seed);
    h.write_u64(epoch);
    h.write_u64(position as u64);
    h.finish()
}

/// FNV-1a (64 bit) followed by a final avalanche: a stable content hash (the same on every
/// platform and Rust version, unlike `std`'s `DefaultHasher`).
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// An empty hash.
    pub fn new() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }

    /// Hash `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Hash a `u64` (little-endian).
    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    /// Hash an `i64` (little-endian).
    pub fn write_i64(&mut self, v: i64) {
        self.write(&v.to_le_bytes());
    }

    /// Hash a string with its length, so that `("ab", "c")` and `("a", "bc")` differ.
    pub fn write_str(&mut self, s: &str) {
        self.write_u64(s.len() as u64);
        self.write(s.as_bytes());
    }

    /// The hash.
    pub fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Fingerprint of a tokenised split: its id sequences, labels and pad id.
pub fn encoded_fingerprint(enc: &Encoded) -> u64 {
    let mut h = Fingerprint::new();
    h.write_u64(enc.ids.len() as u64);
    h.write_i64(enc.pad_id);
    for (ids, &label) in enc.ids.iter().zip(&enc.labels) {
        h.write_u64(ids.len() as u64);
        for &id in ids {
            h.write_i64(id);
        }
        h.write_i64(label);
    }
    h.finish()
}

/// Length-bucketed batches of one tokenised split (see [`BucketBatcher::epoch_order`]).
#[derive(Debug, Clone)]
pub struct BucketedSource<'a> {
    data: &'a Encoded,
    batcher: BucketBatcher,
    lengths: Vec<usize>,
}

impl<'a> BucketedSource<'a> {
    /// Batches of `batch_size` examples from buckets of `batch_size × bucket_factor`.
    pub fn new(data: &'a Encoded, batch_size: usize, bucket_factor: usize) -> Self {
        Self { data, batcher: BucketBatcher::new(batch_size, bucket_factor), lengths: data.lengths() }
    }

    /// The split batches are drawn from.
    pub fn data(&self) -> &'a Encoded {
        self.data
    }
}

impl BatchSource for BucketedSource<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn epoch_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>> {
        if self.data.ids.len() != self.data.labels.len() {
            return Err(DataError::InvalidArgument(format!("the split has {} id sequences but {} labels", self.data.ids.len(), self.data.labels.len())));
        }
        let order = self.batcher.epoch_order(&self.lengths, seed, epoch);
        Ok(order.into_iter().enumerate().map(|(i, indices)| PlanEntry { indices, stream: 0, key: entry_key(seed, epoch, i) }).collect())
    }

    fn batch(&self, entry: &PlanEntry, device: Device) -> Result<Batch> {
        if entry.stream != 0 {
            return Err(DataError::InvalidArgument(format!("stream {} requested from a single-stream source", entry.stream)));
        }
        make_batch(self.data, &entry.indices, device)
    }

    fn fingerprint(&self) -> u64 {
        encoded_fingerprint(self.data)
    }

    fn padding_fraction(&self, plan: &[PlanEntry]) -> Option<f64> {
        let batches: Vec<Vec<usize>> = plan.iter().map(|e| e.indices.clone()).collect();
        Some(padding_fraction(self.data, &batches))
    }
}
