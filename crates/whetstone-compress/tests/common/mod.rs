//! Tiny fixtures shared by the tests: a 2-layer Transformer classifier and a random batch.
#![allow(dead_code)]

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerConfig};

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
    Batch { input_ids, attention_mask, labels }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}
