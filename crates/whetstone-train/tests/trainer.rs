//! The training loop on small real data (a slice of rotten-tomatoes, fetched through the
//! project's cached fetch): reproducibility, exact resume, early stopping, non-finite losses.

use std::path::Path;
use tch::{nn::VarStore, Device, Tensor};
use whetstone_data::{encode, load_splits, Batch, BucketedSource, DataSource, Encoded, Split, TextTokenizer};
use whetstone_models::{ModelConfig, TextCnnConfig, TransformerClassifierConfig, TransformerConfig};
use whetstone_optim::{OptimConfig, Schedule};
use whetstone_train::{Checkpoint, CrossEntropy, Objective, Outcome, Silent, StepContext, TrainConfig, TrainError, Trainer, CHECKPOINT_FILE};

mod common {
    pub mod tiny_classifier;
}

/// libtorch's random generator is global to the process and `cargo test` runs tests on
/// parallel threads: tests that depend on the random stream take this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Data {
    train: Encoded,
    valid: Encoded,
    vocab: i64,
}

fn take(s: &Split, n: usize) -> Split {
    Split { texts: s.texts[..n].to_vec(), labels: s.labels[..n].to_vec() }
}

fn data() -> Data {
    let splits = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 7).expect("rotten-tomatoes (cargo xtask data)");
    let (train, valid) = (take(&splits.train, 480), take(&splits.valid, 96));
    let tok = TextTokenizer::train_wordpiece(&train.texts, 800, 2, true).unwrap();
    Data { train: encode(&tok, &train, 32).unwrap(), valid: encode(&tok, &valid, 32).unwrap(), vocab: tok.vocab_size() as i64 }
}

fn textcnn() -> ModelConfig {
    ModelConfig::Textcnn(TextCnnConfig { embed_dim: 24, channels: 8, ..Default::default() })
}

fn transformer() -> ModelConfig {
    ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 1, hidden: 32, heads: 2, ffn: 64, max_len: 32, ..Default::default() },
        ..Default::default()
    })
}

fn config() -> TrainConfig {
    TrainConfig { epochs: 3, batch_size: 16, grad_accum: 2, eval_every: 10, checkpoint_every: 4, log_every: 5, bucket_factor: 4, ..Default::default() }
}

/// Train `model_cfg` in `dir`; the model is initialised from `init_seed`; `stop_after` steps
/// (0 = all). Returns the final parameters (sorted by name) and the outcome.
fn run(d: &Data, model_cfg: &ModelConfig, cfg: TrainConfig, dir: &Path, resume: bool, init_seed: i64, objective: Box<dyn Objective>) -> (Vec<(String, Tensor)>, Result<Outcome, TrainError>) {
    run_until(d, model_cfg, cfg, 0, dir, resume, init_seed, objective)
}

#[allow(clippy::too_many_arguments)]
fn run_until(d: &Data, model_cfg: &ModelConfig, cfg: TrainConfig, stop_after: u64, dir: &Path, resume: bool, init_seed: i64, objective: Box<dyn Objective>) -> (Vec<(String, Tensor)>, Result<Outcome, TrainError>) {
    tch::manual_seed(init_seed);
    let vs = VarStore::new(Device::Cpu);
    let model = model_cfg.build(&vs.root(), d.vocab, 2).unwrap();
    let optim = OptimConfig::default().build(&vs).unwrap();
    let source = BucketedSource::new(&d.train, cfg.batch_size, cfg.bucket_factor);
    let mut t = Trainer::new(model.as_ref(), &vs, optim, 3e-3, dir)
        .objective(objective)
        .schedule(Schedule::default())
        .config(cfg)
        .seed(11)
        .label_names(vec!["negative".into(), "positive".into()])
        .observer(Silent)
        .stop_after(stop_after);
    let out = t.fit(&source, &d.valid, resume).map(|s| s.outcome);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    (vars, out)
}

fn assert_bit_identical(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs (max abs diff {})", (ta - tb).abs().max().double_value(&[]));
    }
}

#[test]
fn runs_are_bit_reproducible_and_resume_exactly() {
    let _g = serial();
    let d = data();
    for model in [textcnn(), transformer()] {
        let tmp = tempfile::tempdir().unwrap();
        let (full, out) = run(&d, &model, config(), &tmp.path().join("full"), false, 1, Box::new(CrossEntropy::default()));
        assert_eq!(out.unwrap(), Outcome::Finished);
        let (again, _) = run(&d, &model, config(), &tmp.path().join("again"), false, 1, Box::new(CrossEntropy::default()));
        assert_bit_identical(&full, &again);

        // "Kill" the run at step 23 (the last checkpoint is at step 20, mid-epoch), then resume
        // into a model initialised differently: the checkpoint must restore everything.
        let dir = tmp.path().join("killed");
        let (_, out) = run_until(&d, &model, config(), 23, &dir, false, 1, Box::new(CrossEntropy::default()));
        assert_eq!(out.unwrap(), Outcome::Interrupted);
        let ck = Checkpoint::load(&dir.join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(ck.progress.step, 20);
        assert!(ck.progress.batch_in_epoch > 0, "the checkpoint should be mid-epoch");
        let (resumed, out) = run(&d, &model, config(), &dir, true, 999, Box::new(CrossEntropy::default()));
        assert_eq!(out.unwrap(), Outcome::Finished);
        assert_bit_identical(&full, &resumed);

        // The metrics log holds each step once, despite the replayed steps 21..23.
        let log = whetstone_eval::read_jsonl(dir.join("metrics.jsonl")).unwrap();
        let mut train_steps: Vec<u64> = log.iter().filter(|r| r["split"] == "train").map(|r| r["step"].as_u64().unwrap()).collect();
        let n = train_steps.len();
        train_steps.dedup();
        assert_eq!(n, train_steps.len(), "duplicate train records after resume");
        assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }
}

#[test]
fn resume_without_checkpoint_or_from_garbage_is_a_clear_error() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let (_, out) = run(&d, &textcnn(), config(), tmp.path(), true, 1, Box::new(CrossEntropy::default()));
    let e = out.unwrap_err().to_string();
    assert!(e.contains("cannot resume") && e.contains(CHECKPOINT_FILE), "{e}");
    std::fs::write(tmp.path().join(CHECKPOINT_FILE), b"garbage").unwrap();
    let (_, out) = run(&d, &textcnn(), config(), tmp.path(), true, 1, Box::new(CrossEntropy::default()));
    let e = out.unwrap_err().to_string();
    assert!(e.contains(CHECKPOINT_FILE) && e.contains("not a valid safetensors"), "{e}");
    // A checkpoint of another model does not load into this one.
    let other = tmp.path().join("other");
    let (_, out) = run_until(&d, &transformer(), config(), 4, &other, false, 1, Box::new(CrossEntropy::default()));
    out.unwrap();
    let (_, out) = run(&d, &textcnn(), config(), &other, true, 1, Box::new(CrossEntropy::default()));
    let e = out.unwrap_err().to_string();
    assert!(e.contains("does not fit the model") && e.contains("embedding.weight"), "{e}");
}

/// Cross-entropy that turns NaN from step `at` on.
struct PoisonAt {
    at: u64,
    calls: u64,
}

impl Objective for PoisonAt {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> whetstone_train::Result<Tensor> {
        self.calls += 1;
        let l = CrossEntropy::default().loss(cx, batch)?;
        Ok(if self.calls > self.at { l * f64::NAN } else { l })
    }
}

#[test]
fn non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    // grad_accum = 2: call 19 is in step 10; the checkpoint at step 8 is the last good one.
    let (_, out) = run(&d, &textcnn(), config(), tmp.path(), false, 1, Box::new(PoisonAt { at: 18, calls: 0 }));
    let e = out.unwrap_err();
    assert!(matches!(e, TrainError::NonFiniteLoss { step: 10, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("NaN") && msg.contains("step 10") && msg.contains(CHECKPOINT_FILE), "{msg}");
    let ck = Checkpoint::load(&tmp.path().join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.progress.step, 8);
    for (name, t) in &ck.model {
        assert!(bool::try_from(t.isfinite().all()).unwrap(), "{name} is not finite in the kept checkpoint");
    }
}

#[test]
fn early_stopping_ends_the_run_after_patience_evaluations() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    // With a vanishing learning rate the validation metric cannot improve after the first evaluation.
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let model = textcnn().build(&vs.root(), d.vocab, 2).unwrap();
    let cfg = TrainConfig { epochs: 50, patience: 2, eval_every: 5, ..config() };
    let source = BucketedSource::new(&d.train, cfg.batch_size, cfg.bucket_factor);
    let optim = OptimConfig { lr: 1e-30, weight_decay: 0.0, ..Default::default() }.build(&vs).unwrap();
    let mut t = Trainer::new(model.as_ref(), &vs, optim, 1e-30, tmp.path()).config(cfg).seed(1).label_names(vec!["n".into(), "p".into()]).observer(Silent);
    let s = t.fit(&source, &d.valid, false).unwrap();
    assert_eq!(s.outcome, Outcome::StoppedEarly);
    assert_eq!(s.progress.step, 15, "evaluations at 5 (best), 10, 15 → stop");
    assert_eq!(s.progress.best_step, 5);
    assert!(tmp.path().join("model.safetensors").exists());
}

#[test]
fn reduce_on_plateau_follows_the_validation_metric_and_survives_resume() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let schedule: Schedule = toml::from_str("kind = \"reduce-on-plateau\"\nmode = \"max\"\nfactor = 0.5\npatience = 0").unwrap();
    let cfg = TrainConfig { epochs: 1, eval_every: 3, log_every: 1, checkpoint_every: 0, ..config() };
    let train = |stop_after: u64, resume: bool| {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let model = textcnn().build(&vs.root(), d.vocab, 2).unwrap();
        let optim = OptimConfig { lr: 1e-30, weight_decay: 0.0, ..Default::default() }.build(&vs).unwrap();
        let source = BucketedSource::new(&d.train, cfg.batch_size, cfg.bucket_factor);
        let mut t = Trainer::new(model.as_ref(), &vs, optim, 1e-30, tmp.path())
            .schedule(schedule.clone())
            .config(cfg.clone())
            .seed(1)
            .label_names(vec!["n".into(), "p".into()])
            .observer(Silent)
            .stop_after(stop_after);
        t.fit(&source, &d.valid, resume).unwrap()
    };
    train(7, false);
    let s = train(0, true);
    assert_eq!(s.outcome, Outcome::Finished);
    // The metric cannot improve after the first evaluation (step 3), so every later evaluation
    // halves the rate for the steps after it: 7..9 at 1/2 (the run resumed from the step-6
    // checkpoint, which must carry the plateau state), 10..12 at 1/4, 13..15 at 1/8.
    let log = whetstone_eval::read_jsonl(tmp.path().join("metrics.jsonl")).unwrap();
    let lr_at = |step: u64| log.iter().find(|r| r["split"] == "train" && r["step"] == step).and_then(|r| r["lr"].as_f64()).unwrap() / 1e-30;
    assert!((lr_at(5) - 1.0).abs() < 1e-12, "{}", lr_at(5));
    assert!((lr_at(8) - 0.5).abs() < 1e-12, "{}", lr_at(8));
    assert!((lr_at(11) - 0.25).abs() < 1e-12, "{}", lr_at(11));
    assert!((lr_at(14) - 0.125).abs() < 1e-12, "{}", lr_at(14));
}

/// Cross-entropy that first records what torch's global generator and the step context's
/// random stream give at the start of the loss, with the step and the context's seed.
struct RecordDraws {
    draws: std::sync::Arc<std::sync::Mutex<Vec<(u64, u64, Vec<f64>, u64)>>>,
}

impl Objective for RecordDraws {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> whetstone_train::Result<Tensor> {
        use rand::Rng;
        let torch = Vec::<f64>::try_from(Tensor::rand([4], (tch::Kind::Double, Device::Cpu))).unwrap();
        let rust: u64 = cx.rng().gen();
        self.draws.lock().unwrap().push((cx.step, cx.seed, torch, rust));
        CrossEntropy::default().loss(cx, batch)
    }
}

/// The random streams (dropout, masking, adversarial noise) are reseeded from `(seed, step)`
/// before every step: distinct at every step, the same in a rerun, and a function of the
/// run's seed. A trainer that reseeds every step with the same value would repeat one dropout
/// mask and one noise draw for the whole run.
#[test]
fn every_step_gets_its_own_random_stream_fixed_by_the_seed() {
    let _g = serial();
    let train = common::tiny_classifier::data(64);
    let valid = common::tiny_classifier::data(8);
    let cfg = TrainConfig { epochs: 2, batch_size: 16, grad_accum: 1, eval_every: 0, checkpoint_every: 0, bucket_factor: 1, ..Default::default() };
    let record = |seed: u64| {
        let tmp = tempfile::tempdir().unwrap();
        let (vs, model) = common::tiny_classifier::build(&common::tiny_classifier::textcnn(), 5);
        let optim = OptimConfig::default().build(&vs).unwrap();
        let draws = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let source = BucketedSource::new(&train, cfg.batch_size, cfg.bucket_factor);
        let mut t = Trainer::new(model.as_ref(), &vs, optim, 1e-3, tmp.path())
            .objective(Box::new(RecordDraws { draws: draws.clone() }))
            .config(cfg.clone())
            .seed(seed)
            .label_names(vec!["n".into(), "p".into()])
            .observer(Silent);
        t.fit(&source, &valid, false).unwrap();
        let d = draws.lock().unwrap().clone();
        d
    };
    let a = record(11);
    assert_eq!(a.iter().map(|d| d.0).collect::<Vec<_>>(), (0..8).collect::<Vec<u64>>(), "one loss per step, 4 steps per epoch");
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            assert_ne!(a[i].1, a[j].1, "steps {i} and {j} got the same seed");
            assert_ne!(a[i].2, a[j].2, "steps {i} and {j} drew the same numbers from torch's generator");
            assert_ne!(a[i].3, a[j].3, "steps {i} and {j} drew the same number from the context's stream");
        }
    }
    assert_eq!(a, record(11), "a rerun with the same seed draws the same numbers");
    let b = record(12);
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x.2, y.2, "step {}: seeds 11 and 12 gave the same torch draws", x.0);
        assert_ne!(x.3, y.3, "step {}: seeds 11 and 12 gave the same context draws", x.0);
    }
}
