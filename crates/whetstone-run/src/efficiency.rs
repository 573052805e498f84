//! Efficiency of a trained classifier: size, batch-1 latency and batch-32 throughput.

use whetstone_train::Result;
use std::path::Path;
use tch::{nn::VarStore, Device};
use whetstone_data::{make_batch, Encoded};
use whetstone_eval::{file_size, measure_latency, measure_throughput, Efficiency};
use whetstone_models::{count_parameters, TextClassifier};
use whetstone_train::Precision;

/// The progress line printed before [`measure_efficiency`] (a silent phase of seconds to
/// minutes otherwise); `key` is the setting that skips it (`eval.latency_iters` in a recipe).
pub fn efficiency_line(latency_iters: usize, throughput_iters: usize, key: &str) -> String {
    format!("measuring latency ({latency_iters} batch-1 calls) and throughput ({throughput_iters} batch-32 calls) on the test split… (`--set {key}=0` skips it)")
}

/// Measure `model` on examples of `enc` (real sentences, in their order): latency of single
/// sentences (`latency_iters` timed calls after a warm-up) and throughput at batch 32, with
/// the forward passes in `precision`.
#[allow(clippy::too_many_arguments)]
pub fn measure_efficiency(
    model: &dyn TextClassifier,
    vs: &VarStore,
    checkpoint: &Path,
    enc: &Encoded,
    device: Device,
    precision: Precision,
    latency_iters: usize,
    throughput_iters: usize,
) -> Result<Efficiency> {
    let n = enc.ids.len().max(1);
    if enc.is_empty() {
        return Err(whetstone_train::TrainError::Config("efficiency needs at least one example".into()));
    }
    let singles: Vec<_> = (0..n.min(256)).map(|i| make_batch(enc, &[i % enc.ids.len()], device)).collect::<whetstone_data::Result<_>>()?;
    let batches: Vec<_> = (0..8).map(|b| make_batch(enc, &(0..32).map(|i| (b * 32 + i) % enc.ids.len()).collect::<Vec<_>>(), device)).collect::<whetstone_data::Result<_>>()?;
    let _amp = precision.region(device)?;
    // One checked pass first: a model that fails fails here with its error, not in a timed loop.
    let _probe = model.forward_t(&singles[0].input_ids, &singles[0].attention_mask, false)?;
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let (latency, throughput) = tch::no_grad(|| {
        let mut k = 0;
        let lat = measure_latency(latency_iters / 10, latency_iters, || {
            let b = &singles[k % singles.len()];
            k += 1;
            let _ = model.forward_t(&b.input_ids, &b.attention_mask, false);
            sync();
        });
        let mut k = 0;
        let thr = measure_throughput(2, throughput_iters, 32, || {
            let b = &batches[k % batches.len()];
            k += 1;
            let _ = model.forward_t(&b.input_ids, &b.attention_mask, false);
            sync();
        });
        (lat, thr)
    });
    Ok(Efficiency { params: count_parameters(vs), checkpoint_bytes: file_size(checkpoint)?, latency_b1: latency, throughput_b32: throughput })
}
