//! `dist-throughput`: data-parallel training throughput of whetstone against PyTorch
//! DistributedDataParallel (Gloo) on this machine, on the same global batches, plus a scaling
//! model on paper.
//!
//! For each workload (the rt-transformer recipe's 2 × 128 encoder, the default recipe's
//! TextCNN) it takes the first global batches of epoch 0 (the `BucketedSource` plan that a
//! 2-replica `ShardedSource` shares out, written to a batch file for the peer) and measures,
//! `--reps` times, interleaved, each in fresh processes:
//!
//! - whetstone, 1 process × 2 threads: `Trainer::train_step` on every global batch;
//! - whetstone, 2 processes × 1 thread: the binary re-executes itself as two workers with the
//!   torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); each joins
//!   data parallelism through whetstone-dist (`Rendezvous::from_env`, `DataParallel::join`),
//!   trains on its `ShardedSource` share with `Trainer::train_step` (which all-reduces the
//!   gradients) and reports its step time and the all-reduce statistics;
//! - PyTorch, 1 process × 2 threads (plain model) and DDP 2 processes × 1 thread (Gloo, default
//!   25 MB buckets), from `benches/peers/ddp_throughput.py` on the same batches.
//!
//! It writes `dist.md` and `dist.json` to `--out`, with the scaling model (ring all-reduce of
//! MiniLM-L6- and BERT-base-sized gradients over 2–64 machines at 25 and 100 Gb/s against a
//! compute time calibrated on the measured one).

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tch::Device;
use whetstone_benches::machine::{cpu_model, load_avg, median, peer_check, peer_python, CpuClock};
use whetstone_benches::{Workload, MAX_LEN, VOCAB_SIZE};
use whetstone_data::{encode, load_splits, make_batch, shard_range, BatchSource, BucketedSource, DataSource, Encoded, PlanEntry, ShardedSource, TextTokenizer};
use whetstone_dist::{DataParallel, Rendezvous};
use whetstone_optim::Optimizer;
use whetstone_train::{Replicas, Silent, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Data-parallel training throughput: whetstone (whetstone-dist) vs PyTorch DDP (Gloo), on identical global batches")]
struct Args {
    /// Python interpreter with torch and numpy (default: $WHETSTONE_PYTHON, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/ddp_throughput.py"))]
    peer: PathBuf,
    /// Folder for dist.md and dist.json.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Interleaved repetitions of the four setups; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Timed training steps per measurement.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Untimed warm-up steps before each measurement.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Workloads, comma-separated (transformer, textcnn).
    #[arg(long, default_value = "transformer,textcnn", value_delimiter = ',')]
    workloads: Vec<String>,
    /// torch.optim.AdamW implementations of the PyTorch rows (default, foreach, fused); the
    /// first is the baseline of the ratios.
    #[arg(long, default_value = "fused,default", value_delimiter = ',')]
    torch_adamw: Vec<String>,
    /// Smoke test: 1 repetition of 8 timed steps after 3 warm-up steps (reports go to
    /// dist-quick.md / dist-quick.json).
    #[arg(long)]
    quick: bool,
    /// Per-replica batch of the scaling model.
    #[arg(long, default_value_t = 32)]
    model_batch: usize,
    /// Measure nothing: rebuild the summary, the scaling model and the report files from an
    /// earlier run's JSON (its machine, settings and repetitions) into --out.
    #[arg(long)]
    report_only: Option<PathBuf>,
    /// Internal: run one whetstone job (a JSON file written by the parent) in this process and
    /// print its results as one line of JSON.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

const SEED: u64 = 42;
/// Processes of the data-parallel setups.
const WORLD: usize = 2;
/// Intra-op threads of the single-process setups (the whole 2-core machine).
const THREADS: i32 = 2;
/// How long a measuring process may take before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(1200);

struct Data {
    train: Encoded,
    labels: usize,
    vocab_size: usize,
}

fn load_data() -> Result<Data> {
    let src = DataSource::Named { name: "rotten-tomatoes".to_string() };
    let splits = load_splits(&src, 0.1, 0.1, SEED).context("loading rotten-tomatoes (run `cargo xtask data rotten-tomatoes` first, or set WHETSTONE_DATA)")?;
    let tok = TextTokenizer::train_wordpiece(&splits.train.texts, VOCAB_SIZE, 2, true)?;
    Ok(Data { train: encode(&tok, &splits.train, MAX_LEN)?, labels: splits.labels.names.len(), vocab_size: tok.vocab_size() })
}

/// The global batches a measurement replays (the first `n` of epoch 0, as a `WORLD`-replica
/// `ShardedSource` plans them) and the schedule's learning rate at each step.
struct Plan {
    global: Vec<PlanEntry>,
    lrs: Vec<f64>,
}

fn source<'a>(d: &'a Data, w: &Workload) -> BucketedSource<'a> {
    let c = &w.recipe.train;
    BucketedSource::new(&d.train, c.batch_size, c.bucket_factor)
}

fn plan(d: &Data, w: &Workload, n: usize) -> Result<Plan> {
    ensure!(w.recipe.train.grad_accum <= 1, "{}: gradient accumulation is not part of this benchmark", w.name);
    let inner = source(d, w);
    let global = ShardedSource::new(&inner, 0, WORLD)?.global_plan(SEED, 0)?;
    ensure!(global.len() >= n, "{}: the epoch has only {} global batches, need {n}", w.name, global.len());
    let total = global.len() as u64; // one epoch, as in train-throughput
    let lrs = (0..n as u64).map(|s| w.recipe.optim.lr * w.recipe.schedule.factor(s, total)).collect();
    Ok(Plan { global: global.into_iter().take(n).collect(), lrs })
}

/// The recipe's loop settings (only clipping matters to `train_step`).
fn one_epoch(train: &whetstone_train::TrainConfig) -> whetstone_train::TrainConfig {
    whetstone_train::TrainConfig { epochs: 1, patience: 0, eval_every: 0, checkpoint_every: 0, log_every: 1 << 40, ..train.clone() }
}

/// The batch file of `train_throughput.py` (read by the DDP peer through it): a header line of
/// JSON, then little-endian i64 ids, mask and labels of each global batch.
fn write_batch_file(d: &Data, p: &Plan, path: &Path) -> Result<()> {
    let mut shapes = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for e in &p.global {
        let b = make_batch(&d.train, &e.indices, Device::Cpu)?;
        let (bs, t) = b.input_ids.size2()?;
        shapes.push(json!([bs, t]));
        for tensor in [&b.input_ids, &b.attention_mask, &b.labels] {
            let v = Vec::<i64>::try_from(tensor.flatten(0, -1))?;
            data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
    }
    let header = json!({"parts": ["train"], "train": shapes});
    let mut bytes = format!("{header}\n").into_bytes();
    bytes.extend(data);
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

// --------------------------------------------------------------------------- whetstone side

/// A `Trainer` as the benchmark drives it: the recipe's optimiser settings and clipping, fp32,
/// silent, never writing (only `train_step` is called).
fn trainer<'a>(w: &Workload, model: &'a dyn whetstone_models::TextClassifier, vs: &'a tch::nn::VarStore, optim: Box<dyn Optimizer>, run_dir: &Path) -> Trainer<'a> {
    Trainer::new(model, vs, optim, w.recipe.optim.lr, run_dir).config(one_epoch(&w.recipe.train)).seed(SEED).device(Device::Cpu).observer(Silent)
}

/// Every batch of `entries` once through `Trainer::train_step` on a throwaway model, untimed:
/// libtorch builds some kernels per input shape on first use (the peer primes too).
fn prime(d: &Data, w: &Workload, vocab: usize, src: &dyn BatchSource, entries: &[PlanEntry], lrs: &[f64], run_dir: &Path) -> Result<()> {
    let (vs, model) = w.build(vocab as i64, d.labels as i64, SEED as i64)?;
    let mut t = trainer(w, &*model, &vs, w.recipe.optim.build(&vs)?, run_dir);
    for (i, e) in entries.iter().enumerate() {
        t.train_step(src, std::slice::from_ref(e), i as u64, 0, lrs[i])?;
    }
    Ok(())
}

/// The `--child` side. Job: `{"mode": "single" | "dp", "workload", "vocab_size", "warmup",
/// "steps"}`. `single`: 2 threads, every global batch. `dp`: one rank of a data-parallel run
/// (torchrun environment), 1 thread, its share of every global batch.
fn child(job_path: &Path) -> Result<()> {
    let job: Value = serde_json::from_slice(&std::fs::read(job_path)?)?;
    let w = Workload::by_name(job["workload"].as_str().context("job: no workload")?)?;
    let (warmup, steps) = (job["warmup"].as_u64().context("job: warmup")? as usize, job["steps"].as_u64().context("job: steps")? as usize);
    let mode = job["mode"].as_str().context("job: no mode")?;
    tch::set_num_threads(if mode == "dp" { 1 } else { THREADS });
    let d = load_data()?;
    ensure!(job["vocab_size"].as_u64() == Some(d.vocab_size as u64), "the measuring process's tokenizer differs from the parent's");
    let vocab = w.vocab(d.vocab_size)?;
    let p = plan(&d, &w, steps.max(warmup))?;
    let inner = source(&d, &w);
    let tmp = tempfile::tempdir()?;
    let out = match mode {
        "single" => {
            prime(&d, &w, vocab, &inner, &p.global, &p.lrs, tmp.path())?;
            let (vs, model) = w.build(vocab as i64, d.labels as i64, SEED as i64)?;
            let mut t = trainer(&w, &*model, &vs, w.recipe.optim.build(&vs)?, tmp.path());
            for (i, (e, &lr)) in p.global.iter().zip(&p.lrs).take(warmup).enumerate() {
                t.train_step(&inner, std::slice::from_ref(e), i as u64, 0, lr)?;
            }
            let (mut examples, mut loss) = (0usize, f64::NAN);
            let t0 = Instant::now();
            for (i, (e, &lr)) in p.global.iter().zip(&p.lrs).take(steps).enumerate() {
                let r = t.train_step(&inner, std::slice::from_ref(e), i as u64, 0, lr)?;
                examples += r.examples;
                loss = r.loss;
            }
            let wall = t0.elapsed().as_secs_f64();
            json!({"seq_per_s": examples as f64 / wall, "ms_per_step": 1e3 * wall / steps as f64, "seconds": wall, "examples": examples, "steps": steps, "last_loss": loss,
                   "threads": tch::get_num_threads(), "params": whetstone_models::count_parameters(&vs)})
        }
        "dp" => dp_rank(&d, &w, vocab, &p, &inner, warmup, steps, tmp.path())?,
        other => bail!("job: unknown mode {other:?}"),
    };
    println!("{out}");
    Ok(())
}

/// One rank of the whetstone data-parallel measurement.
#[allow(clippy::too_many_arguments)]
fn dp_rank(d: &Data, w: &Workload, vocab: usize, p: &Plan, inner: &BucketedSource, warmup: usize, steps: usize, run_dir: &Path) -> Result<Value> {
    let rv = Rendezvous::from_env()?.context("no data-parallel environment (WORLD_SIZE unset or 1)")?;
    let (rank, world) = (rv.rank, rv.world);
    let shard = ShardedSource::new(inner, rank, world)?;
    let local: Vec<PlanEntry> = shard.epoch_plan(SEED, 0)?.into_iter().take(p.global.len()).collect();
    // The share is the documented contiguous split of the very global batch the others replay.
    for (l, g) in local.iter().zip(&p.global) {
        let (start, len) = shard_range(g.indices.len(), rank, world);
        ensure!(l.indices == g.indices[start..start + len], "rank {rank}: the sharded plan is not the contiguous share of the global batch");
    }
    prime(d, w, vocab, &shard, &local, &p.lrs, run_dir)?;
    let mut dp = DataParallel::join(&rv, Device::Cpu)?;
    let (vs, model) = w.build(vocab as i64, d.labels as i64, SEED as i64)?;
    // Warm-up: a trainer that joins the replicas (rank 0's state broadcast to all), then the
    // timed trainer continues from its optimiser state, as train-throughput's timed fit does.
    let state = {
        let mut t = trainer(w, &*model, &vs, w.recipe.optim.build(&vs)?, run_dir).replicas(&mut dp);
        t.sync_replicas()?;
        for (i, (e, &lr)) in local.iter().zip(&p.lrs).take(warmup).enumerate() {
            t.train_step(&shard, std::slice::from_ref(e), i as u64, 0, lr)?;
        }
        t.optimizer().state()
    };
    let mut optim = w.recipe.optim.build(&vs)?;
    optim.load_state(&state)?;
    // Line the ranks up before the clock starts.
    dp.barrier()?;
    let before = dp.stats();
    let (mut examples, mut local_examples, mut loss) = (0usize, 0usize, f64::NAN);
    let wall = {
        let mut t = trainer(w, &*model, &vs, optim, run_dir).replicas(&mut dp);
        let t0 = Instant::now();
        for (i, (e, &lr)) in local.iter().zip(&p.lrs).take(steps).enumerate() {
            let r = t.train_step(&shard, std::slice::from_ref(e), i as u64, 0, lr)?;
            examples += r.examples;
            local_examples += e.indices.len();
            loss = r.loss;
        }
        t0.elapsed().as_secs_f64()
    };
    let after = dp.stats();
    let probe = probe_small(&mut dp, 200)?;
    let calls = after.calls - before.calls;
    let secs = after.seconds - before.seconds;
    let bytes = after.bytes - before.bytes;
    Ok(json!({
        "rank": rank, "world": world, "threads": tch::get_num_threads(),
        "seq_per_s": examples as f64 / wall, "ms_per_step": 1e3 * wall / steps as f64, "seconds": wall, "examples": examples, "local_examples": local_examples,
        "steps": steps, "last_loss": loss,
        "allreduce_calls_per_step": calls as f64 / steps as f64, "allreduce_ms_per_step": 1e3 * secs / steps as f64,
        "allreduce_exposed_ms_per_step": 1e3 * secs / steps as f64, "bytes_per_step": bytes as f64 / steps as f64,
        "params": whetstone_models::count_parameters(&vs),
        "probe": probe,
    }))
}

/// Latency of the smallest all-reduce through whetstone-dist: the median time of
/// `Replicas::reduce_gradients` on one 4-byte gradient, `reps` times after a barrier each. That
/// call makes 2 collectives (the step's example count, loss and flag; then the gradient
/// bucket), so one small all-reduce takes half of it.
fn probe_small(dp: &mut DataParallel, reps: usize) -> Result<Value> {
    let t = tch::Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
    let grads = [t];
    for _ in 0..3 {
        dp.reduce_gradients(&grads, 1, 0.0, false, false)?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        dp.barrier()?;
        let t0 = Instant::now();
        dp.reduce_gradients(&grads, 1, 0.0, false, false)?;
        times.push(t0.elapsed().as_secs_f64() / 2.0);
    }
    Ok(json!({"small": {"bytes": 4, "median_s": median(&times), "min_s": times.iter().copied().fold(f64::INFINITY, f64::min), "reps": reps,
                        "note": "half of one reduce_gradients call on a 4-byte gradient (2 collectives)"}}))
}

// --------------------------------------------------------------------------- processes

struct Ctx<'a> {
    args: &'a Args,
    python: PathBuf,
    tmp: tempfile::TempDir,
}

/// A free TCP port on the loopback interface (for MASTER_PORT).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last line of `text` that is a JSON object.
fn last_json(text: &str, who: &str) -> Result<Value> {
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| format!("{who} printed no JSON"))?;
    serde_json::from_str(line).with_context(|| format!("parsing {who}'s JSON"))
}

/// Wait for every child; the first one to fail takes the others down (they would wait for it
/// in a collective until their timeout). Returns each child's stdout.
fn wait_all(mut kids: Vec<(String, Child, PathBuf, PathBuf)>) -> Result<Vec<String>> {
    let t0 = Instant::now();
    let tail = |p: &Path| {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let mut done = vec![false; kids.len()];
    while done.iter().any(|d| !d) {
        for (i, (who, c, _, err)) in kids.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            if let Some(st) = c.try_wait()? {
                done[i] = true;
                if !st.success() {
                    let msg = format!("{who} failed ({st}):\n{}", tail(err));
                    for (_, other, _, _) in kids.iter_mut() {
                        let _ = other.kill();
                        let _ = other.wait();
                    }
                    bail!(msg);
                }
            }
        }
        if t0.elapsed() > CHILD_TIMEOUT {
            for (_, c, _, _) in kids.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            bail!("the measuring processes did not finish within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kids.iter().map(|(_, _, out, _)| std::fs::read_to_string(out).context("reading a measuring process's output")).collect()
}

/// Start `cmd` with its stdout and stderr in files of the scratch folder.
fn spawn(ctx: &Ctx, name: &str, mut cmd: Command) -> Result<(String, Child, PathBuf, PathBuf)> {
    let (out, err) = (ctx.tmp.path().join(format!("{name}.out")), ctx.tmp.path().join(format!("{name}.err")));
    cmd.stdout(std::fs::File::create(&out)?).stderr(std::fs::File::create(&err)?);
    let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    Ok((name.to_string(), child, out, err))
}

/// A whetstone job: `single` in one fresh process, `dp` in `WORLD` fresh rank processes with
/// the torchrun environment (one JSON per process).
fn run_whetstone(ctx: &Ctx, job: &Value) -> Result<Vec<Value>> {
    let mode = job["mode"].as_str().unwrap_or("?");
    let path = ctx.tmp.path().join(format!("ws-{mode}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(job)?)?;
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut kids = Vec::new();
    if mode == "dp" {
        let port = free_port()?;
        for r in 0..WORLD {
            let mut c = Command::new(&exe);
            c.arg("--child").arg(&path);
            c.env("RANK", r.to_string()).env("WORLD_SIZE", WORLD.to_string()).env("LOCAL_RANK", r.to_string()).env("LOCAL_WORLD_SIZE", WORLD.to_string());
            c.env("MASTER_ADDR", "127.0.0.1").env("MASTER_PORT", port.to_string()).env("OMP_NUM_THREADS", "1");
            // The ranks load data and prime before they meet: give a busy machine time.
            c.env("WHETSTONE_DIST_TIMEOUT", "600");
            kids.push(spawn(ctx, &format!("whetstone rank {r}"), c)?);
        }
    } else {
        let mut c = Command::new(&exe);
        c.arg("--child").arg(&path);
        for k in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"] {
            c.env_remove(k);
        }
        kids.push(spawn(ctx, "whetstone single process", c)?);
    }
    let outs = wait_all(kids)?;
    outs.iter().enumerate().map(|(r, o)| last_json(o, &format!("whetstone measuring process {r}"))).collect()
}

fn run_peer(ctx: &Ctx, job: &Value) -> Result<Value> {
    let mode = job["mode"].as_str().unwrap_or("?");
    let path = ctx.tmp.path().join(format!("py-{mode}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(job)?)?;
    let mut c = Command::new(&ctx.python);
    c.arg(&ctx.args.peer).arg("--job").arg(&path);
    let outs = wait_all(vec![spawn(ctx, &format!("PyTorch peer ({mode})"), c)?])?;
    last_json(&outs[0], "the PyTorch peer")
}

// --------------------------------------------------------------------------- CPU noise


// --------------------------------------------------------------------------- results

/// The setups of a workload's table, in order: (key, title).
fn setups(torch_adamw: &[String]) -> Vec<(String, String)> {
    let mut v = vec![
        ("ws_single".to_string(), "whetstone `Trainer`, 1 process × 2 threads".to_string()),
        ("ws_dp".to_string(), "whetstone `Trainer` + whetstone-dist `DataParallel` (Gloo), 2 processes × 1 thread".to_string()),
    ];
    for (i, imp) in torch_adamw.iter().enumerate() {
        let tag = if i == 0 { " (baseline)" } else { "" };
        v.push((format!("py_single_{imp}"), format!("PyTorch eager, 1 process × 2 threads, AdamW {imp}{tag}")));
        v.push((format!("py_ddp_{imp}"), format!("PyTorch DDP (Gloo, 25 MB buckets), 2 processes × 1 thread, AdamW {imp}{tag}")));
    }
    v
}

/// Median of field `k` over the repetitions `reps` of setup `key` (NaN when missing).
fn med(reps: &[Value], key: &str, k: &str) -> f64 {
    median(&reps.iter().filter_map(|r| r[key][k].as_f64()).collect::<Vec<_>>())
}

fn range(reps: &[Value], key: &str, k: &str) -> String {
    let v: Vec<f64> = reps.iter().filter_map(|r| r[key][k].as_f64()).collect();
    if v.is_empty() {
        return "—".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.0}–{hi:.0}")
}

/// `a, b, c` of a JSON array of numbers, two decimals, each followed by `unit`.
fn list(v: &Value, unit: &str) -> String {
    v.as_array().map(|a| a.iter().map(|x| format!("{:.2}{unit}", x.as_f64().unwrap_or(f64::NAN))).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

/// A data-parallel measurement as one value: the slowest rank's time (the ranks wait for each
/// other in every all-reduce), rank 0's communication statistics, every rank's numbers.
fn merge_ranks(ranks: &[Value]) -> Result<Value> {
    ensure!(ranks.len() == WORLD, "expected {WORLD} ranks, got {}", ranks.len());
    let worst = ranks.iter().max_by(|a, b| a["seconds"].as_f64().unwrap_or(0.0).total_cmp(&b["seconds"].as_f64().unwrap_or(0.0))).context("no rank")?;
    let r0 = ranks.iter().find(|r| r["rank"].as_u64() == Some(0)).context("no rank 0")?;
    let mut v = r0.clone();
    for k in ["seq_per_s", "ms_per_step", "seconds"] {
        v[k] = worst[k].clone();
    }
    v["per_rank"] = json!(ranks);
    Ok(v)
}

/// The peer's DDP/single result for `imp`, with the slowest rank's numbers already merged by
/// the peer.
fn peer_entry(py: &Value, imp: &str) -> Result<Value> {
    let t = py["train"][imp].clone();
    ensure!(t.is_object(), "the peer has no result for AdamW {imp}");
    Ok(t)
}

// --------------------------------------------------------------------------- scaling model

/// Models of the scaling section: (name, parameters).
const SCALE_MODELS: [(&str, f64); 2] = [("MiniLM-L6-size", 22.7e6), ("BERT-base-size", 110e6)];
const SCALE_N: [usize; 6] = [2, 4, 8, 16, 32, 64];
const SCALE_GBPS: [f64; 2] = [25.0, 100.0];
/// DDP's default bucket (25 MiB): all-reduce calls per step in the model.
const BUCKET_BYTES: f64 = 25.0 * 1024.0 * 1024.0;
/// Share of a step's compute that the backward takes, behind which the all-reduce can hide.
const BACKWARD_SHARE: f64 = 2.0 / 3.0;
const DEFAULT_ALPHA_S: f64 = 50e-6;

struct Calib {
    /// Compute seconds per example on this machine (2 threads).
    per_example_s: f64,
    /// Parameters of the calibrating model.
    params: f64,
    workload: String,
    /// Per-hop latency (seconds) and where it came from.
    alpha_s: f64,
    alpha_source: String,
}

/// Ring all-reduce of `bytes` over `n` machines at `bw` bytes/s with per-hop latency `alpha`,
/// in `ceil(bytes / bucket)` calls: 2(n−1)/n · bytes / bw + calls · 2(n−1) · α.
fn ring_seconds(bytes: f64, n: usize, bw: f64, alpha: f64) -> f64 {
    let n = n as f64;
    let calls = (bytes / BUCKET_BYTES).ceil().max(1.0);
    2.0 * (n - 1.0) / n * bytes / bw + calls * 2.0 * (n - 1.0) * alpha
}

fn scaling(c: &Calib, batch: usize) -> Value {
    let mut models = Vec::new();
    for (name, params) in SCALE_MODELS {
        let compute = c.per_example_s * (params / c.params) * batch as f64;
        let bytes = 4.0 * params;
        let mut rows = Vec::new();
        for n in SCALE_N {
            let mut row = json!({"n": n});
            for gbps in SCALE_GBPS {
                let comm = ring_seconds(bytes, n, gbps * 1e9 / 8.0, c.alpha_s);
                let exposed = (comm - BACKWARD_SHARE * compute).max(0.0);
                row[format!("{gbps:.0}gbps")] = json!({"comm_ms": 1e3 * comm, "efficiency_no_overlap": compute / (compute + comm), "efficiency_ideal_overlap": compute / (compute + exposed)});
            }
            rows.push(row);
        }
        models.push(json!({"model": name, "params": params, "gradient_bytes": bytes, "buckets": (bytes / BUCKET_BYTES).ceil(), "compute_ms_per_step": 1e3 * compute, "rows": rows}));
    }
    json!({
        "calibration": {"workload": c.workload, "params": c.params, "per_example_ms": 1e3 * c.per_example_s, "alpha_us": 1e6 * c.alpha_s, "alpha_source": c.alpha_source,
                        "per_replica_batch": batch, "backward_share": BACKWARD_SHARE, "bucket_bytes": BUCKET_BYTES},
        "models": models,
    })
}

fn scaling_markdown(s: &Value, bench_minilm: Option<f64>) -> String {
    let c = &s["calibration"];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut md = String::from("## Scaling model (on paper)\n\n");
    md.push_str(&format!(
        "**Modelled, not measured.** N machines, each one replica with a per-replica batch of {} (weak scaling: the global batch grows with N), gradients in fp32 all-reduced once per step by a ring all-reduce in 25 MiB buckets (DDP's default): \
time = 2(N−1)/N · bytes / bandwidth + buckets · 2(N−1) · α.\n\n\
- **α = {:.1} µs per hop**: {}.\n\
- **Compute per step** = per-example compute × {} × (parameters / {:.2} M): the per-example time is **measured** here (whetstone, 1 process × 2 threads on the {} workload, its fastest repetition: {:.3} ms per example over the timed global batches), scaled by the parameter-count ratio (assumption: compute grows with the parameter count at the same sequence length {MAX_LEN}; it ignores that embeddings are cheap and attention grows with length). Each machine is assumed as fast as this 2-core one; a faster machine (more cores, a GPU) shrinks compute and makes every efficiency below worse.\n\
- **Efficiency** = compute / (compute + non-overlapped communication). *No overlap*: the all-reduce starts after the backward (whetstone's `Trainer` today). *Ideal overlap*: the all-reduce hides entirely behind the backward, taken as {:.0}% of compute (only what exceeds it shows).\n\n",
        f(&c["per_replica_batch"]),
        f(&c["alpha_us"]),
        c["alpha_source"].as_str().unwrap_or("?"),
        f(&c["per_replica_batch"]),
        f(&c["params"]) / 1e6,
        c["workload"].as_str().unwrap_or("?"),
        f(&c["per_example_ms"]),
        100.0 * BACKWARD_SHARE
    ));
    for m in s["models"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "### {} ({:.1} M parameters: {:.0} MB of gradients, {} buckets; modelled compute {:.0} ms per step)\n\n",
            m["model"].as_str().unwrap_or("?"),
            f(&m["params"]) / 1e6,
            f(&m["gradient_bytes"]) / 1e6,
            f(&m["buckets"]),
            f(&m["compute_ms_per_step"])
        ));
        md.push_str("| N | all-reduce ms @25 Gb/s | efficiency, no overlap | efficiency, ideal overlap | all-reduce ms @100 Gb/s | efficiency, no overlap | efficiency, ideal overlap |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in m["rows"].as_array().into_iter().flatten() {
            let (a, b) = (&r["25gbps"], &r["100gbps"]);
            md.push_str(&format!(
                "| {} | {:.1} | {:.1}% | {:.1}% | {:.1} | {:.1}% | {:.1}% |\n",
                r["n"],
                f(&a["comm_ms"]),
                100.0 * f(&a["efficiency_no_overlap"]),
                100.0 * f(&a["efficiency_ideal_overlap"]),
                f(&b["comm_ms"]),
                100.0 * f(&b["efficiency_no_overlap"]),
                100.0 * f(&b["efficiency_ideal_overlap"])
            ));
        }
        md.push('\n');
    }
    if let (Some(measured), Some(m)) = (bench_minilm, s["models"].as_array().and_then(|a| a.first())) {
        let predicted = f(&m["compute_ms_per_step"]) / f(&c["per_replica_batch"]) * 22.566146 / (f(&m["params"]) / 1e6);
        md.push_str(&format!(
            "Check of the compute assumption: `reports/bench.json` measured whetstone's MiniLM-L6 fp32 training on this machine (2 threads) at {:.1} ms per example; the parameter-ratio model gives {:.1} ms per example for its 22.6 M parameters ({:.2}× the measurement). \n\n",
            1e3 / measured,
            predicted,
            predicted / (1e3 / measured)
        ));
    }
    md
}

/// "Where bucketing and overlap matter": what the measurements and the model say, from their
/// numbers.
fn discussion(report: &Value, base: &str) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut md = String::from("### Where bucketing and overlap matter\n\n");
    // Measured: DDP's buckets and how much of its all-reduce the backward hid.
    let mut local = Vec::new();
    for w in report["workloads"].as_array().into_iter().flatten() {
        let reps = w["reps"].as_array().cloned().unwrap_or_default();
        let key = format!("py_ddp_{base}");
        let (span, exposed) = (med(&reps, &key, "allreduce_ms_per_step"), med(&reps, &key, "allreduce_exposed_ms_per_step"));
        local.push(format!(
            "{}: {} DDP bucket(s) of {:.1} MB, {:.0}% of DDP's all-reduce span not overlapped; whetstone-dist {:.0} collective calls per step",
            w["workload"].as_str().unwrap_or("?"),
            med(&reps, &key, "buckets"),
            med(&reps, &key, "bytes_per_step") / 1e6,
            100.0 * exposed / span,
            med(&reps, "ws_dp", "allreduce_calls_per_step")
        ));
    }
    md.push_str(&format!(
        "**Measured here** ({}). A model whose gradients fit in one 25 MB bucket gives DDP nothing to overlap: the bucket is ready only when the backward has finished, as whetstone-dist's all-reduce after the backward is (its calls are the step's example-count/loss agreement plus its buckets). \
On one machine both ranks also share the 2 cores that the copies and Gloo's threads need, so the local comparison is of each all-reduce's own cost, not of overlap.\n\n",
        local.join("; ")
    ));
    // Modelled: the worst case without overlap, whether overlap hides everything, break-even.
    let sm = &report["scaling_model"];
    let alpha = f(&sm["calibration"]["alpha_us"]) * 1e-6;
    let mut worst: Option<(f64, String, f64, f64, f64, f64)> = None; // (eff, model, n, gbps, comm_ms, compute_ms)
    let mut all_hidden = true;
    for m in sm["models"].as_array().into_iter().flatten() {
        let compute = f(&m["compute_ms_per_step"]);
        for r in m["rows"].as_array().into_iter().flatten() {
            for gbps in SCALE_GBPS {
                let e = &r[format!("{gbps:.0}gbps")];
                all_hidden &= f(&e["efficiency_ideal_overlap"]) >= 0.9995;
                let eff = f(&e["efficiency_no_overlap"]);
                if worst.as_ref().is_none_or(|w| eff < w.0) {
                    worst = Some((eff, m["model"].as_str().unwrap_or("?").to_string(), f(&r["n"]), gbps, f(&e["comm_ms"]), compute));
                }
            }
        }
    }
    if let Some((eff, model, n, gbps, comm, compute)) = worst {
        let buckets = sm["models"].as_array().into_iter().flatten().find(|m| m["model"] == model.as_str()).map_or(f64::NAN, |m| f(&m["buckets"]));
        let latency_ms = 1e3 * buckets * 2.0 * (n - 1.0) * alpha;
        let latency_50us = 1e3 * buckets * 2.0 * (n - 1.0) * DEFAULT_ALPHA_S;
        md.push_str(&format!(
            "**Modelled.** The worst case without overlap is {model} on {n:.0} machines at {gbps:.0} Gb/s: {comm:.0} ms of all-reduce against {compute:.0} ms of compute, {:.1}% efficiency. {}\n\n",
            100.0 * eff,
            if all_hidden {
                "With ideal overlap every modelled all-reduce is shorter than 2/3 of the compute and hides completely (100% everywhere)."
            } else {
                "With ideal overlap some all-reduces are still longer than 2/3 of the compute and show (the cells below 100%)."
            }
        ));
        md.push_str(&format!(
            "- *Bandwidth term.* The ring's bandwidth term is nearly flat in N (2(N−1)/N tends to 2): what grows with N is the latency term, buckets × 2(N−1) hops × α. \
In that worst case it is {latency_ms:.1} ms of the {comm:.0} ms with the α used here ({:.0} µs; {latency_50us:.1} ms at α = 50 µs). {}\n",
            alpha * 1e6,
            if latency_ms < 0.1 * comm {
                "So bucketing does not matter for latency at these sizes; it matters because buckets are what let the all-reduce start during the backward."
            } else {
                "That is not negligible: at large N, fewer and larger buckets (or a hierarchical/tree all-reduce) cut it, at the price of starting the first all-reduce later in the backward, i.e. less overlap."
            }
        ));
        md.push_str(
            "- *Overlap.* With B buckets, up to (B−1)/B of the communication can run during the rest of the backward, as DDP does once the gradients fill several buckets; whetstone's `Trainer` all-reduces after the whole backward, so all of it adds to the step (the *no overlap* columns).\n",
        );
        let c90 = 9.0 * comm;
        let speed90 = compute / c90;
        md.push_str(&format!(
            "- *Compute.* Efficiency without overlap stays ≥ 90% while compute ≥ 9 × the all-reduce time, ≥ {c90:.0} ms per step in that worst case; {} Ideal overlap hides the all-reduce while it is shorter than 2/3 of compute (compute ≥ {:.0} ms: a machine up to {:.1}× faster than the one modelled). The modelled compute is that of this 2-core CPU: an accelerator is tens of times faster per step, and then overlap, bandwidth, gradient compression or larger per-replica batches decide the efficiency.\n\n",
            if speed90 >= 1.0 {
                format!("a machine {speed90:.1}× faster than the one modelled would already lose 10% without overlap, and one {:.1}× faster half.", compute / comm)
            } else {
                format!("the modelled compute ({compute:.0} ms) is already below that, and a machine {:.1}× faster would lose half.", compute / comm)
            },
            1.5 * comm,
            compute / (1.5 * comm)
        ));
    }
    md
}

/// whetstone's fp32 MiniLM training seq/s from an earlier `cargo xtask bench` (reports/bench.json).
fn bench_minilm(out: &Path) -> Option<f64> {
    let v: Value = serde_json::from_slice(&std::fs::read(out.join("bench.json")).ok()?).ok()?;
    v["precision_rows"].as_array()?.iter().find(|r| r["workload"] == "minilm" && r["mode"] == "train" && r["precision"] == "fp32").and_then(|r| r["whetstone_median"].as_f64())
}

// --------------------------------------------------------------------------- main

fn main() {
    if let Err(e) = run() {
        eprintln!("dist-throughput: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = Args::parse();
    if let Some(job) = &args.child {
        return child(job);
    }
    if let Some(path) = &args.report_only {
        let old: Value = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?).with_context(|| format!("parsing {}", path.display()))?;
        let s = &old["settings"];
        args.torch_adamw = s["torch_adamw"].as_array().context("no settings.torch_adamw")?.iter().filter_map(|v| v.as_str().map(String::from)).collect();
        args.quick = s["quick"].as_bool().unwrap_or(false);
        let results = old["workloads"].as_array().cloned().context("no workloads")?;
        return finish(&args, old["machine"].clone(), old["settings"].clone(), results, old["total_seconds"].as_f64().unwrap_or(f64::NAN));
    }
    if args.quick {
        (args.reps, args.steps, args.warmup) = (1, 8, 3);
    }
    ensure!(args.reps >= 1 && args.steps >= 1 && args.warmup >= 1, "--reps, --steps and --warmup must be >= 1");
    ensure!(!args.torch_adamw.is_empty(), "--torch-adamw needs at least one implementation");
    for imp in &args.torch_adamw {
        ensure!(["default", "foreach", "fused"].contains(&imp.as_str()), "--torch-adamw: unknown implementation `{imp}`");
    }
    let python = peer_python(args.python.clone());
    let peer_info = peer_check(&python, &args.peer)?;
    let torch_version = peer_info["torch"].as_str().unwrap_or("?").to_string();
    let workloads: Vec<Workload> = args.workloads.iter().map(|n| Workload::by_name(n.trim())).collect::<Result<_>>()?;
    ensure!(workloads.iter().all(|w| w.name != "minilm"), "the minilm workload is not part of this benchmark (its scaling is modelled)");
    let t_start = Instant::now();
    let load_start = load_avg();
    eprintln!("dist-throughput: torch {torch_version} (peer), CPU {}, load average {load_start}", cpu_model());
    let data = load_data()?;
    let ctx = Ctx { args: &args, python, tmp: tempfile::tempdir()? };
    let n = args.steps.max(args.warmup);
    let mut others = Vec::new();
    let mut results = Vec::new();
    for w in &workloads {
        let p = plan(&data, w, n)?;
        let file = ctx.tmp.path().join(format!("{}.batches", w.name));
        write_batch_file(&data, &p, &file)?;
        let vocab = w.vocab(data.vocab_size)?;
        let ws_job = |mode: &str| json!({"mode": mode, "workload": w.name, "vocab_size": data.vocab_size, "warmup": args.warmup, "steps": args.steps});
        let model = serde_json::to_value(w.model_config())?;
        let py_job = |mode: &str| {
            json!({"mode": mode, "batch_file": file, "workload": w.name, "kind": model["kind"], "model": model, "vocab_size": vocab, "num_labels": data.labels,
                   "threads": THREADS, "world": WORLD, "bucket_cap_mb": 25, "seed": SEED, "warmup": args.warmup, "steps": args.steps, "lr": w.recipe.optim.lr, "lrs": p.lrs,
                   "weight_decay": w.recipe.optim.weight_decay, "no_decay": whetstone_optim::NO_DECAY, "clip": w.clip_norm(), "variants": args.torch_adamw})
        };
        let mut reps = Vec::new();
        let mut params = 0u64;
        for rep in 0..args.reps {
            let cpu0 = CpuClock::now();
            let t_rep = Instant::now();
            let single = run_whetstone(&ctx, &ws_job("single"))?.remove(0);
            let dp = merge_ranks(&run_whetstone(&ctx, &ws_job("dp"))?)?;
            let py_single = run_peer(&ctx, &py_job("single"))?;
            let py_ddp = run_peer(&ctx, &py_job("ddp"))?;
            params = single["params"].as_u64().unwrap_or(0);
            for (who, v) in [("whetstone 2×1", &dp), ("PyTorch 1×2", &py_single), ("PyTorch DDP", &py_ddp)] {
                ensure!(v["params"].as_u64() == Some(params), "{}: {who} has {} parameters, whetstone 1×2 {params}", w.name, v["params"]);
            }
            let mut r = json!({"rep": rep, "ws_single": single, "ws_dp": dp, "py_probe": py_ddp["probe"], "load_average": load_avg()});
            for imp in &args.torch_adamw {
                r[format!("py_single_{imp}")] = peer_entry(&py_single, imp)?;
                r[format!("py_ddp_{imp}")] = peer_entry(&py_ddp, imp)?;
            }
            let other = cpu0.others_since();
            others.push(other);
            r["other_cpus"] = json!(other);
            let base = &args.torch_adamw[0];
            eprintln!(
                "  rep {}/{} {:<12} whetstone 1×2 {:>6.0} 2×1 {:>6.0} seq/s; PyTorch 1×2 {:>6.0} DDP 2×1 {:>6.0} seq/s (AdamW {base}) ({:.0}s, other processes {other:.2} CPUs)",
                rep + 1,
                args.reps,
                w.name,
                r["ws_single"]["seq_per_s"].as_f64().unwrap_or(f64::NAN),
                r["ws_dp"]["seq_per_s"].as_f64().unwrap_or(f64::NAN),
                r[format!("py_single_{base}")]["seq_per_s"].as_f64().unwrap_or(f64::NAN),
                r[format!("py_ddp_{base}")]["seq_per_s"].as_f64().unwrap_or(f64::NAN),
                t_rep.elapsed().as_secs_f64()
            );
            reps.push(r);
        }
        let batch_sizes: Vec<usize> = p.global.iter().take(args.steps).map(|e| e.indices.len()).collect();
        results.push(json!({"workload": w.name, "recipe": w.recipe.name, "params": params, "batch_size": w.batch_size(), "global_batch_examples": batch_sizes,
                            "clip_norm": w.clip_norm(), "lr": w.recipe.optim.lr, "reps": reps}));
    }

    let logical_cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let (other_peak, other_median) = (others.iter().copied().fold(0.0f64, f64::max), median(&others));
    let machine = json!({"cpu": cpu_model(), "logical_cpus": logical_cpus, "torch": torch_version, "python": peer_info["python"], "numpy": peer_info["numpy"], "tch": "0.24",
                         "load_average_at_start": load_start, "load_average_at_end": load_avg(), "other_cpus_peak": other_peak, "other_cpus_median": other_median});
    let settings = json!({"reps": args.reps, "steps": args.steps, "warmup": args.warmup, "world": WORLD, "single_threads": THREADS, "torch_adamw": args.torch_adamw, "seed": SEED, "quick": args.quick,
                          "vocab_size": data.vocab_size, "max_len": MAX_LEN, "train_examples": data.train.len()});
    finish(&args, machine, settings, results, t_start.elapsed().as_secs_f64())
}

/// The summary, the scaling model and the report files, from the measurements (`results`: one
/// entry per workload with its repetitions).
fn finish(args: &Args, machine: Value, mut settings: Value, results: Vec<Value>, total_seconds: f64) -> Result<()> {
    ensure!(!results.is_empty(), "no workload was measured");
    let keys = setups(&args.torch_adamw);
    // Summary rows per workload.
    let base = args.torch_adamw[0].clone();
    let mut summary = Vec::new();
    for r in &results {
        let reps = r["reps"].as_array().cloned().unwrap_or_default();
        let mut rows = Vec::new();
        for (key, title) in &keys {
            rows.push(json!({"setup": key, "title": title, "seq_per_s": med(&reps, key, "seq_per_s"), "seq_per_s_range": range(&reps, key, "seq_per_s"),
                             "ms_per_step": med(&reps, key, "ms_per_step"), "allreduce_ms_per_step": med(&reps, key, "allreduce_ms_per_step"),
                             "allreduce_exposed_ms_per_step": med(&reps, key, "allreduce_exposed_ms_per_step"), "bytes_per_step": med(&reps, key, "bytes_per_step")}));
        }
        let get = |k: &str| rows.iter().find(|x| x["setup"] == k).and_then(|x| x["seq_per_s"].as_f64()).unwrap_or(f64::NAN);
        let ratio_dp = get("ws_dp") / get(&format!("py_ddp_{base}"));
        let ratio_single = get("ws_single") / get(&format!("py_single_{base}"));
        // The same ratios within each repetition (the setups of one repetition ran minutes apart,
        // under about the same load).
        let per_rep = |a: &str, b: &str| -> Vec<f64> { reps.iter().map(|x| x[a]["seq_per_s"].as_f64().unwrap_or(f64::NAN) / x[b]["seq_per_s"].as_f64().unwrap_or(f64::NAN)).collect() };
        let other: Vec<f64> = reps.iter().map(|x| x["other_cpus"].as_f64().unwrap_or(f64::NAN)).collect();
        summary.push(json!({"workload": r["workload"], "rows": rows, "ratio_2x1": ratio_dp, "ratio_1x2": ratio_single,
                            "ratio_2x1_per_rep": per_rep("ws_dp", &format!("py_ddp_{base}")), "ratio_1x2_per_rep": per_rep("ws_single", &format!("py_single_{base}")), "other_cpus_per_rep": other,
                            "dp_speedup_whetstone": get("ws_dp") / get("ws_single"), "dp_speedup_pytorch": get(&format!("py_ddp_{base}")) / get(&format!("py_single_{base}"))}));
    }

    // Calibration of the scaling model: the transformer's (else the first workload's) whetstone
    // 1×2 step, and the measured small all-reduce.
    let calib_idx = results.iter().position(|r| r["workload"] == "transformer").unwrap_or(0);
    let cr = &results[calib_idx];
    let creps = cr["reps"].as_array().cloned().unwrap_or_default();
    let mean_batch = {
        let b: Vec<f64> = cr["global_batch_examples"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
        b.iter().sum::<f64>() / b.len().max(1) as f64
    };
    // The least disturbed repetition (fastest step): other processes only ever slow a step down.
    let per_example_s = creps.iter().filter_map(|r| r["ws_single"]["ms_per_step"].as_f64()).fold(f64::INFINITY, f64::min) / 1e3 / mean_batch;
    let all_reps: Vec<Value> = results.iter().flat_map(|r| r["reps"].as_array().cloned().unwrap_or_default()).collect();
    let ws_small: Vec<f64> = all_reps.iter().flat_map(|r| r["ws_dp"]["per_rank"].as_array().cloned().unwrap_or_default()).filter(|x| x["rank"] == 0).filter_map(|x| x["probe"]["small"]["median_s"].as_f64()).collect();
    let py_small: Vec<f64> = all_reps.iter().filter_map(|r| r["py_probe"]["small"]["median_s"].as_f64()).collect();
    let py_large: Vec<f64> = all_reps.iter().filter_map(|r| r["py_probe"]["large"]["median_s"].as_f64()).collect();
    let lowest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (alpha_s, alpha_source) = if !ws_small.is_empty() && lowest(&ws_small) > 0.0 {
        let t = lowest(&ws_small);
        (t / 2.0, format!("**measured**: half the time of a 4-byte all-reduce between the 2 processes of this machine through whetstone-dist ({:.1} µs, the lowest of the repetitions' medians of 200; a 2-rank ring has 2(N−1) = 2 hops). That is Gloo over loopback TCP on a shared 2-core machine, mostly software overhead and scheduling rather than wire latency (PyTorch's Gloo: {:.1} µs for the same 4 bytes); the discussion below gives the latency term at α = 50 µs too", 1e6 * t, 1e6 * lowest(&py_small)))
    } else if !py_small.is_empty() {
        let t = lowest(&py_small);
        (t / 2.0, format!("**measured** through PyTorch's Gloo (half of a 4-byte all-reduce between 2 local processes, {:.1} µs, the lowest of the repetitions' medians)", 1e6 * t))
    } else {
        (DEFAULT_ALPHA_S, "assumed (not measurable here)".to_string())
    };
    let calib = Calib { per_example_s, params: cr["params"].as_f64().unwrap_or(f64::NAN), workload: cr["workload"].as_str().unwrap_or("?").to_string(), alpha_s, alpha_source };
    let scale = scaling(&calib, args.model_batch);

    // Report.
    settings["gloo_probe_large_s"] = json!(median(&py_large));
    let report = json!({
        "machine": machine,
        "settings": settings,
        "summary": summary,
        "scaling_model": scale,
        "workloads": results,
        "total_seconds": total_seconds,
    });
    let md = markdown(args, &report, bench_minilm(&args.out));
    println!("\n{md}");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let stem = if args.quick { "dist-quick" } else { "dist" };
    std::fs::write(args.out.join(format!("{stem}.json")), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(args.out.join(format!("{stem}.md")), md)?;
    eprintln!("dist-throughput: wrote {} and {}", args.out.join(format!("{stem}.md")).display(), args.out.join(format!("{stem}.json")).display());
    Ok(())
}

fn markdown(args: &Args, report: &Value, bench_minilm: Option<f64>) -> String {
    let m = &report["machine"];
    let s = &report["settings"];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let base = &args.torch_adamw[0];
    let mut md = String::from("# whetstone vs PyTorch DDP: data-parallel training throughput\n\n");
    md.push_str(&format!(
        "Generated by `cargo xtask bench dist{}` (`benches/src/bin/dist-throughput.rs` with the peer `benches/peers/ddp_throughput.py`).{}\n\n",
        if args.quick { " --quick" } else { "" },
        if args.quick { " **Quick smoke run: 1 repetition of 8 steps, not a measurement to quote.**" } else { "" }
    ));
    md.push_str("## Machine\n\n");
    md.push_str(&format!(
        "- CPU: {} ({} logical CPUs): both setups use the whole machine, 1 process × 2 intra-op threads or 2 processes × 1 thread\n- torch {} (the peer; whetstone links the same libtorch through tch {}), Python {}, numpy {}\n- load average (1/5/15 min) at the start: {}; at the end: {}\n- other processes' CPU use (machine busy time from /proc/stat less this bench's own processes', per repetition of each workload): median {:.2}, worst {:.2} CPUs of {}\n\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["torch"].as_str().unwrap_or("?"),
        m["tch"].as_str().unwrap_or("?"),
        m["python"].as_str().unwrap_or("?"),
        m["numpy"].as_str().unwrap_or("?"),
        m["load_average_at_start"].as_str().unwrap_or("?"),
        m["load_average_at_end"].as_str().unwrap_or("?"),
        f(&m["other_cpus_median"]),
        f(&m["other_cpus_peak"]),
        m["logical_cpus"]
    ));
    if f(&m["other_cpus_peak"]) >= 0.25 {
        md.push_str(&format!("**Warning: the machine was shared** (other processes took up to {:.2} CPUs during a repetition): some repetitions are depressed and noisy, not necessarily equally for every setup.\n\n", f(&m["other_cpus_peak"])));
    }
    md.push_str("## Method\n\n");
    md.push_str(&format!(
        "- **Same global batches.** The first {} global batches of epoch 0 of the recipe's `BucketedSource` (as a 2-replica `ShardedSource` plans them: `global_plan`) are replayed by every setup; the PyTorch peer reads them from a batch file. In the 2-process setups rank r takes the contiguous share of each global batch (n rows: ⌊n/2⌋ each, the first rank one more when n is odd), each share padded to its own longest row.\n\
- **whetstone 1 × 2**: one process, `tch::set_num_threads(2)`, `Trainer::train_step` per global batch (the loop's own step: reseed, zero_grad, batch, forward, cross-entropy, backward, clip, AdamW at the schedule's lr).\n\
- **whetstone 2 × 1**: the bench binary re-executes itself as 2 workers with the torchrun environment (RANK, WORLD_SIZE=2, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT), each `tch::set_num_threads(1)`, `Rendezvous::from_env` → `DataParallel::join` (c10d TCPStore + ProcessGroupGloo), a `ShardedSource` over the same plan, `Trainer::replicas(&mut dp)` and `sync_replicas` (rank 0's state to both), then `Trainer::train_step` per step, which all-reduces the gradients (example-weighted mean) after the backward, before clipping. All-reduce time and bytes come from `DataParallel::stats()` over the timed steps (calls, seconds, bytes of the gradient all-reduce); whetstone does not overlap it with the backward, so all of it is exposed.\n\
- **PyTorch 1 × 2**: plain eager model, `torch.set_num_threads(2)`; **PyTorch DDP 2 × 1**: the peer starts 2 ranks itself (same environment), `torch.set_num_threads(1)`, `init_process_group(\"gloo\")`, `DistributedDataParallel(model)` with the default `bucket_cap_mb=25`. Both run the `train_throughput.py` peer's models (same parameter names and count, checked) and step (`torch.manual_seed`, `zero_grad`, forward, `F.cross_entropy`, `.item()`, backward, `clip_grad_norm_`, set lr, `AdamW.step`), with torch AdamW {} (the first is the ratios' baseline). DDP's all-reduce span and the part of it that did not overlap the backward come from DDP's own runtime statistics (`_set_ddp_runtime_logging_sample_rate(1)`, read after each timed step outside the timed span); bytes are DDP's bucket sizes.\n\
- **Timing**: every measurement in fresh processes; each process first runs every batch (its share) once on a throwaway model, untimed (libtorch's per-shape kernels), then {} warm-up steps, then {} timed steps (data-parallel: after a barrier; the step time is the slowest rank's). Repetitions: {} interleaved (whetstone 1×2, whetstone 2×1, PyTorch 1×2, PyTorch DDP); medians. seq/s counts global examples per second. On a shared machine the 1-process × 2-thread setups are the most exposed: their 2-thread OpenMP team waits for its slower thread in every parallel region, so another process on one core slows the whole step, while each 1-thread rank loses only its own share (and the other waits for it at the all-reduce).\n\n",
        s["steps"], args.torch_adamw.join(", "), s["warmup"], s["steps"], s["reps"]
    ));
    md.push_str("## Results (measured)\n\n");
    for (sum, w) in report["summary"].as_array().into_iter().flatten().zip(report["workloads"].as_array().into_iter().flatten()) {
        md.push_str(&format!(
            "### {} (recipe `{}`, {} parameters, global batch {}, {:.1} MB of fp32 gradients)\n\n",
            sum["workload"].as_str().unwrap_or("?"),
            w["recipe"].as_str().unwrap_or("?"),
            w["params"],
            w["batch_size"],
            4.0 * f(&w["params"]) / 1e6
        ));
        md.push_str("| setup | seq/s | (min–max) | ms/step | all-reduce ms/step | of which not overlapped | MB all-reduced/step |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for r in sum["rows"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r["title"].as_str().unwrap_or("?"),
                opt(f(&r["seq_per_s"]), 1),
                r["seq_per_s_range"].as_str().unwrap_or("—"),
                opt(f(&r["ms_per_step"]), 1),
                opt(f(&r["allreduce_ms_per_step"]), 1),
                opt(f(&r["allreduce_exposed_ms_per_step"]), 1),
                opt(f(&r["bytes_per_step"]) / 1e6, 2)
            ));
        }
        let ratio = f(&sum["ratio_2x1"]);
        md.push_str(&format!(
            "\n- **whetstone / PyTorch DDP, 2 processes × 1 thread: {:.2}×** (goal ≥ 1.0×: {}); 1 process × 2 threads: {:.2}× (PyTorch with AdamW {base}). Within each repetition: 2 × 1: {}; 1 × 2: {} (other processes' CPU use per repetition: {}).\n- 2 × 1 over 1 × 2 on the same machine: whetstone {:.2}×, PyTorch {:.2}×.\n\n",
            ratio,
            if ratio >= 1.0 { "met" } else { "**not met**" },
            f(&sum["ratio_1x2"]),
            list(&sum["ratio_2x1_per_rep"], "×"),
            list(&sum["ratio_1x2_per_rep"], "×"),
            list(&sum["other_cpus_per_rep"], ""),
            f(&sum["dp_speedup_whetstone"]),
            f(&sum["dp_speedup_pytorch"])
        ));
    }
    let probe = f(&s["gloo_probe_large_s"]);
    if probe.is_finite() {
        md.push_str(&format!(
            "Gloo between the two local processes (PyTorch's probe after its timed runs): a 16 MiB all-reduce takes {:.1} ms (median), {:.2} GB/s of payload: on one machine the \"network\" is memory copies and loopback TCP on the same 2 cores that compute.\n\n",
            1e3 * probe,
            16.0 * 1024.0 * 1024.0 / probe / 1e9
        ));
    }
    md.push_str(&scaling_markdown(&report["scaling_model"], bench_minilm));
    md.push_str(&discussion(report, base));
    md.push_str(&format!("Raw per-repetition numbers (every rank) are in `{}.json`.\n", if args.quick { "dist-quick" } else { "dist" }));
    md
}
