//! [`AugmentedSource`]: a whetstone-data [`BatchSource`] that augments raw text on the fly
//! (the `torch` feature).
//!
//! It plans epochs exactly like [`whetstone_data::BucketedSource`] (length buckets on the
//! original texts' token counts), and builds each batch by augmenting its examples with a
//! generator derived from the plan entry's `key` and the example index, then tokenising. So
//! every epoch sees fresh augmentations, a run is reproducible for a seed, and a resumed run
//! (which stores only its position in the plan) sees exactly the batches it would have seen.

use rand::Rng;
use rayon::prelude::*;
use tch::Device;
use whetstone_data::{entry_key, make_batch, Batch, BatchSource, BucketBatcher, DataError, Encoded, Fingerprint, PlanEntry, Split, TextTokenizer};

use crate::augmenter::{example_rng, Augmenter};
use crate::eda::check_unit;
use crate::error::{AugmentError, Result};

/// Length-bucketed batches of one split, each example augmented with probability `p` when its
/// batch is built.
pub struct AugmentedSource {
    texts: Vec<String>,
    labels: Vec<i64>,
    tokenizer: TextTokenizer,
    max_len: usize,
    augmenter: Box<dyn Augmenter>,
    probability: f64,
    seed_offset: u64,
    batcher: BucketBatcher,
    lengths: Vec<usize>,
    originals: u64,
}

impl AugmentedSource {
    /// Batches of `batch_size` examples of `split` from buckets of `batch_size × bucket_factor`,
    /// tokenised by `tokenizer` to at most `max_len` ids, each example replaced by an
    /// augmentation with probability `probability` in [0, 1] (1: always augmented).
    pub fn new(split: &Split, tokenizer: TextTokenizer, max_len: usize, augmenter: Box<dyn Augmenter>, probability: f64, batch_size: usize, bucket_factor: usize) -> Result<Self> {
        check_unit("probability", probability)?;
        if split.texts.len() != split.labels.len() {
            return Err(AugmentError::InvalidArgument(format!("the split has {} texts but {} labels", split.texts.len(), split.labels.len())));
        }
        let ids = tokenizer.encode_batch(&split.texts, max_len)?;
        let originals = whetstone_data::encoded_fingerprint(&Encoded { ids: ids.clone(), labels: split.labels.clone(), pad_id: tokenizer.pad_id() });
        Ok(AugmentedSource {
            texts: split.texts.clone(),
            labels: split.labels.clone(),
            tokenizer,
            max_len,
            augmenter,
            probability,
            seed_offset: 0,
            batcher: BucketBatcher::new(batch_size, bucket_factor),
            lengths: ids.iter().map(Vec::len).collect(),
            originals,
        })
    }

    /// The same source drawing its augmentations from another stream (a recipe's
    /// `seed_offset`), so that augmentation can be varied without changing the data order.
    pub fn seed_offset(mut self, offset: u64) -> Self {
        self.seed_offset = offset;
        self
    }

    /// The augmenter.
    pub fn augmenter(&self) -> &dyn Augmenter {
        self.augmenter.as_ref()
    }

    /// The texts of `entry`'s examples as its batch sees them: each one augmented (with
    /// probability `p`) by a generator keyed by `(entry.key, seed offset, example index)`, in
    /// parallel.
    pub fn texts(&self, entry: &PlanEntry) -> Result<Vec<String>> {
        let key = entry_key(entry.key, self.seed_offset, 0);
        entry
            .indices
            .par_iter()
            .map(|&i| {
                let text = self.texts.get(i).ok_or_else(|| AugmentError::InvalidArgument(format!("example index {i} is out of range for a split of {} examples", self.texts.len())))?;
                let mut rng = example_rng(key, i as u64, 0);
                if self.probability > 0.0 && rng.gen_bool(self.probability) {
                    self.augmenter.augment(text, &mut rng)
                } else {
                    Ok(text.clone())
                }
            })
            .collect()
    }
}

fn data_err(e: AugmentError) -> DataError {
    match e {
        AugmentError::Data(d) => d,
        other => DataError::InvalidArgument(other.to_string()),
    }
}

impl BatchSource for AugmentedSource {
    fn len(&self) -> usize {
        self.texts.len()
    }

    fn epoch_plan(&self, seed: u64, epoch: u64) -> whetstone_data::Result<Vec<PlanEntry>> {
        let order = self.batcher.epoch_order(&self.lengths, seed, epoch);
        Ok(order.into_iter().enumerate().map(|(i, indices)| PlanEntry { indices, stream: 0, key: entry_key(seed, epoch, i) }).collect())
    }

    fn batch(&self, entry: &PlanEntry, device: Device) -> whetstone_data::Result<Batch> {
        if entry.stream != 0 {
            return Err(DataError::InvalidArgument(format!("stream {} requested from a single-stream source", entry.stream)));
        }
        let texts = self.texts(entry).map_err(data_err)?;
        let enc = Encoded { ids: self.tokenizer.encode_batch(&texts, self.max_len)?, labels: entry.indices.iter().map(|&i| self.labels[i]).collect(), pad_id: self.tokenizer.pad_id() };
        let rows: Vec<usize> = (0..texts.len()).collect();
        let mut batch = make_batch(&enc, &rows, device)?;
        batch.indices = entry.indices.clone();
        Ok(batch)
    }

    fn fingerprint(&self) -> u64 {
        let mut h = Fingerprint::new();
        h.write_u64(self.originals);
        h.write_u64(self.max_len as u64);
        h.write_str(&self.augmenter.config());
        h.write_u64(self.probability.to_bits());
        h.write_u64(self.seed_offset);
        h.finish()
    }
}
