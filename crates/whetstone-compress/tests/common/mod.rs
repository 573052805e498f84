//! Tiny fixtures shared by the tests: a 2-layer Transformer classifier and a random batch.
#![allow(dead_code)]

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::{Batch, Encoded};
use whetstone_models::{TextClassifier, TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
use whetstone_train::StepContext;

pub const VOCAB: i64 = 40;

/// libtorch's random generator is global to the process and `cargo test` runs a binary's
/// tests on parallel threads: a test that seeds it or draws from it (every fixture here does)
/// holds this lock for its whole body, so another test's draws cannot land between its
/// `manual_seed` and the draws that depend on it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn config(layers: usize, hidden: usize, heads: usize, ffn: usize) -> TransformerClassifierConfig {
    TransformerClassifierConfig {
        encoder: TransformerConfig { layers, hidden, heads, ffn, max_len: 12, dropout: 0.0, attention_dropout: 0.0, ..Default::default() },
        ..Default::default()
    }
}

pub fn tiny(seed: i64) -> (VarStore, TransformerClassifier, TransformerClassifierConfig) {
    tiny_with(seed, config(2, 16, 4, 32))
}

pub fn tiny_with(seed: i64, cfg: TransformerClassifierConfig) -> (VarStore, TransformerClassifier, TransformerClassifierConfig) {
    // Tiny tensors: one intra-op thread avoids OpenMP spin-waits on a busy machine.
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let model = TransformerClassifier::new(&vs.root(), VOCAB, 3, &cfg).unwrap();
    // BERT's 0.02 init makes logits nearly constant; widen it so comparisons mean something.
    tch::no_grad(|| {
        for (_, mut t) in model.named_parameters() {
            if t.dim() == 2 {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.3));
            }
        }
    });
    (vs, model, cfg)
}

/// A batch of `b` rows with some padding, seeded.
pub fn batch(seed: i64, b: i64) -> Batch {
    tch::manual_seed(seed);
    let t = 8;
    let input_ids = Tensor::randint_low(4, VOCAB, [b, t], (Kind::Int64, Device::Cpu));
    let lens = Tensor::randint_low(3, t + 1, [b, 1], (Kind::Int64, Device::Cpu));
    let attention_mask = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0).lt_tensor(&lens).to_kind(Kind::Int64);
    let input_ids = &input_ids * &attention_mask;
    let labels = Tensor::randint(3, [b], (Kind::Int64, Device::Cpu));
    Batch::new(input_ids, attention_mask, labels)
}

/// `batch(seed, b)` as the examples `first..first + b` of some split (it carries their indices).
pub fn indexed_batch(seed: i64, b: i64, first: usize) -> Batch {
    let mut batch = batch(seed, b);
    batch.indices = (first..first + b as usize).collect();
    batch
}

/// A split of `n` random sentences of 3 to 10 tokens over the tiny vocabulary, 3 labels, seeded.
pub fn split(seed: i64, n: usize) -> Encoded {
    tch::manual_seed(seed);
    let lens = Vec::<i64>::try_from(Tensor::randint_low(3, 11, [n as i64], (Kind::Int64, Device::Cpu))).unwrap();
    let ids = lens.iter().map(|&l| Vec::<i64>::try_from(Tensor::randint_low(4, VOCAB, [l], (Kind::Int64, Device::Cpu))).unwrap()).collect();
    let labels = Vec::<i64>::try_from(Tensor::randint(3, [n as i64], (Kind::Int64, Device::Cpu))).unwrap();
    Encoded { ids, labels, pad_id: 0 }
}

/// The step context of step `step` for `model` (whose variables are `vs`), outside a trainer.
pub fn step_cx<'a>(model: &'a dyn TextClassifier, vs: &'a VarStore, step: u64) -> StepContext<'a> {
    StepContext::new(model, vs, step, 0, Device::Cpu, 7)
}

/// The variables of `vs` by name, deep-copied.
pub fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Two snapshots hold the same names and bit-identical tensors.
pub fn assert_same(what: &str, a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.iter().map(|(n, _)| n).collect::<Vec<_>>(), b.iter().map(|(n, _)| n).collect::<Vec<_>>(), "{what}: different names");
    for ((n, x), (_, y)) in a.iter().zip(b) {
        assert!(x.equal(y), "{what}: `{n}` differs (max |diff| {})", max_abs_diff(x, y));
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Names of the tiny models' 3 classes.
pub fn labels() -> Vec<String> {
    ["a", "b", "c"].map(String::from).to_vec()
}

/// AdamW with weight decay 0.01 (not on biases and LayerNorms) over per-tensor buffers, as the
/// compression pipelines default to.
pub fn default_optim() -> whetstone_optim::OptimConfig {
    whetstone_optim::OptimConfig { flat: false, ..Default::default() }
}
