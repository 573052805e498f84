//! Adversarial training (FGM, PGD, FreeLB) against hand computations on a tiny model, through
//! the one training loop, and the embedding-space PGD attack.
//!
//! * FGM's perturbation is ε·g/‖g‖ with g from tch autograd; the step's gradients are clean +
//!   adversarial; PGD's and FreeLB's gradients match a by-hand loop.
//! * PGD stays inside the ε-ball at every ascent step.
//! * The word embeddings are bit-identical at `before_update` to what they were when the
//!   step began.
//! * Training is deterministic for a seed and bit-identical through kill and resume.
//! * Bad settings and a model without input embeddings are clear errors.

use std::sync::{Arc, Mutex};
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::{Batch, BatchSource, BucketedSource};
use whetstone_models::{ModelConfig, TextClassifier};
use whetstone_optim::OptimConfig;
use whetstone_train::adversarial::{evaluate_under_pgd, AdversarialConfig, FreeLb, FreeLbConfig, Fgm, FgmConfig, Pgd, PgdAttack, PgdConfig};
use whetstone_train::{CrossEntropy, Objective, Outcome, Precision, Result, Silent, StepContext, StepLoss, TrainConfig, Trainer};

mod common {
    pub mod tiny_classifier;
}
use common::tiny_classifier::{batch, build, data, serial, textcnn, transformer_with_dropout, VOCAB};

/// A 1-layer Transformer without dropout: its forward pass is deterministic.
fn transformer() -> ModelConfig {
    transformer_with_dropout(0.0)
}

fn grads(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter()
        .map(|(n, t)| {
            let g = t.grad();
            (n, if g.defined() { g.copy() } else { t.zeros_like() })
        })
        .collect()
}

fn zero_grads(vs: &VarStore) {
    for t in vs.trainable_variables() {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn assert_close_grads(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(b) {
        let tol = 1e-5 * (1.0 + y.abs().max().double_value(&[]));
        assert!(max_diff(x, y) <= tol, "{what}: gradient {n} differs by {}", max_diff(x, y));
    }
}

/// The cross-entropy of `model` on `batch` with `delta` added to the embeddings.
fn ce_at(model: &dyn TextClassifier, b: &Batch, delta: &Tensor) -> Tensor {
    let emb = model.embedding_input().unwrap();
    let e = emb.embed(&b.input_ids, true).unwrap();
    let logits = emb.forward_embedded(&(e + delta), &b.attention_mask, true).unwrap();
    logits.cross_entropy_for_logits(&b.labels)
}

/// ∂CE/∂δ at `delta` (the parameters' gradients are left alone).
fn grad_at(model: &dyn TextClassifier, b: &Batch, delta: &Tensor) -> Tensor {
    let d = delta.detach().set_requires_grad(true);
    Tensor::run_backward(&[ce_at(model, b, &d)], &[&d], false, false).remove(0)
}

/// `g` on real tokens, unit norm per example.
fn unit(g: &Tensor, b: &Batch) -> Tensor {
    let g = g * b.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
    let n = g.flatten(1, -1).norm_scalaropt_dim(2, [1i64].as_slice(), false).view([-1, 1, 1]);
    g / n
}

fn norms(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(1, -1).norm_scalaropt_dim(2, [1i64].as_slice(), false).to_kind(Kind::Double)).unwrap()
}

fn project(d: &Tensor, eps: f64) -> Tensor {
    let n = d.flatten(1, -1).norm_scalaropt_dim(2, [1i64].as_slice(), false).view([-1, 1, 1]);
    d * (eps / n).clamp_max(1.0)
}

/// Zero the gradients, run `f`, and return the gradients it accumulated.
fn grads_of(vs: &VarStore, f: impl FnOnce()) -> Vec<(String, Tensor)> {
    zero_grads(vs);
    f();
    grads(vs)
}

fn sum_grads(a: &[(String, Tensor)], b: &[(String, Tensor)], wa: f64, wb: f64) -> Vec<(String, Tensor)> {
    a.iter().zip(b).map(|((n, x), (_, y))| (n.clone(), x * wa + y * wb)).collect()
}

/// One micro-batch through `objective.backward` with weight 1, as the trainer runs it.
fn run_backward(objective: &mut dyn Objective, model: &dyn TextClassifier, vs: &VarStore, b: &Batch) -> StepLoss {
    let mut cx = StepContext::new(model, vs, 0, 0, Device::Cpu, 11);
    objective.backward(&mut cx, b, 1.0).unwrap()
}

#[test]
fn fgm_perturbation_is_epsilon_times_the_normalised_gradient_and_the_gradient_is_clean_plus_adversarial() {
    let _g = serial();
    let (vs, model) = build(&transformer(), 3);
    let b = batch();
    let eps = 0.7;
    let mut fgm = Fgm::new(CrossEntropy::default(), FgmConfig { epsilon: eps }).unwrap();
    let words = model.embedding_input().unwrap().word_embeddings().copy();
    let mut out = None;
    let with_fgm = grads_of(&vs, || out = Some(run_backward(&mut fgm, model.as_ref(), &vs, &b)));
    let out = out.unwrap();
    // By hand: g = ∂CE/∂δ at δ = 0, r = ε·g/‖g‖ per example over real tokens.
    let zeros = Tensor::zeros(b.input_ids.size().iter().copied().chain([16]).collect::<Vec<_>>(), (Kind::Float, Device::Cpu));
    let g = grad_at(model.as_ref(), &b, &zeros);
    let r = unit(&g, &b) * eps;
    let got = fgm.last_perturbation().unwrap();
    assert!(max_diff(got, &r) < 1e-6, "FGM's r differs from ε·g/‖g‖ by {}", max_diff(got, &r));
    for n in norms(got) {
        assert!((n - eps).abs() < 1e-5, "‖r‖ = {n}, ε = {eps}");
    }
    let pad = b.attention_mask.eq(0).unsqueeze(-1).expand_as(got);
    assert_eq!(got.masked_select(&pad).abs().sum(Kind::Float).double_value(&[]), 0.0, "padding must not be perturbed");
    // The gradients are those of the clean loss plus those of the loss at e + r.
    let clean = grads_of(&vs, || ce_at(model.as_ref(), &b, &zeros).backward());
    let adv = grads_of(&vs, || ce_at(model.as_ref(), &b, &r).backward());
    assert_close_grads(&with_fgm, &sum_grads(&clean, &adv, 1.0, 1.0), "FGM");
    // Loss and term.
    let clean_loss = ce_at(model.as_ref(), &b, &zeros).double_value(&[]);
    assert!((out.value - clean_loss).abs() < 1e-6);
    let adv_loss = ce_at(model.as_ref(), &b, &r).double_value(&[]);
    assert_eq!(out.terms.len(), 1);
    assert_eq!(out.terms[0].0, "adversarial");
    assert!((out.terms[0].1 - adv_loss).abs() < 1e-6 && adv_loss > clean_loss, "the adversarial loss {adv_loss} should exceed the clean {clean_loss}");
    // The embedding matrix is never written.
    assert!(model.embedding_input().unwrap().word_embeddings().equal(&words));
}

#[test]
fn pgd_stays_in_the_ball_and_its_gradient_is_clean_plus_the_last_adversarial() {
    let _g = serial();
    let (vs, model) = build(&transformer(), 4);
    let b = batch();
    let c = PgdConfig { epsilon: 0.5, alpha: 0.2, steps: 4 };
    let mut pgd = Pgd::new(CrossEntropy::default(), c.clone()).unwrap();
    let with_pgd = grads_of(&vs, || {
        run_backward(&mut pgd, model.as_ref(), &vs, &b);
    });
    assert_eq!(pgd.last_norms().len(), 4);
    for (k, n) in pgd.last_norms().iter().enumerate() {
        assert!(*n <= c.epsilon * (1.0 + 1e-6), "step {k}: ‖δ‖ = {n} > ε = {}", c.epsilon);
    }
    assert!((pgd.last_norms()[3] - c.epsilon).abs() < 1e-5, "4 steps of 0.2 reach the ball's surface: {:?}", pgd.last_norms());
    // By hand: K ascent steps from 0, each projected; every per-example norm stays ≤ ε.
    let mut delta = Tensor::zeros(b.input_ids.size().iter().copied().chain([16]).collect::<Vec<_>>(), (Kind::Float, Device::Cpu));
    let zeros = delta.copy();
    for _ in 0..c.steps {
        let g = grad_at(model.as_ref(), &b, &delta);
        delta = project(&(&delta + unit(&g, &b) * c.alpha), c.epsilon);
        assert!(norms(&delta).iter().all(|n| *n <= c.epsilon * (1.0 + 1e-6)));
    }
    let clean = grads_of(&vs, || ce_at(model.as_ref(), &b, &zeros).backward());
    let adv = grads_of(&vs, || ce_at(model.as_ref(), &b, &delta).backward());
    // The intermediate ascent steps leave no trace in the parameter gradients.
    assert_close_grads(&with_pgd, &sum_grads(&clean, &adv, 1.0, 1.0), "PGD");
}

#[test]
fn freelb_averages_the_gradients_of_its_ascent_steps() {
    let _g = serial();
    let (vs, model) = build(&transformer(), 5);
    let b = batch();
    let c = FreeLbConfig { steps: 3, alpha: 0.1, epsilon: 0.3, init_mag: 0.2 };
    let mut freelb = FreeLb::new(CrossEntropy::default(), c.clone()).unwrap();
    tch::manual_seed(99);
    let got = grads_of(&vs, || {
        run_backward(&mut freelb, model.as_ref(), &vs, &b);
    });
    assert!(freelb.last_norms().iter().all(|n| *n <= c.epsilon * (1.0 + 1e-6)), "{:?}", freelb.last_norms());
    // By hand: the random start, then K passes at δ₀, δ₁, δ₂ with weight 1/K.
    tch::manual_seed(99);
    let shape: Vec<i64> = b.input_ids.size().iter().copied().chain([16]).collect();
    let m = b.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
    let u = (Tensor::rand(&shape, (Kind::Float, Device::Cpu)) * 2.0 - 1.0) * &m;
    let lengths = m.sum_dim_intlist([1i64, 2].as_slice(), true, Kind::Float);
    let mut delta = project(&(u * (c.init_mag / (lengths * 16.0).sqrt())), c.epsilon);
    let mut want = grads_of(&vs, || {});
    for _ in 0..c.steps {
        let g = grads_of(&vs, || (ce_at(model.as_ref(), &b, &delta) / c.steps as f64).backward());
        want = sum_grads(&want, &g, 1.0, 1.0);
        let gd = grad_at(model.as_ref(), &b, &delta);
        delta = project(&(&delta + unit(&gd, &b) * c.alpha), c.epsilon);
    }
    assert_close_grads(&got, &want, "FreeLB");
}

/// A decorator that checks, at `before_update`, that the word embeddings are bit-identical
/// to what they were when the step's first backward began.
struct Probe<O> {
    inner: O,
    at_start: Option<Tensor>,
    changed: Arc<Mutex<usize>>,
    checked: Arc<Mutex<usize>>,
}

impl<O: Objective> Objective for Probe<O> {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
        self.inner.loss(cx, batch)
    }
    fn backward(&mut self, cx: &mut StepContext, batch: &Batch, weight: f64) -> Result<StepLoss> {
        if self.at_start.is_none() {
            self.at_start = Some(cx.model.embedding_input().unwrap().word_embeddings().copy());
        }
        self.inner.backward(cx, batch, weight)
    }
    fn before_update(&mut self, cx: &mut StepContext) -> Result<()> {
        self.inner.before_update(cx)?;
        let start = self.at_start.take().unwrap();
        if !cx.model.embedding_input().unwrap().word_embeddings().equal(&start) {
            *self.changed.lock().unwrap() += 1;
        }
        *self.checked.lock().unwrap() += 1;
        Ok(())
    }
    whetstone_train::forward_objective!(inner; after_update, validate, state, load_state);
}

fn config() -> TrainConfig {
    TrainConfig { epochs: 2, batch_size: 8, grad_accum: 2, eval_every: 3, checkpoint_every: 2, log_every: 1, bucket_factor: 2, ..Default::default() }
}

/// Train with `adv` around cross-entropy; returns the sorted variables and the outcome.
fn fit(model: &ModelConfig, adv: &AdversarialConfig, dir: &std::path::Path, stop_after: u64, resume: bool, init_seed: i64) -> (Vec<(String, Tensor)>, Outcome, (usize, usize)) {
    let (vs, m) = build(model, init_seed);
    let train = data(48);
    let valid = data(12);
    let (changed, checked) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let objective = Probe { inner: adv.wrap(Box::new(CrossEntropy::default()), m.as_ref()).unwrap(), at_start: None, changed: changed.clone(), checked: checked.clone() };
    let optim = OptimConfig::default().build(&vs).unwrap();
    let source = BucketedSource::new(&train, 8, 2);
    let mut t = Trainer::new(m.as_ref(), &vs, optim, 3e-3, dir).objective(objective).config(config()).seed(8).observer(Silent).stop_after(stop_after);
    let out = t.fit(&source, &valid, resume).unwrap().outcome;
    drop(t);
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let counts = (*changed.lock().unwrap(), *checked.lock().unwrap());
    (v, out, counts)
}

fn assert_same(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(b) {
        assert!(x.equal(y), "{what}: {n} differs");
    }
}

#[test]
fn every_method_trains_deterministically_keeps_the_embeddings_at_before_update_and_resumes_bit_identically() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let methods = [
        AdversarialConfig::Fgm(FgmConfig { epsilon: 0.5 }),
        AdversarialConfig::Pgd(PgdConfig { epsilon: 0.5, alpha: 0.2, steps: 2 }),
        AdversarialConfig::Freelb(FreeLbConfig { steps: 2, ..Default::default() }),
    ];
    let (plain, _, _) = fit(&textcnn(), &AdversarialConfig::Fgm(FgmConfig { epsilon: 1e-30 }), &tmp.path().join("tiny"), 0, false, 1);
    for (i, adv) in methods.iter().enumerate() {
        let name = adv.name();
        let (a, out, (changed, checked)) = fit(&textcnn(), adv, &tmp.path().join(format!("{i}-a")), 0, false, 1);
        assert_eq!(out, Outcome::Finished);
        assert_eq!(checked, 6, "{name}: 2 epochs of 3 steps");
        assert_eq!(changed, 0, "{name}: the embeddings changed before the update");
        let (b, _, _) = fit(&textcnn(), adv, &tmp.path().join(format!("{i}-b")), 0, false, 1);
        assert_same(&a, &b, &format!("{name}, same seed"));
        assert!(a.iter().zip(&plain).any(|((_, x), (_, y))| !x.equal(y)), "{name} trained like an ε ≈ 0 FGM");
        // Killed after 4 steps and resumed (from another initialisation, which the checkpoint overrides).
        let dir = tmp.path().join(format!("{i}-killed"));
        let (_, out, _) = fit(&textcnn(), adv, &dir, 4, false, 1);
        assert_eq!(out, Outcome::Interrupted);
        let (resumed, out, _) = fit(&textcnn(), adv, &dir, 0, true, 77);
        assert_eq!(out, Outcome::Finished);
        assert_same(&a, &resumed, &format!("{name}, killed and resumed"));
    }
    // The adversarial loss is logged.
    let log = whetstone_eval::read_jsonl(tmp.path().join("0-a/metrics.jsonl")).unwrap();
    assert!(log.iter().any(|r| r["split"] == "train" && r["adversarial"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0)), "no adversarial term in the log");
}

#[test]
fn bad_settings_are_clear_errors_naming_the_field_and_the_method() {
    let cases = [
        ("method = \"fgm\"\nepsilon = 0.0", "adversarial.epsilon", "fgm"),
        ("method = \"fgm\"\nepsilon = -1.0", "adversarial.epsilon", "fgm"),
        ("method = \"pgd\"\nalpha = 0.0", "adversarial.alpha", "pgd"),
        ("method = \"pgd\"\nsteps = 0", "adversarial.steps", "pgd"),
        ("method = \"freelb\"\nsteps = 0", "adversarial.steps", "freelb"),
        ("method = \"freelb\"\nepsilon = -0.1", "adversarial.epsilon", "freelb"),
        ("method = \"freelb\"\nalpha = nan", "adversarial.alpha", "freelb"),
    ];
    for (toml_text, field, method) in cases {
        let cfg: AdversarialConfig = toml::from_str(toml_text).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(field) && e.contains(method), "{toml_text}: {e}");
    }
    // Unknown keys and methods are refused when the section is read.
    assert!(toml::from_str::<AdversarialConfig>("method = \"fgm\"\nepsilom = 1.0").unwrap_err().to_string().contains("epsilom"));
    assert!(toml::from_str::<AdversarialConfig>("method = \"fgm\"\nsteps = 2").is_err(), "FGM has no steps");
    assert!(toml::from_str::<AdversarialConfig>("method = \"smart\"").is_err());
    // Defaults.
    assert_eq!(toml::from_str::<AdversarialConfig>("method = \"freelb\"").unwrap(), AdversarialConfig::Freelb(FreeLbConfig::default()));
}

/// A classifier without input embeddings: a bag of one-hot ids through a linear layer.
#[derive(Debug)]
struct BagOfIds {
    w: Tensor,
}

impl TextClassifier for BagOfIds {
    fn forward_t(&self, ids: &Tensor, _mask: &Tensor, _train: bool) -> whetstone_models::Result<Tensor> {
        Ok(ids.one_hot(VOCAB).to_kind(Kind::Float).sum_dim_intlist([1i64].as_slice(), false, Kind::Float).matmul(&self.w))
    }
}

#[test]
fn a_model_without_input_embeddings_is_refused_when_the_strategy_is_built() {
    let _g = serial();
    let vs = VarStore::new(Device::Cpu);
    let model = BagOfIds { w: vs.root().randn("w", &[VOCAB, 2], 0.0, 0.1) };
    for adv in [AdversarialConfig::Fgm(FgmConfig::default()), AdversarialConfig::Pgd(PgdConfig::default()), AdversarialConfig::Freelb(FreeLbConfig::default())] {
        let e = adv.wrap(Box::new(CrossEntropy::default()), &model).err().expect("must be refused").to_string();
        assert!(e.contains(adv.name()) && e.contains("input embeddings") && e.contains("does not provide"), "{e}");
    }
    // Built directly and run anyway, the strategy fails with the same message, not a panic.
    let b = batch();
    let e = run_backward_err(&mut Fgm::new(CrossEntropy::default(), FgmConfig::default()).unwrap(), &model, &vs, &b);
    assert!(e.contains("FGM") && e.contains("input embeddings"), "{e}");
    let e = evaluate_under_pgd(&model, &data(4), &PgdAttack::default(), 4, Device::Cpu, Precision::Fp32).unwrap_err().to_string();
    assert!(e.contains("PGD attack") && e.contains("input embeddings"), "{e}");
}

fn run_backward_err(objective: &mut dyn Objective, model: &dyn TextClassifier, vs: &VarStore, b: &Batch) -> String {
    let mut cx = StepContext::new(model, vs, 0, 0, Device::Cpu, 11);
    objective.backward(&mut cx, b, 1.0).expect_err("must fail").to_string()
}

#[test]
fn the_pgd_attack_lowers_accuracy_and_does_not_depend_on_the_batch_size() {
    let _g = serial();
    let (_vs, model) = build(&transformer(), 6);
    let test = data(24);
    let none = evaluate_under_pgd(model.as_ref(), &test, &PgdAttack { epsilon: 1e-9, alpha: Some(1e-9), steps: 1 }, 8, Device::Cpu, Precision::Fp32).unwrap();
    assert_eq!(none.clean_accuracy, none.robust_accuracy, "a vanishing attack changes nothing");
    let strong = evaluate_under_pgd(model.as_ref(), &test, &PgdAttack { epsilon: 20.0, alpha: None, steps: 5 }, 8, Device::Cpu, Precision::Fp32).unwrap();
    assert_eq!(strong.examples, 24);
    assert_eq!(strong.clean_accuracy, none.clean_accuracy);
    assert!(strong.robust_accuracy < strong.clean_accuracy, "{strong:?}");
    // Batch size does not change the result (per-example norms, summed loss).
    let other = evaluate_under_pgd(model.as_ref(), &test, &PgdAttack { epsilon: 20.0, alpha: None, steps: 5 }, 5, Device::Cpu, Precision::Fp32).unwrap();
    assert_eq!(other.robust_accuracy, strong.robust_accuracy);
    assert!(evaluate_under_pgd(model.as_ref(), &test, &PgdAttack { epsilon: 0.0, ..Default::default() }, 8, Device::Cpu, Precision::Fp32).unwrap_err().to_string().contains("epsilon"));
}

#[test]
fn the_strategies_and_the_attack_run_under_bf16_autocast() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let train = data(32);
    let source = BucketedSource::new(&train, 8, 1);
    for (i, adv) in [AdversarialConfig::Fgm(FgmConfig::default()), AdversarialConfig::Pgd(PgdConfig::default()), AdversarialConfig::Freelb(FreeLbConfig::default())].iter().enumerate() {
        let (vs, m) = build(&transformer(), 1);
        let optim = OptimConfig::default().build(&vs).unwrap();
        let objective = adv.wrap(Box::new(CrossEntropy::default()), m.as_ref()).unwrap();
        let mut t = Trainer::new(m.as_ref(), &vs, optim, 1e-3, tmp.path().join(i.to_string())).objective(objective).precision(Precision::Bf16).seed(3).observer(Silent);
        let plan = source.epoch_plan(3, 0).unwrap();
        for (s, e) in plan.iter().enumerate() {
            let r = t.train_step(&source, std::slice::from_ref(e), s as u64, 0, 1e-3).unwrap();
            let adv_loss = r.terms.iter().find(|(n, _)| n == "adversarial").map(|t| t.1);
            assert!(r.loss.is_finite() && adv_loss.is_some_and(f64::is_finite), "{}: {r:?}", adv.name());
        }
        drop(t);
        let r = evaluate_under_pgd(m.as_ref(), &data(16), &PgdAttack::default(), 8, Device::Cpu, Precision::Bf16).unwrap();
        assert!(r.examples == 16 && (0.0..=1.0).contains(&r.clean_accuracy) && (0.0..=1.0).contains(&r.robust_accuracy), "{r:?}");
    }
}
