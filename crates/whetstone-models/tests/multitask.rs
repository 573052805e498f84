//! The multi-task model: one shared encoder, a head per task, stable names, checkpoints,
//! a pretrained encoder, and a sequence head exported as an ordinary classifier.

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::pretrained::BertCheckpoint;
use whetstone_models::{
    load_varstore, require_multi_head, save_varstore, HeadKind, ModelConfig, MultiHead, MultiTaskModel, Pooling, TaskHead, TextClassifier, TextCnnConfig,
    TransformerClassifier, TransformerClassifierConfig, TransformerConfig,
};

fn tiny() -> TransformerConfig {
    TransformerConfig { layers: 2, hidden: 16, heads: 2, ffn: 32, max_len: 16, ..Default::default() }
}

fn tasks() -> Vec<TaskHead> {
    vec![TaskHead::new("rt", HeadKind::Sequence, 2), TaskHead::new("ner", HeadKind::Token, 5), TaskHead::new("spam", HeadKind::Sequence, 3)]
}

fn input() -> (Tensor, Tensor) {
    let ids = Tensor::from_slice(&[2i64, 10, 11, 12, 3, 2, 13, 3, 0, 0]).view([2, 5]);
    (ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64))
}

#[test]
fn heads_have_stable_names_and_shapes_and_forward_t_is_the_main_task() {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let model = MultiTaskModel::new(&vs.root(), 40, &tiny(), Pooling::Mean, &tasks()).unwrap();
    let vars = vs.variables();
    for name in ["heads.rt.classifier.weight", "heads.ner.classifier.bias", "heads.spam.classifier.weight", "encoder.layer.1.output.dense.weight", "embeddings.word_embeddings.weight"] {
        assert!(vars.contains_key(name), "{name} missing");
    }
    let (ids, mask) = input();
    let mh = require_multi_head(&model, "test").ok().unwrap();
    assert_eq!(mh.tasks().len(), 3);
    assert_eq!(mh.forward_task(0, &ids, &mask, false).unwrap().size(), [2, 2]);
    assert_eq!(mh.forward_task(1, &ids, &mask, false).unwrap().size(), [2, 5, 5]);
    assert_eq!(mh.forward_task(2, &ids, &mask, false).unwrap().size(), [2, 3]);
    assert!(mh.forward_task(3, &ids, &mask, false).is_err());
    assert!(model.forward_t(&ids, &mask, false).unwrap().equal(&mh.forward_task(0, &ids, &mask, false).unwrap()));
    // The shared parameters are the encoder's; the last shared layer is the last block's output.
    assert!(mh.shared_parameters().iter().all(|(n, _)| !n.starts_with("heads.")));
    let last: Vec<String> = mh.last_shared_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(last, ["encoder.layer.1.output.dense.weight", "encoder.layer.1.output.dense.bias", "encoder.layer.1.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias"]);
    assert_eq!(model.task_index("spam").unwrap(), 2);
    assert!(model.task_index("nope").unwrap_err().to_string().contains("rt, ner, spam"));
}

#[test]
fn checkpoints_round_trip_and_a_sequence_head_exports_as_a_single_task_classifier() {
    tch::manual_seed(2);
    let vs = VarStore::new(Device::Cpu);
    let model = MultiTaskModel::new(&vs.root(), 40, &tiny(), Pooling::Cls, &tasks()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_varstore(&vs, &path).unwrap();
    tch::manual_seed(3);
    let mut vs2 = VarStore::new(Device::Cpu);
    let model2 = MultiTaskModel::new(&vs2.root(), 40, &tiny(), Pooling::Cls, &tasks()).unwrap();
    load_varstore(&mut vs2, &path).unwrap();
    let (ids, mask) = input();
    for t in 0..3 {
        assert!(model.forward_task(t, &ids, &mask, false).unwrap().equal(&model2.forward_task(t, &ids, &mask, false).unwrap()));
    }
    // Task 2 as an ordinary TransformerClassifier: the encoder's names plus classifier.*.
    let mut tensors = model.encoder().named_parameters();
    tensors.extend(model.head_parameters(2).unwrap());
    let single = dir.path().join("single.safetensors");
    whetstone_models::write_safetensors_atomic(&tensors, &single).unwrap();
    let mut vs3 = VarStore::new(Device::Cpu);
    let cfg = TransformerClassifierConfig { encoder: tiny(), pooling: Pooling::Cls, pretrained: None };
    let clf = TransformerClassifier::new(&vs3.root(), 40, 3, &cfg).unwrap();
    load_varstore(&mut vs3, &single).unwrap();
    assert!(clf.forward_t(&ids, &mask, false).unwrap().equal(&model.forward_task(2, &ids, &mask, false).unwrap()));
}

#[test]
fn bad_tasks_and_single_head_models_are_errors() {
    let vs = VarStore::new(Device::Cpu);
    let bad = |t: Vec<TaskHead>| MultiTaskModel::new(&vs.root(), 40, &tiny(), Pooling::Mean, &t).unwrap_err().to_string();
    assert!(bad(vec![]).contains("at least one task"));
    assert!(bad(vec![TaskHead::new("a.b", HeadKind::Sequence, 2)]).contains("tasks[0].name"));
    assert!(bad(vec![TaskHead::new("a", HeadKind::Sequence, 2), TaskHead::new("a", HeadKind::Token, 3)]).contains("used twice"));
    assert!(bad(vec![TaskHead::new("a", HeadKind::Sequence, 1)]).contains("at least 2"));
    let cnn = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 2, ..Default::default() }).build(&(vs.root() / "cnn"), 40, 2).unwrap();
    let e = require_multi_head(cnn.as_ref(), "multi-task learning").err().unwrap().to_string();
    assert!(e.contains("textcnn") && e.contains("multi-task learning"), "{e}");
}

#[test]
fn a_pretrained_minilm_encoder_loads_under_the_heads_when_cached() {
    let manifest = whetstone_data::Manifest::builtin().unwrap();
    let Some(dir) = whetstone_data::cached(manifest.get("minilm-l6").unwrap(), &whetstone_data::cache_dir()).unwrap() else {
        eprintln!("minilm-l6 is not cached: skipped");
        return;
    };
    let ckpt = BertCheckpoint::open(&dir).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = MultiTaskModel::from_pretrained(&vs.root(), &ckpt, Pooling::Mean, &tasks()[..2]).unwrap();
    let vs_ref = VarStore::new(Device::Cpu);
    let reference = ckpt.load_encoder(&vs_ref.root()).unwrap();
    let ids = Tensor::from_slice(&[101i64, 1037, 2158, 2003, 2652, 1037, 2858, 102]).view([1, 8]);
    let mask = ids.ones_like();
    let a = model.encoder().forward_t(&ids, &mask, false).unwrap();
    let b = reference.forward_t(&ids, &mask, false).unwrap();
    assert!(a.equal(&b));
    assert_eq!(model.forward_task(1, &ids, &mask, false).unwrap().size(), [1, 8, 5]);
}
