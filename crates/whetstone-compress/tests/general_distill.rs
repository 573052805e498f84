//! General (task-agnostic) distillation between bare encoders: a student equal to its teacher
//! has no loss, training through the one Trainer lowers it, the projections are the strategy's
//! state and come back exactly, and bad pairings are clear errors.

mod common;

use common::*;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_data::{BucketedSource, Encoded};
use whetstone_models::{TransformerConfig, TransformerEncoder};
use whetstone_optim::OptimConfig;
use whetstone_train::{Objective, Silent, TrainConfig, Trainer};

fn shape(layers: usize, hidden: usize, heads: usize) -> TransformerConfig {
    TransformerConfig { layers, hidden, heads, ffn: 2 * hidden, max_len: 12, dropout: 0.0, attention_dropout: 0.0, ..Default::default() }
}

/// A random encoder with widened weights (BERT's 0.02 init makes every state nearly the same).
fn encoder(seed: i64, cfg: &TransformerConfig, vocab: i64) -> (VarStore, TransformerEncoder) {
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let e = TransformerEncoder::new(&vs.root(), vocab, cfg).unwrap();
    tch::no_grad(|| {
        for (_, mut t) in e.named_parameters() {
            if t.dim() == 2 {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.3));
            }
        }
    });
    (vs, e)
}

fn copy_weights(from: &TransformerEncoder, to: &TransformerEncoder) {
    let src: std::collections::HashMap<String, Tensor> = from.named_parameters().into_iter().collect();
    tch::no_grad(|| {
        for (n, mut t) in to.named_parameters() {
            t.copy_(&src[&n]);
        }
    });
}

fn windows(n: usize) -> Encoded {
    let ids = (0..n).map(|i| (0..(4 + i % 7)).map(|j| 4 + ((i * 7 + j * 3) % (VOCAB as usize - 4)) as i64).collect()).collect();
    Encoded { ids, labels: vec![0; n], pad_id: 0 }
}

#[test]
fn a_student_equal_to_its_teacher_has_no_loss_and_another_has_every_term() {
    let _g = serial();
    let cfg = shape(2, 16, 4);
    let (tvs, teacher) = encoder(1, &cfg, VOCAB);
    let (_svs, same) = encoder(2, &cfg, VOCAB);
    copy_weights(&teacher, &same);
    let (_ovs, other) = encoder(3, &cfg, VOCAB);
    let obj = GeneralDistillObjective::new(teacher, Some(tvs), &same, GeneralDistillConfig::default()).unwrap();
    assert!(obj.projections().variables().is_empty(), "equal widths need no projection");
    assert_eq!(obj.pairs(), &[(0, 0), (1, 1)]);
    let b = batch(5, 6);
    let (_, t) = obj.compute(&same, &b, false).unwrap();
    assert!(t.total.abs() < 1e-6, "{t:?}");
    let (loss, t) = obj.compute(&other, &b, false).unwrap();
    assert!(t.embedding > 1e-3 && t.hidden > 1e-3 && t.attention > 1e-4, "{t:?}");
    assert!((t.total - (t.embedding + t.hidden + t.attention)).abs() < 1e-4 * t.total, "unit weights sum the terms: {t:?}");
    assert!((loss.double_value(&[]) - t.total).abs() < 1e-6);
    // The teacher is frozen: a backward pass reaches the student only.
    loss.backward();
    assert!(obj.teacher().named_parameters().iter().all(|(_, p)| !p.requires_grad() && !p.grad().defined()));
    assert!(other.named_parameters().iter().all(|(_, p)| p.grad().defined()));
}

#[test]
fn training_a_narrow_student_lowers_the_loss_and_its_projections_resume_exactly() {
    let _g = serial();
    let (tvs, teacher) = encoder(7, &shape(4, 24, 4), VOCAB);
    tch::manual_seed(8);
    let svs = VarStore::new(Device::Cpu);
    let student = TransformerEncoder::new(&svs.root(), VOCAB, &shape(2, 8, 2)).unwrap();
    svd_encoder_embeddings(&teacher, &student).unwrap();
    let obj = GeneralDistillObjective::new(teacher, Some(tvs), &student, GeneralDistillConfig::default()).unwrap();
    assert_eq!(obj.pairs(), &[(0, 1), (1, 3)], "uniform: student layer i learns from teacher layer 2(i+1)-1");
    let names: Vec<String> = obj.state().unwrap().tensors.iter().map(|(n, _)| n.clone()).collect();
    for want in ["projection.hidden.weight", "projection.embedding.weight"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    let (train, valid) = (windows(64), windows(16));
    let before = obj.score(&student, &valid, 16, Device::Cpu).unwrap().total;
    let optim = build_optimizer(&OptimConfig { lr: 3e-3, ..Default::default() }, &[&svs, obj.projections()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig { epochs: 8, batch_size: 16, eval_every: 0, log_every: 1000, ..Default::default() };
    let mut trainer = Trainer::new(&student, &svs, optim, 3e-3, dir.path()).objective(obj).config(config).observer(Silent).seed(3);
    trainer.fit(&BucketedSource::new(&train, 16, 1), &valid, false).unwrap();
    let mut obj = trainer.into_objective();
    let state = obj.state().unwrap();
    let cx = whetstone_train::EvalContext { model: &student, vs: &svs, device: Device::Cpu, batch_size: 16, metric: "gd_loss", label_names: &[] };
    let after = obj.validate(&cx, &valid).unwrap();
    let after_loss = after.record["gd_loss"].as_f64().unwrap();
    assert!(after_loss < 0.8 * before, "valid loss {before} → {after_loss}");

    // A fresh objective with other projections, given the state, computes the same loss.
    let (tvs2, teacher2) = encoder(7, &shape(4, 24, 4), VOCAB);
    tch::manual_seed(99);
    let mut fresh = GeneralDistillObjective::new(teacher2, Some(tvs2), &student, GeneralDistillConfig::default()).unwrap();
    let b = batch(11, 5);
    let differs = fresh.compute(&student, &b, false).unwrap().1.total;
    fresh.load_state(&state).unwrap();
    let restored = fresh.compute(&student, &b, false).unwrap().1.total;
    assert_ne!(differs, restored);
    let mut twin = GeneralDistillObjective::new(encoder_v(7, &shape(4, 24, 4)).1, None, &student, GeneralDistillConfig::default()).unwrap();
    twin.load_state(&state).unwrap();
    assert_eq!(twin.compute(&student, &b, false).unwrap().1.total, restored);
    // A state from a distillation without the embedding term does not fit this one.
    let no_embedding = GeneralDistillConfig { embedding: 0.0, ..Default::default() };
    let mut other = GeneralDistillObjective::new(encoder_v(7, &shape(4, 24, 4)).1, None, &student, no_embedding).unwrap();
    let e = other.load_state(&state).unwrap_err().to_string();
    assert!(e.contains("projection.embedding"), "{e}");
}

fn encoder_v(seed: i64, cfg: &TransformerConfig) -> (VarStore, TransformerEncoder) {
    encoder(seed, cfg, VOCAB)
}

#[test]
fn bad_pairings_and_settings_are_clear_errors() {
    let _g = serial();
    let teacher = || encoder_v(1, &shape(2, 16, 4)).1;
    let (_v, student) = encoder(2, &shape(2, 8, 2), VOCAB + 5);
    let e = GeneralDistillObjective::new(teacher(), None, &student, GeneralDistillConfig::default()).unwrap_err().to_string();
    assert!(e.contains("vocabulary sizes differ") && e.contains("teacher's tokenizer"), "{e}");
    let (_v, student) = encoder_v(2, &shape(2, 8, 2));
    let mapping = "0:1,1:5".parse().unwrap();
    let e = GeneralDistillObjective::new(teacher(), None, &student, GeneralDistillConfig { mapping, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("1:5") && e.contains("out of range"), "{e}");
    let (_v, deep) = encoder_v(2, &shape(3, 8, 2));
    let e = GeneralDistillObjective::new(teacher(), None, &deep, GeneralDistillConfig::default()).unwrap_err().to_string();
    assert!(e.contains("at least as deep"), "{e}");
    let off = GeneralDistillConfig { embedding: 0.0, hidden: 0.0, attention: 0.0, ..Default::default() };
    let e = GeneralDistillObjective::new(teacher(), None, &student, off).unwrap_err().to_string();
    assert!(e.contains("at least one"), "{e}");
    let e = GeneralDistillConfig { hidden: f64::NAN, ..Default::default() }.validate().unwrap_err().to_string();
    assert!(e.contains("hidden"), "{e}");
}
