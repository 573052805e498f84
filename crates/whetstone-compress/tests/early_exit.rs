//! Early exit: the policies' extremes reproduce the full model and the first exit, the
//! simulated decisions match real layer-by-layer inference, training the exits leaves a frozen
//! backbone untouched, validation scores the exits (not the backbone), and the sweep reports
//! what its policies do.

mod common;

use common::*;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_compress::build_optimizer;
use whetstone_data::{BucketedSource, Encoded};
use whetstone_models::TextClassifier;
use whetstone_optim::{named_params, AdamW, AdamWConfig, OptimConfig, Optimizer, NO_DECAY};
use whetstone_train::{classify, Checkpoint, EvalContext, Objective, Outcome, Silent, TrainConfig, Trainer, BEST_MODEL_FILE, CHECKPOINT_FILE};

fn widen(heads: &VarStore) {
    // By name: `variables()` is a HashMap, whose order changes from one process to the next,
    // and each exit must get the same draw in every run.
    let mut vars: Vec<(String, Tensor)> = heads.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (_, mut t) in vars {
            if t.dim() == 2 {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.5));
            }
        }
    });
}

#[test]
fn a_threshold_that_never_triggers_gives_the_full_models_output_and_zero_exits_at_layer_1() {
    let _g = serial();
    let (_vs, model, _) = tiny_with(1, config(3, 16, 4, 32));
    let hvs = VarStore::new(Device::Cpu);
    let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
    widen(&hvs);
    assert_eq!(heads.len(), 2);
    let ee = EarlyExit::new(&model, &heads).unwrap();
    let b = batch(5, 4);
    for r in 0..4 {
        let ids = b.input_ids.narrow(0, r, 1);
        let mask = b.attention_mask.narrow(0, r, 1);
        let full = model.forward_t(&ids, &mask, false).unwrap();
        for never in [ExitPolicy::Confidence(1.5), ExitPolicy::Entropy(-1.0), ExitPolicy::Patience(10)] {
            let (logits, layer) = ee.forward(&ids, &mask, never).unwrap();
            assert_eq!(layer, 3, "{never}");
            assert!(max_abs_diff(&logits, &full) < 1e-6, "{never}: {logits} vs {full}");
        }
        let (logits, layer) = ee.forward(&ids, &mask, ExitPolicy::Confidence(0.0)).unwrap();
        assert_eq!(layer, 1);
        let (_, out) = model.forward_detailed(&ids, &mask, false, false).unwrap();
        let first = heads.logits(0, &out.hidden_states[1], &mask, false).unwrap();
        assert!(max_abs_diff(&logits, &first) < 1e-6);
        assert!(max_abs_diff(&first, &full) > 1e-4, "the first exit should differ from the full model");
        assert_eq!(ee.forward(&ids, &mask, ExitPolicy::Patience(0)).unwrap().1, 1);
    }
    // A whole batch computes every exit at once: its last entry is the model's logits.
    let all = ee.all_exit_logits(&b.input_ids, &b.attention_mask).unwrap();
    assert_eq!(all.len(), 3);
    assert!(max_abs_diff(&all[2], &model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap()) < 1e-5);
    // Exits that do not fit the model are refused.
    let (_v2, other, _) = tiny_with(2, config(2, 16, 4, 32));
    assert!(EarlyExit::new(&other, &heads).unwrap_err().to_string().contains("2 internal exits"));
}

#[test]
fn simulated_decisions_match_layer_by_layer_inference() {
    let _g = serial();
    let (_vs, model, _) = tiny_with(3, config(4, 16, 4, 32));
    let hvs = VarStore::new(Device::Cpu);
    let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
    widen(&hvs);
    let ee = EarlyExit::new(&model, &heads).unwrap();
    let b = batch(7, 12);
    let all = ee.all_exit_logits(&b.input_ids, &b.attention_mask).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for policy in [ExitPolicy::Confidence(0.5), ExitPolicy::Confidence(0.7), ExitPolicy::Entropy(0.8), ExitPolicy::Patience(1), ExitPolicy::Patience(2)] {
        for r in 0..12 {
            let probs: Vec<Vec<f32>> = all.iter().map(|l| Vec::<f32>::try_from(l.get(r).softmax(-1, Kind::Float)).unwrap()).collect();
            let simulated = policy.decide(&probs);
            let (logits, layer) = ee.forward(&b.input_ids.narrow(0, r, 1), &b.attention_mask.narrow(0, r, 1), policy).unwrap();
            assert_eq!(layer, simulated, "{policy} row {r}");
            assert!(max_abs_diff(&logits.get(0), &all[layer - 1].get(r)) < 1e-5);
            seen.insert(layer);
        }
    }
    assert!(seen.len() >= 2, "the policies should exit at different layers: {seen:?}");
}

#[test]
fn frozen_training_lowers_the_exit_loss_and_leaves_the_backbone_unchanged() {
    let _g = serial();
    let (vs, model, _) = tiny_with(4, config(3, 16, 4, 32));
    let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let hvs = VarStore::new(Device::Cpu);
    let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
    let obj = ExitObjective::new(&heads, true);
    let mut opt = AdamW::new(named_params(&hvs, 0.0, NO_DECAY), AdamWConfig::default()).unwrap();
    let b = batch(9, 16);
    let first = obj.try_loss(&model, &b).unwrap().double_value(&[]);
    for _ in 0..30 {
        opt.zero_grad();
        obj.try_loss(&model, &b).unwrap().backward();
        opt.step(1e-2).unwrap();
    }
    let last = obj.try_loss(&model, &b).unwrap().double_value(&[]);
    assert!(last < first * 0.9, "exit loss {first} → {last}");
    let after = vs.variables();
    for (n, t) in &before {
        assert!(t.equal(&after[n]), "frozen backbone parameter {n} changed");
    }
    // Joint training reaches the backbone.
    let joint = ExitObjective::new(&heads, false);
    joint.try_loss(&model, &b).unwrap().backward();
    let g = vs.variables()["encoder.layer.0.attention.self.query.weight"].grad();
    assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn the_sweep_reports_accuracy_exit_layer_and_latency_per_policy() {
    let _g = serial();
    let (_vs, model, _) = tiny_with(6, config(3, 16, 4, 32));
    let hvs = VarStore::new(Device::Cpu);
    let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
    widen(&hvs);
    let ee = EarlyExit::new(&model, &heads).unwrap();
    let b = batch(11, 20);
    let lens = Vec::<i64>::try_from(b.attention_mask.sum_dim_intlist(1, false, Kind::Int64)).unwrap();
    let ids: Vec<Vec<i64>> = (0..20).map(|r| Vec::<i64>::try_from(b.input_ids.get(r).narrow(0, 0, lens[r as usize]))).collect::<std::result::Result<_, _>>().unwrap();
    let labels = Vec::<i64>::try_from(&b.labels).unwrap();
    let enc = Encoded { ids, labels: labels.clone(), pad_id: 0 };
    let policies = [ExitPolicy::Confidence(0.0), ExitPolicy::Confidence(0.6), ExitPolicy::Confidence(1.5)];
    let rows = sweep(&ee, &enc, &policies, Device::Cpu, 5, 2).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].mean_exit_layer, 1.0);
    assert_eq!(rows[2].mean_exit_layer, 3.0);
    assert!((1.0..=3.0).contains(&rows[1].mean_exit_layer));
    let full = model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap().argmax(-1, false);
    let full_acc = Vec::<i64>::try_from(&full).unwrap().iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 20.0;
    assert_eq!(rows[2].accuracy, full_acc);
    for r in &rows {
        assert_eq!(r.latency_b1.iters, 10);
        assert!(r.latency_b1.p95_ms >= r.latency_b1.p50_ms && r.latency_b1.p50_ms > 0.0);
    }
}

/// The accuracy of each exit (and the model's own classifier last) on `enc`, by hand.
fn accuracies(ee: &EarlyExit, enc: &Encoded) -> Vec<f64> {
    let b = whetstone_data::make_batch(enc, &(0..enc.len()).collect::<Vec<_>>(), Device::Cpu).unwrap();
    let labels = Vec::<i64>::try_from(&b.labels).unwrap();
    ee.all_exit_logits(&b.input_ids, &b.attention_mask)
        .unwrap()
        .iter()
        .map(|l| Vec::<i64>::try_from(l.argmax(-1, false)).unwrap().iter().zip(&labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64)
        .collect()
}

#[test]
fn validation_scores_the_exits_being_trained_not_the_backbone() {
    let _g = serial();
    let (vs, model, _) = tiny_with(12, config(3, 16, 4, 32));
    let hvs = VarStore::new(Device::Cpu);
    let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
    widen(&hvs);
    let valid = split(13, 40);
    let names = labels();
    let cx = EvalContext { model: &model, vs: &hvs, device: Device::Cpu, batch_size: 16, metric: "accuracy", label_names: &names };
    let by_hand = accuracies(&EarlyExit::new(&model, &heads).unwrap(), &valid);
    // Frozen backbone: the two internal exits are trained, so they are what is scored.
    let mut frozen = ExitObjective::new(&heads, true);
    let v = frozen.validate(&cx, &valid).unwrap();
    assert!((v.metric - (by_hand[0] + by_hand[1]) / 2.0).abs() < 1e-12, "{} vs exits {by_hand:?}", v.metric);
    assert_eq!(v.record["exit_layers"], serde_json::json!([1, 2]));
    assert_eq!(v.record["exit_accuracy"], serde_json::json!(by_hand[..2]));
    let backbone = classify(&EvalContext { vs: &vs, ..cx }, &valid).unwrap().metric;
    assert_eq!(backbone, by_hand[2], "the default validation scores the backbone's own classifier");
    assert_ne!(v.metric, backbone, "the exits' score should differ from the backbone's here");
    // Joint training scores the model's own classifier too.
    let v = ExitObjective::new(&heads, false).validate(&cx, &valid).unwrap();
    assert!((v.metric - by_hand.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    // The loss in the record is the training loss over the split.
    let b = whetstone_data::make_batch(&valid, &(0..40).collect::<Vec<_>>(), Device::Cpu).unwrap();
    let loss = tch::no_grad(|| frozen.try_loss(&model, &b).unwrap().double_value(&[]));
    let recorded = v.record["loss"].as_f64().unwrap();
    let frozen_loss = frozen.validate(&cx, &valid).unwrap().record["loss"].as_f64().unwrap();
    assert!((frozen_loss - loss).abs() < 1e-5, "{frozen_loss} vs {loss}");
    assert!(recorded.is_finite());
}

#[test]
fn the_trainer_keeps_the_best_exits_and_resumes_them_bit_identically() {
    let _g = serial();
    let train = split(20, 48);
    let valid = split(21, 24);
    let tmp = tempfile::tempdir().unwrap();
    // Train the exits of a frozen backbone; the trainer's store is the exits' own.
    let run = |dir: &std::path::Path, stop: u64, resume: bool, heads_seed: i64| {
        let (vs, model, _) = tiny_with(22, config(3, 16, 4, 32));
        let before = snapshot(&vs);
        tch::manual_seed(heads_seed);
        let hvs = VarStore::new(Device::Cpu);
        let heads = ExitHeads::new(&hvs.root(), &model).unwrap();
        let optim = build_optimizer(&OptimConfig { lr: 1e-2, ..default_optim() }, &[&hvs]).unwrap();
        let config = TrainConfig { epochs: 2, batch_size: 8, eval_every: 3, checkpoint_every: 2, log_every: 1, bucket_factor: 2, ..Default::default() };
        let mut t = Trainer::new(&model, &hvs, optim, 1e-2, dir).objective(ExitObjective::new(&heads, true)).config(config).seed(3).label_names(labels()).observer(Silent).stop_after(stop);
        let outcome = t.fit(&BucketedSource::new(&train, 8, 2), &valid, resume).unwrap().outcome;
        drop(t);
        assert_same("frozen backbone", &before, &snapshot(&vs));
        (snapshot(&hvs), outcome)
    };
    let (full, outcome) = run(&tmp.path().join("full"), 0, false, 23);
    assert_eq!(outcome, Outcome::Finished);
    // Every validation record holds the exits' scores, and the best model is the best exits.
    let log = whetstone_eval::read_jsonl(tmp.path().join("full/metrics.jsonl")).unwrap();
    let valids: Vec<_> = log.iter().filter(|r| r["split"] == "valid").collect();
    assert!(!valids.is_empty() && valids.iter().all(|r| r["exit_accuracy"].as_array().is_some_and(|a| a.len() == 2)), "{valids:?}");
    let best = Tensor::read_safetensors(tmp.path().join("full").join(BEST_MODEL_FILE)).unwrap();
    assert!(best.iter().all(|(n, _)| n.starts_with("exit.")), "the best model holds the exits");
    let dir = tmp.path().join("killed");
    assert_eq!(run(&dir, 7, false, 23).1, Outcome::Interrupted);
    let ck = Checkpoint::load(&dir.join(CHECKPOINT_FILE)).unwrap();
    assert!(ck.strategy.tensor("exit.1.weight").is_ok(), "the exits are in the strategy state");
    let (resumed, outcome) = run(&dir, 0, true, 99);
    assert_eq!(outcome, Outcome::Finished);
    assert_same("exits", &full, &resumed);
}
