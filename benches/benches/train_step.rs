//! One optimiser step of each benchmark workload, through the loop's own
//! [`Trainer::train_step`] (reseed, zero_grad, build the batch from a `BucketedSource`,
//! cross-entropy forward and backward, clip, the recipe's optimiser step) on one fixed
//! synthetic batch: the recipe's batch size, up to 32 tokens, vocabulary 16000. Needs no
//! dataset.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tch::Device;
use whetstone_benches::{synthetic_split, Workload, VOCAB_SIZE};
use whetstone_data::{BatchSource, BucketedSource};
use whetstone_train::{Silent, Trainer};

const SEQ_LEN: usize = 32;
const SEED: u64 = 42;

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for w in Workload::all().expect("recipes parse") {
        let (vs, model) = w.build(VOCAB_SIZE as i64, 2, SEED as i64).expect("model builds");
        let optim = w.recipe.optim.build(&vs).expect("optimiser builds");
        // Exactly one batch per epoch: every step trains on the same examples.
        let data = synthetic_split(w.batch_size(), SEQ_LEN, VOCAB_SIZE as i64, 2, 7);
        let source = BucketedSource::new(&data, w.batch_size(), 1);
        let plan = source.epoch_plan(SEED, 0).expect("plan");
        assert_eq!(plan.len(), 1);
        let mut trainer = Trainer::new(model.as_ref(), &vs, optim, w.recipe.optim.lr, std::env::temp_dir())
            .config(w.recipe.train.clone())
            .seed(SEED)
            .device(Device::Cpu)
            .observer(Silent);
        let mut step = 0;
        group.bench_function(format!("{}_b{}_t{SEQ_LEN}", w.name, w.batch_size()), |b| {
            b.iter(|| {
                trainer.train_step(&source, &plan, step, 0, 1e-3).expect("train step");
                step += 1;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
