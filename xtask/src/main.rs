//! `cargo xtask`: the project's own task runner.
//!
//! It provisions libtorch (a pip-installed `torch==2.11.0` in a cache virtualenv, see
//! [`libtorch`]) and then runs cargo with the environment that tch needs, so that a user
//! never exports anything by hand. It deliberately does not depend on tch itself.

mod bundle;
mod gloo;
mod libtorch;
mod mutants;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
cargo xtask <command> [args]

commands:
  setup              install libtorch (torch==2.11.0) into the cache virtualenv and print the environment
  data [NAME|all]    fetch, verify (sha256) and extract a dataset into data/cache (default: rotten-tomatoes)
  train [ARGS..]     build the CLI and run `whetstone train ARGS..` (default recipe when no --recipe)
  test [ARGS..]      run the whole test suite (cargo test --release --workspace ARGS..)
  bench [NAME]       benchmarks against PyTorch, reports in reports/ (NAME: train (default): training and
                     inference throughput; optim-speed: one optimiser step vs torch.optim; optim: the
                     optimiser convergence study; transfer: the small-sample transfer study (pretrains
                     runs/mlm-imdb first when missing); compress: distillation/pruning/int8/early-exit
                     study (reports/compress.md; --quick, --measure-only, --teacher RUN); precision: fp32
                     against bf16 on minilm-rt and rt-transformer, 3 seeds (reports/precision.md); augment: EDA,
                     adversarial/consistency training and multi-task learning on rotten-tomatoes
                     (reports/augment.md; --sections, --seeds, --quick); serve: `whetstone serve` under
                     load at 1/8/64 clients, batching window on/off, overload, against `whetstone predict`
                     (reports/serve.md; --quick); all: train and optim-speed, then the criterion benches)
  fuzz [--seconds N] [TARGET..]
                     run the cargo-fuzz targets (fuzz/: data_readers, recipe, checkpoint; default all)
                     for N seconds each (default 60), installing cargo-fuzz when missing; stable Rust
                     (RUSTC_BOOTSTRAP=1, --sanitizer none). New inputs go to fuzz/target/corpus, crashes
                     to fuzz/artifacts; `cargo xtask test` replays fuzz/corpus and fuzz/regressions
  mutants [--crate NAME].. [--minutes N] [--seed K]
                     sampled mutation testing (cargo-mutants, installed when missing) of whetstone-optim,
                     -train, -compress and -data (or each --crate): about N minutes per crate (default 15,
                     ~2.5 min a mutant), mutants picked round-robin from shard K (default 7), in
                     target/mutants; prints the caught rate per crate, lists in
                     target/mutants-out/CRATE/mutants.out (reports/mutants.md). Too slow for CI
  install [--dest DIR] [--hardlink]
                     a relocatable bundle (default dist/whetstone): the release binary plus the libtorch and
                     CUDA libraries it loads, runnable on a Linux x86-64 machine with no Python or libtorch
  env                print the environment exports for using the installed libtorch from a shell

environment:
  WHETSTONE_HOME     where the torch virtualenv lives (default ~/.cache/whetstone/torch-2.11.0)
  LIBTORCH           use an existing libtorch instead (skips the install); LIBTORCH_USE_PYTORCH likewise
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    }
    let cmd = args.remove(0);
    let root = workspace_root()?;
    match cmd.as_str() {
        "setup" => {
            let env = libtorch::ensure()?;
            println!("libtorch ready: {}", env.describe());
            Ok(ExitCode::SUCCESS)
        }
        "env" => {
            let env = libtorch::ensure()?;
            for (k, v) in env.vars(&root) {
                println!("export {k}={v:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        "data" => {
            let env = libtorch::ensure()?;
            let names = if args.is_empty() { vec!["rotten-tomatoes".to_string()] } else { args };
            let mut a = vec!["data".to_string()];
            a.extend(names);
            cargo_run_cli(&root, &env, &a)
        }
        "train" => {
            let env = libtorch::ensure()?;
            let mut a = vec!["train".to_string()];
            a.extend(args);
            cargo_run_cli(&root, &env, &a)
        }
        "test" => {
            let env = libtorch::ensure()?;
            // Tests read real data only through the project's cached fetch: fetch it first.
            cargo_run_cli(&root, &env, &["data".into(), "rotten-tomatoes".into(), "sms-spam".into(), "wordnet".into()])?;
            let mut c = cargo(&root, &env);
            c.args(["test", "--release", "--workspace", "--no-fail-fast"]).args(&args);
            status(c)
        }
        "install" => {
            let env = libtorch::ensure()?;
            let opts = bundle::parse(&args, &root)?;
            let mut c = cargo(&root, &env);
            c.args(["build", "--release", "-p", "whetstone"]);
            if status(c)? != ExitCode::SUCCESS {
                bail!("building whetstone failed");
            }
            let libtorch = env.libtorch_dir().context("no libtorch folder is known (LIBTORCH_USE_PYTORCH without a torch import?)")?;
            bundle::install(&root.join("target/release/whetstone"), &libtorch, &opts)?;
            Ok(ExitCode::SUCCESS)
        }
        "fuzz" => {
            let env = libtorch::ensure()?;
            fuzz(&root, &env, &args)
        }
        "mutants" => {
            let env = libtorch::ensure()?;
            mutants::mutants(&root, &cargo(&root, &env), &args)
        }
        "bench" => {
            let env = libtorch::ensure()?;
            let what = args.first().cloned().unwrap_or_else(|| "train".into());
            bench(&root, &env, &what)
        }
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest.parent().context("xtask has no parent directory")?.to_path_buf())
}

fn cargo(root: &Path, env: &libtorch::Env) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    for (k, v) in env.vars(root) {
        c.env(k, v);
    }
    c
}

fn status(mut c: Command) -> Result<ExitCode> {
    let st = c.status().with_context(|| format!("could not start {c:?}"))?;
    Ok(if st.success() { ExitCode::SUCCESS } else { ExitCode::from(st.code().unwrap_or(1).clamp(1, 255) as u8) })
}

/// Build the `whetstone` CLI in release mode and run it with `args`.
fn cargo_run_cli(root: &Path, env: &libtorch::Env, args: &[String]) -> Result<ExitCode> {
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone", "--"]).args(args);
    let code = status(c)?;
    if code != ExitCode::SUCCESS {
        bail!("`whetstone {}` failed", args.join(" "));
    }
    Ok(code)
}

fn bench(root: &Path, env: &libtorch::Env, what: &str) -> Result<ExitCode> {
    match what {
        "train" => bench_train(root, env),
        "optim-speed" => bench_optim_speed(root, env),
        // Convergence study: reports/optim.{md,json}; arguments after `optim` go to it (`--quick`, `--tasks`, …).
        "optim" => study(root, env, "optim-study", &["rotten-tomatoes", "sms-spam", "imdb", "jeopardy", "wiki100", "wnut16"]),
        "transfer" => {
            // Small-sample transfer study: reports/transfer.{md,json,png}; arguments after `transfer` go to it.
            let pretrained = root.join("runs/mlm-imdb");
            if !pretrained.join("encoder/config.json").is_file() && !std::env::args().any(|a| a == "--pretrained" || a == "--report-only") {
                eprintln!("no finished runs/mlm-imdb: pretraining it first (whetstone pretrain --recipe mlm-imdb)");
                let _ = std::fs::remove_dir_all(&pretrained);
                let code = cargo_run_cli(root, env, &["pretrain".into(), "--recipe".into(), "mlm-imdb".into()])?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
            }
            study(root, env, "transfer-study", &["rotten-tomatoes", "imdb", "minilm-l6"])
        }
        // Compression study: reports/compress.{md,json}; arguments after `compress` go to it
        // (`--quick`, `--measure-only`, `--teacher RUN`, `--rows …`).
        "compress" => study(root, env, "compress-study", &["rotten-tomatoes", "imdb", "minilm-l6"]),
        // fp32 against bf16 (accuracy over 3 seeds and training seq/s): reports/precision.{md,json}.
        "precision" => study(root, env, "precision-study", &["rotten-tomatoes", "minilm-l6"]),
        // Augmentation, adversarial training and multi-task learning: reports/augment.{md,json,png};
        // arguments after `augment` go to it (`--sections`, `--seeds`, `--quick`, …).
        "augment" => study(root, env, "augment-study", &["rotten-tomatoes", "imdb", "sms-spam", "wnut16", "wordnet", "minilm-l6"]),
        // Data-parallel throughput against PyTorch DDP (Gloo) and the scaling model:
        // reports/dist.{md,json}; arguments after `dist` go to it (`--quick`, `--reps`, …).
        "dist" => bench_dist(root, env),
        // `whetstone serve` under load over loopback (1, 8, 64 clients; batching window on and
        // off; overload) against `whetstone predict`: reports/serve.{md,json}; arguments after
        // `serve` go to it (`--quick`, `--seconds`, `--clients`, …).
        "serve" => bench_serve(root, env),
        "all" => {
            for step in [bench_train, bench_optim_speed] {
                let code = step(root, env)?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
            }
            let mut c = cargo(root, env);
            c.args(["bench", "-p", "whetstone-benches"]);
            status(c)
        }
        other => bail!("unknown bench `{other}` (known: train, optim-speed, optim, transfer, compress, precision, augment, dist, serve, all)"),
    }
}

/// Fetches `datasets`, then runs the study binary `bin` of whetstone-benches with the arguments
/// that follow `cargo xtask bench NAME`.
fn study(root: &Path, env: &libtorch::Env, bin: &str, datasets: &[&str]) -> Result<ExitCode> {
    eprintln!("xtask: {bin}: fetching {}, then building whetstone-benches (cargo's progress below; the first build takes a few minutes)", datasets.join(", "));
    let mut fetch = vec!["data".to_string()];
    fetch.extend(datasets.iter().map(|d| d.to_string()));
    cargo_run_cli(root, env, &fetch)?;
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone-benches", "--bin", bin, "--"]).args(std::env::args().skip(3));
    status(c)
}

/// Training / inference throughput against the eager PyTorch peer: reports/bench.{md,json}.
fn bench_train(root: &Path, env: &libtorch::Env) -> Result<ExitCode> {
    cargo_run_cli(root, env, &["data".into(), "rotten-tomatoes".into()])?;
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone-benches", "--bin", "train-throughput", "--"]);
    c.arg("--python").arg(env.python());
    c.arg("--peer").arg(root.join("benches/peers/train_throughput.py"));
    c.arg("--out").arg(root.join("reports"));
    status(c)
}

/// Data-parallel training throughput against PyTorch DDP: reports/dist.{md,json} (`--quick`:
/// reports/dist-quick.{md,json}).
fn bench_dist(root: &Path, env: &libtorch::Env) -> Result<ExitCode> {
    cargo_run_cli(root, env, &["data".into(), "rotten-tomatoes".into()])?;
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone-benches", "--bin", "dist-throughput", "--"]);
    c.arg("--python").arg(env.python());
    c.arg("--peer").arg(root.join("benches/peers/ddp_throughput.py"));
    c.arg("--out").arg(root.join("reports"));
    c.args(std::env::args().skip(3));
    status(c)
}

/// `whetstone serve` under load against `whetstone predict`: reports/serve.{md,json}. The
/// served run is runs/serve-bench (the default recipe, 1 epoch), trained first when missing.
fn bench_serve(root: &Path, env: &libtorch::Env) -> Result<ExitCode> {
    // Builds target/release/whetstone too.
    cargo_run_cli(root, env, &["data".into(), "rotten-tomatoes".into()])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone-benches", "--bin", "serve-load", "--"]);
    c.arg("--whetstone").arg(target.join("release/whetstone"));
    c.arg("--run").arg(root.join("runs/serve-bench"));
    c.arg("--out").arg(root.join("reports"));
    c.args(std::env::args().skip(3));
    status(c)
}

/// One optimiser step of whetstone-optim against torch.optim: reports/optim-speed.{md,json}.
fn bench_optim_speed(root: &Path, env: &libtorch::Env) -> Result<ExitCode> {
    let mut c = cargo(root, env);
    c.args(["run", "--release", "-p", "whetstone-benches", "--bin", "optim-speed", "--"]);
    c.arg("--python").arg(env.python());
    c.arg("--peer").arg(root.join("benches/peers/optim_speed.py"));
    c.arg("--out").arg(root.join("reports"));
    status(c)
}

/// The cargo-fuzz targets of fuzz/ (see fuzz/src/lib.rs).
const FUZZ_TARGETS: [&str; 3] = ["data_readers", "recipe", "checkpoint"];

/// `cargo xtask fuzz [--seconds N] [TARGET..]`: each target for N seconds (default 60) with
/// cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1 for its -Z flags, no sanitizer),
/// starting from fuzz/corpus/TARGET and fuzz/regressions/TARGET; new inputs are kept in
/// fuzz/target/corpus/TARGET, a crash in fuzz/artifacts/TARGET (and the command fails).
fn fuzz(root: &Path, env: &libtorch::Env, args: &[String]) -> Result<ExitCode> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().context("--seconds needs a number")?.parse().context("--seconds needs a whole number of seconds")?,
            t if FUZZ_TARGETS.contains(&t) => targets.push(t.to_string()),
            other => bail!("unknown fuzz argument `{other}` (targets: {})", FUZZ_TARGETS.join(", ")),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let installed = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
        let st = Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]).status().context("could not start cargo install")?;
        if !st.success() {
            bail!("installing cargo-fuzz failed");
        }
    }
    let fuzz_dir = root.join("fuzz");
    let fuzz_cmd = |sub: &str| {
        let mut c = cargo(root, env);
        // cargo-fuzz passes -Z flags to rustc; stable accepts them with RUSTC_BOOTSTRAP. No
        // sanitizer: AddressSanitizer needs nightly's std and libtorch is not built with it.
        c.env("RUSTC_BOOTSTRAP", "1").args(["fuzz", sub, "--fuzz-dir"]).arg(&fuzz_dir).args(["--sanitizer", "none", "--debug-assertions"]);
        c
    };
    let t0 = std::time::Instant::now();
    let code = status(fuzz_cmd("build"))?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    eprintln!("fuzz targets built in {:.0}s", t0.elapsed().as_secs_f64());
    for t in &targets {
        let work = fuzz_dir.join("target/corpus").join(t);
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let mut c = fuzz_cmd("run");
        c.arg(t).arg(&work).arg(fuzz_dir.join("corpus").join(t)).arg(fuzz_dir.join("regressions").join(t));
        c.args(["--", &format!("-max_total_time={seconds}"), "-max_len=65536", "-rss_limit_mb=4096", "-timeout=10", "-print_final_stats=1"]);
        eprintln!("fuzzing {t} for {seconds}s");
        let code = status(c)?;
        if code != ExitCode::SUCCESS {
            eprintln!("fuzz target {t} found a failure: the input is in fuzz/artifacts/{t}/; save it under fuzz/regressions/{t}/ once understood");
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}
