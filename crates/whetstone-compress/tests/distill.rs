//! Distillation: KD values against a hand computation, gradients reach only the student,
//! layer mappings, DistilBERT-style students, the cache, and clear errors.

mod common;

use common::*;
use tch::{Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_models::TextClassifier;
use whetstone_optim::{named_params, AdamW, AdamWConfig, Optimizer, NO_DECAY};
use whetstone_train::Objective;

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn kd_loss_matches_a_hand_computed_reference() {
    let s = [[1.0, 2.0, 0.5], [-0.3, 0.0, 0.8]];
    let t = [[0.2, 1.5, -1.0], [1.0, -2.0, 0.5]];
    let labels = [1i64, 2];
    let temp = 2.0;
    let (mut kl, mut ce) = (0.0, 0.0);
    for r in 0..2 {
        let pt = softmax(&t[r].map(|v| v / temp));
        let ps = softmax(&s[r].map(|v| v / temp));
        kl += (0..3).map(|i| pt[i] * (pt[i] / ps[i]).ln()).sum::<f64>();
        ce += -softmax(&s[r])[labels[r] as usize].ln();
    }
    let kd_expected = kl / 2.0 * temp * temp;
    let ce_expected = ce / 2.0;
    let st = Tensor::from_slice(&s.concat().iter().map(|&v| v as f32).collect::<Vec<_>>()).view([2, 3]);
    let tt = Tensor::from_slice(&t.concat().iter().map(|&v| v as f32).collect::<Vec<_>>()).view([2, 3]);
    let kd = kd_loss(&st, &tt, temp).unwrap().double_value(&[]);
    assert!((kd - kd_expected).abs() < 1e-6, "kd {kd} vs hand {kd_expected}");
    let mixed = logit_distill_loss(&st, &tt, &Tensor::from_slice(&labels), temp, 0.3).unwrap().double_value(&[]);
    let want = 0.3 * ce_expected + 0.7 * kd_expected;
    assert!((mixed - want).abs() < 1e-6, "mixed {mixed} vs hand {want}");
    assert!(kd_loss(&st, &tt, 0.0).is_err());
    assert!(logit_distill_loss(&st, &tt, &Tensor::from_slice(&labels), 2.0, 1.5).is_err());
}

#[test]
fn gradients_flow_to_the_student_only_with_every_term_on() {
    let _g = serial();
    let (tvs, teacher, _) = tiny_with(1, config(4, 16, 4, 32));
    let (svs, student, _) = tiny_with(2, config(2, 8, 2, 16));
    let cfg = DistillConfig { hidden: 1.0.into(), attention: 1.0.into(), embedding: 0.5.into(), attention_loss: AttentionLoss::Kl, ..Default::default() };
    let mut obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    assert_eq!(obj.pairs(), &[(0, 1), (1, 3)]);
    let proj_names: Vec<String> = obj.projections().variables().into_keys().collect();
    assert_eq!(proj_names.len(), 4, "hidden and embedding projections 8→16: {proj_names:?}");
    let b = batch(3, 4);
    let loss = obj.loss(&student, &b);
    let terms = obj.last_terms();
    assert!(terms.hidden > 0.0 && terms.attention > 0.0 && terms.embedding > 0.0 && terms.logits > 0.0, "{terms:?}");
    assert!((terms.total - loss.double_value(&[])).abs() < 1e-6);
    loss.backward();
    for (name, t) in tvs.variables() {
        assert!(!t.grad().defined() || t.grad().abs().sum(Kind::Float).double_value(&[]) == 0.0, "teacher {name} got a gradient");
    }
    let with_grad = svs.variables().values().filter(|t| t.grad().defined() && t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0).count();
    assert!(with_grad > svs.variables().len() / 2, "only {with_grad} student tensors have gradients");
    assert!(obj.projections().variables().values().all(|t| t.grad().defined()));
    // A few optimiser steps lower the loss on a fixed batch.
    let mut params = named_params(&svs, 0.0, NO_DECAY);
    params.extend(named_params(obj.projections(), 0.0, NO_DECAY));
    let mut opt = AdamW::new(params, AdamWConfig::default()).unwrap();
    let first = obj.loss(&student, &b).double_value(&[]);
    for _ in 0..8 {
        opt.zero_grad();
        obj.loss(&student, &b).backward();
        opt.step(1e-2).unwrap();
    }
    let last = obj.loss(&student, &b).double_value(&[]);
    assert!(last < first, "loss {first} → {last}");
}

#[test]
fn layer_mappings_resolve_and_reject_bad_pairs() {
    let _g = serial();
    assert_eq!(LayerMapping::Uniform.resolve(3, 6).unwrap(), vec![(0, 1), (1, 3), (2, 5)]);
    assert_eq!(LayerMapping::Uniform.resolve(4, 4).unwrap(), vec![(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(LayerMapping::Last.resolve(3, 12).unwrap(), vec![(2, 11)]);
    assert_eq!("2:11, 0:3".parse::<LayerMapping>().unwrap().resolve(3, 12).unwrap(), vec![(2, 11), (0, 3)]);
    assert!(LayerMapping::Uniform.resolve(6, 3).unwrap_err().to_string().contains("at least as deep"));
    let e = LayerMapping::Explicit(vec![(0, 12)]).resolve(3, 12).unwrap_err().to_string();
    assert!(e.contains("0:12") && e.contains("out of range"), "{e}");
    let e = "skip-two".parse::<LayerMapping>().unwrap_err().to_string();
    assert!(e.contains("unknown layer mapping `skip-two`") && e.contains("uniform"), "{e}");
    // The explicit pairs feed the objective.
    let (_t, teacher, _) = tiny_with(4, config(4, 16, 4, 32));
    let (_s, student, _) = tiny_with(5, config(2, 16, 4, 32));
    let cfg = DistillConfig { hidden: 1.0.into(), mapping: LayerMapping::Explicit(vec![(1, 2)]), ..Default::default() };
    let obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    assert_eq!(obj.pairs(), &[(1, 2)]);
    assert!(obj.projections().variables().is_empty(), "same width: no projection");
}

#[test]
fn distilbert_style_student_copies_the_chosen_layers() {
    let _g = serial();
    let (_tvs, teacher, _) = tiny_with(6, config(4, 16, 4, 32));
    let svs = tch::nn::VarStore::new(Device::Cpu);
    let (cfg, student) = student_from_teacher(&teacher, &[1, 3], &svs.root()).unwrap();
    assert_eq!(cfg.encoder.layers, 2);
    let t: std::collections::HashMap<String, Tensor> = teacher.named_parameters().into_iter().collect();
    for (name, s) in student.named_parameters() {
        let from = match name.strip_prefix("encoder.layer.") {
            Some(rest) if rest.starts_with("0.") => format!("encoder.layer.1.{}", &rest[2..]),
            Some(rest) => format!("encoder.layer.3.{}", &rest[2..]),
            None => name.clone(),
        };
        assert_eq!(max_abs_diff(&s, &t[&from]), 0.0, "{name} ≠ teacher {from}");
    }
    // Running the teacher's embeddings then its layers 1 and 3 gives the student's logits.
    let b = batch(7, 3);
    let keep = whetstone_models::TransformerEncoder::attention_keep(&b.attention_mask).unwrap();
    let x = teacher.encoder().embeddings().forward_t(&b.input_ids, false).unwrap();
    let x = teacher.encoder().layers()[1].forward_t(&x, &keep, false).unwrap();
    let x = teacher.encoder().layers()[3].forward_t(&x, &keep, false).unwrap();
    let want = teacher.logits_from_states(&x, &b.attention_mask, false).unwrap();
    assert!(max_abs_diff(&want, &student.forward_t(&b.input_ids, &b.attention_mask, false).unwrap()) < 1e-6);
    assert!(student_from_teacher(&teacher, &[0, 4], &svs.root()).unwrap_err().to_string().contains("layer 4 does not exist"));
    assert!(student_from_teacher(&teacher, &[], &svs.root()).is_err());
}

#[test]
fn cached_teacher_logits_equal_live_ones() {
    let _g = serial();
    let (_tvs, teacher, _) = tiny(8);
    let (_svs, student, _) = tiny_with(9, config(1, 16, 4, 32));
    let batches = [batch(10, 4), batch(11, 4)];
    let cache = TeacherCache::build(&teacher, &batches).unwrap();
    assert_eq!(cache.len(), 8);
    assert!(cache.seconds >= 0.0);
    let live = tch::no_grad(|| teacher.forward_t(&batches[1].input_ids, &batches[1].attention_mask, false).unwrap());
    assert!(max_abs_diff(&cache.lookup(&batches[1]).unwrap().unwrap(), &live) < 1e-6);
    assert!(cache.lookup(&batch(12, 4)).unwrap().is_none());
    let mut live_obj = DistillObjective::new(Box::new(teacher), &student, DistillConfig::default()).unwrap();
    let (_tvs2, teacher2, _) = tiny(8);
    let mut cached_obj = DistillObjective::new(Box::new(teacher2), &student, DistillConfig::default()).unwrap().with_cache(cache);
    let a = tch::no_grad(|| live_obj.loss(&student, &batches[0]).double_value(&[]));
    let c = tch::no_grad(|| cached_obj.loss(&student, &batches[0]).double_value(&[]));
    assert!((a - c).abs() < 1e-6, "live {a} vs cached {c}");
}

#[test]
fn schedules_change_the_weights_with_the_step() {
    let _g = serial();
    let (_t, teacher, _) = tiny(13);
    let (_s, student, _) = tiny_with(14, config(1, 16, 4, 32));
    let cfg = DistillConfig { alpha: ScalarSchedule::Linear { from: 0.0, to: 1.0, steps: 1 }, ..Default::default() };
    let mut obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    let b = batch(15, 4);
    let kd_only = tch::no_grad(|| obj.loss(&student, &b).double_value(&[]));
    let ce_only = tch::no_grad(|| obj.loss(&student, &b).double_value(&[]));
    let logits = tch::no_grad(|| student.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    assert!((ce_only - logits.cross_entropy_for_logits(&b.labels).double_value(&[])).abs() < 1e-6);
    assert!((kd_only - ce_only).abs() > 1e-4);
}

#[test]
fn mismatched_teacher_and_student_are_refused() {
    let _g = serial();
    let (_t, teacher, _) = tiny(16);
    tch::manual_seed(17);
    let svs = tch::nn::VarStore::new(Device::Cpu);
    let student = whetstone_models::TransformerClassifier::new(&svs.root(), VOCAB - 10, 3, &config(1, 16, 4, 32)).unwrap();
    let e = DistillObjective::new(Box::new(teacher), &student, DistillConfig::default()).unwrap_err().to_string();
    assert!(e.contains("vocabulary sizes differ (teacher 40, student 30)"), "{e}");
    let (_t, teacher, _) = tiny(16);
    let (_s, deep, _) = tiny_with(18, config(3, 16, 4, 32));
    let cfg = DistillConfig { hidden: 1.0.into(), ..Default::default() };
    assert!(DistillObjective::new(Box::new(teacher), &deep, cfg).unwrap_err().to_string().contains("at least as deep"));
}

#[test]
fn alpha_one_is_plain_cross_entropy_without_the_teacher() {
    let _g = serial();
    // A teacher whose 4 positions cannot read the batch's 8 tokens: calling it would fail.
    let mut short = config(2, 16, 4, 32);
    short.encoder.max_len = 4;
    let (_tvs, teacher, _) = tiny_with(21, short);
    let (_svs, student, _) = tiny_with(22, config(1, 16, 4, 32));
    let b = batch(23, 6);
    let cfg = DistillConfig { alpha: 1.0.into(), ..Default::default() };
    let mut obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    let loss = obj.try_loss(&student, &b).unwrap().double_value(&[]);
    let logits = student.forward_t(&b.input_ids, &b.attention_mask, false).unwrap();
    let ce = logits.cross_entropy_loss::<Tensor>(&b.labels, None, tch::Reduction::Mean, -100, 0.0).double_value(&[]);
    assert!((loss - ce).abs() < 1e-6, "alpha 1: {loss} vs cross-entropy {ce}");
}
