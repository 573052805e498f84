//! `train-throughput`: whetstone's training (and inference) throughput side by side with an
//! eager PyTorch peer on exactly the same batches.
//!
//! For each workload (TextCNN of the default recipe, the rt-transformer recipe's encoder, the
//! MiniLM-L6 fine-tuning model of the minilm-rt recipe) it builds the first batches of the
//! `BucketBatcher` epoch order on rotten-tomatoes, writes them to a batch file, times whetstone's
//! real `Trainer` on them in every `--precisions` entry (fp32, bf16 autocast), then runs the
//! Python peer on the same file with the same thread count (torch's AdamW variants in fp32;
//! fused AdamW, plain and under `torch.autocast`, for the precision rows), interleaving the two
//! `--reps` times. Inference (`predict` vs the peer's eval-mode forward) runs at batch 32 and
//! batch 1 in every precision. It prints the tables and writes `bench.md` and `bench.json` to
//! `--out`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::{Device, Tensor};
use whetstone_benches::machine::{cpu_model, load_avg, median, peer_check, peer_python, CpuClock};
use whetstone_benches::{Workload, MAX_LEN, VOCAB_SIZE};
use whetstone_data::{encode, load_splits, make_batch, BatchSource, BucketBatcher, BucketedSource, DataSource, Encoded, PlanEntry, TextTokenizer};
use whetstone_optim::{clip_grad_norm, Optimizer};
use whetstone_train::{predict, CrossEntropy, Objective, Precision, Silent, StepContext, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Training / inference throughput of whetstone vs an eager PyTorch peer on identical batches")]
struct Args {
    /// Python interpreter with torch and numpy (default: $WHETSTONE_PYTHON, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/train_throughput.py"))]
    peer: PathBuf,
    /// Folder for bench.md and bench.json.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Interleaved repetitions (whetstone, PyTorch, whetstone, …); medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Timed training steps per measurement (textcnn, transformer).
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Untimed warm-up steps before each measurement (textcnn, transformer).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed training steps per measurement of the minilm workload (about 2 s per fp32 step
    /// on 2 cores).
    #[arg(long, default_value_t = 12)]
    minilm_steps: usize,
    /// Untimed warm-up steps before each minilm measurement.
    #[arg(long, default_value_t = 3)]
    minilm_warmup: usize,
    /// Timed passes per inference measurement (after one untimed pass); 0 skips inference.
    #[arg(long, default_value_t = 2)]
    infer_passes: usize,
    /// Examples of the batch-1 inference measurements: the first N of the validation split.
    #[arg(long, default_value_t = 128)]
    infer_b1_examples: usize,
    /// Examples of minilm's batch-32 inference measurements: the first N of the validation
    /// split (the other workloads use all of it).
    #[arg(long, default_value_t = 256)]
    minilm_infer_examples: usize,
    /// Workloads, comma-separated (textcnn, transformer, minilm).
    #[arg(long, default_value = "textcnn,transformer,minilm", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Precisions of the precision rows, comma-separated (fp32, bf16): whetstone's `Trainer` /
    /// `predict` in that precision vs the peer with fused AdamW (under torch.autocast for bf16).
    #[arg(long, default_value = "fp32,bf16", value_delimiter = ',')]
    precisions: Vec<String>,
    /// Extra torch.optim.AdamW variants for the peer's fp32 rows (besides the default), run in
    /// every repetition (same peer process, after the default) and compared with the same
    /// whetstone runs. Not for minilm, which has precision rows only.
    #[arg(long, default_value = "foreach,fused", value_delimiter = ',')]
    extra_variants: Vec<String>,
    /// Steps of the per-phase profile runs (after the same warm-up; minilm: at most
    /// --minilm-steps).
    #[arg(long, default_value_t = 30)]
    profile_steps: usize,
    /// Skip the per-phase profile.
    #[arg(long)]
    no_profile: bool,
    /// Intra-op threads (default: libtorch's current setting, tch::get_num_threads()).
    #[arg(long)]
    threads: Option<i32>,
    /// Internal: run one whetstone job (a JSON file written by the parent) in this process and
    /// print its results as one line of JSON.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

const SEED: u64 = 42;
const INFER_BATCH: usize = 32;
/// Workloads with precision rows only (no fp32 rows per torch AdamW implementation).
const PRECISION_ONLY: [&str; 1] = ["minilm"];
/// Inference parts of the batch file: (name, batch size).
const INFER_PARTS: [(&str, usize); 2] = [("b1", 1), ("b32", INFER_BATCH)];

struct Data {
    train: Encoded,
    valid: Encoded,
    labels: Vec<String>,
    vocab_size: usize,
}

fn load_data() -> Result<Data> {
    let src = DataSource::Named { name: "rotten-tomatoes".to_string() };
    let splits = load_splits(&src, 0.1, 0.1, SEED).context(
        "loading rotten-tomatoes (run `cargo xtask data rotten-tomatoes` first, or set WHETSTONE_DATA)",
    )?;
    let tok = TextTokenizer::train_wordpiece(&splits.train.texts, VOCAB_SIZE, 2, true)?;
    Ok(Data {
        train: encode(&tok, &splits.train, MAX_LEN)?,
        valid: encode(&tok, &splits.valid, MAX_LEN)?,
        labels: splits.labels.names.clone(),
        vocab_size: tok.vocab_size(),
    })
}

/// The first `n` examples of `enc`.
fn head(enc: &Encoded, n: usize) -> Encoded {
    let n = n.min(enc.len());
    Encoded { ids: enc.ids[..n].to_vec(), labels: enc.labels[..n].to_vec(), pad_id: enc.pad_id }
}

/// One workload as this run measures it: its step counts, batches and inference sets.
struct Setup<'a> {
    w: &'a Workload,
    /// The model's vocabulary (the tokenizer's, or MiniLM's 30522).
    vocab: usize,
    warmup: usize,
    steps: usize,
    /// Whether the fp32 rows per torch AdamW implementation are measured (not for minilm).
    variant_rows: bool,
    /// The first training micro-batches of epoch 0, as `Trainer::fit` plans them.
    train: Vec<PlanEntry>,
    lrs: Vec<f64>,
    /// Inference sets, in `INFER_PARTS` order, with the batches `predict` makes of them.
    infer: Vec<(&'static str, usize, Encoded, Vec<Vec<usize>>)>,
    file: PathBuf,
}

impl Setup<'_> {
    fn profile_steps(&self, args: &Args) -> usize {
        args.profile_steps.clamp(1, self.steps)
    }

    fn infer_set(&self, part: &str) -> &Encoded {
        &self.infer.iter().find(|p| p.0 == part).expect("known inference part").2
    }
}

fn setup<'a>(ctx: &Ctx, w: &'a Workload) -> Result<Setup<'a>> {
    let (d, args) = (ctx.data, ctx.args);
    let minilm = w.name == "minilm";
    let (warmup, steps) = if minilm { (args.minilm_warmup, args.minilm_steps) } else { (args.warmup, args.steps) };
    ensure!(steps >= 1, "{}: at least one timed step is needed", w.name);
    let n_train = steps.max(warmup);
    let c = &w.recipe.train;
    // Exactly what `Trainer::fit` replays for epoch 0.
    let order = BucketedSource::new(&d.train, c.batch_size, c.bucket_factor).epoch_plan(SEED, 0)?;
    let total = order.len().div_ceil(c.grad_accum) as u64; // one epoch, as the benchmark trainer is configured
    ensure!(order.len() >= n_train, "{}: the epoch has only {} batches, need {n_train}", w.name, order.len());
    let lrs = (0..n_train as u64).map(|s| w.recipe.optim.lr * w.recipe.schedule.factor(s, total)).collect();
    let b32 = if minilm { head(&d.valid, args.minilm_infer_examples) } else { head(&d.valid, d.valid.len()) };
    let b1 = head(&d.valid, args.infer_b1_examples);
    let infer = [b1, b32]
        .into_iter()
        .zip(INFER_PARTS)
        .map(|(enc, (name, bs))| {
            // `predict`'s own batches: length-sorted, `bs` per batch.
            let order = BucketBatcher::new(bs, 1).eval_order(&enc.lengths());
            (name, bs, enc, order)
        })
        .collect();
    Ok(Setup {
        w,
        vocab: w.vocab(d.vocab_size)?,
        warmup,
        steps,
        variant_rows: !PRECISION_ONLY.contains(&w.name),
        train: order.into_iter().take(n_train).collect(),
        lrs,
        infer,
        file: ctx.tmp.path().join(format!("{}.batches", w.name)),
    })
}

/// Header line of JSON, then little-endian i64: per batch ids, mask, labels (the parts in the
/// header's `parts` order: train, then the inference sets).
fn write_batch_file(d: &Data, s: &Setup) -> Result<()> {
    let train: Vec<Vec<usize>> = s.train.iter().map(|e| e.indices.clone()).collect();
    let mut parts: Vec<(&str, &Encoded, &Vec<Vec<usize>>)> = vec![("train", &d.train, &train)];
    parts.extend(s.infer.iter().map(|(name, _, enc, order)| (*name, enc, order)));
    let mut header = json!({"parts": parts.iter().map(|p| p.0).collect::<Vec<_>>()});
    let mut data: Vec<u8> = Vec::new();
    for (part, enc, batches) in parts {
        let mut shapes = Vec::new();
        for idx in batches {
            let b = make_batch(enc, idx, Device::Cpu)?;
            let (bs, t) = b.input_ids.size2()?;
            shapes.push(json!([bs, t]));
            for tensor in [&b.input_ids, &b.attention_mask, &b.labels] {
                let v = Vec::<i64>::try_from(tensor.flatten(0, -1))?;
                data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            }
        }
        header[part] = json!(shapes);
    }
    let mut f = std::fs::File::create(&s.file).with_context(|| format!("creating {}", s.file.display()))?;
    writeln!(f, "{header}")?;
    f.write_all(&data)?;
    Ok(())
}

struct Ctx<'a> {
    args: &'a Args,
    python: PathBuf,
    data: &'a Data,
    tmp: tempfile::TempDir,
    threads: i32,
}

/// The recipe's loop settings for a timed stretch of epoch 0: no evaluation, checkpoints,
/// early stopping or log lines.
fn one_epoch(train: &whetstone_train::TrainConfig) -> whetstone_train::TrainConfig {
    whetstone_train::TrainConfig { epochs: 1, patience: 0, eval_every: 0, checkpoint_every: 0, log_every: 1 << 40, ..train.clone() }
}

/// Whetstone training through the real `Trainer` in `precision`: a warm-up `fit` of `warmup`
/// steps, then a timed `fit` of `steps` steps on the same model, its optimiser continuing from
/// the warm-up's state (both replay epoch 0 from its start).
fn ws_train(ctx: &Ctx, s: &Setup, precision: Precision) -> Result<Value> {
    let (d, w) = (ctx.data, s.w);
    let (vs, model) = w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
    let run_dir = tempfile::tempdir_in(ctx.tmp.path())?;
    let config = one_epoch(&w.recipe.train);
    let source = BucketedSource::new(&d.train, config.batch_size, config.bucket_factor);
    let empty = Encoded { ids: vec![], labels: vec![], pad_id: d.train.pad_id };
    let trainer = |optim: Box<dyn Optimizer>, stop_after: usize| {
        Trainer::new(&*model, &vs, optim, w.recipe.optim.lr, run_dir.path())
            .schedule(w.recipe.schedule.clone())
            .config(config.clone())
            .seed(SEED)
            .device(Device::Cpu)
            .precision(precision)
            .label_names(d.labels.clone())
            .observer(Silent)
            .stop_after(stop_after as u64)
    };
    let mut warm = trainer(w.recipe.optim.build(&vs)?, s.warmup.max(1));
    warm.fit(&source, &empty, false)?;
    let state = warm.optimizer().state();
    drop(warm);
    let mut optim = w.recipe.optim.build(&vs)?;
    optim.load_state(&state)?;
    let mut timed = trainer(optim, s.steps);
    let t0 = Instant::now();
    let r = timed.fit(&source, &empty, false)?;
    let wall = t0.elapsed().as_secs_f64();
    ensure!(r.progress.step == s.steps as u64, "trainer ran {} steps, expected {}", r.progress.step, s.steps);
    let n = r.progress.examples_seen;
    Ok(json!({"seq_per_s": n as f64 / wall, "trainer_seq_per_s": r.seq_per_s, "seconds": wall, "examples": n}))
}

/// An untimed `fit` in `precision` over every training batch the measurements use, on a
/// throwaway model: libtorch builds some kernels per input shape on first use (oneDNN
/// convolution and bf16 matmul primitives), and a timed run that meets a shape for the first
/// time pays for that. At the start of every measuring process, for each precision it trains in
/// (the peer does the same at the start of each of its processes).
fn ws_prime(ctx: &Ctx, s: &Setup, precision: Precision) -> Result<()> {
    let (d, w) = (ctx.data, s.w);
    let (vs, model) = w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
    let run_dir = tempfile::tempdir_in(ctx.tmp.path())?;
    let config = one_epoch(&w.recipe.train);
    let source = BucketedSource::new(&d.train, config.batch_size, config.bucket_factor);
    let empty = Encoded { ids: vec![], labels: vec![], pad_id: d.train.pad_id };
    Trainer::new(&*model, &vs, w.recipe.optim.build(&vs)?, w.recipe.optim.lr, run_dir.path())
        .schedule(w.recipe.schedule.clone())
        .config(config)
        .seed(SEED)
        .device(Device::Cpu)
        .precision(precision)
        .observer(Silent)
        .stop_after(s.train.len() as u64)
        .fit(&source, &empty, false)?;
    Ok(())
}

/// Key of an inference measurement: `<part>@<precision>`.
fn infer_key(part: &str, p: Precision) -> String {
    format!("{part}@{p}")
}

/// Whetstone inference: `predict` over each inference set at its batch size, in each precision
/// (the autocast region held around each `predict` call, i.e. one region per pass), one
/// untimed pass then `infer_passes` timed ones, on one freshly built model.
fn ws_infer(ctx: &Ctx, s: &Setup, precisions: &[Precision]) -> Result<BTreeMap<String, Value>> {
    let d = ctx.data;
    let (_vs, model) = s.w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
    let mut out = BTreeMap::new();
    for &p in precisions {
        for (part, bs, enc, _) in &s.infer {
            let pass = || -> Result<()> {
                let _amp = p.region(Device::Cpu)?;
                predict(&*model, enc, *bs, Device::Cpu)?;
                Ok(())
            };
            pass()?; // warm-up
            let t0 = Instant::now();
            for _ in 0..ctx.args.infer_passes {
                pass()?;
            }
            let dt = t0.elapsed().as_secs_f64();
            let n = enc.len() * ctx.args.infer_passes;
            out.insert(infer_key(part, p), json!({"seq_per_s": n as f64 / dt, "seconds": dt, "examples": n}));
        }
    }
    Ok(out)
}

/// Phases of whetstone's step, in the order the profile table shows them.
const PHASES: [&str; 6] = ["zero_grad", "make_batch", "forward+loss", "backward", "clip", "optimizer"];
/// The row of the profile table that times `Trainer::train_step` itself.
const WHOLE_STEP: &str = "train_step (measured whole)";

/// Per-phase breakdown of whetstone's step in `precision`, and the step itself.
///
/// The phase rows re-enact `Trainer::train_step`'s sequence with the same public library calls
/// (reseed, `Optimizer::begin_step` and `zero_grad`, then inside the precision's autocast
/// region, as the `Trainer` holds it: `BatchSource::batch`, `Objective::loss` of `CrossEntropy`
/// and reading the loss, `backward`; then `clip_grad_norm`, `Optimizer::step`), timing each.
/// The `WHOLE_STEP` row times `Trainer::train_step` itself (same precision) on the same
/// batches, from the same initialisation, so the phase sum can be checked against the real
/// step.
fn ws_profile(ctx: &Ctx, s: &Setup, precision: Precision) -> Result<BTreeMap<&'static str, f64>> {
    let (d, w) = (ctx.data, s.w);
    let c = &w.recipe.train;
    let source = BucketedSource::new(&d.train, c.batch_size, c.bucket_factor);
    let steps = s.profile_steps(ctx.args);
    let mut out = BTreeMap::new();
    {
        let (vs, model) = w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
        let mut optim: Box<dyn Optimizer> = w.recipe.optim.build(&vs)?;
        let mut obj = CrossEntropy::default();
        let params: Vec<Tensor> = optim.params().into_iter().map(Tensor::shallow_clone).collect();
        let params: Vec<&Tensor> = params.iter().collect();
        let clip = w.clip_norm();
        let mut run = |n: usize, acc: &mut [f64; 6]| -> Result<()> {
            for (step, entry) in s.train.iter().take(n).enumerate() {
                let t = Instant::now();
                tch::manual_seed(step as i64);
                optim.begin_step()?;
                optim.zero_grad();
                let t1 = Instant::now();
                let amp = precision.region(Device::Cpu)?;
                let batch = source.batch(entry, Device::Cpu)?;
                let t2 = Instant::now();
                let mut cx = StepContext::new(&*model, &vs, step as u64, 0, Device::Cpu, step as u64);
                let loss = obj.loss(&mut cx, &batch)?;
                let _ = loss.f_double_value(&[])?;
                let t3 = Instant::now();
                loss.f_backward()?;
                drop(amp);
                let t4 = Instant::now();
                if clip > 0.0 {
                    clip_grad_norm(&params, clip)?;
                }
                let t5 = Instant::now();
                optim.step(s.lrs[step])?;
                let t6 = Instant::now();
                for (i, (a, b)) in [(t, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)].into_iter().enumerate() {
                    acc[i] += (b - a).as_secs_f64();
                }
            }
            Ok(())
        };
        let mut scratch = [0.0; 6];
        run(s.warmup, &mut scratch)?;
        let mut acc = [0.0f64; 6];
        run(steps, &mut acc)?;
        out.extend(PHASES.iter().zip(acc).map(|(n, a)| (*n, 1e3 * a / steps as f64)));
    }
    // The real step, on a fresh model and optimiser from the same seed.
    let (vs, model) = w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
    let mut trainer = Trainer::new(&*model, &vs, w.recipe.optim.build(&vs)?, w.recipe.optim.lr, ctx.tmp.path())
        .config(c.clone())
        .seed(SEED)
        .device(Device::Cpu)
        .precision(precision)
        .observer(Silent);
    let mut run = |n: usize| -> Result<f64> {
        let t = Instant::now();
        for (step, entry) in s.train.iter().take(n).enumerate() {
            trainer.train_step(&source, std::slice::from_ref(entry), step as u64, 0, s.lrs[step])?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    run(s.warmup)?;
    out.insert(WHOLE_STEP, 1e3 * run(steps)? / steps as f64);
    Ok(out)
}

fn run_peer(ctx: &Ctx, job: &Value) -> Result<Value> {
    let path = ctx.tmp.path().join("job.json");
    std::fs::write(&path, serde_json::to_vec_pretty(job)?)?;
    let out = Command::new(&ctx.python).arg(&ctx.args.peer).arg("--job").arg(&path).output()?;
    if !out.status.success() {
        bail!("the PyTorch peer failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the peer printed no JSON")?;
    serde_json::from_str(line).context("parsing the peer's JSON")
}

/// The peer's training variant: torch AdamW `imp` (`default`, `foreach`, `fused`), under
/// autocast for bf16.
fn peer_variant(imp: &str, p: Precision) -> String {
    match p {
        Precision::Fp32 => imp.to_string(),
        p => format!("{imp}@{p}"),
    }
}

/// A peer job: train with each of `variants`, then the inference measurements of `infer`
/// precisions (every inference set).
fn peer_job(ctx: &Ctx, s: &Setup, variants: &[String], infer: &[Precision]) -> Value {
    // Every precision the variants train in is primed (each batch shape once, untimed) first.
    let prime: Vec<&str> = dedup(variants.iter().map(|v| if v.ends_with("@bf16") { "bf16" } else { "fp32" }));
    let w = s.w;
    let model = serde_json::to_value(w.model_config()).expect("model config serialises");
    let infer: Vec<Value> = infer
        .iter()
        .flat_map(|p| s.infer.iter().map(move |(part, _, _, _)| json!({"part": part, "precision": p.as_str(), "passes": ctx.args.infer_passes})))
        .collect();
    json!({
        "batch_file": s.file,
        "workload": w.name,
        "kind": model["kind"],
        "model": model,
        "vocab_size": s.vocab,
        "num_labels": ctx.data.labels.len(),
        "threads": ctx.threads,
        "seed": SEED,
        "warmup": s.warmup,
        "steps": s.steps,
        "lr": w.recipe.optim.lr,
        "lrs": s.lrs,
        "weight_decay": w.recipe.optim.weight_decay,
        "no_decay": whetstone_optim::NO_DECAY,
        "clip": w.clip_norm(),
        "variants": variants,
        "prime": prime,
        "infer": infer,
    })
}

/// Check that whetstone's model and the peer's have the same parameter names, shapes and count.
fn check_architecture(ctx: &Ctx, s: &Setup) -> Result<u64> {
    let d = ctx.data;
    let (vs, _m) = s.w.build(s.vocab as i64, d.labels.len() as i64, SEED as i64)?;
    let ws_count = whetstone_models::count_parameters(&vs);
    let mut ws_shapes: Vec<(String, Vec<i64>)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n, t.size())).collect();
    ws_shapes.sort();
    let mut job = peer_job(ctx, s, &[], &[]);
    job["steps"] = json!(0);
    job["warmup"] = json!(0);
    let info = run_peer(ctx, &job)?;
    let py_count = info["params"].as_u64().unwrap_or(0);
    let mut py_shapes: Vec<(String, Vec<i64>)> = info["param_shapes"]
        .as_array()
        .context("peer reported no parameter shapes")?
        .iter()
        .map(|e| (e[0].as_str().unwrap_or("").to_string(), e[1].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()))
        .collect();
    py_shapes.sort();
    println!("{:<12} parameters: whetstone {ws_count}, PyTorch {py_count}", s.w.name);
    if ws_count != py_count || ws_shapes != py_shapes {
        let only_ws: Vec<_> = ws_shapes.iter().filter(|x| !py_shapes.contains(x)).collect();
        let only_py: Vec<_> = py_shapes.iter().filter(|x| !ws_shapes.contains(x)).collect();
        bail!("{}: the architectures differ: whetstone {ws_count} parameters, PyTorch peer {py_count}\n  only in whetstone: {only_ws:?}\n  only in the peer: {only_py:?}", s.w.name);
    }
    Ok(ws_count)
}

struct Row {
    workload: String,
    mode: String,
    /// The precision of a precision row (`None`: an fp32 row per torch AdamW implementation).
    precision: Option<Precision>,
    ws: Vec<f64>,
    py: Vec<f64>,
    note: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        median(&self.ws) / median(&self.py)
    }
}

/// `min–max` of `v`, one decimal.
fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

/// Index of the row (workload, mode, precision), created with `note` when new.
fn row_index(rows: &mut Vec<Row>, workload: &str, mode: &str, precision: Option<Precision>, note: &str) -> usize {
    if let Some(i) = rows.iter().position(|r| r.workload == workload && r.mode == mode && r.precision == precision) {
        return i;
    }
    rows.push(Row { workload: workload.into(), mode: mode.into(), precision, ws: vec![], py: vec![], note: note.into() });
    rows.len() - 1
}

fn num(v: &Value, what: impl FnOnce() -> String) -> Result<f64> {
    v.as_f64().with_context(what)
}

/// `items` with duplicates removed, first occurrence kept.
fn dedup<T: PartialEq + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Profile columns: (JSON key, title).
const PROFILE_COLS: [(&str, &str); 5] = [
    ("whetstone", "whetstone fp32"),
    ("pytorch", "PyTorch fp32 (AdamW default)"),
    ("pytorch_fused", "PyTorch fp32 (AdamW fused)"),
    ("whetstone_bf16", "whetstone bf16"),
    ("pytorch_fused_bf16", "PyTorch bf16 autocast (AdamW fused)"),
];

/// Run whetstone's side of one (workload, repetition) in a fresh process, as the peer runs in a
/// fresh Python process: the bench binary re-executes itself with the same arguments and
/// `--child <job>`. Both sides then start from the same state (libtorch's per-shape kernel
/// caches, the allocator), whatever ran before in the parent.
fn run_child(ctx: &Ctx, job: &Value) -> Result<Value> {
    let path = ctx.tmp.path().join("child.json");
    std::fs::write(&path, serde_json::to_vec_pretty(job)?)?;
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    argv.push("--child".into());
    argv.push(path.into_os_string());
    let out = Command::new(exe).args(argv).output()?;
    if !out.status.success() {
        bail!("the whetstone measuring process failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the measuring process printed no JSON")?;
    serde_json::from_str(line).context("parsing the measuring process's JSON")
}

/// The `--child` side: `{"workload", "vocab_size", "mode": "measure" | "profile", "precisions",
/// "infer"}`. `measure` primes every precision, then times training in each precision and
/// (with `infer`) inference; `profile` primes, then profiles each precision.
fn child(args: &Args, job_path: &Path) -> Result<()> {
    let job: Value = serde_json::from_slice(&std::fs::read(job_path)?)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let data = load_data()?;
    ensure!(job["vocab_size"].as_u64() == Some(data.vocab_size as u64), "the measuring process's tokenizer differs from the parent's");
    let w = Workload::by_name(job["workload"].as_str().context("job: no workload")?)?;
    let precisions: Vec<Precision> = job["precisions"]
        .as_array()
        .context("job: no precisions")?
        .iter()
        .map(|p| p.as_str().unwrap_or("").parse::<Precision>())
        .collect::<std::result::Result<_, _>>()?;
    let ctx = Ctx { args, python: PathBuf::new(), data: &data, tmp: tempfile::tempdir()?, threads: tch::get_num_threads() };
    let s = setup(&ctx, &w)?;
    for &p in &precisions {
        ws_prime(&ctx, &s, p)?;
    }
    let out = match job["mode"].as_str() {
        Some("measure") => {
            let mut train = BTreeMap::new();
            for &p in &precisions {
                train.insert(p.as_str(), ws_train(&ctx, &s, p)?);
            }
            let infer = if job["infer"].as_bool().unwrap_or(false) { ws_infer(&ctx, &s, &precisions)? } else { BTreeMap::new() };
            json!({"train": train, "infer": infer})
        }
        Some("profile") => {
            let mut prof = BTreeMap::new();
            for &p in &precisions {
                prof.insert(p.as_str(), json!(ws_profile(&ctx, &s, p)?));
            }
            json!({"profiles": prof})
        }
        other => bail!("job: unknown mode {other:?}"),
    };
    println!("{out}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("train-throughput: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    if let Some(job) = &args.child {
        return child(&args, job);
    }
    ensure!(args.reps >= 1 && args.steps >= 1, "--reps and --steps must be >= 1");
    let precisions: Vec<Precision> = dedup(args.precisions.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(|p| p.parse::<Precision>()).collect::<std::result::Result<Vec<_>, _>>()?);
    for p in &precisions {
        p.check_device(Device::Cpu).with_context(|| format!("--precisions {p}"))?;
    }
    let python = peer_python(args.python.clone());
    let peer_info = peer_check(&python, &args.peer)?;
    let torch_version = peer_info["torch"].as_str().unwrap_or("?").to_string();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let threads = tch::get_num_threads();
    let workloads: Vec<Workload> = args.workloads.iter().map(|n| Workload::by_name(n.trim())).collect::<Result<_>>()?;
    eprintln!(
        "train-throughput: torch {torch_version} (peer), tch {} threads, CPU {}, load average {}",
        threads,
        cpu_model(),
        load_avg()
    );
    for p in &precisions {
        if let Some(warning) = p.slow_cpu_warning(Device::Cpu) {
            eprintln!("train-throughput: {warning}");
        }
    }
    let load_start = load_avg();
    // Other processes' CPU use during each (repetition, workload): the machine's busy CPU time
    // less this process's and its measuring processes', per second of wall clock.
    let mut others: Vec<f64> = Vec::new();
    let t_start = Instant::now();
    let gemm = gemm_probe()?;
    eprintln!("train-throughput: libtorch GEMM (linear {}): fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s", gemm["shape"], gemm["fp32_gflops"].as_f64().unwrap_or(f64::NAN), gemm["bf16_gflops"].as_f64().unwrap_or(f64::NAN));
    let data = load_data()?;
    eprintln!(
        "train-throughput: rotten-tomatoes: {} train / {} valid examples, vocabulary {} ({:.1}s)",
        data.train.len(),
        data.valid.len(),
        data.vocab_size,
        t_start.elapsed().as_secs_f64()
    );
    let ctx = Ctx { args: &args, python, data: &data, tmp: tempfile::tempdir()?, threads };

    // Plans, batch files and the architecture check (names, shapes and count must agree).
    let mut setups = Vec::new();
    let mut param_counts = Vec::new();
    for w in &workloads {
        let s = setup(&ctx, w)?;
        write_batch_file(&data, &s)?;
        param_counts.push(check_architecture(&ctx, &s)?);
        setups.push(s);
    }

    // Interleaved measurements.
    let extra_variants: Vec<&str> = args.extra_variants.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    for v in &extra_variants {
        ensure!(matches!(*v, "foreach" | "fused"), "unknown --extra-variants entry `{v}` (known: foreach, fused)");
    }
    // Whetstone's precisions per workload: the precision rows', plus fp32 for the variant rows.
    let ws_precisions = |s: &Setup| dedup(s.variant_rows.then_some(Precision::Fp32).into_iter().chain(precisions.iter().copied()));
    let mut rows: Vec<Row> = Vec::new();
    let mut prec_rows: Vec<Row> = Vec::new();
    let mut raw = Vec::new();
    for rep in 0..args.reps {
        for s in &setups {
            let w = s.w;
            let t_rep = Instant::now();
            let cpu0 = CpuClock::now();
            let ws_precs = ws_precisions(s);
            let infer = args.infer_passes > 0;
            let job = json!({"workload": w.name, "vocab_size": data.vocab_size, "mode": "measure", "precisions": ws_precs.iter().map(|p| p.as_str()).collect::<Vec<_>>(), "infer": infer});
            let ws = run_child(&ctx, &job)?;
            let wt: BTreeMap<String, Value> = serde_json::from_value(ws["train"].clone()).context("measuring process: no training results")?;
            let wi: BTreeMap<String, Value> = serde_json::from_value(ws["infer"].clone()).context("measuring process: no inference results")?;
            // Every variant in every repetition, so each row's ratio compares medians of the
            // same repetitions (and the same whetstone runs).
            let mut variants: Vec<String> = Vec::new();
            if s.variant_rows {
                variants.push("default".into());
                variants.extend(extra_variants.iter().map(|v| v.to_string()));
            }
            variants.extend(precisions.iter().map(|&p| peer_variant("fused", p)));
            let variants = dedup(variants);
            let py = run_peer(&ctx, &peer_job(&ctx, s, &variants, if infer { &ws_precs[..] } else { &[] }))?;
            let py_train = |v: &str| num(&py["train"][v]["seq_per_s"], || format!("peer: no {v} result"));
            let py_infer = |k: &str| num(&py["infer"][k]["seq_per_s"], || format!("peer: no {k} inference result"));
            let ws_fp32 = wt.get("fp32").map(|v| v["seq_per_s"].as_f64().unwrap_or(f64::NAN));
            let train_mode = format!("train, batch {}", w.batch_size());
            if s.variant_rows {
                let ws = ws_fp32.context("whetstone fp32 run missing")?;
                let i = row_index(&mut rows, w.name, &train_mode, None, "whetstone `Trainer` vs torch.optim.AdamW default (CPU: for-loop)");
                rows[i].ws.push(ws);
                rows[i].py.push(py_train("default")?);
                for v in &extra_variants {
                    let i = row_index(&mut rows, w.name, &format!("{train_mode} (torch AdamW {v}=True)"), None, "same whetstone runs; PyTorch with another AdamW implementation");
                    rows[i].ws.push(ws);
                    rows[i].py.push(py_train(v)?);
                }
                if infer {
                    let k = infer_key("b32", Precision::Fp32);
                    let i = row_index(&mut rows, w.name, &format!("inference, batch {INFER_BATCH}"), None, "whetstone `predict` vs eval()+no_grad, same batches");
                    rows[i].ws.push(wi[&k]["seq_per_s"].as_f64().unwrap_or(f64::NAN));
                    rows[i].py.push(py_infer(&k)?);
                }
            }
            for &p in &precisions {
                let i = row_index(&mut prec_rows, w.name, "train", Some(p), "whetstone `Trainer` in this precision vs torch fused AdamW (+ autocast for bf16)");
                prec_rows[i].ws.push(wt[p.as_str()]["seq_per_s"].as_f64().unwrap_or(f64::NAN));
                prec_rows[i].py.push(py_train(&peer_variant("fused", p))?);
                if infer {
                    for (part, _) in INFER_PARTS {
                        let k = infer_key(part, p);
                        let i = row_index(&mut prec_rows, w.name, &format!("infer {part}"), Some(p), "whetstone `predict` vs eval()+no_grad (+ autocast for bf16)");
                        prec_rows[i].ws.push(wi[&k]["seq_per_s"].as_f64().unwrap_or(f64::NAN));
                        prec_rows[i].py.push(py_infer(&k)?);
                    }
                }
            }
            let mut line = format!("  rep {}/{} {:<12}", rep + 1, args.reps, w.name);
            for &p in &precisions {
                line.push_str(&format!(
                    " {p}: whetstone {:>7.1} PyTorch(fused) {:>7.1} seq/s;",
                    wt[p.as_str()]["seq_per_s"].as_f64().unwrap_or(f64::NAN),
                    py_train(&peer_variant("fused", p)).unwrap_or(f64::NAN)
                ));
            }
            let other_cpus = cpu0.others_since();
            others.push(other_cpus);
            eprintln!("{line} ({:.0}s, other processes {other_cpus:.2} CPUs)", t_rep.elapsed().as_secs_f64());
            raw.push(json!({"rep": rep, "workload": w.name, "load_average": load_avg(), "other_cpus": other_cpus, "whetstone": {"train": wt, "infer": wi}, "pytorch": {"train": py["train"], "infer": py["infer"]}}));
        }
    }

    // Per-phase profiles: whetstone's step vs the peer's, in fp32 with torch's default AdamW
    // (variant-row workloads) and fused AdamW, and in bf16 with fused AdamW under autocast.
    let mut profiles = Vec::new();
    if !args.no_profile {
        for s in &setups {
            let t_prof = Instant::now();
            let mut entry = json!({"workload": s.w.name, "steps": s.profile_steps(&args), "warmup": s.warmup});
            let mut variants: Vec<(String, &str)> = Vec::new();
            let ws_precs = ws_precisions(s);
            let job = json!({"workload": s.w.name, "vocab_size": data.vocab_size, "mode": "profile", "precisions": ws_precs.iter().map(|p| p.as_str()).collect::<Vec<_>>()});
            let ws = run_child(&ctx, &job)?;
            for p in ws_precs {
                let key = if p == Precision::Fp32 { "whetstone".to_string() } else { format!("whetstone_{p}") };
                entry[key.as_str()] = ws["profiles"][p.as_str()].clone();
                ensure!(entry[key.as_str()].is_object(), "measuring process: no {p} profile");
                if p == Precision::Fp32 {
                    if s.variant_rows {
                        variants.push(("profile".into(), "pytorch"));
                    }
                    if (s.variant_rows && extra_variants.contains(&"fused")) || precisions.contains(&p) {
                        variants.push(("profile-fused".into(), "pytorch_fused"));
                    }
                } else {
                    variants.push((peer_variant("profile-fused", p), if p == Precision::Bf16 { "pytorch_fused_bf16" } else { "pytorch_fused_other" }));
                }
            }
            let names: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
            let mut job = peer_job(&ctx, s, &names, &[]);
            job["steps"] = json!(s.profile_steps(&args));
            let py = run_peer(&ctx, &job)?;
            for (v, key) in &variants {
                entry[*key] = py["train"][v]["phases_ms_per_step"].clone();
            }
            eprintln!("  profile {:<12} ({:.0}s)", s.w.name, t_prof.elapsed().as_secs_f64());
            profiles.push(entry);
        }
    }

    // Output.
    let mut table = String::new();
    table.push_str("| workload | mode | whetstone seq/s | PyTorch seq/s | whetstone / PyTorch |\n|---|---|---:|---:|---:|\n");
    for r in &rows {
        table.push_str(&format!("| {} | {} | {:.1} | {:.1} | {:.2}× |\n", r.workload, r.mode, median(&r.ws), median(&r.py), r.ratio()));
    }
    let mut prec_table = String::new();
    prec_table.push_str("| workload | mode | precision | whetstone seq/s | (min–max) | PyTorch seq/s | (min–max) | whetstone / PyTorch |\n|---|---|---|---:|---:|---:|---:|---:|\n");
    for r in &prec_rows {
        let p = r.precision.map_or("?", Precision::as_str);
        prec_table.push_str(&format!(
            "| {} | {} | {p} | {:.1} | {} | {:.1} | {} | {:.2}× |\n",
            r.workload,
            r.mode,
            median(&r.ws),
            range(&r.ws),
            median(&r.py),
            range(&r.py),
            r.ratio()
        ));
    }
    // Speed-ups of each reduced precision over fp32, per side (same run, ratio of medians).
    let mut speedups = Vec::new();
    let mut speed_table = String::new();
    let reduced: Vec<Precision> = precisions.iter().copied().filter(|p| *p != Precision::Fp32).collect();
    if precisions.contains(&Precision::Fp32) && !reduced.is_empty() {
        speed_table.push_str("| workload | mode | precision | whetstone speed-up over fp32 | PyTorch speed-up over fp32 |\n|---|---|---|---:|---:|\n");
        for r in prec_rows.iter().filter(|r| r.precision.is_some_and(|p| p != Precision::Fp32)) {
            let Some(base) = prec_rows.iter().find(|b| b.workload == r.workload && b.mode == r.mode && b.precision == Some(Precision::Fp32)) else { continue };
            let (ws, py) = (median(&r.ws) / median(&base.ws), median(&r.py) / median(&base.py));
            let p = r.precision.map_or("?", Precision::as_str);
            speed_table.push_str(&format!("| {} | {} | {p} | {ws:.2}× | {py:.2}× |\n", r.workload, r.mode));
            speedups.push(json!({"workload": r.workload, "mode": r.mode, "precision": p, "whetstone": ws, "pytorch": py}));
        }
    }
    let targets = targets(&prec_rows, &speedups);
    let mut target_table = String::new();
    if !targets.is_empty() {
        target_table.push_str("| target | measured | |\n|---|---:|---|\n");
        for t in &targets {
            let met = t["measured"].as_f64().unwrap_or(f64::NAN) >= t["threshold"].as_f64().unwrap_or(f64::INFINITY);
            target_table.push_str(&format!("| {} | {:.2}× | {} |\n", t["target"].as_str().unwrap_or("?"), t["measured"].as_f64().unwrap_or(f64::NAN), if met { "met" } else { "**not met**" }));
        }
    }
    let prof_table = profile_table(&profiles);
    println!();
    println!("{table}");
    println!("{prec_table}");
    if !speed_table.is_empty() {
        println!("{speed_table}");
    }
    if !target_table.is_empty() {
        println!("{target_table}");
    }
    if !prof_table.is_empty() {
        println!("Per-phase time (ms per step, one run each):\n\n{prof_table}");
    }

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let load_end = load_avg();
    let other_cpus_peak = others.iter().copied().fold(0.0f64, f64::max);
    let other_cpus_median = median(&others);
    let machine = json!({
        "cpu": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "threads": threads,
        "native_bf16": native_bf16(),
        "bf16_flags": bf16_flags(),
        "gemm": gemm,
        "torch": torch_version,
        "python": peer_info["python"],
        "numpy": peer_info["numpy"],
        "tch": "0.24",
        "load_average_at_start": load_start,
        "load_average_at_end": load_end,
        "other_cpus_peak": other_cpus_peak,
        "other_cpus_median": other_cpus_median,
    });
    let report = json!({
        "machine": machine,
        "settings": {"reps": args.reps, "steps": args.steps, "warmup": args.warmup, "minilm_steps": args.minilm_steps, "minilm_warmup": args.minilm_warmup,
                     "infer_passes": args.infer_passes, "infer_b1_examples": args.infer_b1_examples, "minilm_infer_examples": args.minilm_infer_examples, "seed": SEED,
                     "precisions": precisions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                     "torch_adamw_variants": std::iter::once("default").chain(extra_variants.iter().copied()).collect::<Vec<_>>(), "profile_steps": args.profile_steps,
                     "vocab_size": data.vocab_size, "max_len": MAX_LEN, "train_examples": data.train.len(), "valid_examples": data.valid.len()},
        "workloads": setups.iter().zip(&param_counts).map(|(s, n)| {
            let w = s.w;
            json!({"name": w.name, "recipe": w.recipe.name, "params": n, "vocab_size": s.vocab, "batch_size": w.batch_size(), "warmup": s.warmup, "steps": s.steps,
                   "variant_rows": s.variant_rows, "infer_examples": s.infer.iter().map(|(part, _, enc, _)| (part.to_string(), enc.len())).collect::<BTreeMap<_, _>>(),
                   "clip_norm": w.clip_norm(), "lr": w.recipe.optim.lr, "weight_decay": w.recipe.optim.weight_decay,
                   "optim": serde_json::to_value(&w.recipe.optim).unwrap_or(Value::Null), "model": w.model_config()})
        }).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| json!({"workload": r.workload, "mode": r.mode, "whetstone_seq_per_s": r.ws, "pytorch_seq_per_s": r.py,
            "whetstone_median": median(&r.ws), "pytorch_median": median(&r.py), "ratio": r.ratio(), "note": r.note})).collect::<Vec<_>>(),
        "precision_rows": prec_rows.iter().map(|r| json!({"workload": r.workload, "mode": r.mode, "precision": r.precision.map(Precision::as_str), "whetstone_seq_per_s": r.ws, "pytorch_seq_per_s": r.py,
            "whetstone_median": median(&r.ws), "pytorch_median": median(&r.py), "ratio": r.ratio(), "note": r.note})).collect::<Vec<_>>(),
        "precision_speedups": speedups,
        "targets": targets,
        "profiles_ms_per_step": profiles,
        "raw": raw,
        "total_seconds": t_start.elapsed().as_secs_f64(),
    });
    std::fs::write(args.out.join("bench.json"), serde_json::to_string_pretty(&report)?)?;
    let tables = Tables { main: &table, precision: &prec_table, speedup: &speed_table, targets: &target_table, profile: &prof_table };
    let md = markdown(&args, &report, &tables, &setups, &param_counts);
    std::fs::write(args.out.join("bench.md"), md)?;
    eprintln!("train-throughput: wrote {} and {} ({:.0}s)", args.out.join("bench.md").display(), args.out.join("bench.json").display(), t_start.elapsed().as_secs_f64());
    Ok(())
}


/// Whether this CPU has native bf16 arithmetic (what `Precision::slow_cpu_warning` checks).
fn native_bf16() -> bool {
    Precision::Bf16.slow_cpu_warning(Device::Cpu).is_none()
}

/// Which of the CPU's bf16-related feature flags /proc/cpuinfo lists.
fn bf16_flags() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    ["avx512_bf16", "amx_bf16", "amx_tile"].into_iter().filter(|f| flags.contains(f)).map(String::from).collect()
}

/// libtorch's GEMM rate on this CPU in float32 and bfloat16 (GFLOP/s, best of 5 timings of 20
/// calls after 3 warm-up calls), at MiniLM's FFN shape: `[1024, 384] · [384, 1536]ᵀ` through
/// `linear`, the op autocast runs in bf16. Context for the precision rows: autocast can only
/// speed up what the CPU's bf16 matmul speeds up.
fn gemm_probe() -> Result<Value> {
    let (m, k, n) = (1024i64, 384i64, 1536i64);
    tch::manual_seed(0);
    let mut out = json!({"shape": [m, k, n]});
    for kind in [tch::Kind::Float, tch::Kind::BFloat16] {
        let a = Tensor::randn([m, k], (kind, Device::Cpu));
        let w = Tensor::randn([n, k], (kind, Device::Cpu));
        for _ in 0..3 {
            let _ = a.f_linear::<Tensor>(&w, None)?;
        }
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..20 {
                let _ = a.f_linear::<Tensor>(&w, None)?;
            }
            best = best.min(t.elapsed().as_secs_f64() / 20.0);
        }
        out[if kind == tch::Kind::Float { "fp32_gflops" } else { "bf16_gflops" }] = json!(2.0 * (m * k * n) as f64 / best / 1e9);
    }
    Ok(out)
}

/// The targets, as far as this run measured them: whetstone bf16 MiniLM training ≥ 2×
/// whetstone fp32; whetstone bf16 training ≥ PyTorch autocast-bf16 + fused AdamW (each
/// workload); fp32 TextCNN training ≥ PyTorch with fused AdamW.
fn targets(prec_rows: &[Row], speedups: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for s in speedups.iter().filter(|s| s["workload"] == "minilm" && s["mode"] == "train" && s["precision"] == "bf16") {
        out.push(json!({"target": "minilm: whetstone bf16 training / whetstone fp32 training ≥ 2", "threshold": 2.0, "measured": s["whetstone"]}));
    }
    for r in prec_rows.iter().filter(|r| r.mode == "train" && r.precision == Some(Precision::Bf16)) {
        out.push(json!({"target": format!("{}: whetstone bf16 training / PyTorch autocast-bf16 + fused AdamW ≥ 1", r.workload), "threshold": 1.0, "measured": r.ratio()}));
    }
    for r in prec_rows.iter().filter(|r| r.workload == "textcnn" && r.mode == "train" && r.precision == Some(Precision::Fp32)) {
        out.push(json!({"target": "textcnn: whetstone fp32 training / PyTorch fp32 + fused AdamW ≥ 1", "threshold": 1.0, "measured": r.ratio()}));
    }
    out
}

/// The per-phase table: one column per profiled configuration that any workload has.
fn profile_table(profiles: &[Value]) -> String {
    if profiles.is_empty() {
        return String::new();
    }
    let cols: Vec<(&str, &str)> = PROFILE_COLS.iter().copied().filter(|(k, _)| profiles.iter().any(|p| p[*k].is_object())).collect();
    let mut t = String::from("| workload | phase |");
    for (_, title) in &cols {
        t.push_str(&format!(" {title} |"));
    }
    t.push_str(&format!("\n|---|---|{}\n", "---:|".repeat(cols.len())));
    for p in profiles {
        let name = p["workload"].as_str().unwrap_or("?");
        let mut tot = vec![None::<f64>; cols.len()];
        for phase in PHASES {
            t.push_str(&format!("| {name} | {phase} |"));
            for (k, (key, _)) in cols.iter().enumerate() {
                if !p[*key].is_object() {
                    t.push_str(" — |");
                    continue;
                }
                match p[*key][phase].as_f64() {
                    Some(x) => {
                        *tot[k].get_or_insert(0.0) += x;
                        t.push_str(&format!(" {x:.2} |"));
                    }
                    None => t.push_str(" (in forward) |"),
                }
            }
            t.push('\n');
        }
        t.push_str(&format!("| {name} | **total** |"));
        for x in tot {
            match x {
                Some(x) => t.push_str(&format!(" **{x:.2}** |")),
                None => t.push_str(" — |"),
            }
        }
        t.push('\n');
        t.push_str(&format!("| {name} | {WHOLE_STEP} |"));
        for (key, _) in &cols {
            match p[*key][WHOLE_STEP].as_f64() {
                Some(x) => t.push_str(&format!(" {x:.2} |")),
                None => t.push_str(" — |"),
            }
        }
        t.push('\n');
    }
    t
}

struct Tables<'a> {
    main: &'a str,
    precision: &'a str,
    speedup: &'a str,
    targets: &'a str,
    profile: &'a str,
}

fn markdown(args: &Args, report: &Value, tables: &Tables, setups: &[Setup], counts: &[u64]) -> String {
    let m = &report["machine"];
    let s = &report["settings"];
    let flags = m["bf16_flags"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).filter(|f| !f.is_empty()).unwrap_or_else(|| "none".into());
    let g = |k: &str| m["gemm"][k].as_f64().unwrap_or(f64::NAN);
    let gemm_dims = |i: usize, j: usize| format!("{}, {}", m["gemm"]["shape"][i], m["gemm"]["shape"][j]);
    let mut md = String::new();
    md.push_str("# whetstone vs PyTorch: training throughput\n\n");
    md.push_str("Generated by `cargo xtask bench` (`benches/src/bin/train-throughput.rs` with the peer `benches/peers/train_throughput.py`).\n\n");
    md.push_str("## Machine\n\n");
    md.push_str(&format!(
        "- CPU: {} ({} logical CPUs; bf16 feature flags: {})\n- libtorch GEMM on this CPU ({} threads, `linear` of [{}] · [{}]ᵀ, MiniLM's FFN shape): fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s (bf16/fp32 {:.2}×): the ceiling of what autocast's bf16 matmuls can gain here\n- intra-op threads: {} on both sides (`tch::get_num_threads()` → `torch.set_num_threads`)\n- torch {} (the peer; whetstone links the same libtorch through tch {}), Python {}, numpy {}\n- load average (1/5/15 min) at the start: {}; at the end: {}\n\n",
        m["cpu"].as_str().unwrap_or("?"), m["logical_cpus"], flags, m["threads"], gemm_dims(0, 1), gemm_dims(2, 1), g("fp32_gflops"), g("bf16_gflops"), g("bf16_gflops") / g("fp32_gflops"), m["threads"], m["torch"].as_str().unwrap_or("?"), m["tch"].as_str().unwrap_or("?"),
        m["python"].as_str().unwrap_or("?"), m["numpy"].as_str().unwrap_or("?"), m["load_average_at_start"].as_str().unwrap_or("?"), m["load_average_at_end"].as_str().unwrap_or("?")
    ));
    let cpus = m["logical_cpus"].as_f64().unwrap_or(0.0).max(1.0);
    let (peak, typical) = (m["other_cpus_peak"].as_f64().unwrap_or(0.0), m["other_cpus_median"].as_f64().unwrap_or(0.0));
    md.push_str(&format!(
        "Other processes' CPU use (the machine's busy time from /proc/stat, hypervisor steal included, less this bench's own processes', per second, over each repetition of each workload): median {typical:.2} CPUs, worst {peak:.2} CPUs of {cpus:.0}. The per-repetition spread (min–max columns; `other_cpus` per repetition in `bench.json`) shows what noise the medians absorbed.\n\n"
    ));
    if peak >= 0.25 {
        md.push_str(&format!(
            "**Warning: the machine was shared** (other processes took up to {peak:.2} of {cpus:.0} CPUs during a repetition): they competed for the CPUs, so some repetitions are depressed and noisy, not necessarily equally on both sides. The medians discard the worst repetitions only when few are affected; rerun on a quiet machine before drawing conclusions from small differences.\n\n"
        ));
    }
    md.push_str("## Workloads\n\n");
    for (st, n) in setups.iter().zip(counts) {
        let w = st.w;
        let extra = if w.name == "minilm" {
            format!(
                " The MiniLM-L6 architecture (6 layers × 384, 12 heads, FFN 1536, 512 positions, vocabulary {}, mean pooling) is **randomly initialised** (BERT's N(0, 0.02)) instead of loading the `minilm-l6` checkpoint: throughput depends on the shapes, not the values. Its batches come from the benchmark tokenizer (ids < {}), not MiniLM's own WordPiece, with the same max_len {MAX_LEN}.",
                st.vocab, s["vocab_size"]
            )
        } else {
            String::new()
        };
        md.push_str(&format!(
            "- **{}**: recipe `{}`, {} parameters (identical names and shapes checked against the peer), batch {}, AdamW lr {} wd {} (none on bias/LayerNorm), clip {}, dropout on; {} timed steps after {} warm-up steps per training measurement.{extra}\n",
            w.name, w.recipe.name, n, w.batch_size(), w.recipe.optim.lr, w.recipe.optim.weight_decay, w.clip_norm(), st.steps, st.warmup
        ));
    }
    md.push_str(&format!(
        "\nData: rotten-tomatoes (80/10/10 split, seed 42: {} train, {} valid), WordPiece vocabulary {} (min frequency 2), max_len {}.\n\n",
        s["train_examples"], s["valid_examples"], s["vocab_size"], MAX_LEN
    ));
    md.push_str("## Method\n\n");
    let variants: Vec<String> = s["torch_adamw_variants"].as_array().map(|a| a.iter().filter_map(Value::as_str).filter(|v| *v != "default").map(|v| format!("`AdamW({v}=True)`")).collect()).unwrap_or_default();
    let variants_text = if variants.is_empty() {
        "Only torch's default AdamW is measured in the fp32 rows.".to_string()
    } else {
        format!(
            "In every repetition the same peer process then trains again from the same initialisation with {} ({}); these rows reuse that repetition's whetstone run, so every row's ratio is the median whetstone seq/s over the median PyTorch seq/s of the same {} repetitions.",
            variants.join(" and "),
            if variants.len() == 1 { "one extra row" } else { "one extra row each" },
            args.reps
        )
    };
    let b32_sets: Vec<String> = setups.iter().map(|st| format!("{} {}", st.w.name, st.infer_set("b32").len())).collect();
    md.push_str(&format!(
        "- **Same batches.** The first training batches of epoch 0 of the `BucketBatcher` order (exactly what `Trainer::fit` replays) are written, padded, to a batch file; the peer reads the same ids/mask/labels. Inference uses `predict`'s length-sorted batches of the validation split: batch {INFER_BATCH} over its first examples ({}), batch 1 over its first {} examples.\n\
- **Whetstone** runs its real code path: `Trainer::fit` over a `BucketedSource` (per step, `Trainer::train_step`: manual_seed, zero_grad, make_batch, forward, cross-entropy, backward, `clip_grad_norm`, schedule, `Optimizer::step` of the recipe's optimiser as `OptimConfig::build` makes it), a warm-up `fit` then a timed `fit` on the same model, its optimiser continuing from the warm-up's state (wall clock around `fit`). Inference: `predict` (eval mode, no_grad, with its loss/softmax), 1 warm-up pass then {} timed passes.\n\
- **PyTorch** (eager, plain `torch.nn` re-implementation with the same parameter names) does the same per-step sequence: `torch.manual_seed`, `zero_grad()` (default `set_to_none=True`), forward, `F.cross_entropy`, `.item()`, backward, `clip_grad_norm_`, set lr, `AdamW.step()` (same two parameter groups: no decay on bias/LayerNorm). The plain fp32 rows use torch's CPU default implementation (for-loop). {variants_text} Inference: `model.eval()`, `torch.no_grad()`, forward, float32 logits, summed cross-entropy `.item()`, softmax to numpy, arg-max, 1 warm-up pass then {} timed passes.\n\
- **Precision rows** (`--precisions {}`): whetstone's `Trainer` with `.precision(p)` (bf16: each micro-batch's batch building, forward, loss and backward run inside the libtorch CPU autocast region the `Trainer` holds per step; float32 master weights, gradients and optimiser state) against the peer with `torch.optim.AdamW(fused=True)`, for bf16 with forward and loss under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (a fresh context per step) and the backward outside it, as torch recommends. Inference rows: `predict` inside `Precision::region` (one region per pass) vs the peer's eval-mode forward under `torch.no_grad()` and, for bf16, `torch.autocast` (one context per pass). The fp32 training row is the same whetstone run and the same PyTorch fused-AdamW run as the `fused=True` row of the first table (for the workloads that have one); the speed-ups divide medians of the same run's repetitions.\n\
- **Fresh processes, every batch shape seen before anything is timed.** For each repetition and workload, each side measures in a fresh process: whetstone's bench binary re-executes itself for the job (so nothing the other workloads left in libtorch's caches or the allocator carries over), the peer is a fresh Python process. libtorch builds some kernels per input shape on first use (oneDNN convolution and bf16 matmul primitives, in an LRU cache) and the bucketed batches have dozens of lengths, so each process first runs every measured training batch once, untimed, in each precision it trains in (whetstone: a `fit` over them on a throwaway model; the peer: forward and backward on a throwaway model). Inference measurements repeat an untimed pass over the same batches first. The per-phase profiles run in fresh, primed processes too.
- **Repetitions**: {} interleaved (per workload: whetstone in every precision, then one PyTorch process with every variant and inference measurement); the tables show medians of seq/s (examples per second). Ratio > 1 means whetstone is faster.\n\
- Initialisation schemes differ where torch's defaults differ (TextCNN conv/linear); shapes, parameter counts, dropout and the arithmetic per step are the same.\n\n",
        b32_sets.join(", "), s["infer_b1_examples"], args.infer_passes, args.infer_passes,
        s["precisions"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default(), args.reps
    ));
    md.push_str("## Results\n\n");
    if !tables.main.lines().nth(2).unwrap_or("").is_empty() {
        md.push_str("### fp32, by torch AdamW implementation\n\n");
        md.push_str(tables.main);
        md.push('\n');
    }
    md.push_str("### By precision (PyTorch: fused AdamW; bf16 under torch.autocast)\n\n");
    md.push_str(tables.precision);
    if !tables.speedup.is_empty() {
        md.push_str("\n### bf16 speed-up over fp32 (same run, ratio of medians)\n\n");
        md.push_str(tables.speedup);
    }
    if !tables.targets.is_empty() {
        md.push_str("\n### Targets (issue 10)\n\n");
        md.push_str(tables.targets);
    }
    if !tables.profile.is_empty() {
        let steps: Vec<String> = report["profiles_ms_per_step"].as_array().map(|a| a.iter().map(|p| format!("{} {} steps after {} warm-up", p["workload"].as_str().unwrap_or("?"), p["steps"], p["warmup"])).collect()).unwrap_or_default();
        md.push_str(&format!(
            "\n## Where the time goes\n\nOne run per column (after the timed repetitions; {}), ms per step, on the same batches. Whetstone's phase rows re-enact `Trainer::train_step`'s sequence with the same public library calls (reseed, `begin_step` and `zero_grad`; then, inside the precision's autocast region as the `Trainer` holds it, `BatchSource::batch`, `Objective::loss`, backward; then `clip_grad_norm`, `Optimizer::step`), timing each phase; its `train_step (measured whole)` row times `Trainer::train_step` itself in the same precision on the same batches, so the phase total can be checked against the real step (the difference is the step's own bookkeeping and timer overhead). PyTorch's columns time the peer's step with torch's default AdamW and with `fused=True` in fp32, and with `fused=True` under autocast in bf16 (its bf16 backward runs outside the autocast context). PyTorch's `zero_grad` sets gradients to `None`, so its backward allocates them instead of accumulating into zeroed ones; its batch tensors are built before the loop, so it has no make_batch phase.\n\n{}",
            steps.join("; "),
            tables.profile
        ));
    }
    md.push_str("\nRaw per-repetition numbers are in `bench.json`.\n");
    md
}
