//! Fixtures shared by the fine-tuning tests of whetstone-train and whetstone-run (each test
//! crate includes this file with `#[path]`): a small labelled corpus and a tiny random BERT
//! checkpoint written with `save_pretrained`.
#![allow(dead_code)]

use std::path::Path;
use tch::{nn::VarStore, Device, Tensor};
use whetstone_data::{Split, TextTokenizer};
use whetstone_models::{TransformerConfig, TransformerEncoder};

/// `n` short labelled sentences: label 1 has praise, label 0 has complaints.
pub fn corpus(n: usize) -> Split {
    let good = ["good", "great", "fine", "lovely", "superb"];
    let bad = ["bad", "awful", "dull", "boring", "weak"];
    let things = ["movie", "film", "plot", "acting", "story", "cast"];
    let mut split = Split { texts: Vec::new(), labels: Vec::new() };
    for i in 0..n {
        let words = if i % 2 == 1 { &good } else { &bad };
        let text = format!("the {} was {} and {}", things[i % 6], words[i % 5], words[(i / 5) % 5]);
        split.texts.push(if i % 3 == 0 { format!("{text} , really") } else { text });
        split.labels.push((i % 2) as i64);
    }
    split
}

/// A 2-layer, 16-wide random BERT with its own WordPiece tokenizer, saved in `dir`.
pub fn tiny_checkpoint(dir: &Path) -> TextTokenizer {
    let tok = TextTokenizer::train_wordpiece(&corpus(200).texts, 120, 1, true).unwrap();
    let tok_file = dir.with_extension("tokenizer.json");
    tok.save(&tok_file).unwrap();
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let config = TransformerConfig { layers: 2, hidden: 16, heads: 2, ffn: 32, max_len: 32, ..Default::default() };
    let encoder = TransformerEncoder::new(&vs.root(), tok.vocab_size() as i64, &config).unwrap();
    encoder.save_pretrained(dir, &tok_file).unwrap();
    tok
}

pub fn checkpoint_tensors(dir: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(dir.join("model.safetensors")).unwrap()
}

pub fn get<'a>(vars: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &vars.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

/// Whether every tensor whose name starts with `prefix` is bit-identical in `a` and `b`.
pub fn same(a: &[(String, Tensor)], b: &[(String, Tensor)], prefix: &str) -> bool {
    let names: Vec<&String> = a.iter().map(|(n, _)| n).filter(|n| n.starts_with(prefix)).collect();
    assert!(!names.is_empty(), "nothing starts with {prefix}");
    names.iter().all(|n| get(a, n).equal(get(b, n)))
}
