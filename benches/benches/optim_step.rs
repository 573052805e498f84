//! One whetstone AdamW step (default flat+fused layout, weight decay 0.01 except bias/LayerNorm,
//! fixed random gradients) at MiniLM-L6 shapes (≈22.6M parameters in 101 tensors) and at 1M
//! parameters over 200 tensors, for tracking over time. The side-by-side comparison with
//! torch.optim is `cargo xtask bench optim-speed` (`src/bin/optim-speed.rs`).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;
use whetstone_benches::optim_shapes;
use whetstone_optim::{named_params, AdamW, AdamWConfig, Optimizer, NO_DECAY};

fn optim_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("optim_step");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    // One step takes tens of milliseconds at MiniLM size: the same iteration count per sample.
    group.sampling_mode(SamplingMode::Flat);
    for (name, shapes) in [("minilm_l6", optim_shapes::minilm()), ("1m_200_tensors", optim_shapes::small())] {
        let vs = optim_shapes::store(&shapes, 0);
        let mut opt = AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default()).expect("AdamW builds");
        assert!(opt.inner().is_flat());
        group.throughput(Throughput::Elements(optim_shapes::numel(&shapes) as u64));
        group.bench_function(format!("whetstone_adamw_{name}"), |b| b.iter(|| opt.step(1e-3).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, optim_step);
criterion_main!(benches);
