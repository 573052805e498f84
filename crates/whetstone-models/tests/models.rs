use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::*;

fn tiny_transformer(pre_norm: bool, pooling: Pooling) -> ModelConfig {
    ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 2, hidden: 32, heads: 4, ffn: 64, max_len: 32, pre_norm, ..Default::default() },
        pooling,
        pretrained: None,
    })
}

fn all_configs() -> Vec<ModelConfig> {
    vec![
        tiny_transformer(false, Pooling::Mean),
        tiny_transformer(true, Pooling::Cls),
        tiny_transformer(false, Pooling::Max),
        ModelConfig::Textcnn(TextCnnConfig { embed_dim: 16, channels: 8, ..Default::default() }),
        ModelConfig::Bilstm(BiLstmConfig { embed_dim: 16, hidden: 8, layers: 2, ..Default::default() }),
    ]
}

/// A sentence must get the same logits alone and inside a padded batch: padding must not leak.
#[test]
fn padding_does_not_change_logits() {
    tch::manual_seed(0);
    for cfg in all_configs() {
        let vs = VarStore::new(Device::Cpu);
        let model = cfg.build(&vs.root(), 50, 3).unwrap();
        let alone = Tensor::from_slice(&[2i64, 7, 8, 9, 3]).view([1, 5]);
        let alone_mask = alone.ones_like();
        let padded = Tensor::from_slice(&[2i64, 7, 8, 9, 3, 0, 0, 0, 2, 11, 12, 13, 14, 15, 16, 3]).view([2, 8]);
        let padded_mask = padded.ne(0).to_kind(Kind::Int64);
        let a = model.forward_t(&alone, &alone_mask, false).unwrap();
        let b = model.forward_t(&padded, &padded_mask, false).unwrap().narrow(0, 0, 1);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{}: padding changed logits by {diff}", cfg.kind());
    }
}

#[test]
fn short_inputs_work_for_textcnn() {
    let vs = VarStore::new(Device::Cpu);
    let model = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 4, ..Default::default() }).build(&vs.root(), 20, 2).unwrap();
    let ids = Tensor::from_slice(&[2i64, 3]).view([1, 2]);
    let out = model.forward_t(&ids, &ids.ones_like(), false).unwrap();
    assert_eq!(out.size(), vec![1, 2]);
    assert!(bool::try_from(out.isfinite().all()).unwrap());
}

#[test]
fn transformer_uses_bert_parameter_names() {
    let vs = VarStore::new(Device::Cpu);
    let _m = tiny_transformer(false, Pooling::Cls).build(&vs.root(), 50, 2).unwrap();
    let vars = vs.variables();
    for name in [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.key.bias",
        "encoder.layer.0.attention.self.value.weight",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.attention.output.LayerNorm.weight",
        "encoder.layer.1.intermediate.dense.weight",
        "encoder.layer.1.output.dense.weight",
        "encoder.layer.1.output.LayerNorm.bias",
        "classifier.weight",
    ] {
        assert!(vars.contains_key(name), "missing {name}; have {:?}", vars.keys().collect::<Vec<_>>());
    }
    assert_eq!(vars["encoder.layer.1.intermediate.dense.weight"].size(), vec![64, 32]);
}

#[test]
fn bad_configs_are_rejected() {
    let vs = VarStore::new(Device::Cpu);
    let bad = ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { hidden: 30, heads: 4, ..Default::default() },
        ..Default::default()
    });
    let err = bad.build(&vs.root(), 10, 2).unwrap_err().to_string();
    assert!(err.contains("divisible"), "{err}");
    let err = ModelConfig::Textcnn(TextCnnConfig { dropout: 1.5, ..Default::default() }).build(&vs.root(), 10, 2).unwrap_err().to_string();
    assert!(err.contains("dropout"), "{err}");
    assert!(parse_device("cuda:x").is_err());
}

#[test]
fn checkpoint_round_trip_and_mismatch_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let m = tiny_transformer(false, Pooling::Mean).build(&vs.root(), 40, 2).unwrap();
    save_varstore(&vs, &path).unwrap();
    assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")), "a temporary file was left behind");

    tch::manual_seed(2);
    let mut vs2 = VarStore::new(Device::Cpu);
    let m2 = tiny_transformer(false, Pooling::Mean).build(&vs2.root(), 40, 2).unwrap();
    load_varstore(&mut vs2, &path).unwrap();
    let ids = Tensor::from_slice(&[2i64, 5, 6, 3]).view([1, 4]);
    let a = m.forward_t(&ids, &ids.ones_like(), false).unwrap();
    let b = m2.forward_t(&ids, &ids.ones_like(), false).unwrap();
    assert!(a.equal(&b));

    // A model of another shape: every difference is listed.
    let mut vs3 = VarStore::new(Device::Cpu);
    let _m3 = ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 1, hidden: 32, heads: 4, ffn: 48, max_len: 32, ..Default::default() },
        ..Default::default()
    })
    .build(&vs3.root(), 40, 2)
    .unwrap();
    let err = load_varstore(&mut vs3, &path).unwrap_err().to_string();
    assert!(err.contains("shape: encoder.layer.0.intermediate.dense.weight"), "{err}");
    assert!(err.contains("unexpected: encoder.layer.1.output.dense.weight"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");

    std::fs::write(&path, b"not safetensors").unwrap();
    let err = load_varstore(&mut vs2, &path).unwrap_err().to_string();
    assert!(err.contains("not a readable safetensors"), "{err}");
}

/// The MLM decoder is the word-embedding matrix itself: the head owns no vocab × hidden
/// weight, and the loss reaches embedding rows of tokens that are not in the input.
#[test]
fn mlm_head_decodes_through_the_tied_word_embeddings() {
    use whetstone_models::{MlmHead, TransformerEncoder};
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg = TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() };
    let enc = TransformerEncoder::new(&vs.root(), 40, &cfg).unwrap();
    let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &enc);
    let names: Vec<String> = head.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"]);
    assert!(!vs.variables().keys().any(|k| k.contains("decoder")));
    let ids = tch::Tensor::from_slice(&[2i64, 5, 6, 3]).view([1, 4]);
    let states = enc.forward_t(&ids, &ids.ones_like(), false).unwrap();
    let logits = head.forward(&states.view([4, 16]), &enc).unwrap();
    assert_eq!(logits.size(), vec![4, 40]);
    logits.cross_entropy_for_logits(&tch::Tensor::from_slice(&[30i64, 31, 32, 33])).backward();
    let g = enc.embeddings().word_weight().grad();
    // Rows 30..34 never appear in the input: only the tied decoder can give them a gradient.
    assert!(g.narrow(0, 30, 4).abs().sum(tch::Kind::Float).double_value(&[]) > 0.0);
}
