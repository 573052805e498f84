//! Distillation: KD values against a hand computation, gradients reach only the student,
//! layer mappings, DistilBERT-style students, the cache keyed by example index, clear errors,
//! and a killed and resumed distillation that is bit-identical to an uninterrupted one.

mod common;

use common::*;
use tch::{Device, Kind, Tensor};
use whetstone_compress::build_optimizer;
use whetstone_compress::*;
use whetstone_data::BucketedSource;
use whetstone_models::{ModelConfig, TextClassifier, TextCnnConfig};
use whetstone_optim::{named_params, AdamW, AdamWConfig, OptimConfig, Optimizer, NO_DECAY};
use whetstone_train::{Checkpoint, Objective, Outcome, Silent, TrainConfig, Trainer, CHECKPOINT_FILE};

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
    let loss = obj.try_loss(&student, &b).unwrap();
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
    let first = obj.try_loss(&student, &b).unwrap().double_value(&[]);
    for _ in 0..8 {
        opt.zero_grad();
        obj.try_loss(&student, &b).unwrap().backward();
        opt.step(1e-2).unwrap();
    }
    let last = obj.try_loss(&student, &b).unwrap().double_value(&[]);
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
    let batches = [indexed_batch(10, 4, 0), indexed_batch(11, 4, 4)];
    let cache = TeacherCache::build(&teacher, &batches).unwrap();
    assert_eq!(cache.len(), 8);
    let live = tch::no_grad(|| teacher.forward_t(&batches[1].input_ids, &batches[1].attention_mask, false).unwrap());
    assert!(max_abs_diff(&cache.lookup(&batches[1]).unwrap().unwrap(), &live) < 1e-6);
    // Keyed by example index: the same examples in another order and padding.
    let mut shuffled = whetstone_data::Batch::new(batches[1].input_ids.flip([0]), batches[1].attention_mask.flip([0]), batches[1].labels.flip([0]));
    shuffled.indices = vec![7, 6, 5, 4];
    assert!(max_abs_diff(&cache.lookup(&shuffled).unwrap().unwrap(), &live.flip([0])) < 1e-6);
    // A batch without indices, or with an example not cached, falls back to the teacher.
    assert!(cache.lookup(&batch(12, 4)).unwrap().is_none());
    assert!(cache.lookup(&indexed_batch(12, 4, 6)).unwrap().is_none());
    // An example whose length changed: the cache belongs to another split.
    let mask = batches[0].attention_mask.copy();
    let _ = mask.narrow(0, 0, 1).narrow(1, 2, 6).fill_(0);
    let mut other = whetstone_data::Batch::new(batches[0].input_ids.copy(), mask, batches[0].labels.copy());
    other.indices = batches[0].indices.clone();
    let e = cache.lookup(&other).unwrap_err().to_string();
    assert!(e.contains("example 0") && e.contains("different split"), "{e}");
    // Building needs the indices.
    let e = TeacherCache::build(&teacher, &[batch(13, 2)]).unwrap_err().to_string();
    assert!(e.contains("indices"), "{e}");
    // A split's cache covers that split only.
    let train = split(14, 20);
    let by_split = TeacherCache::build_split(&teacher, &train, 8, Device::Cpu).unwrap();
    assert_eq!(by_split.len(), 20);
    assert!(by_split.covers(&train) && !by_split.covers(&split(15, 20)));
    let b = whetstone_data::make_batch(&train, &[3, 17, 9], Device::Cpu).unwrap();
    let live = tch::no_grad(|| teacher.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    assert!(max_abs_diff(&by_split.lookup(&b).unwrap().unwrap(), &live) < 1e-5);

    let mut live_obj = DistillObjective::new(Box::new(teacher), &student, DistillConfig::default()).unwrap();
    let (_tvs2, teacher2, _) = tiny(8);
    let mut cached_obj = DistillObjective::new(Box::new(teacher2), &student, DistillConfig::default()).unwrap().with_cache(cache);
    let a = tch::no_grad(|| live_obj.try_loss(&student, &batches[0]).unwrap().double_value(&[]));
    let c = tch::no_grad(|| cached_obj.try_loss(&student, &batches[0]).unwrap().double_value(&[]));
    assert!((a - c).abs() < 1e-6, "live {a} vs cached {c}");
}

/// The objective's logit term is `alpha·CE + (1 − alpha)·KD` at the configured temperature
/// (scheduled too), on every path: live teacher, cached teacher logits, and with layer terms.
#[test]
fn the_configured_temperature_reaches_the_objective_on_every_path() {
    let _g = serial();
    let (_tvs, teacher, _) = tiny(31);
    let (svs, student, _) = tiny_with(32, config(2, 16, 4, 32));
    let b = indexed_batch(33, 6, 0);
    let s_logits = tch::no_grad(|| student.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    let t_logits = tch::no_grad(|| teacher.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    let want = |temp: f64, alpha: f64| logit_distill_loss(&s_logits, &t_logits, &b.labels, temp, alpha).unwrap().double_value(&[]);
    // The KD term changes with T on these logits (else the test could not see T ignored).
    assert!((want(1.0, 0.0) - want(2.0, 0.0)).abs() > 1e-3 && (want(6.0, 0.0) - want(2.0, 0.0)).abs() > 1e-3, "{} {} {}", want(1.0, 0.0), want(2.0, 0.0), want(6.0, 0.0));
    for temp in [1.0, 6.0] {
        for alpha in [0.0, 0.3] {
            let (_t, teacher, _) = tiny(31);
            let cfg = DistillConfig { temperature: temp.into(), alpha: alpha.into(), ..Default::default() };
            let mut live = DistillObjective::new(Box::new(teacher), &student, cfg.clone()).unwrap();
            let got = tch::no_grad(|| live.try_loss(&student, &b).unwrap().double_value(&[]));
            assert!((got - want(temp, alpha)).abs() < 1e-5, "live teacher, T = {temp}, alpha = {alpha}: {got} vs {}", want(temp, alpha));
            let (_t, teacher, _) = tiny(31);
            let cache = TeacherCache::build(&teacher, [&b]).unwrap();
            let mut cached = DistillObjective::new(Box::new(teacher), &student, cfg.clone()).unwrap().with_cache(cache);
            let got = tch::no_grad(|| cached.try_loss(&student, &b).unwrap().double_value(&[]));
            assert!((got - want(temp, alpha)).abs() < 1e-5, "cached teacher, T = {temp}, alpha = {alpha}: {got} vs {}", want(temp, alpha));
            // With a hidden-state term the logits go through the detailed forward pass.
            let (_t, teacher, _) = tiny(31);
            let mut layered = DistillObjective::new(Box::new(teacher), &student, DistillConfig { hidden: 1.0.into(), ..cfg }).unwrap();
            let _ = tch::no_grad(|| layered.try_loss(&student, &b).unwrap());
            let got = layered.last_terms().logits;
            assert!((got - want(temp, alpha)).abs() < 1e-5, "with layer terms, T = {temp}, alpha = {alpha}: {got} vs {}", want(temp, alpha));
        }
    }
    // A temperature schedule is followed step by step: T = 1 at step 0, 6 from step 1.
    let (_t, teacher, _) = tiny(31);
    let cfg = DistillConfig { temperature: ScalarSchedule::Linear { from: 1.0, to: 6.0, steps: 1 }, alpha: 0.0.into(), ..Default::default() };
    let mut obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    let at0 = tch::no_grad(|| obj.try_loss(&student, &b).unwrap().double_value(&[]));
    assert!((at0 - want(1.0, 0.0)).abs() < 1e-5, "step 0: {at0} vs {}", want(1.0, 0.0));
    obj.after_update(&mut step_cx(&student, &svs, 0)).unwrap();
    let at1 = tch::no_grad(|| obj.try_loss(&student, &b).unwrap().double_value(&[]));
    assert!((at1 - want(6.0, 0.0)).abs() < 1e-5, "step 1: {at1} vs {}", want(6.0, 0.0));
}

#[test]
fn schedules_change_the_weights_with_the_step() {
    let _g = serial();
    let (_t, teacher, _) = tiny(13);
    let (svs, student, _) = tiny_with(14, config(1, 16, 4, 32));
    let cfg = DistillConfig { alpha: ScalarSchedule::Linear { from: 0.0, to: 1.0, steps: 1 }, ..Default::default() };
    let mut obj = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    let b = batch(15, 4);
    let kd_only = tch::no_grad(|| obj.try_loss(&student, &b).unwrap().double_value(&[]));
    // The schedules follow the optimiser steps, which the trainer reports after each update.
    assert_eq!(tch::no_grad(|| obj.try_loss(&student, &b).unwrap().double_value(&[])), kd_only);
    obj.after_update(&mut step_cx(&student, &svs, 0)).unwrap();
    assert_eq!(obj.step(), 1);
    let ce_only = tch::no_grad(|| obj.try_loss(&student, &b).unwrap().double_value(&[]));
    let logits = tch::no_grad(|| student.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
    assert!((ce_only - logits.cross_entropy_for_logits(&b.labels).double_value(&[])).abs() < 1e-6);
    assert!((kd_only - ce_only).abs() > 1e-4);
    // The counter is the strategy's state.
    let state = obj.state().unwrap();
    assert_eq!(state.value::<u64>("step").unwrap(), 1);
    let (_t, teacher, _) = tiny(13);
    let mut again = DistillObjective::new(Box::new(teacher), &student, DistillConfig { alpha: ScalarSchedule::Linear { from: 0.0, to: 1.0, steps: 1 }, ..Default::default() }).unwrap();
    again.load_state(&state).unwrap();
    assert_eq!(again.step(), 1);
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
    // Logit distillation pairs any depths.
    let (_t, teacher, _) = tiny(16);
    assert!(DistillObjective::new(Box::new(teacher), &deep, DistillConfig::default()).is_ok());
}

#[test]
fn layer_terms_need_layer_outputs_and_say_so_at_construction() {
    let _g = serial();
    tch::manual_seed(19);
    let cvs = tch::nn::VarStore::new(Device::Cpu);
    let cnn = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 4, ..Default::default() }).build(&cvs.root(), VOCAB, 3).unwrap();
    let (_t, teacher, _) = tiny(20);
    let cfg = DistillConfig { hidden: 1.0.into(), ..Default::default() };
    let e = DistillObjective::new(Box::new(teacher), cnn.as_ref(), cfg).unwrap_err().to_string();
    assert!(e.contains("hidden-state") && e.contains("student") && e.contains("textcnn"), "{e}");
    // Logit distillation into a TextCNN is fine, and trains.
    let (_t, teacher, _) = tiny(20);
    let mut obj = DistillObjective::new(Box::new(teacher), cnn.as_ref(), DistillConfig::default()).unwrap();
    let loss = obj.try_loss(cnn.as_ref(), &batch(21, 4)).unwrap();
    assert!(loss.double_value(&[]).is_finite());
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

/// Train a 2×8 student from a fixed 4×16 teacher with hidden, attention and embedding terms
/// (hidden and embedding through learned 8→16 projections, the hidden weight on a schedule),
/// in `dir`. Returns the student's variables, the projections, the strategy's step count and
/// the outcome.
/// A run's result: the student's variables, the projections, the strategy's step count.
struct Distilled {
    student: Vec<(String, Tensor)>,
    projections: Vec<(String, Tensor)>,
    step: u64,
    outcome: Outcome,
}

fn distil(dir: &std::path::Path, stop_after: u64, resume: bool, student_seed: i64) -> Distilled {
    let train = split(30, 48);
    let valid = split(31, 16);
    let (_tvs, teacher, _) = tiny_with(40, config(4, 16, 4, 32));
    let (svs, student, _) = tiny_with(student_seed, config(2, 8, 2, 16));
    let cfg = DistillConfig {
        alpha: 0.3.into(),
        hidden: ScalarSchedule::Linear { from: 2.0, to: 0.5, steps: 8 },
        attention: 1.0.into(),
        embedding: 0.5.into(),
        ..Default::default()
    };
    let objective = DistillObjective::new(Box::new(teacher), &student, cfg).unwrap();
    let projections: Vec<(String, Tensor)> = objective.projections().variables().into_iter().collect();
    assert_eq!(projections.len(), 4, "hidden and embedding projections 8→16");
    let optim = build_optimizer(&OptimConfig { lr: 3e-3, ..default_optim() }, &[&svs, objective.projections()]).unwrap();
    let config = TrainConfig { epochs: 2, batch_size: 8, eval_every: 4, checkpoint_every: 2, log_every: 1, bucket_factor: 2, ..Default::default() };
    let mut trainer = Trainer::new(&student, &svs, optim, 3e-3, dir).objective(objective).config(config).seed(5).label_names(labels()).observer(Silent).stop_after(stop_after);
    let outcome = trainer.fit(&BucketedSource::new(&train, 8, 2), &valid, resume).unwrap().outcome;
    let step = trainer.into_objective().state().unwrap().value::<u64>("step").unwrap();
    let mut proj: Vec<(String, Tensor)> = projections.into_iter().map(|(n, t)| (n, t.copy())).collect();
    proj.sort_by(|a, b| a.0.cmp(&b.0));
    Distilled { student: snapshot(&svs), projections: proj, step, outcome }
}

#[test]
fn a_killed_and_resumed_distillation_with_projections_is_bit_identical() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let full = distil(&tmp.path().join("full"), 0, false, 41);
    assert_eq!((full.outcome, full.step), (Outcome::Finished, 12));
    // The per-term losses are logged with the step.
    let log = whetstone_eval::read_jsonl(tmp.path().join("full").join("metrics.jsonl")).unwrap();
    assert!(log.iter().any(|r| r["split"] == "train" && r["distill_hidden"].as_f64().is_some_and(|v| v > 0.0)), "no distill_hidden term in the log");

    // Killed after step 7 (the last checkpoint is at step 6), then resumed with a student and
    // projections initialised differently: the checkpoint restores the student, the optimiser
    // state of both stores, the projections and the step count of the schedules.
    let dir = tmp.path().join("killed");
    let killed = distil(&dir, 7, false, 41);
    assert_eq!((killed.outcome, killed.step), (Outcome::Interrupted, 7));
    let ck = Checkpoint::load(&dir.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.progress.step, 6);
    assert_eq!(ck.strategy.value::<u64>("step").unwrap(), 6);
    for name in ["projection.hidden.weight", "projection.hidden.bias", "projection.embedding.weight", "projection.embedding.bias"] {
        assert!(ck.strategy.tensor(name).is_ok(), "{name} is not in the checkpoint");
    }
    let resumed = distil(&dir, 0, true, 77);
    assert_eq!((resumed.outcome, resumed.step), (Outcome::Finished, full.step));
    assert_same("student", &full.student, &resumed.student);
    assert_same("projections", &full.projections, &resumed.projections);
    // The control: a fresh run from the resumed run's initialisation ends elsewhere.
    let other = distil(&tmp.path().join("other"), 0, false, 77);
    assert!(other.projections.iter().zip(&full.projections).any(|((_, a), (_, b))| !a.equal(b)));
}
