//! Multi-task runs: a recipe's `[[tasks]]` and `[multitask]` sections, the pipeline that
//! trains one shared encoder with a head per task through the one [`Trainer`], and
//! [`MultiTaskRun`], a finished run loaded back to serve one task's head.
//!
//! ```toml
//! name = "rt500-mtl"
//! [model]
//! kind = "transformer"
//! pretrained = "minilm-l6"     # or a fresh encoder: layers = 2, hidden = 128, …
//! [train]
//! epochs = 3
//! grad_accum = 3               # = the number of tasks, with round-robin sampling
//! [multitask]
//! sampling = "round_robin"     # proportional | temperature (with temperature = T) | round_robin
//! weighting = "pcgrad"         # fixed | uncertainty | gradnorm (alpha, weight_lr) | pcgrad
//! select = "rt"                # a task's name, or "mean"
//! [[tasks]]                    # the first task is the main one
//! name = "rt"
//! data = "rotten-tomatoes"
//! n = 500                      # a seeded subset of the training split
//! [[tasks]]
//! name = "spam"
//! data = "sms-spam"
//! metric = "macro_f1"
//! [[tasks]]
//! name = "ner"
//! data = "wnut16"
//! kind = "token"               # metric: entity_f1 (seqeval)
//! ```
//!
//! Every task's data is split with the recipe's `data.valid_fraction`, `data.test_fraction`
//! and seed; `n` subsamples only the training split, so the test split of a task is the same
//! whether it is trained alone or with others. The tokenizer is shared: the pretrained
//! checkpoint's, `tokenizer.path`, or a WordPiece trained on every task's training text.
//! Per-task test results go into `metrics.json` (`tasks`) and `report.md`; each sequence
//! task's head is exported as an ordinary run folder under `tasks/<name>/`.

use crate::experiment::{write_plot, RunOptions, RunResult};
use crate::folder::RunDir;
use crate::identity::{data_identity, labels_identity, split_fingerprint, DATA_IDENTITY, LABELS_IDENTITY, RECIPE_IDENTITY};
use crate::prologue::{prologue, Prologue};
use crate::reporter::Reporter;
use crate::{resolve_model, Recipe, LABELS_FILE, RECIPE_FILE, TOKENIZER_FILE};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use whetstone_data::conll::{encode_tagged, read_conll, split_sentences, TaggedSentence, TokenSplits};
use whetstone_data::{cache_dir, encode, load_splits_with, BatchSource, DataSource, Encoded, Format, Manifest, MultiTaskSource, Sampling, Splits, TableSpec, TaskData, TextTokenizer};
use whetstone_models::{load_varstore, parse_device, BertCheckpoint, HeadKind, ModelConfig, MultiHead, MultiTaskModel, TaskHead};
use whetstone_train::multitask::{score_task, MultiTaskObjective, Select, TaskEval, TaskScores, TaskSpec, Weighting};
use whetstone_train::{Outcome, Result, TrainError, Trainer, BEST_MODEL_FILE};

/// One `[[tasks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecipe {
    /// The task's name (letters, digits, `-`, `_`): its head is `heads.<name>`.
    pub name: String,
    /// A dataset of the manifest (`rotten-tomatoes`, `imdb`, `sms-spam`, `wnut16`) or a file:
    /// a CSV/TSV/JSONL table for a sequence task, a `token<TAB>tag` file for a token task.
    #[serde(default)]
    pub data: String,
    /// The file's format (tables only; inferred from the extension when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The text column of a table file (default `text`).
    #[serde(default = "default_text_col")]
    pub text_col: String,
    /// The label column of a table file (default `label`).
    #[serde(default = "default_label_col")]
    pub label_col: String,
    /// `sequence` (default) or `token`.
    #[serde(default = "default_kind")]
    pub kind: HeadKind,
    /// Validation metric: `accuracy` (default), `macro_f1` or `mcc` for a sequence task;
    /// `entity_f1` (default) for a token task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Weight of the task's loss under `weighting = "fixed"` (default 1).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Train on a seeded random subset of this many training examples (default: all).
    #[serde(default, alias = "N", skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
}

fn default_text_col() -> String {
    "text".into()
}
fn default_label_col() -> String {
    "label".into()
}
fn default_kind() -> HeadKind {
    HeadKind::Sequence
}
fn default_weight() -> f64 {
    1.0
}

impl TaskRecipe {
    /// The task's validation metric (its own, or the default for its kind).
    pub fn metric(&self) -> String {
        self.metric.clone().unwrap_or_else(|| match self.kind {
            HeadKind::Sequence => "accuracy".into(),
            HeadKind::Token => "entity_f1".into(),
        })
    }
}

/// The `[multitask]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiTaskRecipe {
    /// Task sampling: `proportional` (default), `temperature` or `round_robin`.
    pub sampling: String,
    /// T of temperature sampling, p ∝ n^(1/T) (default 2).
    pub temperature: f64,
    /// Loss weighting: `fixed` (default), `uncertainty`, `gradnorm` or `pcgrad`.
    pub weighting: String,
    /// GradNorm's asymmetry α (default 1.5, the paper's NYUv2 value).
    pub alpha: f64,
    /// Learning rate of the uncertainty log-variances or of GradNorm's weights (default 0.025).
    pub weight_lr: f64,
    /// What selects the best checkpoint: a task's name, or `mean` (default: the first task).
    pub select: Option<String>,
}

impl Default for MultiTaskRecipe {
    fn default() -> Self {
        Self { sampling: "proportional".into(), temperature: 2.0, weighting: "fixed".into(), alpha: 1.5, weight_lr: 0.025, select: None }
    }
}

impl MultiTaskRecipe {
    fn weighting(&self) -> Result<Weighting> {
        Weighting::parse(&self.weighting, self.alpha, self.weight_lr)
    }

    fn sampling(&self) -> Result<Sampling> {
        Ok(Sampling::parse(&self.sampling, self.temperature)?)
    }

    fn select(&self, tasks: &[TaskRecipe]) -> Result<Select> {
        match self.select.as_deref() {
            None => Ok(Select::Task(0)),
            Some("mean") => Ok(Select::Mean),
            Some(name) => tasks.iter().position(|t| t.name == name).map(Select::Task).ok_or_else(|| {
                TrainError::Config(format!("multitask.select = `{name}` names no task (tasks: {}; or \"mean\")", tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")))
            }),
        }
    }
}

/// The checks of `[[tasks]]` and `[multitask]` (part of [`Recipe::validate`]).
pub(crate) fn validate(recipe: &Recipe) -> Result<()> {
    let bad = |m: String| Err(TrainError::Config(m));
    if recipe.tasks.is_empty() {
        if recipe.multitask.is_some() {
            return bad("[multitask] needs [[tasks]] entries".into());
        }
        return Ok(());
    }
    let heads: Vec<TaskHead> = recipe.tasks.iter().map(|t| TaskHead::new(&t.name, t.kind, 2)).collect();
    whetstone_models::check_task_heads(&heads)?;
    for (i, t) in recipe.tasks.iter().enumerate() {
        if t.data.trim().is_empty() {
            return bad(format!("tasks[{i}] (`{}`) has no data: set data = a manifest dataset (rotten-tomatoes, sms-spam, wnut16, …) or a file", t.name));
        }
        if t.n == Some(0) {
            return bad(format!("tasks[{i}].n must be >= 1"));
        }
        if !(t.weight >= 0.0 && t.weight.is_finite()) {
            return bad(format!("tasks[{i}].weight must be >= 0, got {}", t.weight));
        }
    }
    let mt = recipe.multitask.clone().unwrap_or_default();
    mt.weighting()?;
    mt.sampling()?;
    mt.select(&recipe.tasks)?;
    if recipe.regularize.is_some() || recipe.adversarial.is_some() || recipe.augment.is_some() {
        return bad("[[tasks]] cannot yet be combined with [regularize], [adversarial] or [augment]".into());
    }
    match &recipe.model {
        ModelConfig::Transformer(_) => Ok(()),
        other => bad(format!("[[tasks]] needs model.kind = \"transformer\" (one shared encoder), got `{}`", other.kind())),
    }
}

/// A task's data before tokenisation.
enum RawTask {
    Sequence(Splits),
    Token(TokenSplits),
}

/// A seeded random subset of `n` of `len` indices (all of them, in order, when `n >= len`).
fn subset(len: usize, n: Option<usize>, seed: u64, task: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if let Some(n) = n.filter(|&n| n < len) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(task as u64 + 1);
        idx.shuffle(&mut rng);
        idx.truncate(n);
        idx.sort_unstable();
    }
    idx
}

fn load_task(recipe: &Recipe, i: usize) -> Result<RawTask> {
    let t = &recipe.tasks[i];
    let d = &recipe.data;
    let manifest = Manifest::builtin()?;
    let named = manifest.datasets.iter().find(|e| e.name == t.data);
    let err = |m: String| TrainError::Config(format!("tasks[{i}] (`{}`): {m}", t.name));
    let raw = match t.kind {
        HeadKind::Token => {
            let file: PathBuf = match named {
                Some(e) if e.is_token_data() => whetstone_data::conll::obtain_token_file(e, &cache_dir())?,
                Some(_) => return Err(err(format!("`{}` is not token-classification data (kind = \"token\" needs e.g. wnut16)", t.data))),
                None => PathBuf::from(&t.data),
            };
            let sentences = read_conll(&file)?;
            let mut s = split_sentences(sentences, d.valid_fraction, d.test_fraction, recipe.seed)?;
            let keep = subset(s.train.len(), t.n, recipe.seed, i);
            let train: Vec<TaggedSentence> = keep.iter().map(|&j| s.train[j].clone()).collect();
            s.train = train;
            RawTask::Token(s)
        }
        HeadKind::Sequence => {
            let src = match named {
                Some(e) if e.is_token_data() => return Err(err(format!("`{}` is token-classification data: set kind = \"token\"", t.data))),
                Some(_) => DataSource::Named { name: t.data.clone() },
                None => DataSource::Files { train: TableSpec { format: t.format, ..TableSpec::new(&t.data, &t.text_col, &t.label_col) }, valid: None, test: None },
            };
            let mut s = load_splits_with(&src, &d.load_options(recipe.seed))?;
            let keep = subset(s.train.len(), t.n, recipe.seed, i);
            s.train = whetstone_data::Split { texts: keep.iter().map(|&j| s.train.texts[j].clone()).collect(), labels: keep.iter().map(|&j| s.train.labels[j]).collect() };
            RawTask::Sequence(s)
        }
    };
    let n_train = match &raw {
        RawTask::Sequence(s) => s.train.len(),
        RawTask::Token(s) => s.train.len(),
    };
    if n_train == 0 {
        return Err(err("its training split is empty".into()));
    }
    Ok(raw)
}

impl RawTask {
    fn labels(&self) -> Vec<String> {
        match self {
            RawTask::Sequence(s) => s.labels.names.clone(),
            RawTask::Token(s) => s.tags.names.clone(),
        }
    }

    /// Class names to show: the manifest's names (`negative`, `positive`) where it has them.
    fn display(&self, t: &TaskRecipe) -> Vec<String> {
        match self {
            RawTask::Sequence(s) => {
                let names = Manifest::builtin().ok().and_then(|m| m.datasets.iter().find(|e| e.name == t.data).and_then(|e| e.label_names.clone()));
                s.labels.display_names(names.as_ref())
            }
            RawTask::Token(s) => s.tags.names.clone(),
        }
    }

    fn train_texts(&self) -> Vec<String> {
        match self {
            RawTask::Sequence(s) => s.train.texts.clone(),
            RawTask::Token(s) => s.train.iter().map(|x| x.words.join(" ")).collect(),
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            RawTask::Sequence(s) => format!("{}/{}/{}", split_fingerprint(&s.train), split_fingerprint(&s.valid), split_fingerprint(&s.test)),
            RawTask::Token(s) => {
                let mut h = whetstone_data::Fingerprint::new();
                for part in [&s.train, &s.valid, &s.test] {
                    h.write_u64(part.len() as u64);
                    for x in part {
                        x.words.iter().chain(&x.tags).for_each(|w| h.write_str(w));
                    }
                }
                format!("{} sentences, {:016x}", s.train.len() + s.valid.len() + s.test.len(), h.finish())
            }
        }
    }

    fn sizes(&self) -> (usize, usize, usize) {
        match self {
            RawTask::Sequence(s) => (s.train.len(), s.valid.len(), s.test.len()),
            RawTask::Token(s) => (s.train.len(), s.valid.len(), s.test.len()),
        }
    }

    /// Train data, validation and test sets, tokenised.
    fn encode(&self, tok: &TextTokenizer, max_len: usize, display: Vec<String>) -> Result<(TaskData, TaskEval, TaskEval)> {
        Ok(match self {
            RawTask::Sequence(s) => {
                let labels = display;
                let ev = |split| -> Result<TaskEval> { Ok(TaskEval::Sequence { data: encode(tok, split, max_len)?, labels: labels.clone() }) };
                (TaskData::Sequence(encode(tok, &s.train, max_len)?), ev(&s.valid)?, ev(&s.test)?)
            }
            RawTask::Token(s) => {
                let ev = |part: &[TaggedSentence]| -> Result<TaskEval> { Ok(TaskEval::Token { data: encode_tagged(tok, part, &s.tags, max_len)?, tags: s.tags.names.clone() }) };
                (TaskData::Token(encode_tagged(tok, &s.train, &s.tags, max_len)?), ev(&s.valid)?, ev(&s.test)?)
            }
        })
    }
}

fn eval_len(e: &TaskEval) -> usize {
    match e {
        TaskEval::Sequence { data, .. } => data.len(),
        TaskEval::Token { data, .. } => data.len(),
    }
}

/// The trainer's `valid` split: the main task's validation ids (the objective scores every
/// task itself; the trainer only needs to know whether there is anything to validate).
fn main_valid(e: &TaskEval) -> Encoded {
    match e {
        TaskEval::Sequence { data, .. } => data.clone(),
        TaskEval::Token { data, .. } => data.ids_only(),
    }
}

/// Build the shared-encoder model for `recipe`'s tasks.
fn build_model(recipe: &Recipe, vs: &VarStore, vocab: i64, heads: &[TaskHead]) -> Result<(MultiTaskModel, usize)> {
    let ModelConfig::Transformer(c) = resolve_model(&recipe.model)? else {
        return Err(TrainError::Config("[[tasks]] needs model.kind = \"transformer\"".into()));
    };
    let model = match &c.pretrained {
        Some(dir) => {
            let ckpt = BertCheckpoint::open(dir)?;
            if ckpt.vocab_size() != vocab {
                return Err(TrainError::Config(format!("the tokenizer has {vocab} ids but the checkpoint's vocabulary has {}: use its tokenizer", ckpt.vocab_size())));
            }
            MultiTaskModel::from_pretrained(&vs.root(), &ckpt, c.pooling, heads)?
        }
        None => MultiTaskModel::new(&vs.root(), vocab, &c.encoder, c.pooling, heads)?,
    };
    let max_len = model.encoder().config().max_len.min(recipe.data.max_len);
    Ok((model, max_len))
}

fn tokenizer_for(recipe: &Recipe, raw: &[RawTask]) -> Result<(TextTokenizer, &'static str)> {
    let pretrained = match resolve_model(&recipe.model)? {
        ModelConfig::Transformer(c) => c.pretrained,
        _ => None,
    };
    Ok(match (&recipe.tokenizer.path, pretrained) {
        (Some(p), _) => (TextTokenizer::from_file(p)?, "loaded"),
        (None, Some(dir)) => (TextTokenizer::from_file(&BertCheckpoint::open(&dir)?.tokenizer_path())?, "the pretrained checkpoint's"),
        (None, None) => {
            let texts: Vec<String> = raw.iter().flat_map(RawTask::train_texts).collect();
            (TextTokenizer::train_wordpiece(&texts, recipe.tokenizer.vocab_size, recipe.tokenizer.min_frequency, recipe.tokenizer.lowercase)?, "WordPiece trained on every task's train split")
        }
    })
}

/// Train the `[[tasks]]` of `recipe` into `opts.folder` (called by [`crate::train_recipe`]
/// for a recipe with tasks): per-task validation every evaluation, per-task test scores of
/// the best checkpoint in `metrics.json` and `report.md`, and each sequence head exported as
/// a single-task run folder under `tasks/<name>/`. The returned report is the main task's
/// (absent when the main task is a token task).
pub fn train_multitask(recipe: &Recipe, opts: &RunOptions) -> Result<RunResult> {
    let Prologue { started, say, recipe_id, resumed, device, rendezvous } = prologue(recipe, opts)?;
    crate::prologue::single_process(&rendezvous, "multi-task training ([[tasks]])")?;
    let mt = recipe.multitask.clone().unwrap_or_default();
    let raw: Vec<RawTask> = (0..recipe.tasks.len()).map(|i| load_task(recipe, i)).collect::<Result<_>>()?;
    let data_id = data_identity(&recipe.tasks.iter().zip(&raw).map(|(t, r)| (t.name.as_str(), r.fingerprint())).collect::<Vec<_>>());
    let labels_id = labels_identity(&recipe.tasks.iter().zip(&raw).map(|(t, r)| format!("{}: {}", t.name, r.labels().join(" "))).collect::<Vec<_>>());
    if let Some(r) = &resumed {
        r.check(DATA_IDENTITY, &data_id)?;
        r.check(LABELS_IDENTITY, &labels_id)?;
    }
    for (t, r) in recipe.tasks.iter().zip(&raw) {
        let (a, b, c) = r.sizes();
        say(format!("task {} ({:?}, {}): train {a} / valid {b} / test {c}, {} classes", t.name, t.kind, t.data, r.labels().len()));
    }
    let (tokenizer, tok_source) = match &resumed {
        Some(r) => (TextTokenizer::from_file(&r.run.file(TOKENIZER_FILE))?, "the run's"),
        None => tokenizer_for(recipe, &raw)?,
    };
    let heads: Vec<TaskHead> = recipe.tasks.iter().zip(&raw).map(|(t, r)| TaskHead::new(&t.name, t.kind, r.labels().len())).collect();
    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(device);
    let (model, max_len) = build_model(recipe, &vs, tokenizer.vocab_size() as i64, &heads)?;
    let mut train_data = Vec::new();
    let mut specs = Vec::new();
    let mut tests = Vec::new();
    for (t, r) in recipe.tasks.iter().zip(&raw) {
        let (train, valid, test) = r.encode(&tokenizer, max_len, r.display(t))?;
        train_data.push(train);
        specs.push(TaskSpec { name: t.name.clone(), kind: t.kind, weight: t.weight, metric: t.metric(), valid });
        tests.push(test);
    }
    say(format!("tokenizer: vocabulary {} ({tok_source}); model: shared transformer with {} heads, {} parameters", tokenizer.vocab_size(), heads.len(), whetstone_eval::format_count(whetstone_models::count_parameters(&vs))));
    let source = MultiTaskSource::new(train_data, recipe.train.batch_size, recipe.train.bucket_factor, mt.sampling()?)?;
    let valid = main_valid(&specs[0].valid);
    let objective = MultiTaskObjective::new(specs, mt.weighting()?, mt.select(&recipe.tasks)?)?;
    let optim = recipe.optim.build(&vs)?;

    let run = match resumed {
        Some(r) => r.run,
        None => RunDir::open(&opts.folder)?,
    };
    say(format!("run folder: {}", run.path().display()));
    let dir = run.path().to_path_buf();
    let result = (|| -> Result<RunResult> {
        if run.is_fresh() {
            tokenizer.save(&run.file(TOKENIZER_FILE))?;
            run.write_toml(RECIPE_FILE, recipe)?;
            let tasks: Vec<_> = recipe.tasks.iter().zip(&raw).map(|(t, r)| json!({"name": t.name, "kind": t.kind, "labels": r.labels(), "display": r.display(t)})).collect();
            run.write_json(LABELS_FILE, &json!({"labels": raw[0].labels(), "display": raw[0].display(&recipe.tasks[0]), "tasks": tasks}))?;
        }
        let mut trainer = Trainer::new(&model, &vs, optim, recipe.optim.lr, dir.clone())
            .objective(objective)
            .schedule(recipe.schedule.clone())
            .config(recipe.train.clone())
            .seed(recipe.seed)
            .device(device)
            .precision(recipe.precision)
            .identity(RECIPE_IDENTITY, recipe_id)
            .identity(DATA_IDENTITY, data_id)
            .identity(LABELS_IDENTITY, labels_id)
            .observer(Reporter::quiet(opts.quiet))
            .stop_after(opts.stop_after)
            .keep_checkpoint(true);
        let fit = trainer.fit(&source, &valid, !run.is_fresh())?;
        drop(trainer);
        if fit.outcome == Outcome::Interrupted {
            return Ok(RunResult { dir: dir.clone(), fit, test: None, valid: None, efficiency: None, wall_s: started.elapsed().as_secs_f64(), rank: 0 });
        }
        load_varstore(&mut vs, &run.file(BEST_MODEL_FILE))?;
        let mut per_task = serde_json::Map::new();
        let mut rows = Vec::new();
        let mut main_report = None;
        for (i, (t, test)) in recipe.tasks.iter().zip(&tests).enumerate() {
            if eval_len(test) == 0 {
                continue;
            }
            let (scores, loss) = {
                let _amp = recipe.precision.region(device)?;
                score_task(&model, i, test, recipe.train.eval_batch_size, device)?
            };
            let metric = t.metric();
            let value = scores.metric(&metric).unwrap_or(f64::NAN);
            rows.push(format!("| {} | {:?} | {} | {} | {value:.4} | {} |", t.name, t.kind, t.data, metric, scores.summary()));
            say(format!("test {}: {}", t.name, scores.summary()));
            per_task.insert(t.name.clone(), json!({"kind": t.kind, "data": t.data, "metric": metric, "value": value, "loss": loss, "train_examples": raw[i].sizes().0, "scores": scores}));
            if let (0, TaskScores::Sequence(r)) = (i, &scores) {
                main_report = Some(r.clone());
            }
        }
        for (i, t) in recipe.tasks.iter().enumerate() {
            if t.kind == HeadKind::Sequence {
                export_head(recipe, &run, &model, i, &raw[i].labels(), &raw[i].display(t))?;
            }
        }
        let wall_s = started.elapsed().as_secs_f64();
        let summary = json!({
            "device": whetstone_models::device_name(device),
            "precision": recipe.precision.as_str(),
            "model": "multi-task transformer",
            "sampling": mt.sampling,
            "weighting": mt.weighting,
            "select": mt.select.clone().unwrap_or_else(|| recipe.tasks[0].name.clone()),
            "steps": fit.progress.step,
            "epochs": fit.progress.epoch,
            "outcome": format!("{:?}", fit.outcome),
            "best_step": fit.progress.best_step,
            "best_valid": fit.progress.best_metric,
            "train_seconds": fit.progress.train_seconds,
            "train_seq_per_s": fit.seq_per_s,
            "wall_seconds": wall_s,
            "train_examples": source.len(),
        });
        run.write_json("metrics.json", &json!({"name": recipe.name, "tasks": per_task, "test": main_report, "train": summary}))?;
        let plot_ok = write_plot(&dir, &recipe.name, "score").is_ok();
        let recipe_toml = std::fs::read_to_string(run.file(RECIPE_FILE)).unwrap_or_default();
        let report = format!(
            "# {}\n\nMulti-task run: {} tasks, sampling `{}`, weighting `{}`; best step {} of {} (selected on {}).\n\n## Test results per task\n\n| task | kind | data | metric | value | details |\n|---|---|---|---|---|---|\n{}\n\n{}## Recipe\n\n```toml\n{}```\n",
            recipe.name,
            recipe.tasks.len(),
            mt.sampling,
            mt.weighting,
            fit.progress.best_step,
            fit.progress.step,
            mt.select.clone().unwrap_or_else(|| recipe.tasks[0].name.clone()),
            rows.join("\n"),
            if plot_ok { "![training curves](curves.png)\n\n" } else { "" },
            recipe_toml
        );
        run.write("report.md", report.as_bytes())?;
        Ok(RunResult { dir: dir.clone(), fit, test: main_report, valid: None, efficiency: None, wall_s, rank: 0 })
    })();
    run.end(result)
}

/// Task `task`'s head as an ordinary single-task run folder `tasks/<name>/`: the recipe with
/// the task's data and no `[[tasks]]`, the shared tokenizer, its labels, and the encoder with
/// the head under `classifier.*` as `model.safetensors` (`whetstone predict --run` serves it).
fn export_head(recipe: &Recipe, run: &RunDir, model: &MultiTaskModel, task: usize, labels: &[String], display: &[String]) -> Result<()> {
    let t = &recipe.tasks[task];
    let sub = format!("tasks/{}", t.name);
    let dir = run.file(&sub);
    std::fs::create_dir_all(&dir).map_err(crate::io(&dir))?;
    let mut single = recipe.clone();
    single.name = format!("{}-{}", recipe.name, t.name);
    single.tasks.clear();
    single.multitask = None;
    single.train.metric = if ["accuracy", "macro_f1", "mcc"].contains(&t.metric().as_str()) { t.metric() } else { "accuracy".into() };
    let named = Manifest::builtin()?.datasets.iter().any(|e| e.name == t.data);
    if named {
        single.data.dataset = t.data.clone();
        single.data.path = None;
    } else {
        single.data.path = Some(PathBuf::from(&t.data));
        single.data.format = t.format;
    }
    (single.data.text_col, single.data.label_col, single.data.valid_path, single.data.test_path) = (t.text_col.clone(), t.label_col.clone(), None, None);
    single.tokenizer.path = None;
    run.write_toml(&format!("{sub}/{RECIPE_FILE}"), &single)?;
    run.copy_in(&run.file(TOKENIZER_FILE), &format!("{sub}/{TOKENIZER_FILE}"))?;
    run.write_json(&format!("{sub}/{LABELS_FILE}"), &json!({"labels": labels, "display": display}))?;
    let mut tensors = model.encoder().named_parameters();
    tensors.extend(model.head_parameters(task)?);
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    whetstone_models::write_safetensors_atomic(&tensors, &dir.join(BEST_MODEL_FILE))?;
    Ok(())
}

/// A finished multi-task run loaded back: the shared model, its tokenizer and each task's labels.
pub struct MultiTaskRun {
    /// The run folder (named in prediction errors).
    dir: PathBuf,
    model: MultiTaskModel,
    _vs: VarStore,
    tokenizer: TextTokenizer,
    labels: Vec<Vec<String>>,
    max_len: usize,
    batch_size: usize,
    device: tch::Device,
}

impl MultiTaskRun {
    /// Load the best model of the multi-task run in `dir` onto `device` (`None`: the recipe's).
    /// Each task's classes are its display names (`labels.json`'s `display`) where it has them.
    pub fn open(dir: &Path, device: Option<&str>) -> Result<Self> {
        let recipe = crate::read_recipe(dir)?;
        if recipe.tasks.is_empty() {
            return Err(TrainError::Run { run: dir.to_path_buf(), msg: "not a multi-task run (its recipe has no [[tasks]]); predict without --task".into() });
        }
        let tokenizer = TextTokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
        let lp = dir.join(LABELS_FILE);
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&lp).map_err(crate::io(&lp))?).map_err(|e| TrainError::Run { run: dir.into(), msg: format!("{}: {e}", lp.display()) })?;
        let labels: Vec<Vec<String>> = v["tasks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        let names = |key: &str| -> Vec<String> { t[key].as_array().map(|l| l.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default() };
                        let (raw, shown) = (names("labels"), names("display"));
                        if shown.len() == raw.len() { shown } else { raw }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if labels.len() != recipe.tasks.len() {
            return Err(TrainError::Run { run: dir.into(), msg: format!("{} lists {} tasks, the recipe {}", lp.display(), labels.len(), recipe.tasks.len()) });
        }
        let heads: Vec<TaskHead> = recipe.tasks.iter().zip(&labels).map(|(t, l)| TaskHead::new(&t.name, t.kind, l.len())).collect();
        let device = parse_device(device.unwrap_or(&recipe.device))?;
        let mut vs = VarStore::new(device);
        let (model, max_len) = build_model(&recipe, &vs, tokenizer.vocab_size() as i64, &heads)?;
        whetstone_models::load_varstore(&mut vs, &dir.join(BEST_MODEL_FILE))?;
        Ok(Self { dir: dir.to_path_buf(), model, _vs: vs, tokenizer, labels, max_len, batch_size: recipe.train.eval_batch_size, device })
    }

    /// For each text, task `task`'s prediction as one line: the class and its probability
    /// for a sequence task; `word/TAG` for each whitespace-separated word for a token task.
    pub fn predict(&self, task: &str, texts: &[String]) -> Result<Vec<String>> {
        Ok(self.predict_rows(task, texts)?.iter().map(TaskPrediction::to_line).collect())
    }

    /// Task `task`'s classes (sequence task) or tags (token task), in class-id order; an error
    /// naming the known tasks when the run has no task `task`.
    pub fn task_labels(&self, task: &str) -> Result<&[String]> {
        Ok(&self.labels[self.model.task_index(task)?])
    }

    /// Whether `task` is a token task (tags per word) rather than a sequence task; an error
    /// naming the known tasks when the run has no task `task`.
    pub fn is_token_task(&self, task: &str) -> Result<bool> {
        let i = self.model.task_index(task)?;
        Ok(self.model.tasks()[i].kind == HeadKind::Token)
    }

    /// For each text, task `task`'s prediction: every class's probability (sequence task), or
    /// the tag of each whitespace-separated word (token task). Texts are cut to `max_len × 32`
    /// characters before anything else (see `whetstone_data::truncate`), so a token task
    /// tags the words of that prefix only. Non-finite probabilities are an error naming the
    /// text, never a silent `NaN`.
    pub fn predict_rows(&self, task: &str, texts: &[String]) -> Result<Vec<TaskPrediction>> {
        let i = self.model.task_index(task)?;
        let labels = &self.labels[i];
        let bound = whetstone_data::truncate::char_bound(self.max_len);
        match self.model.tasks()[i].kind {
            HeadKind::Sequence => {
                let split = whetstone_data::Split { texts: texts.to_vec(), labels: vec![0; texts.len()] };
                let enc = encode(&self.tokenizer, &split, self.max_len)?;
                let mut probs: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
                tch::no_grad(|| -> Result<()> {
                    for chunk in (0..enc.len()).collect::<Vec<_>>().chunks(self.batch_size.max(1)) {
                        let b = whetstone_data::make_batch(&enc, chunk, self.device)?;
                        let p = self.model.forward_task(i, &b.input_ids, &b.attention_mask, false)?.f_softmax(-1, tch::Kind::Float)?.f_to_device(tch::Device::Cpu)?;
                        let flat = Vec::<f32>::try_from(p.f_flatten(0, -1)?)?;
                        probs.extend(flat.chunks(labels.len().max(1)).map(<[f32]>::to_vec));
                    }
                    Ok(())
                })?;
                crate::run::check_finite_probs(&probs, &self.dir)?;
                Ok(probs.into_iter().map(|p| TaskPrediction::Sequence { labels: labels.clone(), probs: p }).collect())
            }
            HeadKind::Token => {
                let sentences: Vec<TaggedSentence> = texts
                    .iter()
                    .map(|t| {
                        let words: Vec<String> = whetstone_data::truncate::truncate_chars(t, bound).split_whitespace().map(String::from).collect();
                        TaggedSentence { tags: vec!["O".into(); words.len()], words, line: 0 }
                    })
                    .collect();
                let tags = whetstone_data::LabelSet { names: labels.clone() };
                let enc = encode_tagged(&self.tokenizer, &sentences, &tags, self.max_len)?;
                let mut out = Vec::new();
                tch::no_grad(|| -> Result<()> {
                    for (s, (ids, lab)) in sentences.into_iter().zip(enc.ids.iter().zip(&enc.labels)) {
                        let input = tch::Tensor::from_slice(ids).f_view([1, -1])?.f_to_device(self.device)?;
                        let mask = input.f_ones_like()?;
                        let pred = Vec::<i64>::try_from(self.model.forward_task(i, &input, &mask, false)?.f_argmax(-1, false)?.f_flatten(0, -1)?.f_to_device(tch::Device::Cpu)?)?;
                        let first: Vec<usize> = lab.iter().enumerate().filter(|(_, &l)| l != whetstone_data::conll::IGNORE_INDEX).map(|(p, _)| p).collect();
                        let tags: Vec<String> = (0..s.words.len()).map(|w| first.get(w).map_or("O", |&p| labels[pred[p] as usize].as_str()).to_string()).collect();
                        out.push(TaskPrediction::Token { words: s.words, tags });
                    }
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }
}

/// One text's prediction by one task of a [`MultiTaskRun`].
#[derive(Debug, Clone, PartialEq)]
pub enum TaskPrediction {
    /// A sequence task: the task's classes and the probability of each, in the same order.
    Sequence {
        /// Class names (display names where the run has them).
        labels: Vec<String>,
        /// One probability per class.
        probs: Vec<f32>,
    },
    /// A token task: the text's whitespace-separated words and the tag of each.
    Token {
        /// The words.
        words: Vec<String>,
        /// One tag per word.
        tags: Vec<String>,
    },
}

impl TaskPrediction {
    /// The most likely class and its probability (sequence tasks), `None` for token tasks.
    pub fn best(&self) -> Option<(&str, f32)> {
        match self {
            TaskPrediction::Sequence { labels, probs } => {
                let c = probs.iter().enumerate().fold(0, |best, (i, &v)| if v > probs[best] { i } else { best });
                Some((labels.get(c)?.as_str(), *probs.get(c)?))
            }
            TaskPrediction::Token { .. } => None,
        }
    }

    /// The plain output line: `class<TAB>probability`, or `word/TAG` per word.
    pub fn to_line(&self) -> String {
        match self {
            TaskPrediction::Sequence { .. } => self.best().map(|(l, p)| format!("{l}\t{p:.4}")).unwrap_or_default(),
            TaskPrediction::Token { words, tags } => words.iter().zip(tags).map(|(w, t)| format!("{w}/{t}")).collect::<Vec<_>>().join(" "),
        }
    }
}
