//! Teacher logits computed once per dataset instead of every epoch.

use crate::error::{CompressError, Result};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;
use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::TextClassifier;

/// Teacher logits keyed by each example's (unpadded) token ids, so batches can come in any
/// order and padding. [`TeacherCache::seconds`] is what computing them cost, to set against
/// the teacher forward passes saved in later epochs.
#[derive(Debug, Default)]
pub struct TeacherCache {
    logits: HashMap<u64, Vec<f32>>,
    num_labels: usize,
    /// Wall-clock seconds spent computing the cache.
    pub seconds: f64,
}

fn row_keys(batch: &Batch) -> Result<Vec<u64>> {
    let ids = batch.input_ids.f_to_device(tch::Device::Cpu)?;
    let lens = Vec::<i64>::try_from(&batch.attention_mask.f_ne(0)?.f_sum_dim_intlist(1, false, Kind::Int64)?.f_to_device(tch::Device::Cpu)?)?;
    let (b, t) = ids.size2()?;
    let flat = Vec::<i64>::try_from(&ids.f_reshape([-1])?)?;
    Ok((0..b as usize)
        .map(|r| {
            let row = &flat[r * t as usize..r * t as usize + lens[r] as usize];
            let mut h = DefaultHasher::new();
            row.hash(&mut h);
            h.finish()
        })
        .collect())
}

impl TeacherCache {
    /// Run `teacher` (evaluation mode, no graph) over `batches` and keep its logits.
    pub fn build<'a>(teacher: &dyn TextClassifier, batches: impl IntoIterator<Item = &'a Batch>) -> Result<Self> {
        let start = Instant::now();
        let mut cache = Self::default();
        tch::no_grad(|| -> Result<()> {
            for batch in batches {
                let logits = teacher.forward_t(&batch.input_ids, &batch.attention_mask, false)?.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?;
                let (b, c) = logits.size2()?;
                cache.num_labels = c as usize;
                let flat = Vec::<f32>::try_from(&logits.f_reshape([-1])?)?;
                for (r, key) in row_keys(batch)?.into_iter().enumerate().take(b as usize) {
                    cache.logits.insert(key, flat[r * c as usize..(r + 1) * c as usize].to_vec());
                }
            }
            Ok(())
        })?;
        cache.seconds = start.elapsed().as_secs_f64();
        Ok(cache)
    }

    /// Number of cached examples.
    pub fn len(&self) -> usize {
        self.logits.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.logits.is_empty()
    }

    /// The cached logits `[B, labels]` of `batch` (on its device), or `None` when some example
    /// was not cached.
    pub fn lookup(&self, batch: &Batch) -> Result<Option<Tensor>> {
        let mut flat = Vec::new();
        for key in row_keys(batch)? {
            match self.logits.get(&key) {
                Some(l) => flat.extend_from_slice(l),
                None => return Ok(None),
            }
        }
        if self.num_labels == 0 {
            return Err(CompressError::Config("the teacher cache is empty".into()));
        }
        Ok(Some(Tensor::from_slice(&flat).f_view([-1, self.num_labels as i64])?.f_to_device(batch.input_ids.device())?))
    }
}
