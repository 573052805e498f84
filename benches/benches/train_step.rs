//! Forward + backward + clip + AdamW step of each benchmark workload on one fixed synthetic
//! batch (the recipe's batch size, 32 tokens, vocabulary 16000), with the library pieces that
//! `Trainer::fit` calls per step. Needs no dataset.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tch::Tensor;
use whetstone_benches::{synthetic_batch, Workload, VOCAB_SIZE};
use whetstone_optim::clip_grad_norm;
use whetstone_train::{CrossEntropy, Objective};

const SEQ_LEN: i64 = 32;

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for w in Workload::all().expect("recipes parse") {
        let (vs, model) = w.build(VOCAB_SIZE as i64, 2, 42).expect("model builds");
        let mut optim = w.recipe.optim.build(&vs).expect("optimiser builds");
        let batch = synthetic_batch(w.batch_size() as i64, SEQ_LEN, VOCAB_SIZE as i64, 2, 7);
        let mut objective = CrossEntropy::default();
        let params: Vec<Tensor> = optim.params().into_iter().map(Tensor::shallow_clone).collect();
        let params: Vec<&Tensor> = params.iter().collect();
        let clip = w.clip_norm();
        group.bench_function(format!("{}_b{}_t{SEQ_LEN}", w.name, w.batch_size()), |b| {
            b.iter(|| {
                optim.zero_grad();
                let loss = objective.loss(&*model, &batch);
                let _ = loss.double_value(&[]);
                loss.backward();
                clip_grad_norm(&params, clip).unwrap();
                optim.step(1e-3).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
