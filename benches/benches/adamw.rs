//! One AdamW step over ~1M parameters spread across 200 tensors (with gradients set), and
//! `clip_grad_norm` on the same. (`optim_step` benches one step of AdamW at MiniLM-L6 shapes and
//! at 1M parameters over 200 tensors of equal size.)

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_optim::{clip_grad_norm, named_params, AdamW, AdamWConfig, Optimizer, NO_DECAY};

/// 200 tensors: 100 matrices of 96×100 (weight decay) and 100 bias vectors of 100
/// (no decay), 970k parameters, with random gradients.
fn store() -> VarStore {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    for i in 0..100 {
        let layer = &root / format!("layer{i:03}");
        let w = layer.randn("weight", &[96, 100], 0.0, 0.02);
        let b = layer.zeros("bias", &[100]);
        // Populate .grad through a backward pass.
        (w.sum(Kind::Float) * 0.5 + (&b * &b).sum(Kind::Float)).backward();
    }
    for (_, t) in vs.variables() {
        let mut g = t.grad();
        tch::no_grad(|| {
            g.copy_(&Tensor::randn_like(&t));
        });
    }
    vs
}

fn adamw(c: &mut Criterion) {
    let mut group = c.benchmark_group("adamw_1m_200_tensors");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let vs = store();
    let n: i64 = vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
    assert_eq!(vs.trainable_variables().len(), 200);
    assert!((900_000..1_100_000).contains(&n));
    let mut opt = AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default()).unwrap();
    group.bench_function("whetstone_adamw_step", |b| b.iter(|| opt.step(1e-3).unwrap()));
    let params = vs.trainable_variables();
    let refs: Vec<&Tensor> = params.iter().collect();
    group.bench_function("clip_grad_norm", |b| b.iter(|| clip_grad_norm(&refs, 1e9).unwrap()));
    group.finish();
}

criterion_group!(benches, adamw);
criterion_main!(benches);
