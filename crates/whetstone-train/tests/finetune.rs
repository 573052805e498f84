//! Fine-tuning utilities on a tiny random BERT checkpoint written with `save_pretrained`:
//! frozen blocks stay bit-identical, gradual unfreezing follows its schedule and resumes
//! exactly, re-initialisation, layer-wise lr decay with BERT names, and pooling. (A whole run
//! from a recipe that names the checkpoint is tested in whetstone-run.)

use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::{encode, Encoded, Split, TextTokenizer};
use whetstone_models::pretrained::BertCheckpoint;
use whetstone_models::{ModelConfig, Pooling, TransformerClassifierConfig, TransformerConfig};
use whetstone_optim::{param_groups, OptimConfig, Schedule, NO_DECAY};
use whetstone_train::*;
mod common {
    pub mod tiny_bert;
}
use common::tiny_bert::{checkpoint_tensors, corpus, get, same, tiny_checkpoint};

/// libtorch's generator is global and tests run on parallel threads.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn sorted_vars(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

struct Data {
    train: Encoded,
    valid: Encoded,
}

fn data(tok: &TextTokenizer) -> Data {
    let all = corpus(120);
    let part = |r: std::ops::Range<usize>| Split { texts: all.texts[r.clone()].to_vec(), labels: all.labels[r].to_vec() };
    Data { train: encode(tok, &part(0..96), 24).unwrap(), valid: encode(tok, &part(96..120), 24).unwrap() }
}

fn train_config() -> TrainConfig {
    // 96 examples in batches of 16: 6 steps an epoch, 12 in all.
    TrainConfig { epochs: 2, batch_size: 16, eval_every: 5, checkpoint_every: 3, log_every: 5, bucket_factor: 2, ..Default::default() }
}

/// Fine-tune the checkpoint in `ckpt` into `run` with `finetune`; returns the final variables.
#[allow(clippy::too_many_arguments)]
fn fit(ckpt: &Path, d: &Data, finetune: &FinetuneConfig, cfg: TrainConfig, stop_after: u64, run: &Path, resume: bool, init_seed: i64) -> (Vec<(String, Tensor)>, Outcome) {
    tch::manual_seed(init_seed);
    let vs = VarStore::new(Device::Cpu);
    let model = BertCheckpoint::open(ckpt).unwrap().load_classifier(&vs.root(), 2, Pooling::Mean).unwrap();
    finetune.prepare(&vs, Some(0.02), 3).unwrap();
    // Weight decay makes a zero gradient insufficient for freezing: the test would catch it.
    let optim = OptimConfig { weight_decay: 0.1, ..Default::default() }.build(&vs).unwrap();
    let source = whetstone_data::BucketedSource::new(&d.train, cfg.batch_size, cfg.bucket_factor);
    let optim = finetune.wrap_optimizer(optim, &vs, steps_per_epoch(&cfg, &source, 11).unwrap()).unwrap();
    let mut t = Trainer::new(&model, &vs, optim, 3e-3, run)
        .schedule(Schedule::Constant)
        .config(cfg)
        .seed(11)
        .label_names(vec!["neg".into(), "pos".into()])
        .observer(Silent)
        .stop_after(stop_after);
    let outcome = t.fit(&source, &d.valid, resume).unwrap().outcome;
    drop(t);
    (sorted_vars(&vs), outcome)
}

#[test]
fn frozen_blocks_stay_bit_identical_unfreeze_on_schedule_and_resume_exactly() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let tok = tiny_checkpoint(&ckpt);
    let d = data(&tok);
    let start = checkpoint_tensors(&ckpt);
    // Embeddings frozen throughout; the head alone for steps 0–3, the top layer joins at 4, layer 0 at 8.
    let ft = FinetuneConfig { freeze: vec!["embeddings".into()], unfreeze_every_steps: 4, ..Default::default() };
    let cfg = train_config();
    assert_eq!(steps_per_epoch(&cfg, &whetstone_data::BucketedSource::new(&d.train, cfg.batch_size, cfg.bucket_factor), 11).unwrap(), 6);

    let (after4, out) = fit(&ckpt, &d, &ft, train_config(), 4, &tmp.path().join("a"), false, 1);
    assert_eq!(out, Outcome::Interrupted);
    assert!(same(&after4, &start, "embeddings.") && same(&after4, &start, "encoder."), "only the head may train in steps 0-3");
    let (after8, _) = fit(&ckpt, &d, &ft, train_config(), 8, &tmp.path().join("b"), false, 1);
    assert!(!same(&after8, &after4, "classifier.") && !same(&after8, &start, "encoder.layer.1."), "head and top layer train from step 4");
    assert!(same(&after8, &start, "embeddings.") && same(&after8, &start, "encoder.layer.0."), "layer 0 waits until step 8");

    let (full, out) = fit(&ckpt, &d, &ft, train_config(), 0, &tmp.path().join("full"), false, 1);
    assert_eq!(out, Outcome::Finished);
    assert!(same(&full, &start, "embeddings."), "permanently frozen");
    assert!(!same(&full, &start, "encoder.layer.0."), "layer 0 trains from step 8");

    // Killed at step 7 (last checkpoint at step 6, frozen layer 0), resumed into a differently
    // initialised head: bit-identical to the uninterrupted run.
    let dir = tmp.path().join("killed");
    fit(&ckpt, &d, &ft, train_config(), 7, &dir, false, 1);
    assert_eq!(Checkpoint::load(&dir.join(CHECKPOINT_FILE)).unwrap().progress.step, 6);
    let (resumed, out) = fit(&ckpt, &d, &ft, train_config(), 0, &dir, true, 999);
    assert_eq!(out, Outcome::Finished);
    for (n, t) in &full {
        assert!(t.equal(get(&resumed, n)), "{n} differs after resume");
    }
}

#[test]
fn head_warmup_trains_only_the_head_then_everything() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let d = data(&tiny_checkpoint(&ckpt));
    let start = checkpoint_tensors(&ckpt);
    let ft = FinetuneConfig { head_warmup_epochs: 1, ..Default::default() };
    let (warm, _) = fit(&ckpt, &d, &ft, train_config(), 6, &tmp.path().join("a"), false, 1);
    assert!(same(&warm, &start, "embeddings.") && same(&warm, &start, "encoder."));
    let (all, _) = fit(&ckpt, &d, &ft, train_config(), 7, &tmp.path().join("b"), false, 1);
    assert!(!same(&all, &start, "embeddings.") && !same(&all, &start, "encoder.layer.0."));
}

#[test]
fn reinit_resets_only_the_top_layers_with_the_encoder_init() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    tiny_checkpoint(&ckpt);
    let start = checkpoint_tensors(&ckpt);
    let load = || {
        let vs = VarStore::new(Device::Cpu);
        let model = BertCheckpoint::open(&ckpt).unwrap().load_classifier(&vs.root(), 2, Pooling::Cls).unwrap();
        (vs, model)
    };
    let (vs, _m) = load();
    let names = reinit_top_layers(&vs, 1, 0.02, 4).unwrap();
    assert_eq!(names.len(), 16, "{names:?}");
    let vars = sorted_vars(&vs);
    assert!(same(&vars, &start, "encoder.layer.0.") && same(&vars, &start, "embeddings."));
    let ln = get(&vars, "encoder.layer.1.output.LayerNorm.weight");
    assert!(ln.equal(&ln.ones_like()));
    assert_eq!(get(&vars, "encoder.layer.1.attention.self.query.bias").abs().sum(Kind::Float).double_value(&[]), 0.0);
    let w = get(&vars, "encoder.layer.1.intermediate.dense.weight");
    assert!(!w.equal(get(&start, "encoder.layer.1.intermediate.dense.weight")));
    let std = w.std(true).double_value(&[]);
    assert!((0.016..0.024).contains(&std), "std {std}");
    let (vs2, _m2) = load();
    reinit_top_layers(&vs2, 1, 0.02, 4).unwrap();
    assert!(w.equal(&vs2.variables()["encoder.layer.1.intermediate.dense.weight"]), "deterministic in the seed");
    let e = reinit_top_layers(&vs2, 3, 0.02, 4).unwrap_err().to_string();
    assert!(e.contains("2 encoder layers"), "{e}");
}

#[test]
fn layer_decay_follows_bert_names() {
    // Writing the checkpoint seeds and draws from the global generator, and loading it draws
    // the head's init: without the lock those draws could land inside another test's run.
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    tiny_checkpoint(&ckpt);
    let vs = VarStore::new(Device::Cpu);
    let _m = BertCheckpoint::open(&ckpt).unwrap().load_classifier(&vs.root(), 2, Pooling::Mean).unwrap();
    let no_decay: Vec<String> = NO_DECAY.iter().map(|s| s.to_string()).collect();
    let groups = param_groups(&vs, 1e-3, 0.01, &no_decay, Some(0.5), &[]).unwrap();
    let scale = |name: &str| groups.iter().find(|g| g.params.iter().any(|p| p.name == name)).unwrap_or_else(|| panic!("{name}")).lr_scale;
    // Two layers: embeddings decay², layer 0 decay, layer 1 and the head 1.
    for name in ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"] {
        assert_eq!(scale(name), 0.25, "{name}");
    }
    assert_eq!(scale("encoder.layer.0.attention.self.query.weight"), 0.5);
    assert_eq!(scale("encoder.layer.0.output.LayerNorm.bias"), 0.5);
    assert_eq!(scale("encoder.layer.1.intermediate.dense.weight"), 1.0);
    assert_eq!(scale("classifier.weight"), 1.0);
    assert_eq!(scale("classifier.bias"), 1.0);
}

#[test]
fn pooling_applies_to_pretrained_encoders() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let tok = tiny_checkpoint(&ckpt);
    let d = data(&tok);
    let batch = whetstone_data::make_batch(&d.valid, &[0, 1, 2, 3], Device::Cpu).unwrap();
    let logits = |pooling: Pooling| {
        tch::manual_seed(2);
        let vs = VarStore::new(Device::Cpu);
        let encoder = TransformerConfig { max_len: 32, ..Default::default() };
        let cfg = ModelConfig::Transformer(TransformerClassifierConfig { encoder, pooling, pretrained: Some(ckpt.clone()) });
        let model = cfg.build(&vs.root(), tok.vocab_size() as i64, 2).unwrap();
        tch::no_grad(|| model.forward_t(&batch.input_ids, &batch.attention_mask, false)).unwrap()
    };
    let (cls, mean, max) = (logits(Pooling::Cls), logits(Pooling::Mean), logits(Pooling::Max));
    assert!(!cls.equal(&mean) && !mean.equal(&max) && !cls.equal(&max));
    assert!(mean.equal(&logits(Pooling::Mean)));
}
