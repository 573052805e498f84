//! Gradual pruning trained by distillation, on the one training loop: the pruned student
//! follows the teacher's cached logits (not the labels) when α = 0, the cubic schedule reaches
//! its target, the Fisher (oBERT-style) criterion ranks by w²·F, and a pruning phase killed
//! between two mask updates resumes bit-identically.

mod common;

use common::*;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_data::{BucketedSource, Encoded};
use whetstone_models::TextClassifier;
use whetstone_optim::{named_params, Optimizer, Sgd, SgdConfig, NO_DECAY};
use whetstone_train::{Outcome, Silent, TrainConfig, Trainer};

/// A teacher whose logits ignore the input and always prefer class 1: its classifier's
/// weights are zero and its bias is (−4, 4, −4).
fn constant_teacher() -> (VarStore, whetstone_models::TransformerClassifier) {
    let (vs, t, _) = tiny_with(60, config(1, 16, 4, 32));
    tch::no_grad(|| {
        for (name, mut p) in t.named_parameters() {
            if name.starts_with("classifier") {
                if p.dim() == 2 {
                    let _ = p.zero_();
                } else {
                    p.copy_(&Tensor::from_slice(&[-4.0f32, 4.0, -4.0]));
                }
            }
        }
    });
    (vs, t)
}

/// Fraction of zeros over the `selected` weights of `vs`.
fn zero_fraction(vs: &VarStore, selected: &[(String, Tensor)]) -> f64 {
    let vars = vs.variables();
    let z: i64 = selected.iter().map(|(n, _)| vars[n].eq(0.0).sum(Kind::Int64).int64_value(&[])).sum();
    let n: i64 = selected.iter().map(|(_, t)| t.numel() as i64).sum();
    z as f64 / n as f64
}

/// Arg-max predictions of `model` on `data`.
fn predictions(model: &dyn TextClassifier, data: &Encoded) -> Vec<i64> {
    let idx: Vec<usize> = (0..data.len()).collect();
    let b = whetstone_data::make_batch(data, &idx, Device::Cpu).unwrap();
    let logits = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false)).unwrap();
    Vec::<i64>::try_from(logits.argmax(-1, false)).unwrap()
}

/// A gradual-pruning phase as `whetstone prune` runs it: magnitude or Fisher masks on the cubic
/// schedule (ramp over the first 2/3 of 18 steps, to `target`), logit distillation at hard-label
/// weight `alpha` from the constant teacher's cached logits, on labels that are all 0; killed
/// after `stop_after` steps (0: never), resumed from the folder's checkpoint when `resume`.
/// Returns the student, its store, the selected weights and the outcome.
struct Pruned {
    vs: VarStore,
    student: whetstone_models::TransformerClassifier,
    selected: Vec<(String, Tensor)>,
    outcome: Outcome,
}

fn prune_with_kd(dir: &std::path::Path, criterion: Criterion, alpha: f64, target: f64, stop_after: u64, resume: bool) -> Pruned {
    let mut train = split(70, 48);
    train.labels = vec![0; train.len()];
    let (_tvs, teacher) = constant_teacher();
    let cache = TeacherCache::build_split(&teacher, &train, 16, Device::Cpu).unwrap();
    let (vs, student, _) = tiny(71);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    // 48 examples in batches of 8, 3 epochs: 18 steps; the ramp ends at step 12.
    let schedule = CubicSchedule { initial: 0.0, target, start: 0, every: 3, updates: 4 };
    let inner = build_optimizer(&whetstone_optim::OptimConfig { lr: 1e-2, ..default_optim() }, &[&vs]).unwrap();
    let optim = Masked::gradual(inner, &selected, GradualPruning { criterion, schedule, scope: Scope::Global }).unwrap();
    let objective = DistillObjective::new(Box::new(teacher), &student, DistillConfig { alpha: alpha.into(), ..Default::default() }).unwrap().with_cache(cache);
    let config = TrainConfig { epochs: 3, batch_size: 8, bucket_factor: 2, checkpoint_every: 2, log_every: 1, ..Default::default() };
    let empty = Encoded { ids: Vec::new(), labels: Vec::new(), pad_id: 0 };
    let mut trainer = Trainer::new(&student, &vs, Box::new(optim), 1e-2, dir).objective(objective).config(config).seed(9).label_names(labels()).observer(Silent).stop_after(stop_after);
    let outcome = trainer.fit(&BucketedSource::new(&train, 8, 2), &empty, resume).unwrap().outcome;
    drop(trainer);
    Pruned { vs, student, selected, outcome }
}

#[test]
fn distillation_during_gradual_pruning_follows_the_teacher_and_reaches_the_target() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut train = split(70, 48);
    train.labels = vec![0; train.len()];
    for (alpha, want) in [(0.0, 1i64), (1.0, 0)] {
        let p = prune_with_kd(&tmp.path().join(format!("a{alpha}")), Criterion::Magnitude, alpha, 0.8, 0, false);
        assert_eq!(p.outcome, Outcome::Finished);
        // The schedule's target, reached by the phase's last mask update.
        let z = zero_fraction(&p.vs, &p.selected);
        assert!((z - 0.8).abs() < 1e-3, "α = {alpha}: sparsity {z}");
        // α = 0: the teacher alone (it says 1 everywhere); α = 1: the labels alone (all 0).
        let preds = predictions(&p.student, &train);
        let agree = preds.iter().filter(|&&c| c == want).count();
        assert_eq!(agree, preds.len(), "α = {alpha}: {agree} of {} predictions are {want}: {preds:?}", preds.len());
    }
}

#[test]
fn fisher_criterion_keeps_the_weights_the_loss_is_most_sensitive_to() {
    let _g = serial();
    let vs = VarStore::new(Device::Cpu);
    let w = (vs.root() / "dense").var_copy("weight", &Tensor::from_slice(&[0.5f32, 0.6, 1.0, 0.9, 0.7, 0.8]).view([1, 6]));
    let sel = vec![("dense.weight".to_string(), w.shallow_clone())];
    let sgd = || Sgd::new(named_params(&vs, 0.0, NO_DECAY), SgdConfig::default()).unwrap();
    let schedule = CubicSchedule { initial: 0.0, target: 0.5, start: 0, every: 2, updates: 1 };
    // Gradients c over two steps (the window): w²·Σc² ranks 0, 1, 5 above 2, 3, 4, while the
    // magnitude ranks 2, 3, 5 first.
    let c = Tensor::from_slice(&[3.0f32, 2.0, 0.1, 0.2, 0.3, 1.5]).view([1, 6]);
    let run = |criterion: Criterion| {
        tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(&[0.5f32, 0.6, 1.0, 0.9, 0.7, 0.8]).view([1, 6])));
        let mut opt = Masked::gradual(sgd(), &sel, GradualPruning { criterion, schedule, scope: Scope::Global }).unwrap();
        for _ in 0..2 {
            opt.zero_grad();
            (&w * &c).sum(Kind::Float).backward();
            opt.step(1e-6).unwrap();
        }
        Vec::<f32>::try_from(opt.masks().unwrap().get("dense.weight").unwrap().view([-1]).to_kind(Kind::Float)).unwrap()
    };
    assert_eq!(run(Criterion::Fisher), vec![1., 1., 0., 0., 0., 1.]);
    assert_eq!(run(Criterion::Magnitude), vec![0., 0., 1., 1., 0., 1.]);
    // The method parses by name.
    assert_eq!("fisher".parse::<PruneMethod>().unwrap(), PruneMethod::Fisher);
}

#[test]
fn a_pruning_phase_killed_between_mask_updates_resumes_bit_identically() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    for criterion in [Criterion::Fisher, Criterion::Magnitude] {
        let full = prune_with_kd(&tmp.path().join(format!("{criterion:?}-full")), criterion, 0.3, 0.7, 0, false);
        assert_eq!(full.outcome, Outcome::Finished);
        assert!((zero_fraction(&full.vs, &full.selected) - 0.7).abs() < 1e-3);
        // Killed after step 5 (last checkpoint at step 4, between the updates at 3 and 6: the
        // Fisher window holds step 4's squared gradients), then resumed from a student that
        // starts from its initialisation again.
        let dir = tmp.path().join(format!("{criterion:?}-killed"));
        let killed = prune_with_kd(&dir, criterion, 0.3, 0.7, 5, false);
        assert_eq!(killed.outcome, Outcome::Interrupted);
        let mid = zero_fraction(&killed.vs, &killed.selected);
        assert!(mid > 0.0 && mid < 0.7, "{criterion:?}: sparsity {mid} after 5 steps");
        let resumed = prune_with_kd(&dir, criterion, 0.3, 0.7, 0, true);
        assert_eq!(resumed.outcome, Outcome::Finished);
        assert_same(&format!("{criterion:?} resumed"), &snapshot(&full.vs), &snapshot(&resumed.vs));
    }
}
