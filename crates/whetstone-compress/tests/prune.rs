//! Pruning on a tiny Transformer: masks survive training, exact sparsity, the cubic schedule,
//! 2:4 patterns, structured pruning equivalent to its masks, checkpoints, and clear errors.

mod common;

use common::*;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_models::{load_varstore, save_varstore, ModelConfig, TextClassifier};
use whetstone_optim::{named_params, AdamW, AdamWConfig, Algorithm, OptimConfig, Optimizer, NO_DECAY};

fn zeros(t: &Tensor) -> i64 {
    t.eq(0.0).sum(Kind::Int64).int64_value(&[])
}

fn train_steps(model: &dyn TextClassifier, opt: &mut dyn Optimizer, steps: i64) {
    for s in 0..steps {
        let b = batch(100 + s, 4);
        opt.zero_grad();
        let loss = model.forward_t(&b.input_ids, &b.attention_mask, true).unwrap().cross_entropy_for_logits(&b.labels);
        loss.backward();
        opt.step(1e-2).unwrap();
    }
}

#[test]
fn masks_stay_applied_through_steps_with_flat_and_per_tensor_layouts() {
    let _g = serial();
    for flat in [true, false] {
        let (vs, model, _) = tiny(1);
        let opt = AdamW::with_layout(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default(), flat).unwrap();
        let selected = ParamSelector::default().select_vs(&vs).unwrap();
        assert_eq!(selected.len(), 12, "6 Linear weights per layer");
        let masks = magnitude_masks(&selected, 0.6, Scope::Global).unwrap();
        let mut opt = Masked::new(opt, masks.clone(), &vs).unwrap();
        train_steps(&model, &mut opt, 4);
        let vars = vs.variables();
        for (name, mask) in masks.iter() {
            let w = &vars[name];
            let moved = (w * (mask.neg() + 1.0)).ne(0.0).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(moved, 0, "{name}: a pruned weight moved (flat = {flat})");
        }
        // The masks travel in the optimiser state and come back on load.
        let state = opt.state();
        assert!(state.tensors.iter().any(|(n, _)| n.starts_with(MASK_PREFIX)));
        let other = AdamW::with_layout(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default(), flat).unwrap();
        let dense = magnitude_masks(&selected, 0.0, Scope::Global).unwrap();
        let mut restored = Masked::new(other, dense, &vs).unwrap();
        restored.load_state(&state).unwrap();
        assert!((restored.sparsity().unwrap() - 0.6).abs() < 1e-3, "restored sparsity {}", restored.sparsity().unwrap());
    }
}

#[test]
fn sparsity_matches_the_target_within_one_element() {
    let _g = serial();
    let (vs, _model, _) = tiny(2);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    let total: i64 = selected.iter().map(|(_, t)| t.numel() as i64).sum();
    for s in [0.0, 0.3, 0.5, 0.7, 0.9] {
        let global = magnitude_masks(&selected, s, Scope::Global).unwrap();
        let z: i64 = global.iter().map(|(_, m)| zeros(m)).sum();
        assert!((z as f64 - s * total as f64).abs() <= 1.0, "global {s}: {z} of {total}");
        let per = magnitude_masks(&selected, s, Scope::PerLayer).unwrap();
        for (name, m) in per.iter() {
            assert!((zeros(m) as f64 - s * m.numel() as f64).abs() <= 1.0, "{name} at {s}: {}", zeros(m));
        }
    }
    // The kept weights are the largest ones.
    let w = Tensor::from_slice(&[0.5f32, -0.1, 0.3, -2.0, 0.0, 1.0]).view([2, 3]);
    let m = magnitude_masks(&[("w".into(), w)], 0.5, Scope::Global).unwrap();
    assert_eq!(Vec::<f32>::try_from(m.get("w").unwrap().view([-1])).unwrap(), vec![1., 0., 0., 1., 0., 1.]);
}

#[test]
fn cubic_schedule_values_and_gradual_pruning_reach_the_target() {
    let _g = serial();
    let s = CubicSchedule { initial: 0.1, target: 0.8, start: 10, every: 5, updates: 4 };
    let expect = |t: f64| 0.8 + (0.1 - 0.8) * (1.0 - (t - 10.0) / 20.0f64).powi(3);
    for (t, want) in [(0, 0.1), (10, 0.1), (15, expect(15.0)), (20, expect(20.0)), (30, 0.8), (99, 0.8)] {
        assert!((s.sparsity_at(t) - want).abs() < 1e-12, "s({t}) = {} vs {want}", s.sparsity_at(t));
    }
    assert!((s.sparsity_at(20) - (0.8 - 0.7 * 0.125)).abs() < 1e-12);
    assert_eq!((10..=30).filter(|&t| s.is_update_step(t)).collect::<Vec<_>>(), vec![10, 15, 20, 25, 30]);
    assert!(CubicSchedule { target: 1.0, ..s }.validate().unwrap_err().to_string().contains("[0, 1)"));

    for criterion in [Criterion::Magnitude, Criterion::MovementHard] {
        let (vs, model, _) = tiny(3);
        let opt = AdamW::new(named_params(&vs, 0.0, NO_DECAY), AdamWConfig::default()).unwrap();
        let selected = ParamSelector::default().select_vs(&vs).unwrap();
        let schedule = CubicSchedule { initial: 0.0, target: 0.75, start: 1, every: 2, updates: 3 };
        let mut opt = Masked::gradual(opt, &selected, GradualPruning { criterion, schedule, scope: Scope::Global }).unwrap();
        train_steps(&model, &mut opt, 3);
        let mid = opt.sparsity().unwrap();
        assert!(mid > 0.0 && mid < 0.75, "{criterion:?}: sparsity {mid} after 3 steps");
        train_steps(&model, &mut opt, 5);
        assert!((opt.sparsity().unwrap() - 0.75).abs() < 1e-3, "{criterion:?}: final sparsity {}", opt.sparsity().unwrap());
        let vars = vs.variables();
        let z: i64 = selected.iter().map(|(n, _)| zeros(&vars[n])).sum();
        let total: i64 = selected.iter().map(|(_, t)| t.numel() as i64).sum();
        assert!(z as f64 >= 0.75 * total as f64 - 1.0, "{criterion:?}: only {z} of {total} weights are zero");
    }
}

#[test]
fn soft_movement_keeps_weights_whose_scores_pass_the_threshold() {
    let _g = serial();
    let (vs, model, _) = tiny(4);
    let opt = AdamW::new(named_params(&vs, 0.0, NO_DECAY), AdamWConfig::default()).unwrap();
    let selected = ParamSelector::patterns(&["*.intermediate.dense.weight"]).select_vs(&vs).unwrap();
    let schedule = CubicSchedule { initial: 0.0, target: 0.5, start: 2, every: 1, updates: 1 };
    let mut opt = Masked::gradual(opt, &selected, GradualPruning { criterion: Criterion::MovementSoft { threshold: 0.0 }, schedule, scope: Scope::Global }).unwrap();
    train_steps(&model, &mut opt, 3);
    let state = opt.state();
    for (name, _) in &selected {
        let score = state.find(&format!("{SCORE_PREFIX}{name}")).unwrap();
        let mask = state.find(&format!("{MASK_PREFIX}{name}")).unwrap();
        assert_eq!(mask.eq_tensor(&score.gt(0.0).to_kind(Kind::Float)).all().int64_value(&[]), 1, "{name}: mask is not score > 0");
    }
    let s = opt.sparsity().unwrap();
    assert!(s > 0.0 && s < 1.0, "soft movement sparsity {s}");

    // A schedule from step 0 (what `whetstone prune` uses): no masks from the all-zero scores
    // before training (they used to prune every weight, for good).
    let (vs, model, _) = tiny(4);
    let opt = AdamW::new(named_params(&vs, 0.0, NO_DECAY), AdamWConfig::default()).unwrap();
    let selected = ParamSelector::patterns(&["*.intermediate.dense.weight"]).select_vs(&vs).unwrap();
    let schedule = CubicSchedule { initial: 0.0, target: 0.5, start: 0, every: 2, updates: 1 };
    let mut opt = Masked::gradual(opt, &selected, GradualPruning { criterion: Criterion::MovementSoft { threshold: 0.0 }, schedule, scope: Scope::Global }).unwrap();
    assert_eq!(opt.sparsity().unwrap(), 0.0, "masks before any step");
    train_steps(&model, &mut opt, 3);
    let s = opt.sparsity().unwrap();
    assert!(s > 0.0 && s < 1.0, "soft movement sparsity from step 0: {s}");
}

#[test]
fn two_four_masks_have_the_pattern() {
    let _g = serial();
    tch::manual_seed(5);
    let w = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let masks = nm_masks(&[("w".into(), w.shallow_clone())], 2, 4).unwrap();
    let m = masks.get("w").unwrap();
    assert_eq!(zeros(m), 64);
    let groups = m.view([-1, 4]).sum_dim_intlist(-1, false, Kind::Float);
    assert_eq!(groups.eq(2.0).all().int64_value(&[]), 1);
    assert!(is_nm_sparse(&(&w * m), 2, 4).unwrap());
    // The two kept weights of each group are its largest.
    let dropped = m.neg() + 1.0;
    let kept_min = (w.abs() * m + &dropped * 1e9).view([-1, 4]).amin(-1, false);
    let dropped_max = (w.abs() * &dropped).view([-1, 4]).amax(-1, false);
    assert_eq!(kept_min.ge_tensor(&dropped_max).all().int64_value(&[]), 1);
    let e = nm_masks(&[("odd".into(), Tensor::ones([2, 6], (Kind::Float, Device::Cpu)))], 2, 4).unwrap_err().to_string();
    assert!(e.contains("odd") && e.contains("multiple of M = 4"), "{e}");
}

#[test]
fn structurally_pruned_model_matches_its_masked_origin_and_round_trips() {
    let _g = serial();
    let b = batch(6, 5);
    for (importance, scope) in [("magnitude", Scope::Global), ("taylor", Scope::PerLayer)] {
        let (_vs, model, _) = tiny(7);
        let imp = match importance {
            "magnitude" => magnitude_importance(&model, &model.named_parameters()).unwrap(),
            _ => taylor_importance(&model, &[batch(8, 6), batch(9, 6)]).unwrap(),
        };
        assert!(imp.heads.iter().flatten().chain(imp.neurons.iter().flatten()).all(|x| x.is_finite() && *x >= 0.0));
        let plan = StructuredPlan::from_importance(&imp, 0.5, 0.5, scope).unwrap();
        assert_eq!(plan.heads.iter().map(Vec::len).sum::<usize>(), 4);
        assert_eq!(plan.neurons.iter().map(Vec::len).sum::<usize>(), 32);

        let small_vs = VarStore::new(Device::Cpu);
        let (config, small) = prune_structured(&model, &plan, &small_vs.root()).unwrap();
        assert_eq!(config.encoder.layer_shapes, plan.layer_shapes());
        plan.masks(&model, &model.named_parameters()).unwrap().apply_to(&model.named_parameters()).unwrap();
        let masked = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let pruned = tch::no_grad(|| small.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let diff = max_abs_diff(&masked, &pruned);
        assert!(diff < 1e-5, "{importance}: pruned vs masked logits differ by {diff}");
        assert!(whetstone_models::count_parameters(&small_vs) < whetstone_models::count_parameters(&_vs));

        // An ordinary checkpoint: config + weights, loaded without masks.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save_varstore(&small_vs, &path).unwrap();
        let json = serde_json::to_string(&ModelConfig::Transformer(config)).unwrap();
        let back: ModelConfig = serde_json::from_str(&json).unwrap();
        let mut vs3 = VarStore::new(Device::Cpu);
        let reloaded = back.build(&vs3.root(), VOCAB, 3).unwrap();
        load_varstore(&mut vs3, &path).unwrap();
        let again = tch::no_grad(|| reloaded.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        assert_eq!(max_abs_diff(&again, &pruned), 0.0);
    }
}

/// The plan removes the units with the lowest importance and keeps the highest, per layer and
/// globally (where each layer's scores are first L2-normalised).
#[test]
fn structured_plans_remove_the_least_important_heads_and_neurons() {
    let imp = Importance {
        heads: vec![vec![0.4, 0.1, 0.9, 0.3], vec![5.0, 7.0, 1.0, 2.0]],
        neurons: vec![vec![0.5, 3.0, 0.2, 1.0, 4.0, 0.1], vec![9.0, 0.3, 8.0, 0.4, 0.7, 6.0]],
    };
    let plan = StructuredPlan::from_importance(&imp, 0.5, 0.5, Scope::PerLayer).unwrap();
    assert_eq!(plan.heads, vec![vec![0, 2], vec![0, 1]]);
    assert_eq!(plan.neurons, vec![vec![1, 3, 4], vec![0, 2, 5]]);
    let plan = StructuredPlan::from_importance(&imp, 0.25, 0.0, Scope::PerLayer).unwrap();
    assert_eq!(plan.heads, vec![vec![0, 2, 3], vec![0, 1, 3]]);
    assert_eq!(plan.neurons, vec![(0..6).collect::<Vec<_>>(); 2]);
    // Global: normalised head scores are layer 0 [.40 .10 .90 .30] / 1.04 = [.38 .10 .87 .29],
    // layer 1 [5 7 1 2] / 8.89 = [.56 .79 .11 .22]; the 3 lowest are (0,1), (1,2), (1,3).
    let plan = StructuredPlan::from_importance(&imp, 3.0 / 8.0, 0.0, Scope::Global).unwrap();
    assert_eq!(plan.heads, vec![vec![0, 2, 3], vec![0, 1]]);
    // Every layer keeps at least one unit, its best: 7 of 8 asked, 6 removed.
    let skew = Importance { heads: vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 1.0, 1.0, 10.0]], neurons: vec![vec![1.0], vec![1.0]] };
    let plan = StructuredPlan::from_importance(&skew, 0.875, 0.0, Scope::Global).unwrap();
    assert_eq!(plan.heads, vec![vec![3], vec![3]]);
    let plan = StructuredPlan::from_importance(&skew, 0.875, 0.0, Scope::PerLayer).unwrap();
    assert_eq!(plan.heads, vec![vec![3], vec![3]]);
}

/// Heads and neurons whose weights are zero contribute nothing: pruning by magnitude removes
/// exactly those, and the pruned model computes the same logits as the full one.
#[test]
fn magnitude_pruning_removes_dead_units_and_keeps_the_function() {
    let _g = serial();
    let b = batch(40, 5);
    for scope in [Scope::PerLayer, Scope::Global] {
        let (_vs, model, _) = tiny(41);
        let units = model.layer_units();
        let named: std::collections::HashMap<String, Tensor> = model.named_parameters().into_iter().collect();
        // Kill head 1 of layer 0 and head 3 of layer 1, and 8 of the 32 neurons of each layer.
        let dead_heads = [1usize, 3];
        let dead_neurons = [vec![0usize, 3, 4, 9, 15, 20, 27, 31], vec![1, 2, 8, 11, 17, 22, 29, 30]];
        tch::no_grad(|| {
            for (l, u) in units.iter().enumerate() {
                let (d, h) = (u.head_dim as i64, dead_heads[l] as i64);
                for name in &u.qkv {
                    let _ = named[&format!("{name}.weight")].narrow(0, h * d, d).fill_(0.0);
                }
                let _ = named[&format!("{}.weight", u.attention_out)].narrow(1, h * d, d).fill_(0.0);
                for &n in &dead_neurons[l] {
                    let _ = named[&format!("{}.weight", u.ffn_in)].narrow(0, n as i64, 1).fill_(0.0);
                    let _ = named[&format!("{}.weight", u.ffn_out)].narrow(1, n as i64, 1).fill_(0.0);
                }
            }
        });
        let full = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let imp = magnitude_importance(&model, &model.named_parameters()).unwrap();
        let plan = StructuredPlan::from_importance(&imp, 0.25, 0.25, scope).unwrap();
        for l in 0..2 {
            assert_eq!(plan.heads[l], (0..4).filter(|&h| h != dead_heads[l]).collect::<Vec<_>>(), "{scope:?} layer {l} heads");
            assert_eq!(plan.neurons[l], (0..32).filter(|n| !dead_neurons[l].contains(n)).collect::<Vec<_>>(), "{scope:?} layer {l} neurons");
        }
        let small_vs = VarStore::new(Device::Cpu);
        let (_, small) = prune_structured(&model, &plan, &small_vs.root()).unwrap();
        let pruned = tch::no_grad(|| small.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let diff = max_abs_diff(&full, &pruned);
        assert!(diff < 1e-5, "{scope:?}: removing dead units changed the logits by {diff}");
    }
}

#[test]
fn masks_round_trip_through_safetensors() {
    let _g = serial();
    let (vs, _model, _) = tiny(10);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    let masks = magnitude_masks(&selected, 0.4, Scope::PerLayer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("masks.safetensors");
    masks.save(&path).unwrap();
    let back = MaskSet::load(&path).unwrap();
    assert_eq!(back.len(), masks.len());
    for (n, m) in masks.iter() {
        assert_eq!(max_abs_diff(m, back.get(n).unwrap()), 0.0);
    }
    assert!(MaskSet::load(&dir.path().join("missing.safetensors")).is_err());
}

#[test]
fn bad_inputs_give_clear_errors() {
    let _g = serial();
    let (vs, model, _) = tiny(11);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    for s in [1.0, 1.5, -0.1, f64::NAN] {
        let e = magnitude_masks(&selected, s, Scope::Global).unwrap_err().to_string();
        assert!(e.contains("sparsity must be in [0, 1)"), "{e}");
    }
    let imp = magnitude_importance(&model, &model.named_parameters()).unwrap();
    assert!(StructuredPlan::from_importance(&imp, 1.0, 0.5, Scope::Global).is_err());
    let e = "lottery".parse::<PruneMethod>().unwrap_err().to_string();
    assert!(e.contains("unknown pruning method `lottery`") && e.contains("structured-taylor"), "{e}");
    assert!("global".parse::<Scope>().is_ok() && "rows".parse::<Scope>().is_err());
    let e = ParamSelector::patterns(&["decoder.*"]).select_vs(&vs).unwrap_err().to_string();
    assert!(e.contains("no parameter matches") && e.contains("decoder.*") && e.contains("classifier"), "{e}");
    let mut wrong = MaskSet::default();
    wrong.insert("encoder.layer.9.output.dense.weight", Tensor::ones([2, 2], (Kind::Float, Device::Cpu))).unwrap();
    assert!(wrong.apply(&vs).unwrap_err().to_string().contains("names no parameter"));
}

#[test]
fn masks_hold_for_the_evaluation_weights_of_schedule_free_optimisers() {
    let _g = serial();
    let (vs, model, _) = tiny(12);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    let masks = magnitude_masks(&selected, 0.5, Scope::Global).unwrap();
    let sf = OptimConfig { algorithm: Algorithm::ScheduleFreeAdamw(Default::default()), lr: 1e-2, ..default_optim() }.build(&vs).unwrap();
    let mut opt = Masked::new(sf, masks.clone(), &vs).unwrap();
    train_steps(&model, &mut opt, 3);
    let pruned_nonzero = || -> i64 {
        let vars = vs.variables();
        masks.iter().map(|(n, m)| (&vars[n] * (m.neg() + 1.0)).ne(0.0).sum(Kind::Int64).int64_value(&[])).sum()
    };
    assert_eq!(pruned_nonzero(), 0);
    // The averaged iterate swapped in for validation (and saved as the best model) is masked,
    // and so is the training point swapped back.
    opt.eval_mode().unwrap();
    assert_eq!(pruned_nonzero(), 0, "pruned weights came back in the evaluation weights");
    opt.train_mode().unwrap();
    assert_eq!(pruned_nonzero(), 0, "pruned weights came back in the training point");
}
