//! Hugging Face checkpoint folders on a tiny random BERT: names with or without `bert.`,
//! skipped buffers, every difference listed, bad files as errors, recipes with `pretrained`.

use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::pretrained::BertCheckpoint;
use whetstone_models::*;

fn tiny() -> TransformerConfig {
    TransformerConfig { layers: 2, hidden: 16, heads: 2, ffn: 32, max_len: 12, dropout: 0.0, attention_dropout: 0.0, ..Default::default() }
}

/// A tiny encoder exported to `dir`; returns the encoder's output on a fixed batch.
fn export_tiny(dir: &Path) -> (Tensor, Tensor, Tensor) {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let encoder = TransformerEncoder::new(&vs.root(), 40, &tiny()).unwrap();
    let tokenizer = dir.with_extension("tokenizer.json");
    std::fs::write(&tokenizer, "{}").unwrap();
    encoder.save_pretrained(dir, &tokenizer).unwrap();
    let ids = Tensor::from_slice(&[2i64, 10, 11, 3, 2, 12, 3, 0]).view([2, 4]);
    let mask = ids.ne(0).to_kind(Kind::Int64);
    let out = tch::no_grad(|| encoder.forward_t(&ids, &mask, false)).unwrap();
    (ids, mask, out)
}

/// Rewrites the folder's weights through `f` (names as stored).
fn rewrite(dir: &Path, f: impl FnOnce(Vec<(String, Tensor)>) -> Vec<(String, Tensor)>) {
    let path = dir.join("model.safetensors");
    let tensors = f(Tensor::read_safetensors(&path).unwrap());
    Tensor::write_safetensors(&tensors, &path).unwrap();
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c[key] = value;
    std::fs::write(&path, c.to_string()).unwrap();
}

#[test]
fn bert_prefix_position_ids_and_pooler_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let (ids, mask, expected) = export_tiny(&dir);
    rewrite(&dir, |ts| {
        let mut ts: Vec<(String, Tensor)> = ts.into_iter().map(|(n, t)| (format!("bert.{n}"), t)).collect();
        ts.push(("bert.embeddings.position_ids".into(), Tensor::arange(12, (Kind::Int64, Device::Cpu)).unsqueeze(0)));
        ts.push(("bert.pooler.dense.weight".into(), Tensor::zeros([16, 16], (Kind::Float, Device::Cpu))));
        ts.push(("bert.pooler.dense.bias".into(), Tensor::zeros([16], (Kind::Float, Device::Cpu))));
        ts
    });
    let vs = VarStore::new(Device::Cpu);
    let encoder = BertCheckpoint::open(&dir).unwrap().load_encoder(&vs.root()).unwrap();
    assert_eq!(encoder.config(), &tiny());
    let got = tch::no_grad(|| encoder.forward_t(&ids, &mask, false)).unwrap();
    assert!(got.equal(&expected));

    // An MLM head is unexpected unless asked to be skipped.
    rewrite(&dir, |mut ts| {
        ts.push(("cls.predictions.bias".into(), Tensor::zeros([40], (Kind::Float, Device::Cpu))));
        ts
    });
    let err = BertCheckpoint::open(&dir).unwrap().load_encoder(&VarStore::new(Device::Cpu).root()).unwrap_err();
    assert!(err.to_string().contains("unexpected: cls.predictions.bias"), "{err}");
    let ckpt = BertCheckpoint::open(&dir).unwrap().ignoring(["cls."]);
    assert!(ckpt.load_encoder(&VarStore::new(Device::Cpu).root()).is_ok());
}

#[test]
fn every_difference_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let _ = export_tiny(&dir);
    rewrite(&dir, |ts| {
        ts.into_iter()
            .filter(|(n, _)| n != "encoder.layer.1.attention.self.key.bias")
            .map(|(n, t)| match n.as_str() {
                "embeddings.token_type_embeddings.weight" => (n, Tensor::zeros([3, 16], (Kind::Float, Device::Cpu))),
                "encoder.layer.0.output.dense.bias" => ("encoder.layer.0.output.dense.bais".into(), t),
                _ => (n, t),
            })
            .collect()
    });
    let err = BertCheckpoint::open(&dir).unwrap().load_encoder(&VarStore::new(Device::Cpu).root()).unwrap_err();
    let msg = err.to_string();
    for line in [
        "missing: encoder.layer.1.attention.self.key.bias [16]",
        "missing: encoder.layer.0.output.dense.bias [16]",
        "unexpected: encoder.layer.0.output.dense.bais [16]",
        "shape: embeddings.token_type_embeddings.weight model [2, 16] vs file [3, 16]",
    ] {
        assert!(msg.contains(line), "`{line}` not in:\n{msg}");
    }
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn bad_folders_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let _ = export_tiny(&dir);

    edit_config(&dir, "hidden_act", "relu".into());
    let err = BertCheckpoint::open(&dir).unwrap_err().to_string();
    assert!(err.contains("hidden_act `relu`") && err.contains("config.json"), "{err}");
    edit_config(&dir, "hidden_act", "gelu".into());

    edit_config(&dir, "num_attention_heads", 3.into());
    assert!(BertCheckpoint::open(&dir).unwrap_err().to_string().contains("divisible"));
    edit_config(&dir, "num_attention_heads", 2.into());

    std::fs::write(dir.join("model.safetensors"), b"not safetensors at all").unwrap();
    let err = BertCheckpoint::open(&dir).unwrap().load_encoder(&VarStore::new(Device::Cpu).root()).unwrap_err();
    assert!(err.to_string().contains("not a readable safetensors file"), "{err}");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(BertCheckpoint::open(&dir).unwrap_err().to_string().contains("no model.safetensors"));

    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 16}").unwrap();
    let err = BertCheckpoint::open(&dir).unwrap_err().to_string();
    assert!(err.contains("not a BERT config.json") && err.contains("vocab_size"), "{err}");
    assert!(BertCheckpoint::open(tmp.path().join("nowhere")).is_err());
}

#[test]
fn recipes_start_from_a_pretrained_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let (ids, mask, _) = export_tiny(&dir);
    let recipe = |max_len: usize| -> ModelConfig {
        serde_json::from_value(serde_json::json!({ "kind": "transformer", "pretrained": dir, "max_len": max_len, "pooling": "cls" })).unwrap()
    };

    let vs = VarStore::new(Device::Cpu);
    let model = recipe(12).build(&vs.root(), 40, 3).unwrap();
    assert_eq!(model.forward_t(&ids, &mask, false).unwrap().size(), [2, 3]);
    // The encoder came from the file: its shape is the checkpoint's, not the recipe default.
    assert_eq!(vs.variables()["encoder.layer.0.intermediate.dense.weight"].size(), [32, 16]);
    assert_eq!(vs.variables()["classifier.weight"].size(), [3, 16]);

    let err = recipe(12).build(&VarStore::new(Device::Cpu).root(), 41, 3).unwrap_err().to_string();
    assert!(err.contains("41 ids") && err.contains("tokenizer.json"), "{err}");
    let err = recipe(13).build(&VarStore::new(Device::Cpu).root(), 40, 3).unwrap_err().to_string();
    assert!(err.contains("max_len 13"), "{err}");

    // An exported classifier's head must fit the requested number of labels.
    let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let m = BertCheckpoint::open(&dir).unwrap().load_classifier(&VarStore::new(Device::Cpu).root(), 3, Pooling::Cls).unwrap();
    let out = tmp.path().join("clf");
    m.save_pretrained(&out, &labels, &dir.join("tokenizer.json")).unwrap();
    assert!(m.save_pretrained(&out, &labels[..2], &dir.join("tokenizer.json")).is_err());
    let err = TransformerClassifier::from_pretrained(&VarStore::new(Device::Cpu).root(), &out, 2, Pooling::Cls).unwrap_err().to_string();
    assert!(err.contains("shape: classifier.weight model [2, 16] vs file [3, 16]"), "{err}");
    // And a plain encoder load refuses the head it cannot hold.
    let err = BertCheckpoint::open(&out).unwrap().load_encoder(&VarStore::new(Device::Cpu).root()).unwrap_err().to_string();
    assert!(err.contains("unexpected: classifier.weight"), "{err}");
}

#[test]
fn pre_norm_encoders_cannot_be_exported_as_bert() {
    let vs = VarStore::new(Device::Cpu);
    let encoder = TransformerEncoder::new(&vs.root(), 40, &TransformerConfig { pre_norm: true, ..tiny() }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = encoder.save_pretrained(tmp.path(), Path::new("unused.json")).unwrap_err().to_string();
    assert!(err.contains("pre-LayerNorm"), "{err}");
}

#[test]
fn pretrained_weights_holding_nan_are_refused_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let _ = export_tiny(&dir);
    rewrite(&dir, |ts| {
        ts.into_iter()
            .map(|(n, t)| if n == "encoder.layer.1.output.dense.bias" { let t = t.copy(); let _ = t.get(3).fill_(f64::NAN); (n, t) } else { (n, t) })
            .collect()
    });
    let vs = VarStore::new(Device::Cpu);
    let err = BertCheckpoint::open(&dir).unwrap().load_encoder(&vs.root()).unwrap_err().to_string();
    assert!(err.contains("encoder.layer.1.output.dense.bias") && err.contains("NaN"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");
}
