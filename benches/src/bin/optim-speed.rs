//! `optim-speed`: the time of ONE optimiser step, whetstone-optim vs torch.optim, side by side.
//!
//! For two parameter sets ([`whetstone_benches::optim_shapes`]: MiniLM-L6, ≈22.6M parameters in
//! 101 tensors; 1M parameters in 200 tensors), float32 on the CPU, with fixed random gradients
//! already in `.grad`, it times `Optimizer::step` of whetstone's Adam, AdamW and SGD (momentum
//! 0.9) in the default flat-buffer layout (whetstone's fused kernel) and in the per-tensor
//! layout, each also with `kernel = "torch-fused"` (libtorch's fused kernels called from Rust
//! through whetstone-torch-ext: one call per flat bucket, or per tensor list), and the
//! Python peer (`benches/peers/optim_speed.py`) times `opt.step()` of torch.optim's Adam, AdamW
//! and SGD with `foreach=False` (for-loop), `foreach=True` and `fused=True`, on the same libtorch
//! with the same thread count. Whetstone and PyTorch alternate `--rounds` times per parameter set
//! (fresh parameters and optimiser state each time, `--warmup` untimed steps first); the report
//! gives the median over all timed steps of all rounds. It writes `optim-speed.md` and
//! `optim-speed.json` to `--out`.
//!
//! `cargo xtask bench optim-speed`, or by hand:
//! `cargo run --release -p whetstone-benches --bin optim-speed -- --python <venv python> --out reports`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use whetstone_benches::machine::{cpu_model, load_avg, median, peer_check, peer_python};
use whetstone_benches::optim_shapes::{self, Shape};
use whetstone_optim::{named_params, Adam, AdamConfig, AdamW, AdamWConfig, Adaptive, AdaptiveConfig, Kernel, Optimizer, Param, Sgd, SgdConfig, NO_DECAY};

#[derive(Parser, Debug)]
#[command(about = "Time of one optimiser step: whetstone-optim (flat+fused, per-tensor; whetstone or torch-fused kernel) vs torch.optim (for-loop, foreach, fused)")]
struct Args {
    /// Python interpreter with torch (default: $WHETSTONE_PYTHON, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/optim_speed.py"))]
    peer: PathBuf,
    /// Folder for optim-speed.md and optim-speed.json.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Interleaved rounds (whetstone, PyTorch, whetstone, …) per parameter set.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Untimed warm-up steps per measurement (in every round).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed steps per measurement at MiniLM-L6 shapes, in total over the rounds.
    #[arg(long, default_value_t = 30)]
    iters_minilm: usize,
    /// Timed steps per measurement for 1M parameters in 200 tensors, in total over the rounds.
    #[arg(long, default_value_t = 200)]
    iters_small: usize,
    /// Parameter sets, comma-separated (minilm, small).
    #[arg(long, default_value = "minilm,small", value_delimiter = ',')]
    shapes: Vec<String>,
    /// Optimisers, comma-separated (adam, adamw, sgd).
    #[arg(long, default_value = "adam,adamw,sgd", value_delimiter = ',')]
    optimizers: Vec<String>,
    /// Intra-op threads (default: libtorch's current setting, tch::get_num_threads()).
    #[arg(long)]
    threads: Option<i32>,
    /// Instead of the comparison with torch.optim: the adaptive optimiser's step (fused on flat
    /// buffers, and per tensor) against whetstone's AdamW (flat+fused), interleaved in rounds on
    /// the same parameters and threads; writes `optim-speed-adaptive.md` / `.json` to `--out`.
    #[arg(long)]
    adaptive: bool,
}

const SEED: i64 = 0;
const LR: f64 = 1e-3;
/// AdamW's decoupled weight decay (not on bias / LayerNorm); Adam and SGD run without decay.
const WEIGHT_DECAY: f64 = 0.01;
/// whetstone variants: (label, flat buffers, kernel). The first two are the whetstone kernel.
const LAYOUTS: [(&str, bool, Kernel); 4] = [("flat+fused", true, Kernel::Whetstone), ("per-tensor", false, Kernel::Whetstone), ("torch-fused flat", true, Kernel::TorchFused), ("torch-fused per-tensor", false, Kernel::TorchFused)];
const TORCH_IMPLS: [&str; 3] = ["forloop", "foreach", "fused"];

fn build(name: &str, vs: &tch::nn::VarStore, flat: bool, kernel: Kernel) -> Result<Box<dyn Optimizer>> {
    let check = |inner: &whetstone_optim::ChainOptimizer| -> Result<()> {
        ensure!(inner.is_flat() == flat, "{name}: asked for flat = {flat}, got the other layout");
        ensure!(inner.kernel() == kernel, "{name}: asked for kernel {kernel}, got {}", inner.kernel());
        Ok(())
    };
    Ok(match name {
        "adamw" => {
            let o = AdamW::with_kernel(named_params(vs, WEIGHT_DECAY, NO_DECAY), AdamWConfig::default(), flat, kernel)?;
            check(o.inner())?;
            Box::new(o)
        }
        "adam" => {
            let o = Adam::with_kernel(named_params(vs, 0.0, NO_DECAY), AdamConfig::default(), flat, kernel)?;
            check(o.inner())?;
            Box::new(o)
        }
        "sgd" => {
            let o = Sgd::with_kernel(named_params(vs, 0.0, NO_DECAY), SgdConfig { momentum: 0.9, dampening: 0.0, nesterov: false }, flat, kernel)?;
            check(o.inner())?;
            Box::new(o)
        }
        other => bail!("unknown optimiser `{other}` (known: adam, adamw, sgd)"),
    })
}

/// `warmup` untimed steps, then `iters` timed ones (ms each), on fresh parameters.
fn time_whetstone(shapes: &[Shape], optimizer: &str, flat: bool, kernel: Kernel, warmup: usize, iters: usize) -> Result<Vec<f64>> {
    let vs = optim_shapes::store(shapes, SEED);
    let mut opt = build(optimizer, &vs, flat, kernel)?;
    for _ in 0..warmup {
        opt.step(LR)?;
    }
    let mut ts = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        opt.step(LR)?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ts)
}

fn run_peer(python: &Path, peer: &Path, dir: &Path, job: &Value) -> Result<Value> {
    let path = dir.join("optim-speed-job.json");
    std::fs::write(&path, serde_json::to_vec(job)?)?;
    let out = Command::new(python).arg(peer).arg("--job").arg(&path).output()?;
    if !out.status.success() {
        bail!("the PyTorch peer failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the peer printed no JSON")?;
    serde_json::from_str(line).context("parsing the peer's JSON")
}

/// All timed steps of one (parameter set, optimiser, implementation), per round.
#[derive(Default)]
struct Series {
    rounds: Vec<Vec<f64>>,
}

impl Series {
    fn all(&self) -> Vec<f64> {
        self.rounds.concat()
    }
    fn median(&self) -> f64 {
        median(&self.all())
    }
    fn round_medians(&self) -> Vec<f64> {
        self.rounds.iter().map(|r| median(r)).collect()
    }
    fn json(&self) -> Value {
        json!({"median_ms": self.median(), "round_medians_ms": self.round_medians(), "min_ms": self.all().into_iter().fold(f64::INFINITY, f64::min), "samples_ms": self.rounds})
    }
}

/// Minimal memory traffic of one step in bytes (float32): Adam(W) reads θ, g, m, v and writes
/// θ, m, v; SGD with momentum reads θ, g, b and writes θ, b.
fn bytes_per_step(optimizer: &str, numel: i64) -> f64 {
    let passes = if optimizer == "sgd" { 5.0 } else { 7.0 };
    passes * 4.0 * numel as f64
}

/// A warning paragraph when the 1-minute load average (at the start or the end) exceeded the number of
/// logical CPUs, i.e. other processes competed for the CPUs during the measurement.
fn busy_warning(m: &Value) -> Option<String> {
    let cpus = m["logical_cpus"].as_f64().unwrap_or(0.0).max(1.0);
    let peak = ["load_average_at_start", "load_average_at_end"]
        .iter()
        .filter_map(|k| m[*k].as_str())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .fold(0.0f64, f64::max);
    (peak > cpus).then(|| {
        format!(
            "**Warning: the machine was busy** (1-minute load average up to {peak:.1} on {cpus:.0} logical CPUs): other processes competed for the CPUs, so these times are inflated and noisy. Multi-threaded libtorch ops suffer most (an OpenMP op waits for its slowest worker, and a descheduled worker stalls it), which penalises torch's implementations and whetstone's per-tensor layout more than whetstone's fused kernel. Rerun on a quiet machine before drawing conclusions.\n\n"
        )
    })
}

fn title(set: &str) -> &'static str {
    match set {
        "minilm" => "MiniLM-L6",
        "small" => "200 × 5k",
        _ => "?",
    }
}

fn opt_title(o: &str) -> &'static str {
    match o {
        "adam" => "Adam",
        "adamw" => "AdamW",
        "sgd" => "SGD (m=0.9)",
        _ => "?",
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("optim-speed: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    ensure!(args.rounds >= 1, "--rounds must be >= 1");
    if args.adaptive {
        return adaptive_cost(&args);
    }
    let python = peer_python(args.python.clone());
    let peer_info = peer_check(&python, &args.peer)?;
    let torch_version = peer_info["torch"].as_str().unwrap_or("?").to_string();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let threads = tch::get_num_threads();
    let sets: Vec<(String, Vec<Shape>)> = args
        .shapes
        .iter()
        .map(|s| {
            let s = s.trim();
            optim_shapes::by_name(s).map(|v| (s.to_string(), v)).with_context(|| format!("unknown parameter set `{s}` (known: minilm, small)"))
        })
        .collect::<Result<_>>()?;
    let optimizers: Vec<String> = args.optimizers.iter().map(|s| s.trim().to_string()).collect();
    for o in &optimizers {
        ensure!(matches!(o.as_str(), "adam" | "adamw" | "sgd"), "unknown optimiser `{o}` (known: adam, adamw, sgd)");
    }
    let load_start = load_avg();
    eprintln!("optim-speed: torch {torch_version} (peer), {threads} threads on both sides, CPU {}, load average {load_start}", cpu_model());
    let t_start = Instant::now();
    let tmp = tempfile::tempdir()?;

    // series[(set, optimiser, implementation)], implementation = "ws:<layout>" or "torch:<impl>".
    let mut series: std::collections::BTreeMap<(String, String, String), Series> = Default::default();
    let mut peer_params = std::collections::BTreeMap::new();
    for (set, shapes) in &sets {
        let total = if set == "minilm" { args.iters_minilm } else { args.iters_small };
        let per_round = total.div_ceil(args.rounds).max(1);
        for round in 0..args.rounds {
            let t_round = Instant::now();
            for o in &optimizers {
                for (layout, flat, kernel) in LAYOUTS {
                    let ts = time_whetstone(shapes, o, flat, kernel, args.warmup, per_round)?;
                    series.entry((set.clone(), o.clone(), format!("ws:{layout}"))).or_default().rounds.push(ts);
                }
            }
            let t_ws = t_round.elapsed().as_secs_f64();
            let job = json!({
                "shapes": shapes,
                "optimizers": optimizers,
                "impls": TORCH_IMPLS,
                "threads": threads,
                "seed": SEED,
                "lr": LR,
                "weight_decay": WEIGHT_DECAY,
                "no_decay": NO_DECAY,
                "warmup": args.warmup,
                "iters": per_round,
            });
            let py = run_peer(&python, &args.peer, tmp.path(), &job)?;
            peer_params.insert(set.clone(), py["params"].as_i64().unwrap_or(0));
            for o in &optimizers {
                for imp in TORCH_IMPLS {
                    let ts: Vec<f64> = py["ms"][o.as_str()][imp].as_array().with_context(|| format!("peer: no result for {o} {imp}"))?.iter().filter_map(Value::as_f64).collect();
                    series.entry((set.clone(), o.clone(), format!("torch:{imp}"))).or_default().rounds.push(ts);
                }
            }
            let summary: Vec<String> = optimizers
                .iter()
                .map(|o| {
                    let last = |k: &str| series.get(&(set.clone(), o.clone(), k.to_string())).and_then(|s| s.rounds.last()).map(|r| median(r)).unwrap_or(f64::NAN);
                    format!("{o} {:.2}/{:.2}/{:.2} ms (ws flat / ws torch-fused flat / torch fused)", last("ws:flat+fused"), last("ws:torch-fused flat"), last("torch:fused"))
                })
                .collect();
            eprintln!(
                "  {set} round {}/{}: {}; {per_round} steps each, whetstone {t_ws:.1}s, peer {:.1}s",
                round + 1,
                args.rounds,
                summary.join(", "),
                t_round.elapsed().as_secs_f64() - t_ws
            );
        }
    }

    // Rows: one per (set, optimiser, whetstone layout).
    let get = |set: &str, o: &str, k: &str| series.get(&(set.to_string(), o.to_string(), k.to_string()));
    let mut rows = Vec::new();
    for (set, shapes) in &sets {
        let numel = optim_shapes::numel(shapes);
        ensure!(peer_params.get(set).copied() == Some(numel), "{set}: the peer built {:?} parameters, whetstone {numel}", peer_params.get(set));
        for o in &optimizers {
            let torch: Vec<(&str, f64)> = TORCH_IMPLS.iter().map(|i| (*i, get(set, o, &format!("torch:{i}")).map(Series::median).unwrap_or(f64::NAN))).collect();
            let (best_impl, best) = torch.iter().copied().filter(|(_, t)| t.is_finite()).min_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or(("?", f64::NAN));
            for (layout, flat, kernel) in LAYOUTS {
                let ws = get(set, o, &format!("ws:{layout}")).map(Series::median).unwrap_or(f64::NAN);
                rows.push(json!({
                    "set": set, "params": numel, "tensors": shapes.len(), "optimizer": o, "layout": layout, "flat": flat, "kernel": kernel.name(),
                    "whetstone_ms": ws,
                    "whetstone_gb_per_s": bytes_per_step(o, numel) / (ws * 1e-3) / 1e9,
                    "torch_ms": torch.iter().map(|(i, t)| (i.to_string(), json!(t))).collect::<serde_json::Map<_, _>>(),
                    "torch_best": best_impl,
                    "torch_best_ms": best,
                    "ratio_torch_best_over_whetstone": best / ws,
                }));
            }
        }
    }

    // Output.
    let mut table = String::from("| parameters | optimiser | whetstone layout / kernel | whetstone ms | torch for-loop ms | torch foreach ms | torch fused ms | torch best / whetstone |\n|---|---|---|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let set = r["set"].as_str().unwrap_or("?");
        let best = r["torch_best"].as_str().unwrap_or("?");
        let cell = |i: &str| {
            let t = r["torch_ms"][i].as_f64().unwrap_or(f64::NAN);
            if i == best {
                format!("**{t:.2}**")
            } else {
                format!("{t:.2}")
            }
        };
        table.push_str(&format!(
            "| {} ({:.1}M, {} tensors) | {} | {} | {:.2} | {} | {} | {} | {:.2}× |\n",
            title(set),
            r["params"].as_f64().unwrap_or(0.0) / 1e6,
            r["tensors"],
            opt_title(r["optimizer"].as_str().unwrap_or("?")),
            r["layout"].as_str().unwrap_or("?"),
            r["whetstone_ms"].as_f64().unwrap_or(f64::NAN),
            cell("forloop"),
            cell("foreach"),
            cell("fused"),
            r["ratio_torch_best_over_whetstone"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    println!("\n{table}");

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let load_end = load_avg();
    let machine = json!({
        "cpu": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "threads": threads,
        "torch": torch_version,
        "python": peer_info["python"],
        "tch": "0.24",
        "load_average_at_start": load_start,
        "load_average_at_end": load_end,
    });
    let raw: Vec<Value> = series.iter().map(|((set, o, k), s)| json!({"set": set, "optimizer": o, "implementation": k, "stats": s.json()})).collect();
    let report = json!({
        "machine": machine,
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "iters_minilm": args.iters_minilm, "iters_small": args.iters_small,
                     "timed_steps_per_round": sets.iter().map(|(s, _)| (s.clone(), json!((if s == "minilm" { args.iters_minilm } else { args.iters_small }).div_ceil(args.rounds).max(1)))).collect::<serde_json::Map<_, _>>(),
                     "lr": LR, "adamw_weight_decay": WEIGHT_DECAY, "no_decay": NO_DECAY, "seed": SEED, "dtype": "float32", "device": "cpu"},
        "rows": rows,
        "series": raw,
        "total_seconds": t_start.elapsed().as_secs_f64(),
    });
    std::fs::write(args.out.join("optim-speed.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(args.out.join("optim-speed.md"), markdown(&args, &report, &table, &sets))?;
    eprintln!("optim-speed: wrote {} and {} ({:.0}s)", args.out.join("optim-speed.md").display(), args.out.join("optim-speed.json").display(), t_start.elapsed().as_secs_f64());
    Ok(())
}

/// The kernel choice at each parameter set: whetstone's kernel against torch-fused, per layout,
/// with the per-round medians (the spread between rounds is the noise to compare with).
fn kernel_section(report: &Value) -> String {
    let series = report["series"].as_array().cloned().unwrap_or_default();
    let rounds = |set: &str, o: &str, imp: &str| -> Vec<f64> {
        series
            .iter()
            .find(|s| s["set"] == set && s["optimizer"] == o && s["implementation"] == format!("ws:{imp}"))
            .and_then(|s| s["stats"]["round_medians_ms"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()))
            .unwrap_or_default()
    };
    let median_of = |set: &str, o: &str, imp: &str| -> f64 {
        series.iter().find(|s| s["set"] == set && s["optimizer"] == o && s["implementation"] == format!("ws:{imp}")).and_then(|s| s["stats"]["median_ms"].as_f64()).unwrap_or(f64::NAN)
    };
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ");
    let mut md = String::from("\n## Kernel choice (`optim.kernel`)\n\nwhetstone's own kernel against libtorch's fused kernels on the same layout: median ms per step over all rounds, the per-round medians in parentheses, and torch-fused / whetstone (above 1: whetstone's kernel is faster).\n\n| parameters | optimiser | layout | whetstone ms (rounds) | torch-fused ms (rounds) | torch-fused / whetstone |\n|---|---|---|---:|---:|---:|\n");
    let mut sets: Vec<String> = Vec::new();
    let mut opts: Vec<String> = Vec::new();
    for s in &series {
        if let (Some(set), Some(o)) = (s["set"].as_str(), s["optimizer"].as_str()) {
            if !sets.iter().any(|x| x == set) {
                sets.push(set.to_string());
            }
            if !opts.iter().any(|x| x == o) {
                opts.push(o.to_string());
            }
        }
    }
    opts.sort_by_key(|o| ["adam", "adamw", "sgd"].iter().position(|x| x == o).unwrap_or(9));
    sets.sort_by_key(|s| ["minilm", "small"].iter().position(|x| x == s).unwrap_or(9));
    for set in &sets {
        for o in &opts {
            for (layout, ws, tf) in [("flat", "flat+fused", "torch-fused flat"), ("per-tensor", "per-tensor", "torch-fused per-tensor")] {
                let (a, b) = (median_of(set, o, ws), median_of(set, o, tf));
                md.push_str(&format!("| {} | {} | {layout} | {a:.2} ({}) | {b:.2} ({}) | {:.2}× |\n", title(set), opt_title(o), fmt(&rounds(set, o, ws)), fmt(&rounds(set, o, tf)), b / a));
            }
        }
    }
    md.push_str("\nThe default kernel is chosen from the flat rows at MiniLM-L6 shapes (the layout and size training uses); see the doc comment of `whetstone_optim::Kernel` for the numbers behind the current default.\n");
    md
}

fn markdown(args: &Args, report: &Value, table: &str, sets: &[(String, Vec<Shape>)]) -> String {
    let m = &report["machine"];
    let s = &report["settings"];
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let mut md = String::new();
    md.push_str("# whetstone-optim vs torch.optim: time of one optimiser step\n\n");
    md.push_str("Generated by `cargo xtask bench optim-speed` (`benches/src/bin/optim-speed.rs` with the peer `benches/peers/optim_speed.py`).\n\n");
    md.push_str("## Machine\n\n");
    md.push_str(&format!(
        "- CPU: {} ({} logical CPUs)\n- intra-op threads: {} on both sides (`tch::get_num_threads()` → `torch.set_num_threads`; whetstone's fused kernels split the buffer over the same number of threads)\n- torch {} (the peer; whetstone links the same libtorch through tch {}), Python {}\n- load average (1/5/15 min) at the start: {}; at the end: {}. Other processes share the CPUs when it is above 0; both sides are affected, not necessarily equally.\n\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["logical_cpus"],
        m["threads"],
        m["torch"].as_str().unwrap_or("?"),
        m["tch"].as_str().unwrap_or("?"),
        m["python"].as_str().unwrap_or("?"),
        m["load_average_at_start"].as_str().unwrap_or("?"),
        m["load_average_at_end"].as_str().unwrap_or("?"),
    ));
    if let Some(w) = busy_warning(m) {
        md.push_str(&w);
    }
    md.push_str("## Parameter sets\n\n");
    for (set, shapes) in sets {
        let what = match set.as_str() {
            "minilm" => "MiniLM-L6 shapes (BERT-style, hidden 384, FFN 1536, 6 layers, word embeddings 30522 × 384, position 512 × 384, token type 2 × 384, embedding LayerNorm; per layer q/k/v/o 384 × 384 with biases, intermediate 1536 × 384 + 1536, output 384 × 1536 + 384, two LayerNorms; no pooler)",
            "small" => "100 matrices 50 × 100 and 100 vectors of 5000",
            _ => "",
        };
        md.push_str(&format!("- **{}**: {what}: {} parameters in {} tensors.\n", title(set), optim_shapes::numel(shapes), shapes.len()));
    }
    md.push_str("\n## Method\n\n");
    md.push_str(&format!(
        "- **What is timed**: one `step` and nothing else. Parameters are float32 N(0, 0.02²) on the CPU, with N(0, 1) gradients already in `.grad` (fixed: neither side writes to the gradients, so every step sees the same values); no zero_grad, no backward. lr {}. **AdamW**: β = (0.9, 0.999), ε = 1e-8, weight decay {} except on bias/LayerNorm (whetstone: `named_params(.., NO_DECAY)`; torch: the same two parameter groups). **Adam**: same betas/ε, no weight decay. **SGD**: momentum 0.9, no dampening, no Nesterov, no weight decay.\n\
- **whetstone**: `AdamW` / `Adam` / `Sgd::with_kernel(params, config, flat, kernel)`: `flat+fused` is the default layout with the default kernel (`kernel = \"whetstone\"`: parameters, gradients and state in one contiguous buffer per weight-decay group, one pass of whetstone's fused CPU kernel per buffer); `per-tensor` is `flat = false` (the transform chain as tensor ops, one parameter at a time). `torch-fused flat` / `torch-fused per-tensor` are the same layouts with `kernel = \"torch-fused\"`: libtorch's fused kernels (`_fused_adam_`, `_fused_adamw_`, `_fused_sgd_`, the ones behind torch's `fused=True`) called from Rust through whetstone-torch-ext, one call per flat buffer, or one call over the tensor list of each weight decay. Timed with `Instant` around `Optimizer::step`.\n\
- **torch.optim** (the peer, same libtorch): `foreach=False` (the for-loop implementation), `foreach=True` (multi-tensor `_foreach_*` ops) and `fused=True` (torch's fused CPU kernel), timed with `time.perf_counter()` around `opt.step()`.\n\
- **Repetitions**: for each parameter set, {} rounds alternate whetstone (every optimiser and layout) and the peer (every optimiser and implementation, in a fresh Python process). Each measurement builds fresh parameters and optimiser state, runs {} untimed warm-up steps, then times {} (MiniLM-L6) / {} (200 × 5k) steps per round. The tables give the median over all timed steps of all rounds ({} / {} per cell); `optim-speed.json` has every sample and the per-round medians.\n\
- **Ratio** = the fastest torch implementation's median (bold) / whetstone's median: above 1 means whetstone's step is faster than torch's best.\n\n",
        s["lr"],
        s["adamw_weight_decay"],
        args.rounds,
        args.warmup,
        s["timed_steps_per_round"]["minilm"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
        s["timed_steps_per_round"]["small"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
        s["timed_steps_per_round"]["minilm"].as_u64().map(|n| (n * args.rounds as u64).to_string()).unwrap_or_else(|| "–".into()),
        s["timed_steps_per_round"]["small"].as_u64().map(|n| (n * args.rounds as u64).to_string()).unwrap_or_else(|| "–".into()),
    ));
    md.push_str("## Results (ms per step, median)\n\n");
    md.push_str(table);
    md.push_str("\nEffective memory bandwidth of whetstone's step (minimal traffic: Adam(W) reads θ, g, m, v and writes θ, m, v; SGD reads θ, g, b and writes θ, b; 4 bytes each):\n\n| parameters | optimiser |");
    for (layout, _, _) in LAYOUTS {
        md.push_str(&format!(" {layout} GB/s |"));
    }
    md.push_str(&format!("\n|---|---|{}\n", "---:|".repeat(LAYOUTS.len())));
    for group in rows.chunks(LAYOUTS.len()) {
        let Some(a) = group.first() else { continue };
        md.push_str(&format!("| {} | {} |", title(a["set"].as_str().unwrap_or("?")), opt_title(a["optimizer"].as_str().unwrap_or("?"))));
        for r in group {
            md.push_str(&format!(" {:.1} |", r["whetstone_gb_per_s"].as_f64().unwrap_or(f64::NAN)));
        }
        md.push('\n');
    }
    md.push_str(&kernel_section(report));
    md.push_str("\n## Where whetstone is slower\n\n");
    let slower: Vec<&Value> = rows.iter().filter(|r| r["ratio_torch_best_over_whetstone"].as_f64().is_some_and(|x| x < 1.0)).collect();
    if slower.is_empty() {
        md.push_str("Nowhere in this run: every whetstone row is at least as fast as torch's best implementation.\n");
    } else {
        md.push_str("In this run, whetstone's step is slower than torch's best implementation for:\n\n");
        for r in slower {
            md.push_str(&format!(
                "- {} {} ({}): {:.2} ms vs torch {} {:.2} ms ({:.2}×).\n",
                title(r["set"].as_str().unwrap_or("?")),
                opt_title(r["optimizer"].as_str().unwrap_or("?")),
                r["layout"].as_str().unwrap_or("?"),
                r["whetstone_ms"].as_f64().unwrap_or(f64::NAN),
                r["torch_best"].as_str().unwrap_or("?"),
                r["torch_best_ms"].as_f64().unwrap_or(f64::NAN),
                r["ratio_torch_best_over_whetstone"].as_f64().unwrap_or(f64::NAN)
            ));
        }
        md.push_str("\nThe per-tensor layout with the whetstone kernel is the fallback (`flat = false`, or chains that are not elementwise); it runs the update as separate tensor ops per parameter, like torch's for-loop implementation, so it is not expected to beat `foreach` / `fused`. With `kernel = \"torch-fused\"` the same layout runs libtorch's fused kernel over the tensor list instead.\n");
    }
    md.push_str("\nDifferences of a few percent are within the run-to-run noise of a shared machine; compare the per-round medians in `optim-speed.json` before reading much into them.\n");
    md
}

/// The implementations `--adaptive` times: (label, optimiser builder).
/// "adaptive-momentum" is the configuration with β₁ adapting too (the default until the
/// fourteenth session, `AdaptiveConfig::momentum_adaptive`).
const ADAPTIVE_IMPLS: [&str; 4] = ["adamw flat+fused", "adaptive fused", "adaptive-momentum fused", "adaptive per-tensor"];

/// The adaptive optimiser on flat buffers, checked to have taken the fused path.
fn fused_adaptive(params: Vec<Param>, config: AdaptiveConfig) -> Result<Box<dyn Optimizer>> {
    let o = Adaptive::with_layout(params, config, true)?;
    ensure!(o.is_fused(), "the adaptive optimiser did not take the fused path");
    Ok(Box::new(o))
}

fn build_adaptive_cmp(label: &str, vs: &tch::nn::VarStore) -> Result<Box<dyn Optimizer>> {
    let params = named_params(vs, WEIGHT_DECAY, NO_DECAY);
    Ok(match label {
        "adamw flat+fused" => build("adamw", vs, true, Kernel::Whetstone)?,
        "adaptive fused" => fused_adaptive(params, AdaptiveConfig::default())?,
        "adaptive-momentum fused" => fused_adaptive(params, AdaptiveConfig::momentum_adaptive())?,
        "adaptive per-tensor" => Box::new(Adaptive::with_layout(params, AdaptiveConfig::default(), false)?),
        other => bail!("unknown implementation `{other}`"),
    })
}

/// `--adaptive`: ms per step of the adaptive optimiser (default config, weight decay as AdamW's)
/// against AdamW, interleaved: every round times each implementation once, on fresh parameters
/// and state, after `--warmup` untimed steps. The warm-up covers the adaptive optimiser's first
/// steps (no cosines at step 1, no hypergradient before step 7): use `--warmup 10` or more.
fn adaptive_cost(args: &Args) -> Result<()> {
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let threads = tch::get_num_threads();
    let load_start = load_avg();
    eprintln!("optim-speed --adaptive: {threads} threads, CPU {}, load average {load_start}", cpu_model());
    let mut rows = Vec::new();
    let mut md = String::from("# The adaptive optimiser's step against AdamW's

Generated by `optim-speed --adaptive` (`benches/src/bin/optim-speed.rs`).

");
    md.push_str(&format!(
        "- CPU: {}; intra-op threads: {threads}; load average at the start: {load_start}
- one `Optimizer::step` timed, float32, fixed N(0, 1) gradients already in `.grad`, lr {LR}, weight decay {WEIGHT_DECAY} except bias / LayerNorm; AdamW with whetstone's default flat+fused kernel; the adaptive optimiser with its default config (`AdaptiveConfig::default()`, the learning-rate multiplier alone), fused (flat buffers, two passes) and per tensor (tensor ops), and fused with β₁ adapting too (`AdaptiveConfig::momentum_adaptive()`, the default until the fourteenth session).
- {} rounds; in each, every implementation in turn builds fresh parameters and state, runs {} untimed steps, then times its share of the steps. Median ms over all timed steps; per-round medians in parentheses.

| parameters | implementation | ms per step (rounds) | / AdamW |
|---|---|---:|---:|
",
        cpu_model(),
        args.rounds,
        args.warmup
    ));
    for set in &args.shapes {
        let set = set.trim();
        let shapes = optim_shapes::by_name(set).with_context(|| format!("unknown parameter set `{set}` (known: minilm, small)"))?;
        let total = if set == "minilm" { args.iters_minilm } else { args.iters_small };
        let per_round = total.div_ceil(args.rounds).max(1);
        let mut series: Vec<Series> = ADAPTIVE_IMPLS.iter().map(|_| Series::default()).collect();
        for round in 0..args.rounds {
            for (k, label) in ADAPTIVE_IMPLS.iter().enumerate() {
                let vs = optim_shapes::store(&shapes, SEED);
                let mut opt = build_adaptive_cmp(label, &vs)?;
                for _ in 0..args.warmup {
                    opt.step(LR)?;
                }
                let mut ts = Vec::with_capacity(per_round);
                for _ in 0..per_round {
                    let t0 = Instant::now();
                    opt.step(LR)?;
                    ts.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                series[k].rounds.push(ts);
            }
            eprintln!("  {set} round {}/{}: {}", round + 1, args.rounds, ADAPTIVE_IMPLS.iter().zip(&series).map(|(l, s)| format!("{l} {:.2} ms", s.rounds.last().map(|r| median(r)).unwrap_or(f64::NAN))).collect::<Vec<_>>().join(", "));
        }
        let adamw = series[0].median();
        for (label, s) in ADAPTIVE_IMPLS.iter().zip(&series) {
            let rounds = s.round_medians().iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ");
            md.push_str(&format!("| {} ({:.1}M, {} tensors) | {label} | {:.2} ({rounds}) | {:.2}× |\n", title(set), optim_shapes::numel(&shapes) as f64 / 1e6, shapes.len(), s.median(), s.median() / adamw));
            rows.push(json!({"set": set, "params": optim_shapes::numel(&shapes), "tensors": shapes.len(), "implementation": label, "stats": s.json(), "ratio_to_adamw": s.median() / adamw}));
        }
    }
    let load_end = load_avg();
    md.push_str(&format!("\nLoad average at the end: {load_end}. Other processes shared the CPUs when it was above 0; the rounds interleave the implementations so that load affects them alike.\n"));
    std::fs::create_dir_all(&args.out)?;
    let report = json!({"threads": threads, "cpu": cpu_model(), "load_average_at_start": load_start, "load_average_at_end": load_end, "rounds": args.rounds, "warmup": args.warmup, "rows": rows});
    std::fs::write(args.out.join("optim-speed-adaptive.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(args.out.join("optim-speed-adaptive.md"), &md)?;
    println!("{md}");
    Ok(())
}
