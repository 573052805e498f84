//! `train-throughput`: whetstone's training (and inference) throughput side by side with an
//! eager PyTorch peer on exactly the same batches.
//!
//! For each workload (TextCNN of the default recipe, the rt-transformer recipe's encoder) it
//! builds the first batches of the `BucketBatcher` epoch order on rotten-tomatoes, writes them to
//! a batch file, times whetstone's real `Trainer` on them, then runs the Python peer on the same
//! file with the same thread count, interleaving the two `--reps` times. It prints a table and
//! writes `bench.md` and `bench.json` to `--out`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::{Device, Tensor};
use whetstone_benches::machine::{cpu_model, load_avg, median, peer_check, peer_python};
use whetstone_benches::{Workload, MAX_LEN, VOCAB_SIZE};
use whetstone_data::{encode, load_splits, make_batch, BatchSource, BucketBatcher, BucketedSource, DataSource, Encoded, PlanEntry, TextTokenizer};
use whetstone_optim::{clip_grad_norm, Optimizer};
use whetstone_train::{predict, CrossEntropy, Objective, Silent, StepContext, Trainer};

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
    /// Timed training steps per measurement.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Untimed warm-up steps before each measurement.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed passes over the validation split (batch 32) per inference measurement; 0 skips.
    #[arg(long, default_value_t = 2)]
    infer_passes: usize,
    /// Workloads, comma-separated.
    #[arg(long, default_value = "textcnn,transformer", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Extra torch.optim.AdamW variants for the peer (besides the default), run in every
    /// repetition (same peer process, after the default) and compared with the same whetstone runs.
    #[arg(long, default_value = "foreach,fused", value_delimiter = ',')]
    extra_variants: Vec<String>,
    /// Steps of the per-phase profile runs (after the same warm-up).
    #[arg(long, default_value_t = 30)]
    profile_steps: usize,
    /// Skip the per-phase profile.
    #[arg(long)]
    no_profile: bool,
    /// Intra-op threads (default: libtorch's current setting, tch::get_num_threads()).
    #[arg(long)]
    threads: Option<i32>,
}

const SEED: u64 = 42;
const INFER_BATCH: usize = 32;

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

/// The fixed batch plan of one workload.
struct Plan {
    /// The first training micro-batches of epoch 0, as `Trainer::fit` plans them.
    train: Vec<PlanEntry>,
    infer: Vec<Vec<usize>>,
    lrs: Vec<f64>,
}

fn plan(w: &Workload, d: &Data, n_train: usize) -> Result<Plan> {
    let c = &w.recipe.train;
    // Exactly what `Trainer::fit` replays for epoch 0.
    let order = BucketedSource::new(&d.train, c.batch_size, c.bucket_factor).epoch_plan(SEED, 0)?;
    let total = order.len().div_ceil(c.grad_accum) as u64; // one epoch, as the benchmark trainer is configured
    let lrs = (0..n_train as u64).map(|s| w.recipe.optim.lr * w.recipe.schedule.factor(s, total)).collect();
    let infer = BucketBatcher::new(INFER_BATCH, 1).eval_order(&d.valid.lengths());
    Ok(Plan { train: order.into_iter().take(n_train).collect(), infer, lrs })
}

/// Header line of JSON, then little-endian i64: per batch ids, mask, labels (train, then infer).
fn write_batch_file(path: &Path, d: &Data, p: &Plan) -> Result<()> {
    let mut header = json!({"train": [], "infer": []});
    let mut data: Vec<u8> = Vec::new();
    let train: Vec<Vec<usize>> = p.train.iter().map(|e| e.indices.clone()).collect();
    for (part, enc, batches) in [("train", &d.train, &train), ("infer", &d.valid, &p.infer)] {
        for idx in batches {
            let b = make_batch(enc, idx, Device::Cpu)?;
            let (bs, t) = b.input_ids.size2()?;
            header[part].as_array_mut().unwrap().push(json!([bs, t]));
            for tensor in [&b.input_ids, &b.attention_mask, &b.labels] {
                let v = Vec::<i64>::try_from(tensor.flatten(0, -1))?;
                data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            }
        }
    }
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
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

/// Whetstone training through the real `Trainer`: a warm-up `fit` of `warmup` steps, then a timed
/// `fit` of `steps` steps on the same model, its optimiser continuing from the warm-up's state
/// (both replay epoch 0 from its start).
fn ws_train(ctx: &Ctx, w: &Workload) -> Result<Value> {
    let d = ctx.data;
    let (vs, model) = w.build(d.vocab_size as i64, d.labels.len() as i64, SEED as i64)?;
    let run_dir = tempfile::tempdir_in(ctx.tmp.path())?;
    let mut config = w.recipe.train.clone();
    config.epochs = 1;
    config.patience = 0;
    config.eval_every = 0;
    config.checkpoint_every = 0;
    config.log_every = 1 << 40;
    let source = BucketedSource::new(&d.train, config.batch_size, config.bucket_factor);
    let empty = Encoded { ids: vec![], labels: vec![], pad_id: d.train.pad_id };
    let trainer = |optim: Box<dyn Optimizer>, stop_after: usize| {
        Trainer::new(&*model, &vs, optim, w.recipe.optim.lr, run_dir.path())
            .schedule(w.recipe.schedule.clone())
            .config(config.clone())
            .seed(SEED)
            .device(Device::Cpu)
            .label_names(d.labels.clone())
            .observer(Silent)
            .stop_after(stop_after as u64)
    };
    let mut warm = trainer(w.recipe.optim.build(&vs)?, ctx.args.warmup.max(1));
    warm.fit(&source, &empty, false)?;
    let state = warm.optimizer().state();
    drop(warm);
    let mut optim = w.recipe.optim.build(&vs)?;
    optim.load_state(&state)?;
    let mut timed = trainer(optim, ctx.args.steps);
    let t0 = Instant::now();
    let s = timed.fit(&source, &empty, false)?;
    let wall = t0.elapsed().as_secs_f64();
    ensure!(s.progress.step == ctx.args.steps as u64, "trainer ran {} steps, expected {}", s.progress.step, ctx.args.steps);
    let n = s.progress.examples_seen;
    Ok(json!({"seq_per_s": n as f64 / wall, "trainer_seq_per_s": s.seq_per_s, "seconds": wall, "examples": n}))
}

fn ws_infer(ctx: &Ctx, w: &Workload) -> Result<Value> {
    let d = ctx.data;
    let (_vs, model) = w.build(d.vocab_size as i64, d.labels.len() as i64, SEED as i64)?;
    predict(&*model, &d.valid, INFER_BATCH, Device::Cpu)?; // warm-up
    let t0 = Instant::now();
    for _ in 0..ctx.args.infer_passes {
        predict(&*model, &d.valid, INFER_BATCH, Device::Cpu)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    let n = d.valid.len() * ctx.args.infer_passes;
    Ok(json!({"seq_per_s": n as f64 / dt, "seconds": dt, "examples": n}))
}

/// Phases of whetstone's step, in the order the profile table shows them.
const PHASES: [&str; 6] = ["zero_grad", "make_batch", "forward+loss", "backward", "clip", "optimizer"];
/// The row of the profile table that times `Trainer::train_step` itself.
const WHOLE_STEP: &str = "train_step (measured whole)";

/// Per-phase breakdown of whetstone's step, and the step itself.
///
/// The phase rows re-enact `Trainer::train_step`'s sequence with the same public library calls
/// (reseed and `Optimizer::zero_grad`, `BatchSource::batch`, `Objective::loss` of
/// `CrossEntropy` and reading the loss, `backward`, `clip_grad_norm`, `Optimizer::step`),
/// timing each. The `WHOLE_STEP` row times `Trainer::train_step` itself on the same batches,
/// from the same initialisation, so the phase sum can be checked against the real step.
fn ws_profile(ctx: &Ctx, w: &Workload, p: &Plan) -> Result<BTreeMap<&'static str, f64>> {
    let d = ctx.data;
    let c = &w.recipe.train;
    let source = BucketedSource::new(&d.train, c.batch_size, c.bucket_factor);
    let steps = ctx.args.profile_steps.clamp(1, p.train.len());
    let mut out = BTreeMap::new();
    {
        let (vs, model) = w.build(d.vocab_size as i64, d.labels.len() as i64, SEED as i64)?;
        let mut optim: Box<dyn Optimizer> = w.recipe.optim.build(&vs)?;
        let mut obj = CrossEntropy::default();
        let params: Vec<Tensor> = optim.params().into_iter().map(Tensor::shallow_clone).collect();
        let params: Vec<&Tensor> = params.iter().collect();
        let clip = w.clip_norm();
        let mut run = |n: usize, acc: &mut [f64; 6]| -> Result<()> {
            for (s, entry) in p.train.iter().take(n).enumerate() {
                let t = Instant::now();
                tch::manual_seed(s as i64);
                optim.zero_grad();
                let t1 = Instant::now();
                let batch = source.batch(entry, Device::Cpu)?;
                let t2 = Instant::now();
                let mut cx = StepContext::new(&*model, &vs, s as u64, 0, Device::Cpu, s as u64);
                let loss = obj.loss(&mut cx, &batch)?;
                let _ = loss.f_double_value(&[])?;
                let t3 = Instant::now();
                loss.f_backward()?;
                let t4 = Instant::now();
                if clip > 0.0 {
                    clip_grad_norm(&params, clip)?;
                }
                let t5 = Instant::now();
                optim.step(p.lrs[s])?;
                let t6 = Instant::now();
                for (i, (a, b)) in [(t, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)].into_iter().enumerate() {
                    acc[i] += (b - a).as_secs_f64();
                }
            }
            Ok(())
        };
        let mut scratch = [0.0; 6];
        run(ctx.args.warmup, &mut scratch)?;
        let mut acc = [0.0f64; 6];
        run(steps, &mut acc)?;
        out.extend(PHASES.iter().zip(acc).map(|(n, a)| (*n, 1e3 * a / steps as f64)));
    }
    // The real step, on a fresh model and optimiser from the same seed.
    let (vs, model) = w.build(d.vocab_size as i64, d.labels.len() as i64, SEED as i64)?;
    let mut trainer = Trainer::new(&*model, &vs, w.recipe.optim.build(&vs)?, w.recipe.optim.lr, ctx.tmp.path()).config(c.clone()).seed(SEED).device(Device::Cpu).observer(Silent);
    let mut run = |n: usize| -> Result<f64> {
        let t = Instant::now();
        for (s, entry) in p.train.iter().take(n).enumerate() {
            trainer.train_step(&source, std::slice::from_ref(entry), s as u64, 0, p.lrs[s])?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    run(ctx.args.warmup)?;
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

fn peer_job(ctx: &Ctx, w: &Workload, p: &Plan, batch_file: &Path, variants: &[&str], infer: bool) -> Value {
    let model = serde_json::to_value(w.model_config()).expect("model config serialises");
    json!({
        "batch_file": batch_file,
        "kind": w.name,
        "model": model,
        "vocab_size": ctx.data.vocab_size,
        "num_labels": ctx.data.labels.len(),
        "threads": ctx.threads,
        "seed": SEED,
        "warmup": ctx.args.warmup,
        "steps": ctx.args.steps,
        "lr": w.recipe.optim.lr,
        "lrs": p.lrs,
        "weight_decay": w.recipe.optim.weight_decay,
        "no_decay": whetstone_optim::NO_DECAY,
        "clip": w.clip_norm(),
        "variants": variants,
        "infer_passes": if infer { ctx.args.infer_passes } else { 0 },
    })
}

struct Row {
    workload: String,
    mode: String,
    ws: Vec<f64>,
    py: Vec<f64>,
    note: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        median(&self.ws) / median(&self.py)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("train-throughput: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    ensure!(args.reps >= 1 && args.steps >= 1, "--reps and --steps must be >= 1");
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
    let load_start = load_avg();
    let t_start = Instant::now();
    let data = load_data()?;
    eprintln!(
        "train-throughput: rotten-tomatoes: {} train / {} valid examples, vocabulary {} ({:.1}s)",
        data.train.len(),
        data.valid.len(),
        data.vocab_size,
        t_start.elapsed().as_secs_f64()
    );
    let ctx = Ctx { args: &args, python, data: &data, tmp: tempfile::tempdir()?, threads };
    let n_train = args.steps.max(args.warmup);

    // Plans, batch files and the architecture check (names, shapes and count must agree).
    let mut plans = Vec::new();
    let mut param_counts = Vec::new();
    for w in &workloads {
        let p = plan(w, &data, n_train)?;
        ensure!(p.train.len() == n_train, "{}: the epoch has only {} batches, need {n_train}", w.name, p.train.len());
        let file = ctx.tmp.path().join(format!("{}.batches", w.name));
        write_batch_file(&file, &data, &p)?;
        let (vs, _m) = w.build(data.vocab_size as i64, data.labels.len() as i64, SEED as i64)?;
        let ws_count = whetstone_models::count_parameters(&vs);
        let mut ws_shapes: Vec<(String, Vec<i64>)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n, t.size())).collect();
        ws_shapes.sort();
        let mut job = peer_job(&ctx, w, &p, &file, &[], false);
        job["steps"] = json!(0);
        job["warmup"] = json!(0);
        let info = run_peer(&ctx, &job)?;
        let py_count = info["params"].as_u64().unwrap_or(0);
        let mut py_shapes: Vec<(String, Vec<i64>)> = info["param_shapes"]
            .as_array()
            .context("peer reported no parameter shapes")?
            .iter()
            .map(|e| (e[0].as_str().unwrap_or("").to_string(), e[1].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()))
            .collect();
        py_shapes.sort();
        println!("{:<12} parameters: whetstone {ws_count}, PyTorch {py_count}", w.name);
        if ws_count != py_count || ws_shapes != py_shapes {
            let only_ws: Vec<_> = ws_shapes.iter().filter(|s| !py_shapes.contains(s)).collect();
            let only_py: Vec<_> = py_shapes.iter().filter(|s| !ws_shapes.contains(s)).collect();
            bail!("{}: the architectures differ: whetstone {ws_count} parameters, PyTorch peer {py_count}\n  only in whetstone: {only_ws:?}\n  only in the peer: {only_py:?}", w.name);
        }
        plans.push((p, file));
        param_counts.push(ws_count);
    }

    // Interleaved measurements.
    let extra_variants: Vec<&str> = args.extra_variants.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    for v in &extra_variants {
        ensure!(matches!(*v, "foreach" | "fused"), "unknown --extra-variants entry `{v}` (known: foreach, fused)");
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut raw = Vec::new();
    let row_index = |rows: &mut Vec<Row>, workload: &str, mode: &str, note: &str| -> usize {
        if let Some(i) = rows.iter().position(|r| r.workload == workload && r.mode == mode) {
            return i;
        }
        rows.push(Row { workload: workload.into(), mode: mode.into(), ws: vec![], py: vec![], note: note.into() });
        rows.len() - 1
    };
    for rep in 0..args.reps {
        for (w, (p, file)) in workloads.iter().zip(&plans) {
            let wt = ws_train(&ctx, w)?;
            let wi = if args.infer_passes > 0 { Some(ws_infer(&ctx, w)?) } else { None };
            // Every variant in every repetition, so each row's ratio compares medians of the
            // same repetitions (and the same whetstone runs).
            let variants: Vec<&str> = std::iter::once("default").chain(extra_variants.iter().copied()).collect();
            let py = run_peer(&ctx, &peer_job(&ctx, w, p, file, &variants, args.infer_passes > 0))?;
            let train_mode = format!("train, batch {}", w.batch_size());
            let i = row_index(&mut rows, w.name, &train_mode, "whetstone `Trainer` vs torch.optim.AdamW default (CPU: for-loop)");
            rows[i].ws.push(wt["seq_per_s"].as_f64().unwrap());
            rows[i].py.push(py["train"]["default"]["seq_per_s"].as_f64().context("peer: no default result")?);
            for v in &variants[1..] {
                let s = py["train"][*v]["seq_per_s"].as_f64().with_context(|| format!("peer: no {v} result"))?;
                let i = row_index(&mut rows, w.name, &format!("{train_mode} (torch AdamW {v}=True)"), "same whetstone runs; PyTorch with another AdamW implementation");
                rows[i].ws.push(wt["seq_per_s"].as_f64().unwrap());
                rows[i].py.push(s);
            }
            if let Some(wi) = &wi {
                let i = row_index(&mut rows, w.name, &format!("inference, batch {INFER_BATCH}"), "whetstone `predict` vs eval()+no_grad, same batches");
                rows[i].ws.push(wi["seq_per_s"].as_f64().unwrap());
                rows[i].py.push(py["infer"]["seq_per_s"].as_f64().context("peer: no inference result")?);
            }
            eprintln!(
                "  rep {}/{} {:<12} whetstone {:>8.1} seq/s  PyTorch {:>8.1} seq/s (train)",
                rep + 1,
                args.reps,
                w.name,
                wt["seq_per_s"].as_f64().unwrap(),
                py["train"]["default"]["seq_per_s"].as_f64().unwrap()
            );
            raw.push(json!({"rep": rep, "workload": w.name, "whetstone": {"train": wt, "infer": wi}, "pytorch": {"train": py["train"], "infer": py["infer"]}}));
        }
    }

    // Per-phase profiles: whetstone's step vs the peer's, with torch's default AdamW and with
    // its fastest variant (fused) when that is measured.
    let profile_variants: Vec<&str> = std::iter::once("profile").chain(extra_variants.iter().filter(|v| **v == "fused").map(|_| "profile-fused")).collect();
    let mut profiles = Vec::new();
    if !args.no_profile {
        for (w, (p, file)) in workloads.iter().zip(&plans) {
            let ws = ws_profile(&ctx, w, p)?;
            let mut job = peer_job(&ctx, w, p, file, &profile_variants, false);
            job["steps"] = json!(args.profile_steps.clamp(1, p.train.len()));
            let py = run_peer(&ctx, &job)?;
            let mut entry = json!({"workload": w.name, "whetstone": ws});
            for v in &profile_variants {
                let key = if *v == "profile" { "pytorch".to_string() } else { format!("pytorch_{}", v.trim_start_matches("profile-")) };
                entry[key] = py["train"][*v]["phases_ms_per_step"].clone();
            }
            profiles.push(entry);
        }
    }

    // Output.
    let mut table = String::new();
    table.push_str("| workload | mode | whetstone seq/s | PyTorch seq/s | whetstone / PyTorch |\n|---|---|---:|---:|---:|\n");
    for r in &rows {
        table.push_str(&format!("| {} | {} | {:.1} | {:.1} | {:.2}× |\n", r.workload, r.mode, median(&r.ws), median(&r.py), r.ratio()));
    }
    let mut prof_table = String::new();
    if !profiles.is_empty() {
        let with_fused = profile_variants.contains(&"profile-fused");
        let cols: Vec<(&str, &str)> = if with_fused {
            vec![("whetstone", "whetstone"), ("pytorch", "PyTorch (AdamW default)"), ("pytorch_fused", "PyTorch (AdamW fused=True)")]
        } else {
            vec![("whetstone", "whetstone"), ("pytorch", "PyTorch (AdamW default)")]
        };
        prof_table.push_str("| workload | phase |");
        for (_, title) in &cols {
            prof_table.push_str(&format!(" {title} ms/step |"));
        }
        prof_table.push_str(&format!("\n|---|---|{}\n", "---:|".repeat(cols.len())));
        for p in &profiles {
            let name = p["workload"].as_str().unwrap_or("?");
            let mut tot = vec![0.0; cols.len()];
            for phase in PHASES {
                prof_table.push_str(&format!("| {name} | {phase} |"));
                for (k, (key, _)) in cols.iter().enumerate() {
                    match p[*key][phase].as_f64() {
                        Some(x) => {
                            tot[k] += x;
                            prof_table.push_str(&format!(" {x:.2} |"));
                        }
                        None => prof_table.push_str(" (in forward) |"),
                    }
                }
                prof_table.push('\n');
            }
            prof_table.push_str(&format!("| {name} | **total** |"));
            for t in tot {
                prof_table.push_str(&format!(" **{t:.2}** |"));
            }
            prof_table.push('\n');
            prof_table.push_str(&format!("| {name} | {WHOLE_STEP} |"));
            for (key, _) in &cols {
                match p[*key][WHOLE_STEP].as_f64() {
                    Some(x) => prof_table.push_str(&format!(" {x:.2} |")),
                    None => prof_table.push_str(" — |"),
                }
            }
            prof_table.push('\n');
        }
    }
    println!();
    println!("{table}");
    if !prof_table.is_empty() {
        println!("Per-phase time (one run each, {} steps after {} warm-up):\n\n{prof_table}", args.profile_steps.min(n_train), args.warmup);
    }

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let machine = json!({
        "cpu": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "threads": threads,
        "torch": torch_version,
        "python": peer_info["python"],
        "numpy": peer_info["numpy"],
        "tch": "0.24",
        "load_average_at_start": load_start,
        "load_average_at_end": load_avg(),
    });
    let report = json!({
        "machine": machine,
        "settings": {"reps": args.reps, "steps": args.steps, "warmup": args.warmup, "infer_passes": args.infer_passes, "seed": SEED,
                     "torch_adamw_variants": std::iter::once("default").chain(extra_variants.iter().copied()).collect::<Vec<_>>(), "profile_steps": args.profile_steps,
                     "vocab_size": data.vocab_size, "max_len": MAX_LEN, "train_examples": data.train.len(), "valid_examples": data.valid.len()},
        "workloads": workloads.iter().zip(&param_counts).map(|(w, n)| json!({"name": w.name, "params": n, "batch_size": w.batch_size(),
            "clip_norm": w.clip_norm(), "lr": w.recipe.optim.lr, "weight_decay": w.recipe.optim.weight_decay, "model": w.model_config()})).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| json!({"workload": r.workload, "mode": r.mode, "whetstone_seq_per_s": r.ws, "pytorch_seq_per_s": r.py,
            "whetstone_median": median(&r.ws), "pytorch_median": median(&r.py), "ratio": r.ratio(), "note": r.note})).collect::<Vec<_>>(),
        "profiles_ms_per_step": profiles,
        "raw": raw,
        "total_seconds": t_start.elapsed().as_secs_f64(),
    });
    std::fs::write(args.out.join("bench.json"), serde_json::to_string_pretty(&report)?)?;
    let md = markdown(&args, &report, &table, &prof_table, &workloads, &param_counts);
    std::fs::write(args.out.join("bench.md"), md)?;
    eprintln!("train-throughput: wrote {} and {} ({:.0}s)", args.out.join("bench.md").display(), args.out.join("bench.json").display(), t_start.elapsed().as_secs_f64());
    Ok(())
}

fn markdown(args: &Args, report: &Value, table: &str, prof_table: &str, workloads: &[Workload], counts: &[u64]) -> String {
    let m = &report["machine"];
    let s = &report["settings"];
    let mut md = String::new();
    md.push_str("# whetstone vs PyTorch: training throughput\n\n");
    md.push_str("Generated by `cargo xtask bench` (`benches/src/bin/train-throughput.rs` with the peer `benches/peers/train_throughput.py`).\n\n");
    md.push_str("## Machine\n\n");
    md.push_str(&format!(
        "- CPU: {} ({} logical CPUs)\n- intra-op threads: {} on both sides (`tch::get_num_threads()` → `torch.set_num_threads`)\n- torch {} (the peer; whetstone links the same libtorch through tch {}), Python {}, numpy {}\n- load average (1/5/15 min) at the start: {}; at the end: {}\n\n",
        m["cpu"].as_str().unwrap_or("?"), m["logical_cpus"], m["threads"], m["torch"].as_str().unwrap_or("?"), m["tch"].as_str().unwrap_or("?"),
        m["python"].as_str().unwrap_or("?"), m["numpy"].as_str().unwrap_or("?"), m["load_average_at_start"].as_str().unwrap_or("?"), m["load_average_at_end"].as_str().unwrap_or("?")
    ));
    let cpus = m["logical_cpus"].as_f64().unwrap_or(0.0).max(1.0);
    let peak = ["load_average_at_start", "load_average_at_end"]
        .iter()
        .filter_map(|k| m[*k].as_str())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .fold(0.0f64, f64::max);
    if peak > cpus {
        md.push_str(&format!(
            "**Warning: the machine was busy** (1-minute load average up to {peak:.1} on {cpus:.0} logical CPUs): other processes competed for the CPUs, so the throughputs are depressed and noisy, not necessarily equally on both sides. Rerun on a quiet machine before drawing conclusions.\n\n"
        ));
    }
    md.push_str("## Workloads\n\n");
    for (w, n) in workloads.iter().zip(counts) {
        md.push_str(&format!(
            "- **{}**: recipe `{}`, {} parameters (identical names and shapes checked against the peer), batch {}, AdamW lr {} wd {} (none on bias/LayerNorm), clip {}, dropout on.\n",
            w.name, w.recipe.name, n, w.batch_size(), w.recipe.optim.lr, w.recipe.optim.weight_decay, w.clip_norm()
        ));
    }
    md.push_str(&format!(
        "\nData: rotten-tomatoes (80/10/10 split, seed 42: {} train, {} valid), WordPiece vocabulary {} (min frequency 2), max_len {}.\n\n",
        s["train_examples"], s["valid_examples"], s["vocab_size"], MAX_LEN
    ));
    md.push_str("## Method\n\n");
    let variants: Vec<String> = s["torch_adamw_variants"].as_array().map(|a| a.iter().filter_map(Value::as_str).filter(|v| *v != "default").map(|v| format!("`AdamW({v}=True)`")).collect()).unwrap_or_default();
    let variants_text = if variants.is_empty() {
        "Only torch's default AdamW is measured.".to_string()
    } else {
        format!(
            "In every repetition the same peer process then trains again from the same initialisation with {} ({}); these rows reuse that repetition's whetstone run, so every row's ratio is the median whetstone seq/s over the median PyTorch seq/s of the same {} repetitions.",
            variants.join(" and "),
            if variants.len() == 1 { "one extra row" } else { "one extra row each" },
            args.reps
        )
    };
    md.push_str(&format!(
        "- **Same batches.** The first {} batches of epoch 0 of the `BucketBatcher` order (exactly what `Trainer::fit` replays) are written, padded, to a batch file; the peer reads the same ids/mask/labels. Inference uses the validation split in `predict`'s length-sorted order, batch {INFER_BATCH}.\n\
- **Whetstone** runs its real code path: `Trainer::fit` over a `BucketedSource` (per step, `Trainer::train_step`: manual_seed, zero_grad, make_batch, forward, cross-entropy, backward, `clip_grad_norm`, schedule, `Optimizer::step` of the recipe's optimiser as `OptimConfig::build` makes it, i.e. whetstone-optim's AdamW on flat buffers with its fused CPU kernel), a {}-step warm-up `fit` then a timed `fit` of {} steps on the same model, its optimiser continuing from the warm-up's state (wall clock around `fit`). Inference: `predict` (eval mode, no_grad, with its loss/softmax), 1 warm-up pass then {} timed passes.\n\
- **PyTorch** (eager, plain `torch.nn` re-implementation with the same parameter names) does the same per-step sequence: `torch.manual_seed`, `zero_grad()` (default `set_to_none=True`), forward, `F.cross_entropy`, `.item()`, backward, `clip_grad_norm_`, set lr, `AdamW.step()` (same two parameter groups: no decay on bias/LayerNorm). The plain rows use torch's CPU default implementation (for-loop). {variants_text}\n\
- **Repetitions**: {} interleaved (whetstone, then PyTorch with every variant, per workload); the table shows medians of seq/s (examples per second). Ratio > 1 means whetstone is faster.\n\
- Initialisation schemes differ where torch's defaults differ (TextCNN conv/linear); shapes, parameter counts, dropout and the arithmetic per step are the same.\n\n",
        args.steps.max(args.warmup), args.warmup, args.steps, args.infer_passes, args.reps
    ));
    md.push_str("## Results\n\n");
    md.push_str(table);
    if !prof_table.is_empty() {
        md.push_str(&format!(
            "\n## Where the time goes\n\nOne run per column (after the timed repetitions), {} steps after {} warm-up steps, ms per step, on the same batches. Whetstone's phase rows re-enact `Trainer::train_step`'s sequence with the same public library calls (reseed and `zero_grad`, `BatchSource::batch`, `Objective::loss`, backward, `clip_grad_norm`, `Optimizer::step`), timing each phase; its `train_step (measured whole)` row times `Trainer::train_step` itself on the same batches, so the phase total can be checked against the real step (the difference is the step's own bookkeeping and timer overhead). PyTorch's columns time the peer's step with torch's default AdamW and, where measured, with `fused=True` (only the optimizer phase should differ between the two). PyTorch's `zero_grad` sets gradients to `None`, so its backward allocates them instead of accumulating into zeroed ones; its batch tensors are built before the loop, so it has no make_batch phase.\n\n{prof_table}",
            args.profile_steps.min(args.steps.max(args.warmup)), args.warmup
        ));
    }
    md.push_str("\nRaw per-repetition numbers are in `bench.json`.\n");
    md
}
