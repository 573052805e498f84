//! A batch source over several tasks: each plan entry is one task's micro-batch, named by
//! its `stream` (the task's index).
//!
//! **Epoch.** Each task is cut into length-bucketed batches as [`crate::BucketedSource`]
//! cuts a single split; an epoch is `Σ_i b_i` micro-batches, where `b_i` is task `i`'s number
//! of batches, so every sampling plans epochs of the same length, about one pass over all the
//! data. Which task each micro-batch comes from depends on the sampling:
//!
//! * [`Sampling::Proportional`]: task `i` with probability `n_i / Σ n` (`n_i` examples);
//! * [`Sampling::Temperature`] `T`: with probability `∝ n_i^{1/T}` (T = 1 is proportional,
//!   large T approaches uniform; Arivazhagan et al. 2019 use T = 5);
//! * [`Sampling::RoundRobin`]: tasks in turn `0, 1, …, K−1, 0, …`; the epoch is rounded up
//!   to a multiple of `K`. **With `train.grad_accum = K`, every optimiser step then sees one
//!   micro-batch of each task**, which gradient surgery (PCGrad) and GradNorm need to
//!   compare the tasks' gradients within a step.
//!
//! A task's batches are served in order from a shuffled pass over it; when a pass runs out
//! (a small task sampled often), the next pass is reshuffled. The plan is a pure function of
//! `(seed, epoch)`, so a resumed run continues exactly.
//!
//! Sequence tasks ([`TaskData::Sequence`]) give `labels` `[B]`; token tasks
//! ([`TaskData::Token`]) give `labels` `[B, T]` with `-100` where nothing is predicted.
//!
//! ```
//! use whetstone_data::multitask::{MultiTaskSource, Sampling, TaskData};
//! use whetstone_data::{BatchSource, Encoded};
//! let a = Encoded { ids: (0..8).map(|i| vec![2, 5 + i, 3]).collect(), labels: vec![0; 8], pad_id: 0 };
//! let b = Encoded { ids: (0..4).map(|i| vec![2, 9 + i, 3]).collect(), labels: vec![1; 4], pad_id: 0 };
//! let source = MultiTaskSource::new(vec![TaskData::Sequence(a), TaskData::Sequence(b)], 2, 1, Sampling::RoundRobin)?;
//! let plan = source.epoch_plan(7, 0)?;
//! assert_eq!(plan.len(), 6); // 4 + 2 batches
//! assert_eq!(plan.iter().map(|e| e.stream).collect::<Vec<_>>(), [0, 1, 0, 1, 0, 1]);
//! assert_eq!(source.batch(&plan[1], tch::Device::Cpu)?.stream, 1);
//! # Ok::<(), whetstone_data::DataError>(())
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Device;

use crate::batch::{make_batch, Batch, BucketBatcher, Encoded};
use crate::conll::{make_token_batch, TokenEncoded};
use crate::error::{DataError, Result};
use crate::source::{encoded_fingerprint, entry_key, BatchSource, Fingerprint, PlanEntry};

/// One task's tokenised training data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskData {
    /// Sequence classification: one label per example.
    Sequence(Encoded),
    /// Token classification: one label per position.
    Token(TokenEncoded),
}

impl TaskData {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            TaskData::Sequence(e) => e.len(),
            TaskData::Token(e) => e.len(),
        }
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence lengths, for bucketing.
    pub fn lengths(&self) -> Vec<usize> {
        match self {
            TaskData::Sequence(e) => e.lengths(),
            TaskData::Token(e) => e.lengths(),
        }
    }

    /// The batch of examples `idx`.
    pub fn batch(&self, idx: &[usize], device: Device) -> Result<Batch> {
        match self {
            TaskData::Sequence(e) => make_batch(e, idx, device),
            TaskData::Token(e) => make_token_batch(e, idx, device),
        }
    }

    fn fingerprint(&self) -> u64 {
        match self {
            TaskData::Sequence(e) => encoded_fingerprint(e),
            TaskData::Token(e) => e.fingerprint(),
        }
    }
}

/// How a [`MultiTaskSource`] picks the task of each micro-batch (see the module page).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Probability proportional to the task's size.
    Proportional,
    /// Probability proportional to `size^{1/T}`.
    Temperature(f64),
    /// Each task in turn.
    RoundRobin,
}

impl Sampling {
    /// The sampling called `name` (`proportional`, `temperature`, `round_robin`); `temperature`
    /// is used only by `temperature` and must be > 0.
    pub fn parse(name: &str, temperature: f64) -> Result<Self> {
        match name {
            "proportional" => Ok(Sampling::Proportional),
            "round_robin" => Ok(Sampling::RoundRobin),
            "temperature" if temperature > 0.0 && temperature.is_finite() => Ok(Sampling::Temperature(temperature)),
            "temperature" => Err(DataError::InvalidArgument(format!("multitask.temperature must be > 0, got {temperature}"))),
            other => Err(DataError::InvalidArgument(format!("multitask.sampling must be proportional, temperature or round_robin, got `{other}`"))),
        }
    }

    /// The probability of each task, given the tasks' sizes (round-robin: uniform).
    pub fn probabilities(&self, sizes: &[usize]) -> Vec<f64> {
        let w: Vec<f64> = match self {
            Sampling::Proportional => sizes.iter().map(|&n| n as f64).collect(),
            Sampling::Temperature(t) => sizes.iter().map(|&n| (n as f64).powf(1.0 / t)).collect(),
            Sampling::RoundRobin => vec![1.0; sizes.len()],
        };
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }
}

/// Batches of several tasks, each entry naming its task as `stream` (see the module page).
#[derive(Debug, Clone)]
pub struct MultiTaskSource {
    tasks: Vec<TaskData>,
    lengths: Vec<Vec<usize>>,
    batcher: BucketBatcher,
    sampling: Sampling,
}

impl MultiTaskSource {
    /// A source over `tasks` (task `i` is stream `i`; the first is the main task), with
    /// `batch_size` examples per micro-batch and buckets of `batch_size × bucket_factor`.
    /// A task without examples is an error naming its index.
    pub fn new(tasks: Vec<TaskData>, batch_size: usize, bucket_factor: usize, sampling: Sampling) -> Result<Self> {
        if tasks.is_empty() {
            return Err(DataError::InvalidArgument("a multi-task source needs at least one task".into()));
        }
        if let Some(i) = tasks.iter().position(TaskData::is_empty) {
            return Err(DataError::InvalidArgument(format!("task {i} has no training examples")));
        }
        if let Sampling::Temperature(t) = sampling {
            Sampling::parse("temperature", t)?;
        }
        let lengths = tasks.iter().map(TaskData::lengths).collect();
        Ok(Self { tasks, lengths, batcher: BucketBatcher::new(batch_size, bucket_factor), sampling })
    }

    /// The tasks' data.
    pub fn tasks(&self) -> &[TaskData] {
        &self.tasks
    }

    /// The sampling.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Batches in one pass over task `i`.
    fn batches_of(&self, i: usize) -> usize {
        self.lengths[i].len().div_ceil(self.batcher.batch_size())
    }

    /// The task of each micro-batch of epoch `epoch`.
    fn task_sequence(&self, seed: u64, epoch: u64) -> Vec<usize> {
        let k = self.tasks.len();
        let total: usize = (0..k).map(|i| self.batches_of(i)).sum();
        if let Sampling::RoundRobin = self.sampling {
            return (0..total.div_ceil(k) * k).map(|p| p % k).collect();
        }
        let sizes: Vec<usize> = self.tasks.iter().map(TaskData::len).collect();
        let p = self.sampling.probabilities(&sizes);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Stream 2·epoch + 1 draws tasks; the tasks' own shuffles use other seeds.
        rng.set_stream(epoch.wrapping_mul(2).wrapping_add(1));
        (0..total)
            .map(|_| {
                let u: f64 = rng.gen();
                let mut acc = 0.0;
                p.iter().position(|&pi| {
                    acc += pi;
                    u < acc
                })
                .unwrap_or(k - 1)
            })
            .collect()
    }

    /// The seed of task `task`'s shuffles in epoch `epoch`.
    fn task_seed(seed: u64, epoch: u64, task: usize) -> u64 {
        let mut h = Fingerprint::new();
        h.write_str("multitask");
        h.write_u64(seed);
        h.write_u64(epoch);
        h.write_u64(task as u64);
        h.finish()
    }
}

impl BatchSource for MultiTaskSource {
    fn len(&self) -> usize {
        self.tasks.iter().map(TaskData::len).sum()
    }

    fn epoch_plan(&self, seed: u64, epoch: u64) -> Result<Vec<PlanEntry>> {
        let mut passes: Vec<Vec<Vec<usize>>> = vec![Vec::new(); self.tasks.len()];
        let mut cursor = vec![0usize; self.tasks.len()];
        let mut plan = Vec::new();
        for (position, task) in self.task_sequence(seed, epoch).into_iter().enumerate() {
            let n = self.batches_of(task);
            let (pass, at) = (cursor[task] / n, cursor[task] % n);
            if at == 0 {
                passes[task] = self.batcher.epoch_order(&self.lengths[task], Self::task_seed(seed, epoch, task), pass as u64);
            }
            cursor[task] += 1;
            plan.push(PlanEntry { indices: passes[task][at].clone(), stream: task, key: entry_key(seed, epoch, position) });
        }
        Ok(plan)
    }

    fn batch(&self, entry: &PlanEntry, device: Device) -> Result<Batch> {
        let task = self.tasks.get(entry.stream).ok_or_else(|| DataError::InvalidArgument(format!("stream {} requested from a source of {} tasks", entry.stream, self.tasks.len())))?;
        let mut batch = task.batch(&entry.indices, device)?;
        batch.stream = entry.stream;
        Ok(batch)
    }

    fn padding_fraction(&self, plan: &[PlanEntry]) -> Option<f64> {
        let (mut pad, mut total) = (0usize, 0usize);
        for e in plan {
            let lens: Vec<usize> = e.indices.iter().filter_map(|&i| self.lengths.get(e.stream)?.get(i).copied()).collect();
            let longest = lens.iter().copied().max().unwrap_or(0);
            total += longest * lens.len();
            pad += lens.iter().map(|l| longest - l).sum::<usize>();
        }
        Some(if total == 0 { 0.0 } else { pad as f64 / total as f64 })
    }

    fn fingerprint(&self) -> u64 {
        let mut h = Fingerprint::new();
        match self.sampling {
            Sampling::Proportional => h.write_str("proportional"),
            Sampling::Temperature(t) => {
                h.write_str("temperature");
                h.write_u64(t.to_bits());
            }
            Sampling::RoundRobin => h.write_str("round_robin"),
        }
        for t in &self.tasks {
            h.write_str(match t {
                TaskData::Sequence(_) => "sequence",
                TaskData::Token(_) => "token",
            });
            h.write_u64(t.fingerprint());
        }
        h.finish()
    }
}
