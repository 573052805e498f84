//! Fixtures shared by the adversarial and consistency tests of whetstone-train: a lock for
//! tests that draw from torch's global generator, synthetic token data, and tiny models.
#![allow(dead_code)]

use std::sync::Mutex;
use tch::{nn::VarStore, Device};
use whetstone_data::{make_batch, Batch, Encoded};
use whetstone_models::{ModelConfig, TextClassifier, TextCnnConfig, TransformerClassifierConfig, TransformerConfig};

/// Tests that draw from torch's global generator run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub const VOCAB: i64 = 40;

/// `n` sequences of 4 to 9 tokens; the label is whether token 7 occurs.
pub fn data(n: usize) -> Encoded {
    let mut ids = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let len = 4 + i % 6;
        let mut seq: Vec<i64> = vec![2];
        seq.extend((0..len - 2).map(|k| 5 + ((i * 7 + k * 3) % 30) as i64));
        seq.push(3);
        labels.push(seq.contains(&7) as i64);
        ids.push(seq);
    }
    Encoded { ids, labels, pad_id: 0 }
}

/// A 1-layer, 16-wide Transformer with the given hidden dropout (no attention dropout).
pub fn transformer_with_dropout(dropout: f64) -> ModelConfig {
    ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 16, dropout, attention_dropout: 0.0, ..Default::default() },
        ..Default::default()
    })
}

pub fn textcnn() -> ModelConfig {
    ModelConfig::Textcnn(TextCnnConfig { embed_dim: 12, channels: 3, ..Default::default() })
}

/// `model` built for `VOCAB` tokens and 2 classes on the CPU, after seeding torch with `seed`.
pub fn build(model: &ModelConfig, seed: i64) -> (VarStore, Box<dyn TextClassifier>) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = model.build(&vs.root(), VOCAB, 2).unwrap();
    (vs, m)
}

/// A padded batch of 6 examples of different lengths.
pub fn batch() -> Batch {
    make_batch(&data(6), &[0, 1, 2, 3, 4, 5], Device::Cpu).unwrap()
}
