//! Inference-efficiency measurements: latency percentiles, throughput,
//! parameter count and checkpoint size.
//!
//! Latency is reported as nearest-rank percentiles rather than a mean alone
//! because GPU/CPU timings are right-skewed (allocator warm-up, scheduler
//! noise); p50/p95 are what model-efficiency tables conventionally report.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::fs::io_err;
use crate::EvalError;

/// Per-call latency summary in milliseconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LatencyStats {
    /// Median (nearest-rank 50th percentile).
    pub p50_ms: f64,
    /// Nearest-rank 95th percentile.
    pub p95_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Number of timed calls (warm-up excluded).
    pub iters: usize,
}

/// Efficiency figures reported alongside accuracy for one trained model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Efficiency {
    /// Number of trainable parameters.
    pub params: u64,
    /// Size of the saved checkpoint in bytes.
    pub checkpoint_bytes: u64,
    /// Latency of a single-example forward pass.
    pub latency_b1: LatencyStats,
    /// Examples per second at batch size 32.
    pub throughput_b32: f64,
}

impl Efficiency {
    /// One line for a terminal: latency, throughput, parameters and checkpoint size.
    pub fn summary(&self) -> String {
        format!(
            "latency (batch 1) p50 {:.2} ms  p95 {:.2} ms; throughput (batch 32) {:.0} seq/s; {} parameters; checkpoint {:.1} MB",
            self.latency_b1.p50_ms,
            self.latency_b1.p95_ms,
            self.throughput_b32,
            crate::format_count(self.params),
            self.checkpoint_bytes as f64 / 1e6
        )
    }
}

/// Time `iters` calls of `f` (after `warmup` untimed calls), one `Instant`
/// per call, and summarise them. `iters == 0` yields all-zero statistics.
///
/// `f` must block until its work is finished (e.g. synchronise the device),
/// otherwise asynchronous kernels are not measured.
pub fn measure_latency(warmup: usize, iters: usize, mut f: impl FnMut()) -> LatencyStats {
    for _ in 0..warmup {
        f();
    }
    let samples: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    latency_stats(samples)
}

/// Items per second over `iters` timed calls of `f`, each processing
/// `items_per_call` items, after `warmup` untimed calls. Timed as one span so
/// per-call timer overhead does not bias small batches. Returns 0 when
/// nothing was timed.
pub fn measure_throughput(
    warmup: usize,
    iters: usize,
    items_per_call: usize,
    mut f: impl FnMut(),
) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let secs = start.elapsed().as_secs_f64();
    if iters == 0 || secs <= 0.0 {
        return 0.0;
    }
    (iters * items_per_call) as f64 / secs
}

/// Size in bytes of `path`; for a directory (a sharded checkpoint), the sum
/// of all regular files beneath it.
///
/// # Errors
/// [`EvalError::Io`] naming the path that could not be read.
pub fn file_size(path: impl AsRef<Path>) -> Result<u64, EvalError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| io_err(path, e))? {
        let entry = entry.map_err(|e| io_err(path, e))?;
        total += file_size(entry.path())?;
    }
    Ok(total)
}

/// Summarise raw millisecond samples (order irrelevant).
pub(crate) fn latency_stats(mut samples_ms: Vec<f64>) -> LatencyStats {
    let iters = samples_ms.len();
    if iters == 0 {
        return LatencyStats {
            p50_ms: 0.0,
            p95_ms: 0.0,
            mean_ms: 0.0,
            iters: 0,
        };
    }
    samples_ms.sort_by(f64::total_cmp);
    LatencyStats {
        p50_ms: nearest_rank(&samples_ms, 50.0),
        p95_ms: nearest_rank(&samples_ms, 95.0),
        mean_ms: samples_ms.iter().sum::<f64>() / iters as f64,
        iters,
    }
}

/// Nearest-rank percentile of ascending, non-empty `sorted`: the value at
/// 1-based rank `ceil(p/100 · N)` (clamped to `1..=N`). It always returns an
/// observed sample, unlike interpolating definitions.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // Wikipedia "Percentile" nearest-rank example: {15, 20, 35, 40, 50}
        // → P30 = 20, P40 = 20, P50 = 35, P100 = 50.
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(nearest_rank(&v, 30.0), 20.0);
        assert_eq!(nearest_rank(&v, 40.0), 20.0);
        assert_eq!(nearest_rank(&v, 50.0), 35.0);
        assert_eq!(nearest_rank(&v, 100.0), 50.0);
        assert_eq!(nearest_rank(&v, 0.0), 15.0);
    }

    #[test]
    fn stats_on_known_samples() {
        // 1..=100 shuffled: p50 = 50 (rank 50), p95 = 95 (rank 95), mean 50.5.
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        v.swap(3, 77);
        let s = latency_stats(v);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p95_ms, 95.0);
        assert_eq!(s.mean_ms, 50.5);
        assert_eq!(s.iters, 100);

        // Small N: 4 samples → p50 rank 2, p95 rank ceil(3.8) = 4.
        let s = latency_stats(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.p50_ms, s.p95_ms, s.mean_ms), (2.0, 4.0, 2.5));

        assert_eq!(latency_stats(vec![]).iters, 0);
    }

    #[test]
    fn measure_counts_calls_and_times_work() {
        let mut calls = 0;
        let s = measure_latency(3, 5, || {
            calls += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
        });
        assert_eq!(calls, 8);
        assert_eq!(s.iters, 5);
        assert!(s.p50_ms >= 2.0 && s.p95_ms >= s.p50_ms, "{s:?}");

        let tput = measure_throughput(1, 4, 32, || {
            std::thread::sleep(std::time::Duration::from_millis(5))
        });
        // 32 items per ≥5 ms → at most 6400 items/s.
        assert!(tput > 0.0 && tput <= 6400.0, "{tput}");
        assert_eq!(measure_throughput(0, 0, 32, || {}), 0.0);
    }

    #[test]
    fn file_and_dir_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.bin"), [0u8; 23]).unwrap();
        assert_eq!(file_size(dir.path().join("a.bin")).unwrap(), 100);
        assert_eq!(file_size(dir.path()).unwrap(), 123);
        let missing = dir.path().join("nope.safetensors");
        let err = file_size(&missing).unwrap_err();
        assert!(err.to_string().contains("nope.safetensors"), "{err}");
    }
}
