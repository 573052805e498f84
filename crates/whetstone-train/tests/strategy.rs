//! The strategy API from outside whetstone-train: strategies and batch sources written here,
//! in a test crate, plug into the one loop without any change to it.
//!
//! * FGM (Miyato et al. 2017): clean backward, perturbed backward, restore before the step.
//! * A strategy with its own parameters and counters: they survive a kill and resume bit-identically.
//! * Sources: a multi-stream (multi-task) source with named targets, and a text-level source
//!   that transforms raw text with a seeded transform before tokenising.
//! * Resume checks: a changed batch plan or changed data is an error, never a hang; nothing
//!   non-finite is ever checkpointed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tch::{nn, nn::Module, nn::VarStore, Device, Kind, Tensor};
use whetstone_data::{entry_key, make_batch, Batch, BatchSource, BucketedSource, Encoded, Fingerprint, PlanEntry, Split, TextTokenizer};
use whetstone_models::{ModelConfig, TextCnnConfig, TransformerClassifierConfig, TransformerConfig};
use whetstone_optim::OptimConfig;
use whetstone_train::{
    backward_weighted, Checkpoint, CrossEntropy, Objective, Outcome, Result, Silent, StepContext, StepLoss, StrategyState, TrainConfig, TrainError, Trainer, CHECKPOINT_FILE,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` labelled sentences: label 1 has praise, label 0 complaints.
fn corpus(n: usize, offset: usize) -> Split {
    let good = ["good", "great", "fine", "lovely", "superb"];
    let bad = ["bad", "awful", "dull", "boring", "weak"];
    let things = ["movie", "film", "plot", "acting", "story", "cast"];
    let mut split = Split { texts: Vec::new(), labels: Vec::new() };
    for k in 0..n {
        let i = k + offset;
        let words = if i % 2 == 1 { &good } else { &bad };
        split.texts.push(format!("the {} was {} and {} {}", things[i % 6], words[i % 5], words[(i / 5) % 5], "really ".repeat(i % 4)));
        split.labels.push((i % 2) as i64);
    }
    split
}

struct Data {
    tok: TextTokenizer,
    train_split: Split,
    train: Encoded,
    valid: Encoded,
}

fn data() -> Data {
    let train_split = corpus(96, 0);
    let tok = TextTokenizer::train_wordpiece(&train_split.texts, 200, 1, true).unwrap();
    let train = whetstone_data::encode(&tok, &train_split, 24).unwrap();
    let valid = whetstone_data::encode(&tok, &corpus(32, 1000), 24).unwrap();
    Data { tok, train_split, train, valid }
}

fn transformer() -> ModelConfig {
    ModelConfig::Transformer(TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 1, hidden: 32, heads: 2, ffn: 64, max_len: 32, ..Default::default() },
        ..Default::default()
    })
}

fn textcnn() -> ModelConfig {
    ModelConfig::Textcnn(TextCnnConfig { embed_dim: 16, channels: 4, ..Default::default() })
}

fn config() -> TrainConfig {
    TrainConfig { epochs: 2, batch_size: 16, eval_every: 4, checkpoint_every: 2, log_every: 2, bucket_factor: 2, ..Default::default() }
}

fn sorted(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

/// Train `model` with `objective` on `source` in `dir`; returns the variables and the outcome.
#[allow(clippy::too_many_arguments)]
fn fit<O: Objective + 'static>(model: &ModelConfig, vocab: i64, objective: O, source: &dyn BatchSource, valid: &Encoded, cfg: TrainConfig, dir: &Path, stop_after: u64, resume: bool, init_seed: i64) -> (Vec<(String, Tensor)>, Result<Outcome>) {
    tch::manual_seed(init_seed);
    let vs = VarStore::new(Device::Cpu);
    let m = model.build(&vs.root(), vocab, 2).unwrap();
    let optim = OptimConfig { weight_decay: 0.0, ..Default::default() }.build(&vs).unwrap();
    let mut t = Trainer::new(m.as_ref(), &vs, optim, 3e-3, dir).objective(objective).config(cfg).seed(5).observer(Silent).stop_after(stop_after);
    let out = t.fit(source, valid, resume).map(|s| s.outcome);
    drop(t);
    (sorted(&vs), out)
}

// ---------------------------------------------------------------------------------------
// FGM: a strategy that takes over the backward pass and uses the before-update hook.

/// Fast gradient method on the word embeddings (Miyato et al. 2017), written against the
/// public strategy API only.
struct Fgm {
    epsilon: f64,
    backup: Option<Tensor>,
    /// Max |embedding − backup| seen right after each restore (must stay 0).
    restore_error: std::sync::Arc<Mutex<f64>>,
    steps: u64,
}

impl Objective for Fgm {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
        CrossEntropy::default().loss(cx, batch)
    }

    fn backward(&mut self, cx: &mut StepContext, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let emb = whetstone_models::require_embedding_input(cx.model, "FGM")?;
        // 1. Clean loss and gradients.
        let clean = backward_weighted(&self.loss(cx, batch)?, weight)?;
        // 2. Perturb the embeddings along their gradient (r = ε g / ‖g‖), keeping a backup.
        let w = emb.word_embeddings().shallow_clone();
        let g = w.grad();
        if self.backup.is_none() {
            self.backup = Some(w.detach().copy());
        }
        let norm = g.norm().double_value(&[]);
        if norm > 0.0 && norm.is_finite() {
            let _ = tch::no_grad(|| w.shallow_clone().f_add_(&(&g * (self.epsilon / norm)))).map_err(TrainError::from)?;
        }
        // 3. Adversarial loss on the perturbed embeddings, gradients accumulated.
        let logits = emb.forward_embedded(&emb.embed(&batch.input_ids, true)?, &batch.attention_mask, true)?;
        let adv = backward_weighted(&CrossEntropy::default().of_logits(&logits, &batch.labels)?, weight)?;
        Ok(StepLoss::new(clean.value).with_term("adversarial", adv.value))
    }

    fn before_update(&mut self, cx: &mut StepContext) -> Result<()> {
        // 4. Restore the embeddings before the optimiser step.
        if let Some(b) = self.backup.take() {
            let w = whetstone_models::require_embedding_input(cx.model, "FGM")?.word_embeddings().shallow_clone();
            tch::no_grad(|| w.shallow_clone().f_copy_(&b)).map_err(TrainError::from)?;
            let err = (&w - &b).abs().max().double_value(&[]);
            let mut e = self.restore_error.lock().unwrap();
            *e = e.max(err);
        }
        self.steps += 1;
        Ok(())
    }

    fn state(&self) -> Result<StrategyState> {
        Ok(StrategyState::default().with_value("steps", self.steps))
    }

    fn load_state(&mut self, s: &StrategyState) -> Result<()> {
        self.steps = s.value("steps")?;
        Ok(())
    }
}

fn fgm(eps: f64) -> (Fgm, std::sync::Arc<Mutex<f64>>) {
    let e = std::sync::Arc::new(Mutex::new(0.0));
    (Fgm { epsilon: eps, backup: None, restore_error: e.clone(), steps: 0 }, e)
}

#[test]
fn fgm_written_outside_the_loop_perturbs_restores_and_trains() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = d.tok.vocab_size() as i64;
    let source = BucketedSource::new(&d.train, 16, 2);
    let (fgm_run, err) = fgm(1.0);
    let (with_fgm, out) = fit(&transformer(), vocab, fgm_run, &source, &d.valid, config(), &tmp.path().join("fgm"), 0, false, 1);
    assert_eq!(out.unwrap(), Outcome::Finished);
    assert_eq!(*err.lock().unwrap(), 0.0, "the embeddings must be restored exactly before every step");
    let (plain, _) = fit(&transformer(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &tmp.path().join("ce"), 0, false, 1);
    let emb = |v: &[(String, Tensor)]| v.iter().find(|(n, _)| n.contains("word_embeddings")).unwrap().1.shallow_clone();
    assert!(!emb(&with_fgm).equal(&emb(&plain)), "the adversarial gradients must change the training");
    // The restore happens before the update: were it after, every step would be undone and
    // the embeddings would end where they started.
    tch::manual_seed(1);
    let init_vs = VarStore::new(Device::Cpu);
    let _init = transformer().build(&init_vs.root(), vocab, 2).unwrap();
    assert!(!emb(&with_fgm).equal(&emb(&sorted(&init_vs))), "the embeddings never trained");
    // The adversarial loss is logged as a term of the step.
    let log = whetstone_eval::read_jsonl(tmp.path().join("fgm/metrics.jsonl")).unwrap();
    assert!(log.iter().any(|r| r["split"] == "train" && r["adversarial"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0)), "no adversarial term in the log");
    // Killed and resumed, FGM training is bit-identical to the uninterrupted run.
    let dir = tmp.path().join("killed");
    let (_, out) = fit(&transformer(), vocab, fgm(1.0).0, &source, &d.valid, config(), &dir, 5, false, 1);
    assert_eq!(out.unwrap(), Outcome::Interrupted);
    let (resumed, out) = fit(&transformer(), vocab, fgm(1.0).0, &source, &d.valid, config(), &dir, 0, true, 77);
    assert_eq!(out.unwrap(), Outcome::Finished);
    assert_same(&with_fgm, &resumed);
}

#[test]
fn a_strategy_needing_a_missing_capability_gets_a_clear_error() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let source = BucketedSource::new(&d.train, 16, 2);
    // TextCNN has input embeddings; a strategy asking for layer outputs gets an error naming both.
    struct NeedsLayers;
    impl Objective for NeedsLayers {
        fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
            whetstone_models::require_layer_outputs(cx.model, "hidden-state distillation")?;
            CrossEntropy::default().loss(cx, batch)
        }
    }
    let (_, out) = fit(&textcnn(), d.tok.vocab_size() as i64, NeedsLayers, &source, &d.valid, config(), tmp.path(), 0, false, 1);
    let e = out.unwrap_err().to_string();
    assert!(e.contains("hidden-state distillation") && e.contains("textcnn"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Strategy state: own parameters and counters, checkpointed and restored bit-identically.

/// Cross-entropy plus an auxiliary head of its own on the mean input embedding, trained by the
/// strategy itself (plain SGD in `after_update`), with a counter and a running loss average.
struct AuxHead {
    vs: VarStore,
    head: nn::Linear,
    steps: u64,
    ema: f64,
}

impl AuxHead {
    fn new(dim: i64, seed: i64) -> Self {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let head = nn::linear(vs.root() / "aux", dim, 2, Default::default());
        Self { vs, head, steps: 0, ema: 0.0 }
    }
}

impl Objective for AuxHead {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
        let main = CrossEntropy::default().loss(cx, batch)?;
        let emb = whetstone_models::require_embedding_input(cx.model, "the auxiliary head")?;
        let pooled = emb.embed(&batch.input_ids, true)?.mean_dim(1, false, Kind::Float);
        let aux = self.head.forward(&pooled).cross_entropy_for_logits(&batch.labels);
        self.ema = 0.9 * self.ema + 0.1 * aux.double_value(&[]);
        Ok(main + aux * 0.5)
    }

    fn after_update(&mut self, _cx: &mut StepContext) -> Result<()> {
        tch::no_grad(|| {
            for mut p in self.vs.trainable_variables() {
                let g = p.grad();
                if g.defined() {
                    let _ = p.f_sub_(&(&g * 0.1))?;
                    let _ = p.grad().f_zero_()?;
                }
            }
            Ok::<_, tch::TchError>(())
        })?;
        self.steps += 1;
        Ok(())
    }

    fn state(&self) -> Result<StrategyState> {
        let vars: Vec<(String, Tensor)> = sorted(&self.vs);
        Ok(StrategyState::default().with_tensors("aux", vars.iter().map(|(n, t)| (n, t))).with_value("steps", self.steps).with_value("ema", self.ema))
    }

    fn load_state(&mut self, s: &StrategyState) -> Result<()> {
        for (n, t) in sorted(&self.vs) {
            s.copy_into(&format!("aux.{n}"), &t)?;
        }
        self.steps = s.value("steps")?;
        self.ema = s.value("ema")?;
        Ok(())
    }
}

#[test]
fn strategy_parameters_and_counters_survive_kill_and_resume_bit_identically() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = d.tok.vocab_size() as i64;
    let source = BucketedSource::new(&d.train, 16, 2);
    let run = |stop: u64, resume: bool, aux_seed: i64, dir: &Path| {
        let aux = AuxHead::new(32, aux_seed);
        let aux_vars = aux.vs.variables();
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let m = transformer().build(&vs.root(), vocab, 2).unwrap();
        let optim = OptimConfig { weight_decay: 0.0, ..Default::default() }.build(&vs).unwrap();
        let mut t = Trainer::new(m.as_ref(), &vs, optim, 3e-3, dir).objective(aux).config(config()).seed(5).observer(Silent).stop_after(stop);
        let out = t.fit(&source, &d.valid, resume).unwrap();
        let o = t.into_objective();
        let st = o.state().unwrap();
        let mut aux: Vec<(String, Tensor)> = aux_vars.into_iter().collect();
        aux.sort_by(|a, b| a.0.cmp(&b.0));
        (sorted(&vs), aux, st.value::<u64>("steps").unwrap(), st.value::<f64>("ema").unwrap(), out.outcome)
    };
    let (full_m, full_aux, full_steps, full_ema, out) = run(0, false, 3, &tmp.path().join("full"));
    assert_eq!(out, Outcome::Finished);
    assert_eq!(full_steps, 12);
    let dir = tmp.path().join("killed");
    let (_, _, steps, _, out) = run(7, false, 3, &dir);
    assert_eq!((out, steps), (Outcome::Interrupted, 7));
    let ck = Checkpoint::load(&dir.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.progress.step, 6);
    assert!(ck.strategy.tensor("aux.aux.weight").is_ok(), "the head's weights are in the checkpoint");
    // Resume with a differently initialised head: the checkpoint restores it.
    let (m, aux, steps, ema, out) = run(0, true, 999, &dir);
    assert_eq!(out, Outcome::Finished);
    assert_same(&full_m, &m);
    assert_same(&full_aux, &aux);
    assert_eq!((steps, ema.to_bits()), (full_steps, full_ema.to_bits()));
}

// ---------------------------------------------------------------------------------------
// Batch sources beyond the bucketed one.

/// Two tasks over one model: stream 0 is the sentiment split, stream 1 a second split whose
/// batches carry a named target (`"long"`: the text has ≥ 8 tokens). The plan interleaves the
/// two streams in a seeded order.
struct TwoTasks<'a> {
    a: &'a Encoded,
    b: &'a Encoded,
    batch: usize,
}

impl BatchSource for TwoTasks<'_> {
    fn len(&self) -> usize {
        self.a.len() + self.b.len()
    }
    fn epoch_plan(&self, seed: u64, epoch: u64) -> whetstone_data::Result<Vec<PlanEntry>> {
        let mut plan = Vec::new();
        for (stream, enc) in [(0usize, self.a), (1, self.b)] {
            let sub = BucketedSource::new(enc, self.batch, 1).epoch_plan(seed ^ stream as u64, epoch)?;
            plan.extend(sub.into_iter().map(|e| PlanEntry { stream, ..e }));
        }
        // Seeded interleaving (a pure function of seed and epoch).
        plan.sort_by_key(|e| entry_key(seed, epoch, e.stream * 10_000 + e.indices[0]));
        for (i, e) in plan.iter_mut().enumerate() {
            e.key = entry_key(seed, epoch, i);
        }
        Ok(plan)
    }
    fn batch(&self, entry: &PlanEntry, device: Device) -> whetstone_data::Result<Batch> {
        let enc = if entry.stream == 0 { self.a } else { self.b };
        let mut b = make_batch(enc, &entry.indices, device)?;
        b.stream = entry.stream;
        if entry.stream == 1 {
            let long: Vec<i64> = entry.indices.iter().map(|&i| (enc.ids[i].len() >= 8) as i64).collect();
            b = b.with_target("long", Tensor::from_slice(&long).to_device(device));
        }
        Ok(b)
    }
    fn fingerprint(&self) -> u64 {
        whetstone_data::encoded_fingerprint(self.a) ^ whetstone_data::encoded_fingerprint(self.b).rotate_left(1)
    }
}

/// Sentiment on stream 0, the `long` target on stream 1; counts what it saw.
struct MultiTask {
    seen: [std::sync::Arc<AtomicUsize>; 2],
}

impl Objective for MultiTask {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
        self.seen[batch.stream].fetch_add(batch.indices.len(), Ordering::SeqCst);
        let logits = cx.model.forward_t(&batch.input_ids, &batch.attention_mask, true)?;
        let target = match batch.stream {
            0 => &batch.labels,
            _ => batch.target("long").ok_or_else(|| TrainError::Config("stream 1 lacks its target".into()))?,
        };
        CrossEntropy::default().of_logits(&logits, target)
    }
}

#[test]
fn a_multi_stream_source_feeds_each_task_its_batches_and_targets() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let b = whetstone_data::encode(&d.tok, &corpus(40, 500), 24).unwrap();
    let source = TwoTasks { a: &d.train, b: &b, batch: 8 };
    let plan = source.epoch_plan(5, 0).unwrap();
    assert_eq!(plan, source.epoch_plan(5, 0).unwrap());
    assert!(plan.iter().take(8).any(|e| e.stream == 0) && plan.iter().take(8).any(|e| e.stream == 1), "streams are interleaved");
    let seen = [std::sync::Arc::new(AtomicUsize::new(0)), std::sync::Arc::new(AtomicUsize::new(0))];
    let cfg = TrainConfig { epochs: 1, eval_every: 0, checkpoint_every: 0, ..config() };
    let (_, out) = fit(&textcnn(), d.tok.vocab_size() as i64, MultiTask { seen: seen.clone() }, &source, &d.valid, cfg, tmp.path(), 0, false, 1);
    assert_eq!(out.unwrap(), Outcome::Finished);
    // Each example of each stream exactly once in the epoch (and nothing else).
    assert_eq!((seen[0].load(Ordering::SeqCst), seen[1].load(Ordering::SeqCst)), (d.train.len(), b.len()));
}

/// Raw text, transformed per batch with a seeded word dropout keyed by the plan entry, then
/// tokenised: fresh each epoch, reproducible, resumable.
struct DropWords<'a> {
    texts: &'a Split,
    tok: &'a TextTokenizer,
    inner: BucketedSource<'a>,
    calls: AtomicUsize,
}

impl DropWords<'_> {
    fn transform(text: &str, key: u64, row: usize) -> String {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut h = Fingerprint::new();
        h.write_u64(key);
        h.write_u64(row as u64);
        let drop = (h.finish() % words.len() as u64) as usize;
        words.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, w)| *w).collect::<Vec<_>>().join(" ")
    }
}

impl BatchSource for DropWords<'_> {
    fn len(&self) -> usize {
        self.texts.texts.len()
    }
    fn epoch_plan(&self, seed: u64, epoch: u64) -> whetstone_data::Result<Vec<PlanEntry>> {
        self.inner.epoch_plan(seed, epoch)
    }
    fn batch(&self, entry: &PlanEntry, device: Device) -> whetstone_data::Result<Batch> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let texts: Vec<String> = entry.indices.iter().enumerate().map(|(row, &i)| Self::transform(&self.texts.texts[i], entry.key, row)).collect();
        let labels: Vec<i64> = entry.indices.iter().map(|&i| self.texts.labels[i]).collect();
        let enc = whetstone_data::encode(self.tok, &Split { texts, labels }, 24)?;
        let mut b = make_batch(&enc, &(0..enc.len()).collect::<Vec<_>>(), device)?;
        b.indices = entry.indices.clone();
        Ok(b)
    }
    fn fingerprint(&self) -> u64 {
        let mut h = Fingerprint::new();
        self.texts.texts.iter().for_each(|t| h.write_str(t));
        h.finish()
    }
}

#[test]
fn a_text_level_source_augments_afresh_each_epoch_and_resumes_exactly() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = d.tok.vocab_size() as i64;
    let source = DropWords { texts: &d.train_split, tok: &d.tok, inner: BucketedSource::new(&d.train, 16, 2), calls: AtomicUsize::new(0) };
    let (p0, p1) = (source.epoch_plan(5, 0).unwrap(), source.epoch_plan(5, 1).unwrap());
    let first = |p: &[PlanEntry]| source.batch(&p[0], Device::Cpu).unwrap().input_ids;
    assert!(first(&p0).equal(&first(&p0)), "the same entry gives the same augmentation");
    let same_examples = p1.iter().find(|e| e.indices == p0[0].indices);
    if let Some(e) = same_examples {
        assert_ne!(e.key, p0[0].key, "another epoch draws other augmentations");
    }
    let (full, out) = fit(&transformer(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &tmp.path().join("full"), 0, false, 1);
    assert_eq!(out.unwrap(), Outcome::Finished);
    assert!(source.calls.load(Ordering::SeqCst) >= 12);
    let dir = tmp.path().join("killed");
    fit(&transformer(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &dir, 5, false, 1).1.unwrap();
    let (resumed, out) = fit(&transformer(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &dir, 0, true, 42);
    assert_eq!(out.unwrap(), Outcome::Finished);
    assert_same(&full, &resumed);
}

// ---------------------------------------------------------------------------------------
// Resume checks and finiteness.

#[test]
fn resume_with_another_batch_plan_or_other_data_is_an_error_not_a_hang() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = d.tok.vocab_size() as i64;
    let dir = tmp.path().join("run");
    let source = BucketedSource::new(&d.train, 16, 2);
    fit(&textcnn(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &dir, 5, false, 1).1.unwrap();
    // Batch size edited: the saved position (mid-epoch) means something else now.
    let bigger = TrainConfig { batch_size: 48, ..config() };
    let (_, out) = fit(&textcnn(), vocab, CrossEntropy::default(), &BucketedSource::new(&d.train, 48, 2), &d.valid, bigger, &dir, 0, true, 1);
    let e = out.unwrap_err().to_string();
    assert!(e.contains("batch plan changed"), "{e}");
    // Data changed (one label flipped).
    let mut other = d.train.clone();
    other.labels[3] = 1 - other.labels[3];
    let (_, out) = fit(&textcnn(), vocab, CrossEntropy::default(), &BucketedSource::new(&other, 16, 2), &d.valid, config(), &dir, 0, true, 1);
    let e = out.unwrap_err().to_string();
    assert!(e.contains("training data changed"), "{e}");
    // The unchanged run still resumes.
    let (_, out) = fit(&textcnn(), vocab, CrossEntropy::default(), &source, &d.valid, config(), &dir, 0, true, 1);
    assert_eq!(out.unwrap(), Outcome::Finished);
}

/// Cross-entropy whose update hook poisons a parameter with NaN at step `at`.
struct PoisonParams {
    at: u64,
}

impl Objective for PoisonParams {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
        CrossEntropy::default().loss(cx, batch)
    }
    fn after_update(&mut self, cx: &mut StepContext) -> Result<()> {
        if cx.step + 1 == self.at {
            let (_, w) = sorted(cx.vs).into_iter().find(|(n, _)| n.starts_with("classifier")).unwrap();
            let _ = tch::no_grad(|| w.shallow_clone().f_fill_(f64::NAN)).map_err(TrainError::from)?;
        }
        Ok(())
    }
}

#[test]
fn non_finite_weights_are_never_checkpointed() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    // Checkpoints at steps 2, 4; the weights turn NaN in step 5; the save at step 6 must refuse.
    // (The loss of step 6 is NaN already, which stops the run first; so poison at a save step.)
    let source = BucketedSource::new(&d.train, 16, 2);
    let (_, out) = fit(&textcnn(), d.tok.vocab_size() as i64, PoisonParams { at: 4 }, &source, &d.valid, config(), tmp.path(), 0, false, 1);
    let e = out.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TrainError::NonFiniteState { step: 4, .. }), "{msg}");
    assert!(msg.contains("classifier") && msg.contains(CHECKPOINT_FILE), "{msg}");
    let ck = Checkpoint::load(&tmp.path().join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.progress.step, 2, "the last good checkpoint stays");
    for (name, t) in &ck.model {
        assert!(bool::try_from(t.isfinite().all()).unwrap(), "{name} is not finite in the kept checkpoint");
    }
}

#[test]
fn a_run_that_keeps_no_checkpoint_removes_it_when_finished_but_not_when_interrupted() {
    let _g = serial();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let source = BucketedSource::new(&d.train, 16, 2);
    let run = |stop: u64, dir: &Path| {
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let m = textcnn().build(&vs.root(), d.tok.vocab_size() as i64, 2).unwrap();
        let optim = OptimConfig::default().build(&vs).unwrap();
        let mut t = Trainer::new(m.as_ref(), &vs, optim, 3e-3, dir).config(config()).observer(Silent).stop_after(stop).keep_checkpoint(false);
        t.fit(&source, &d.valid, false).unwrap().outcome
    };
    let done = tmp.path().join("done");
    assert_eq!(run(0, &done), Outcome::Finished);
    assert!(!done.join(CHECKPOINT_FILE).exists() && done.join("model.safetensors").is_file());
    let cut = tmp.path().join("cut");
    assert_eq!(run(3, &cut), Outcome::Interrupted);
    assert!(cut.join(CHECKPOINT_FILE).is_file(), "an interrupted run keeps what it can resume from");
}
