//! Speed against accuracy over a range of exit policies.

use super::policy::{EarlyExit, ExitPolicy};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind};
use whetstone_data::{make_batch, BucketBatcher, Encoded};
use whetstone_eval::LatencyStats;

/// One policy's result over a split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRow {
    /// The policy.
    pub policy: ExitPolicy,
    /// Accuracy of the exits taken.
    pub accuracy: f64,
    /// Mean exit layer (1-based; the model's depth means no early exit).
    pub mean_exit_layer: f64,
    /// Measured batch-1 latency of layer-by-layer inference with this policy.
    pub latency_b1: LatencyStats,
}

fn stats(mut ms: Vec<f64>) -> LatencyStats {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let rank = |q: f64| if n == 0 { 0.0 } else { ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1] };
    LatencyStats { p50_ms: rank(0.5), p95_ms: rank(0.95), mean_ms: if n == 0 { 0.0 } else { ms.iter().sum::<f64>() / n as f64 }, iters: n }
}

/// Evaluate each of `policies` on `enc`: accuracy and mean exit layer over every example (from
/// all exits' logits, computed once in batches), and batch-1 latency of [`EarlyExit::forward`]
/// over the first `latency_examples` sentences, `rounds` times, the policies interleaved
/// example by example so machine noise hits them alike.
pub fn sweep(ee: &EarlyExit, enc: &Encoded, policies: &[ExitPolicy], device: Device, latency_examples: usize, rounds: usize) -> Result<Vec<SweepRow>> {
    let mut per_example: Vec<Vec<Vec<f32>>> = vec![Vec::new(); enc.len()];
    for idx in BucketBatcher::new(128, 1).eval_order(&enc.lengths()) {
        let b = make_batch(enc, &idx, device)?;
        for logits in ee.all_exit_logits(&b.input_ids, &b.attention_mask)? {
            let p = logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?;
            let c = p.size()[1] as usize;
            let flat = Vec::<f32>::try_from(&p.f_reshape([-1])?)?;
            for (r, &i) in idx.iter().enumerate() {
                per_example[i].push(flat[r * c..(r + 1) * c].to_vec());
            }
        }
    }
    let mut rows = Vec::new();
    for &policy in policies {
        let (mut correct, mut layers) = (0usize, 0usize);
        for (probs, &label) in per_example.iter().zip(&enc.labels) {
            let exit = policy.decide(probs);
            let p = &probs[exit - 1];
            let pred = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            correct += (pred as i64 == label) as usize;
            layers += exit;
        }
        let n = enc.len().max(1) as f64;
        rows.push(SweepRow { policy, accuracy: correct as f64 / n, mean_exit_layer: layers as f64 / n, latency_b1: stats(Vec::new()) });
    }
    let singles = (0..latency_examples.min(enc.len())).map(|i| make_batch(enc, &[i], device)).collect::<std::result::Result<Vec<_>, _>>()?;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); policies.len()];
    for round in 0..rounds + 1 {
        for b in &singles {
            for (k, &policy) in policies.iter().enumerate() {
                let t0 = Instant::now();
                // Timed for its cost; the logits and exit are not needed.
                let (_logits, _exit) = ee.forward(&b.input_ids, &b.attention_mask, policy)?;
                if let Device::Cuda(i) = device {
                    tch::Cuda::synchronize(i as i64);
                }
                if round > 0 {
                    times[k].push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
    }
    for (row, t) in rows.iter_mut().zip(times) {
        row.latency_b1 = stats(t);
    }
    Ok(rows)
}
