//! Length-bucketed batching with dynamic padding.
//!
//! Padding every batch to a fixed length wastes most of the compute on short texts
//! (rotten-tomatoes averages ~25 tokens). Grouping examples of similar length into a
//! batch and padding only to that batch's longest keeps the padded fraction small,
//! while shuffling within large buckets and shuffling the batches keeps training random.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::tokenize::TextTokenizer;

/// Default number of batches per bucket: large enough for low padding, small enough
/// that consecutive batches still come from different parts of the shuffled data.
pub const DEFAULT_BUCKET_FACTOR: usize = 50;

/// One padded batch of token ids.
#[derive(Debug)]
pub struct Batch {
    /// Token ids, `[B, T]`, Int64, padded with the tokenizer's pad id.
    pub input_ids: Tensor,
    /// `[B, T]`, Int64: 1 for a real token, 0 for padding.
    pub attention_mask: Tensor,
    /// Class ids of the main task, `[B]`, Int64.
    pub labels: Tensor,
    /// Index of each row's example in the batch source it came from (empty for batches built
    /// by hand). Strategies key per-example state on it, e.g. a cache of teacher logits.
    pub indices: Vec<usize>,
    /// The stream (task) of a multi-stream source this batch came from; 0 for single sources.
    pub stream: usize,
    /// Further named targets, for objectives with several heads or tasks (e.g. `("topic", [B])`).
    pub targets: Vec<(String, Tensor)>,
}

impl Batch {
    /// A batch of `input_ids` `[B, T]`, `attention_mask` `[B, T]` and `labels` `[B]`, with no
    /// example indices and no further targets.
    pub fn new(input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> Self {
        Batch { input_ids, attention_mask, labels, indices: Vec::new(), stream: 0, targets: Vec::new() }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.input_ids.size().first().copied().unwrap_or(0) as usize
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The named target `name`, if the batch carries it.
    pub fn target(&self, name: &str) -> Option<&Tensor> {
        self.targets.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Add the named target `name`.
    pub fn with_target(mut self, name: impl Into<String>, target: Tensor) -> Self {
        self.targets.push((name.into(), target));
        self
    }

    /// The same batch on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Batch {
            input_ids: self.input_ids.to_device(device),
            attention_mask: self.attention_mask.to_device(device),
            labels: self.labels.to_device(device),
            indices: self.indices.clone(),
            stream: self.stream,
            targets: self.targets.iter().map(|(n, t)| (n.clone(), t.to_device(device))).collect(),
        }
    }
}

/// A tokenised split: variable-length id sequences and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// One id sequence per example, with special tokens.
    pub ids: Vec<Vec<i64>>,
    /// The class id of each example.
    pub labels: Vec<i64>,
    /// The id used to pad sequences to a common length.
    pub pad_id: i64,
}

impl Encoded {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The length of each sequence, for the batchers.
    pub fn lengths(&self) -> Vec<usize> {
        self.ids.iter().map(Vec::len).collect()
    }
}

/// Tokenises a split, truncating each text to `max_len` ids.
pub fn encode(tok: &TextTokenizer, split: &Split, max_len: usize) -> Result<Encoded> {
    Ok(Encoded {
        ids: tok.encode_batch(&split.texts, max_len)?,
        labels: split.labels.clone(),
        pad_id: tok.pad_id(),
    })
}

/// Plans batches as lists of example indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketBatcher {
    batch_size: usize,
    bucket_factor: usize,
}

impl BucketBatcher {
    /// A batcher with `batch_size` examples per batch and buckets of
    /// `batch_size * bucket_factor` examples (0 is treated as 1 for both).
    pub fn new(batch_size: usize, bucket_factor: usize) -> Self {
        BucketBatcher {
            batch_size: batch_size.max(1),
            bucket_factor: bucket_factor.max(1),
        }
    }

    /// Examples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per bucket.
    pub fn bucket_factor(&self) -> usize {
        self.bucket_factor
    }

    /// The training order for one epoch, a pure function of `(seed, epoch)`.
    ///
    /// All indices are shuffled, cut into buckets, each bucket is sorted by length
    /// (stably), cut into batches, and the batches are shuffled. Every index appears
    /// exactly once.
    pub fn epoch_order(&self, lengths: &[usize], seed: u64, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // A separate ChaCha stream per epoch: independent orders without seed arithmetic.
        rng.set_stream(epoch);
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.shuffle(&mut rng);
        let mut batches = Vec::with_capacity(lengths.len().div_ceil(self.batch_size));
        for bucket in order.chunks_mut(self.batch_size * self.bucket_factor) {
            bucket.sort_by_key(|&i| lengths[i]);
            batches.extend(bucket.chunks(self.batch_size).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng);
        batches
    }

    /// An evaluation order: all indices sorted by length and cut into batches, no
    /// shuffling. Callers put predictions back in place by index.
    pub fn eval_order(&self, lengths: &[usize]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| lengths[i]);
        order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Builds the batch of examples `idx`, padded to its longest sequence, on `device`.
///
/// An index out of range for `enc`, or an empty `idx`, is an error.
pub fn make_batch(enc: &Encoded, idx: &[usize], device: Device) -> Result<Batch> {
    if idx.is_empty() {
        return Err(DataError::InvalidArgument("a batch needs at least one example".into()));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i >= enc.ids.len()) {
        return Err(DataError::InvalidArgument(format!("example index {bad} is out of range for a split of {} examples", enc.ids.len())));
    }
    let b = idx.len();
    let t = idx.iter().map(|&i| enc.ids[i].len()).max().unwrap_or(0);
    let mut ids = vec![enc.pad_id; b * t];
    let mut mask = vec![0i64; b * t];
    let mut labels = Vec::with_capacity(b);
    for (row, &i) in idx.iter().enumerate() {
        let seq = &enc.ids[i];
        ids[row * t..row * t + seq.len()].copy_from_slice(seq);
        mask[row * t..row * t + seq.len()].fill(1);
        labels.push(enc.labels[i]);
    }
    let shape = [b as i64, t as i64];
    Ok(Batch {
        input_ids: Tensor::from_slice(&ids).f_view(shape)?.f_to_device(device)?,
        attention_mask: Tensor::from_slice(&mask).f_view(shape)?.f_to_device(device)?,
        labels: Tensor::from_slice(&labels).f_to_device(device)?,
        indices: idx.to_vec(),
        stream: 0,
        targets: Vec::new(),
    })
}

/// Fraction of positions in the planned batches that would be padding.
pub fn padding_fraction(enc: &Encoded, batches: &[Vec<usize>]) -> f64 {
    let (mut pad, mut total) = (0usize, 0usize);
    for batch in batches {
        let lens: Vec<usize> = batch
            .iter()
            .filter_map(|&i| enc.ids.get(i).map(Vec::len))
            .collect();
        let longest = lens.iter().copied().max().unwrap_or(0);
        total += longest * lens.len();
        pad += lens.iter().map(|l| longest - l).sum::<usize>();
    }
    if total == 0 {
        0.0
    } else {
        pad as f64 / total as f64
    }
}
