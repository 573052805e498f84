//! Teacher logits computed once per dataset instead of every epoch.

use crate::error::{CompressError, Result};
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use whetstone_data::{encoded_fingerprint, make_batch, Batch, BucketBatcher, Encoded};
use whetstone_models::TextClassifier;

/// Teacher logits keyed by each example's index in the training split: the
/// [`Batch::indices`] that [`make_batch`] and every [`whetstone_data::BatchSource`] batch
/// carry. Batches can come in any order and padding, and a lookup is a gather, with no
/// hashing of token ids. [`TeacherCache::seconds`] is what computing the logits cost, to set
/// against the teacher forward passes saved in later epochs.
///
/// The cache belongs to the split it was built over: [`TeacherCache::build_split`] records
/// that split's fingerprint and [`TeacherCache::covers`] checks another against it. As a cheap
/// guard against a cache paired with the wrong split, every lookup also checks that each
/// example has the number of tokens it had when it was cached.
///
/// ```
/// use whetstone_compress::TeacherCache;
/// use whetstone_data::{make_batch, Encoded};
/// use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
/// use tch::{nn::VarStore, Device};
/// let vs = VarStore::new(Device::Cpu);
/// let cfg = TransformerClassifierConfig { encoder: TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() }, ..Default::default() };
/// let teacher = TransformerClassifier::new(&vs.root(), 50, 2, &cfg)?;
/// let train = Encoded { ids: vec![vec![2, 7, 3], vec![2, 9, 9, 3], vec![2, 3]], labels: vec![0, 1, 0], pad_id: 0 };
/// let cache = TeacherCache::build_split(&teacher, &train, 2, Device::Cpu)?;
/// assert_eq!(cache.len(), 3);
/// assert!(cache.covers(&train));
/// let batch = make_batch(&train, &[2, 0], Device::Cpu)?; // any order
/// assert_eq!(cache.lookup(&batch)?.unwrap().size(), vec![2, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct TeacherCache {
    /// Row-major `[rows, num_labels]` logits; the rows of examples never cached are zero.
    logits: Vec<f32>,
    /// Real-token count of each example, `None` where it was not cached.
    lengths: Vec<Option<i64>>,
    cached: usize,
    num_labels: usize,
    fingerprint: Option<u64>,
    /// Wall-clock seconds spent computing the cache.
    pub seconds: f64,
}

/// Real tokens per row of `batch` (from its attention mask).
fn row_lengths(batch: &Batch) -> Result<Vec<i64>> {
    let lens = batch.attention_mask.f_ne(0)?.f_sum_dim_intlist(1, false, Kind::Int64)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<i64>::try_from(&lens)?)
}

/// The batch's example indices, or an error when it has none (or not one per row).
fn indices_of(batch: &Batch) -> Result<&[usize]> {
    if batch.indices.len() != batch.len() {
        return Err(CompressError::Config(format!(
            "the teacher cache is keyed by example index, but this batch of {} rows carries {} indices (batches from make_batch or a BatchSource carry them)",
            batch.len(),
            batch.indices.len()
        )));
    }
    Ok(&batch.indices)
}

impl TeacherCache {
    /// Run `teacher` (evaluation mode, no graph) over `batches`, which must carry their
    /// example indices, and keep its logits under those indices.
    pub fn build<'a>(teacher: &dyn TextClassifier, batches: impl IntoIterator<Item = &'a Batch>) -> Result<Self> {
        let start = Instant::now();
        let mut cache = Self::default();
        for batch in batches {
            cache.add(teacher, batch)?;
        }
        cache.seconds = start.elapsed().as_secs_f64();
        Ok(cache)
    }

    /// The teacher's logits for every example of `split`, computed in length-sorted batches
    /// of `batch_size` on `device`; the cache records the split's fingerprint.
    pub fn build_split(teacher: &dyn TextClassifier, split: &Encoded, batch_size: usize, device: Device) -> Result<Self> {
        let start = Instant::now();
        let mut cache = Self::default();
        for idx in BucketBatcher::new(batch_size, 1).eval_order(&split.lengths()) {
            cache.add(teacher, &make_batch(split, &idx, device)?)?;
        }
        cache.fingerprint = Some(encoded_fingerprint(split));
        cache.seconds = start.elapsed().as_secs_f64();
        Ok(cache)
    }

    fn add(&mut self, teacher: &dyn TextClassifier, batch: &Batch) -> Result<()> {
        let indices = indices_of(batch)?;
        let logits = tch::no_grad(|| teacher.forward_t(&batch.input_ids, &batch.attention_mask, false))?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?;
        let (b, c) = logits.size2()?;
        let c = c as usize;
        if b as usize != indices.len() {
            return Err(CompressError::Mismatch(format!("the teacher returned {b} rows of logits for a batch of {}", indices.len())));
        }
        if self.num_labels == 0 {
            self.num_labels = c;
        } else if self.num_labels != c {
            return Err(CompressError::Mismatch(format!("the teacher returned {c} logits per example, earlier {}", self.num_labels)));
        }
        let flat = Vec::<f32>::try_from(&logits.f_reshape([-1])?)?;
        let lens = row_lengths(batch)?;
        for (r, &i) in indices.iter().enumerate() {
            if i >= self.lengths.len() {
                self.lengths.resize(i + 1, None);
                self.logits.resize((i + 1) * c, 0.0);
            }
            if self.lengths[i].is_none() {
                self.cached += 1;
            }
            self.lengths[i] = Some(lens[r]);
            self.logits[i * c..(i + 1) * c].copy_from_slice(&flat[r * c..(r + 1) * c]);
        }
        Ok(())
    }

    /// Number of cached examples.
    pub fn len(&self) -> usize {
        self.cached
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cached == 0
    }

    /// Whether the cache was built (by [`TeacherCache::build_split`]) over exactly `split`.
    pub fn covers(&self, split: &Encoded) -> bool {
        self.fingerprint == Some(encoded_fingerprint(split))
    }

    /// The cached logits `[B, labels]` of `batch`, on its device. `None` when the batch carries
    /// no example indices (a batch built by hand) or some example was not cached: the caller
    /// then runs the teacher. An example whose token count differs from the cached one is an
    /// error (the cache was built over a different split).
    pub fn lookup(&self, batch: &Batch) -> Result<Option<Tensor>> {
        if batch.indices.is_empty() {
            return Ok(None);
        }
        let indices = indices_of(batch)?;
        if indices.iter().any(|&i| self.lengths.get(i).copied().flatten().is_none()) {
            return Ok(None);
        }
        let lens = row_lengths(batch)?;
        let c = self.num_labels;
        let mut flat = Vec::with_capacity(indices.len() * c);
        for (r, &i) in indices.iter().enumerate() {
            let cached = self.lengths[i].unwrap_or(-1);
            if cached != lens[r] {
                return Err(CompressError::Mismatch(format!(
                    "example {i} has {} tokens in this batch but {cached} in the teacher cache: the cache was built over a different split than the one being trained on",
                    lens[r]
                )));
            }
            flat.extend_from_slice(&self.logits[i * c..(i + 1) * c]);
        }
        Ok(Some(Tensor::from_slice(&flat).f_view([indices.len() as i64, c as i64])?.f_to_device(batch.input_ids.device())?))
    }
}
