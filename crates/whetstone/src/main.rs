//! `whetstone`: train, evaluate and use text classifiers from TOML recipes.
//!
//! The binary is a thin shell over the library crates: argument parsing, recipe resolution and
//! printing. Recipes, run folders and the train/pretrain pipelines are whetstone-run's,
//! distill/prune pipelines included; the algorithms are whetstone-compress's; the rest lives in whetstone-data, -models,
//! -optim, -train (the loop) and -eval.

mod augment_cmd;
mod compress_cmd;
mod model_args;
mod predict_cmd;
mod pretrain_cmd;
mod recipe_source;
mod serve_cmd;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use whetstone_data::{fetch, Manifest, TableSpec};
use whetstone_run::{small_data, train_recipe, Precision, Recipe, RunFolder, RunOptions};

#[derive(Parser)]
#[command(name = "whetstone", version, about = "Train, compress and ship text classifiers on libtorch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a recipe (the embedded default when none is given).
    ///
    /// Small data: with --data and no --recipe, whetstone counts the labelled examples of the
    /// file. Below 2,000 it picks defaults for small data and prints one `auto:` line per
    /// choice (also recorded in the run's metrics.json `size_defaults` and report.md): the
    /// pretrained encoder minilm-l6 (mean pooling, lr 1e-4, clip 1; another encoder with
    /// WHETSTONE_SMALL_DATA_ENCODER=NAME|FOLDER), batch 16, EDA augmentation on half the
    /// examples of each epoch, early stopping off, enough epochs for at least 250 optimiser
    /// steps (at most 40 epochs), and stratified validation/test splits of at least 20 examples
    /// per class or 50 in all (at most 20% each). Any setting you give (--recipe, --set,
    /// --epochs, --lr, …) wins over these; setting anything under model. or tokenizer. keeps
    /// the recipe's model. At 2,000 examples or more the default recipe runs as it is.
    /// WHETSTONE_SMALL_DATA=off turns the rules off (the same as --recipe default).
    ///
    /// Every run reports its test accuracy against the majority-class baseline, and warns
    /// (at the end and in report.md) when the model did not beat it.
    Train(TrainArgs),
    /// Pretrain a Transformer encoder with masked-LM on unlabelled text (embedded recipes:
    /// mlm-imdb, mlm-wiki100); the encoder is then fine-tuned with `[model] pretrained = RUN`.
    Pretrain(pretrain_cmd::PretrainArgs),
    /// Evaluate a finished run on its test split or on a labelled file.
    Eval(EvalArgs),
    /// Classify stdin line by line, answering every line in order (flushed per line): prints
    /// `label<TAB>probability`, or with `--format jsonl` every class's probability.
    Predict(predict_cmd::PredictArgs),
    /// Serve a run over HTTP: POST /predict (JSON), GET /health, GET /metadata, with dynamic
    /// batching, bounded queues and graceful shutdown.
    Serve(serve_cmd::ServeArgs),
    /// Distil a teacher run into a smaller student run.
    Distill(compress_cmd::DistillArgs),
    /// Prune (or int8-quantise) a run into a smaller or sparser run.
    Prune(compress_cmd::PruneArgs),
    /// Write an augmented copy of a labelled dataset (EDA, masking, neighbours, …) as JSON lines.
    Augment(augment_cmd::AugmentArgs),
    /// Fetch datasets from the manifest into the cache (`all` for every one).
    Data {
        /// Dataset names (default: rotten-tomatoes; with --verify: every cached dataset).
        names: Vec<String>,
        /// Delete the cached copy and fetch it again (the fix for a cached file that changed).
        #[arg(long, conflicts_with = "verify")]
        refetch: bool,
        /// Re-hash the cached files against the record made when they were extracted; fetches
        /// nothing. Exits 1 naming the first file that changed.
        #[arg(long)]
        verify: bool,
    },
    /// List the embedded recipes and known datasets.
    List,
    /// Print a recipe fully resolved, every default filled in, as TOML (what a run with it
    /// records in its recipe.toml).
    Config {
        /// An embedded recipe (see `whetstone list`; pretraining ones too) or a TOML file.
        #[arg(default_value = "default")]
        recipe: String,
        /// Override any recipe field, e.g. `--set optim.lr=3e-4` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Args)]
struct DataFileArgs {
    /// Your own CSV, TSV or JSONL file of labelled text.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Column (or JSON field) holding the text.
    #[arg(long, default_value = "text")]
    text_col: String,
    /// Column (or JSON field) holding the label.
    #[arg(long, default_value = "label")]
    label_col: String,
}

#[derive(Args)]
struct TrainArgs {
    /// An embedded recipe name (see `whetstone list`) or a TOML file [default: default].
    #[arg(long)]
    recipe: Option<String>,
    /// Training epochs (the same as `--set train.epochs=N`). With --resume, extends a run to N
    /// epochs in all (recorded in its recipe.toml).
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Skip the latency/throughput measurement after training (the same as `--set
    /// eval.latency_iters=0`), for short runs.
    #[arg(long)]
    no_bench: bool,
    /// Override any recipe field, e.g. `--set optim.lr=3e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    #[command(flatten)]
    file: DataFileArgs,
    /// Fixed validation file (with --data).
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Fixed test file (with --data).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Drop rows whose label is missing, empty, null or NaN-like (NaN, N/A, null, …) instead
    /// of refusing the file; the number dropped is reported. The same as `--set
    /// data.drop_bad_labels=true`; saved with the run, so --resume and eval need it no more.
    #[arg(long)]
    drop_bad_labels: bool,
    /// Data-parallel training on this machine: start N worker processes (torchrun's standalone
    /// mode; Gloo on CPU, NCCL on CUDA). Each trains on its share of every global batch of N ×
    /// train.batch_size examples; rank 0 writes the run. Under torchrun or a scheduler that sets
    /// RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, leave it out.
    #[arg(long, default_value_t = 1, value_name = "N")]
    nproc: usize,
    /// Seconds a rank waits for the others (rendezvous and every collective) before it fails,
    /// naming the rank that stopped answering (sets WHETSTONE_DIST_TIMEOUT for the workers).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    dist_timeout: f64,
    #[command(flatten)]
    run: RunArgs,
}

/// Where a new run goes, or which run to continue: shared by `train` and `pretrain`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    pub device: Option<String>,
    /// fp32, bf16 (mixed precision, CPU or CUDA) or fp16 (CUDA only); same as
    /// `--set precision=…`, and like --device it may change on --resume.
    #[arg(long, value_parser = precision_arg)]
    pub precision: Option<Precision>,
    /// Run name [default: the data file's and the model's (`reviews-textcnn`), else the recipe's].
    #[arg(long)]
    pub name: Option<String>,
    /// Peak learning rate (the same as `--set optim.lr=…`) [default: the recipe's].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Intra-op threads of libtorch (the same as `--set threads=…`; may change on --resume)
    /// [default: the recipe's; 0 = all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Folder that holds runs.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Continue a killed run from its last checkpoint (a run folder, or a name under --runs-dir);
    /// only --device may change, and the run's recipe, data and labels must be unchanged.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after this many optimiser steps, as a kill would (for tests and debugging; a run
    /// option, never written to the recipe).
    #[arg(long, hide = true, default_value_t = 0)]
    pub stop_after: u64,
    /// Keep the resumable checkpoint (optimiser state included) once the run has finished, so
    /// that it can be extended later with `--resume RUN --epochs N`. By default it is deleted at
    /// the end, leaving the model; an interrupted run always keeps it.
    #[arg(long)]
    pub keep_checkpoint: bool,
}

impl RunArgs {
    /// The folder of the run `--resume` names.
    pub fn resume_dir(&self, run: &str) -> PathBuf {
        whetstone_run::resume_dir(&self.runs_dir, run)
    }

    /// The run options: where the run goes (a fresh folder for the run `name`, or the run
    /// being resumed), quiet, and the hidden stop.
    pub fn options(&self, folder: RunFolder) -> RunOptions {
        RunOptions { folder, quiet: self.quiet, stop_after: self.stop_after, drop_bad_labels: false, keep_checkpoint: self.keep_checkpoint, size_plan: None }
    }

    /// `--device` and `--name` as recipe overrides.
    pub fn overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = &self.device {
            out.push(format!("device={d:?}"));
        }
        if let Some(n) = &self.name {
            out.push(format!("name={n:?}"));
        }
        if let Some(p) = self.precision {
            out.push(format!("precision=\"{p}\""));
        }
        if let Some(lr) = self.lr {
            out.push(format!("optim.lr={lr:e}"));
        }
        if let Some(t) = self.threads {
            out.push(format!("threads={t}"));
        }
        out
    }
}

/// `--precision`: fp32, bf16 or fp16.
pub(crate) fn precision_arg(s: &str) -> std::result::Result<Precision, String> {
    s.parse::<Precision>().map_err(|e| e.to_string())
}

#[derive(Args)]
struct EvalArgs {
    /// The run: a name under --runs-dir, or a folder.
    #[arg(long, value_name = "RUN")]
    run: String,
    /// Folder that holds runs.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// A labelled CSV, TSV or JSONL file to evaluate on (default: the run's test split). Its
    /// labels may be the raw ones the run was trained on or the names `predict` prints.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Column (or JSON field) holding the text [default: the run's, from its recipe].
    #[arg(long)]
    text_col: Option<String>,
    /// Column (or JSON field) holding the label [default: the run's, from its recipe].
    #[arg(long)]
    label_col: Option<String>,
    /// cpu, cuda, cuda:N or auto (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// Precision of inference: fp32, bf16 or fp16 (default: the run's recipe's).
    #[arg(long, value_parser = precision_arg)]
    precision: Option<Precision>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also measure accuracy under attacks (comma-separated): `pgd`, an L2 PGD attack on the
    /// input embeddings that maximises the gold label's cross-entropy; `synonym`, a greedy
    /// WordNet synonym-substitution attack (TextFooler-style) changing at most --budget words
    /// per sentence.
    #[arg(long, value_parser = ["pgd", "synonym"], value_delimiter = ',')]
    attack: Vec<String>,
    /// The PGD attack's radius ε per sentence (L2 over its token embeddings; compare it with the
    /// mean embedding norm the report prints).
    #[arg(long, default_value_t = 1.0)]
    epsilon: f64,
    /// The PGD attack's ascent steps K (step size 2.5·ε/K).
    #[arg(long, default_value_t = 10)]
    attack_steps: usize,
    /// Words the synonym attack may substitute per sentence.
    #[arg(long, default_value_t = 2)]
    budget: usize,
    /// Attack only the first N examples (0: all; the synonym attack queries the model ~50× per sentence).
    #[arg(long, default_value_t = 0)]
    attack_examples: usize,
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as for other Unix tools, not with a panic.
    // SAFETY: restoring the default disposition of SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if matches!(cli.command, Command::Train(_) | Command::Pretrain(_) | Command::Distill(_) | Command::Prune(_)) {
        stop_on_ctrl_c();
    }
    let result = match cli.command {
        Command::Train(a) if a.nproc > 1 && std::env::var_os("WORLD_SIZE").is_none() => return launch(&a),
        Command::Train(a) => train(a),
        Command::Pretrain(a) => pretrain_cmd::pretrain(a),
        Command::Eval(a) => eval(a),
        Command::Predict(a) => predict_cmd::predict(a),
        Command::Serve(a) => serve_cmd::serve(a),
        Command::Distill(a) => compress_cmd::distill(a),
        Command::Prune(a) => compress_cmd::prune(a),
        Command::Augment(a) => augment_cmd::augment(a),
        Command::Data { names, refetch, verify } => data(names, refetch, verify),
        Command::List => list(),
        Command::Config { recipe, overrides } => config(&recipe, &overrides),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text is already part of
/// what is printed (libraries often put their source's message into their own, and anyhow's
/// `{:#}` would print an OS error twice: "Is a directory (os error 21): Is a directory …").
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(text.trim()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

extern "C" fn on_ctrl_c(_: libc::c_int) {
    whetstone_train::request_stop();
    // A second Ctrl-C ends the process at once.
    // SAFETY: resetting a signal's disposition is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// The first Ctrl-C asks the training loop to stop at the next step boundary: it writes a
/// checkpoint and the command prints how to resume. The second ends the process.
fn stop_on_ctrl_c() {
    // SAFETY: installs a handler that only does an atomic store and a signal() call.
    unsafe { libc::signal(libc::SIGINT, on_ctrl_c as extern "C" fn(libc::c_int) as libc::sighandler_t) };
}

/// `train --nproc N`: this program's own arguments, without `--nproc`, as N local workers.
fn launch(a: &TrainArgs) -> ExitCode {
    // Ctrl-C reaches the workers (one process group): they stop at a step boundary, save and
    // exit; the launcher waits for them and forwards their status.
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let run = || -> Result<i32> {
        if !(a.dist_timeout.is_finite() && a.dist_timeout > 0.0) {
            bail!("--dist-timeout must be a positive number of seconds, not {}", a.dist_timeout);
        }
        let exe = std::env::current_exe().context("finding this program to start its workers")?;
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut it = std::env::args_os().skip(1);
        while let Some(arg) = it.next() {
            let text = arg.to_string_lossy();
            if text == "--nproc" {
                it.next();
            } else if !text.starts_with("--nproc=") {
                args.push(arg);
            }
        }
        eprintln!("launching {} worker processes (rank 0 reports; effective batch {} × train.batch_size)", a.nproc, a.nproc);
        let launch = whetstone_dist::LocalLaunch { nproc: a.nproc, port: None, timeout: std::time::Duration::from_secs_f64(a.dist_timeout) };
        Ok(launch.run(&exe, &args)?)
    };
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

fn train(a: TrainArgs) -> Result<()> {
    if a.nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    if a.nproc > 1 {
        bail!("--nproc {} with WORLD_SIZE={} already set: this process was started by a launcher (torchrun, a scheduler or --nproc); drop --nproc", a.nproc, std::env::var("WORLD_SIZE").unwrap_or_default());
    }
    let (recipe, dir, resume, size_plan) = if let Some(run) = &a.run.resume {
        if !a.overrides.is_empty() || a.file.data.is_some() || a.run.name.is_some() || a.no_bench {
            bail!("--resume continues a run with its own recipe; drop --set/--data/--name/--no-bench (only --epochs, --device, --precision and --threads-like run options may change)");
        }
        let dir = a.run.resume_dir(run);
        let mut recipe = whetstone_run::read_recipe(&dir)?;
        if let Some(other) = &a.recipe {
            let (origin, text) = recipe_source::load_text(other)?;
            let other = Recipe::parse(&origin, &text, &[]).map_err(anyhow::Error::msg)?;
            let differs = whetstone_run::recipe_changes(&recipe, &other)?;
            if !differs.is_empty() {
                bail!("--resume continues {} with its own recipe, and --recipe {} differs from it ({}); drop --recipe, or start a new run with it", dir.display(), origin, differs.join("; "));
            }
        }
        if dir.join("metrics.json").is_file() && dir.join("report.md").is_file() {
            // A finished run (report.md is its last file): nothing to do unless asked for more epochs.
            let done = recipe.train.epochs;
            match a.epochs {
                None => {
                    let more = if dir.join(whetstone_run::CHECKPOINT_FILE).is_file() {
                        format!("To train it further: whetstone train --resume {} --epochs N (N > {done})", dir.display())
                    } else {
                        "Its resumable checkpoint was removed when it finished, so it cannot be extended (train with --keep-checkpoint to keep that option)".to_string()
                    };
                    println!("{} already finished its {done} epoch(s); nothing changed. {more}", dir.display());
                    return Ok(());
                }
                Some(n) if n <= done => bail!("--epochs {n} does not extend {}: it already trained {done} epoch(s); give more than {done}", dir.display()),
                Some(_) if !dir.join(whetstone_run::CHECKPOINT_FILE).is_file() => bail!(
                    "{} finished and its resumable checkpoint was removed, so it cannot be extended; train with --keep-checkpoint to extend runs later, or start a new run",
                    dir.display()
                ),
                Some(_) => {}
            }
        }
        if let Some(n) = a.epochs {
            recipe.train.epochs = n;
        }
        // The device and the precision may change on resume (not part of the run's identity).
        if let Some(d) = &a.run.device {
            recipe.device = d.clone();
        }
        if let Some(p) = a.run.precision {
            recipe.precision = p;
        }
        if let Some(t) = a.run.threads {
            recipe.threads = t;
        }
        if a.run.lr.is_some() {
            bail!("--lr cannot change on --resume: the learning rate is part of the run's recipe");
        }
        recipe.validate()?;
        (recipe, RunFolder::Resume(dir), true, None)
    } else {
        let (origin, text) = recipe_source::load_text(a.recipe.as_deref().unwrap_or("default"))?;
        let mut overrides = a.overrides.clone();
        if let Some(p) = &a.file.data {
            overrides.push(format!("data.path={:?}", p.display().to_string()));
            overrides.push(format!("data.text_col={:?}", a.file.text_col));
            overrides.push(format!("data.label_col={:?}", a.file.label_col));
        } else if a.valid.is_some() || a.test.is_some() {
            bail!("--valid and --test need --data");
        }
        if let Some(p) = &a.valid {
            overrides.push(format!("data.valid_path={:?}", p.display().to_string()));
        }
        if let Some(p) = &a.test {
            overrides.push(format!("data.test_path={:?}", p.display().to_string()));
        }
        if a.drop_bad_labels {
            overrides.push("data.drop_bad_labels=true".into());
        }
        if let Some(n) = a.epochs {
            overrides.push(format!("train.epochs={n}"));
        }
        if a.no_bench {
            overrides.push("eval.latency_iters=0".into());
        }
        overrides.extend(a.run.overrides());
        let mut recipe = recipe_source::parse_blaming(&origin, &text, &overrides, Recipe::parse)?;
        // The user's own data and no recipe: defaults for the data's size; every setting the
        // user gave (any override above) stays as given.
        let size_plan = match (&a.file.data, &a.recipe) {
            (Some(_), None) if small_data::enabled() => {
                let (examples, classes) = small_data::data_size(&recipe, false)?;
                let encoder = std::env::var(small_data::ENCODER_ENV).ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| small_data::DEFAULT_ENCODER.to_string());
                Some(small_data::choose_for_size(&mut recipe, examples, classes, &small_data::override_keys(&overrides), &encoder)?)
            }
            _ => None,
        };
        // A run on the user's own file is named after it and the model (`reviews-textcnn`),
        // unless --name (or the recipe's `name`, through --set) says otherwise.
        if let (Some(p), None) = (&a.file.data, &a.run.name) {
            if !a.overrides.iter().any(|o| o.trim_start().starts_with("name=")) {
                let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "data".into());
                recipe.name = format!("{stem}-{}", recipe.model.kind());
            }
        }
        let folder = RunFolder::named(&a.run.runs_dir, &recipe.name);
        (recipe, folder, false, size_plan)
    };
    // A data-parallel replica other than rank 0 stays quiet: rank 0 reports.
    let quiet = a.run.quiet || std::env::var("RANK").is_ok_and(|r| r.trim() != "0") && std::env::var_os("WORLD_SIZE").is_some();
    if !quiet {
        // A fresh run's folder is named once it is made (`<name>-2` when taken): the pipeline
        // prints it then.
        if resume {
            eprintln!("resuming run {} ({})", recipe.name, dir.display_path().display());
        } else {
            eprintln!("starting run {}", recipe.name);
        }
        for line in size_plan.iter().flat_map(|p| p.lines()) {
            eprintln!("{line}");
        }
    }
    let r = train_recipe(&recipe, &RunOptions { size_plan, ..a.run.options(dir) })?;
    if r.rank != 0 {
        // A data-parallel replica: rank 0 reports.
        return Ok(());
    }
    let dir = &r.dir;
    match &r.test {
        None => {
            let nproc = std::env::var("WORLD_SIZE").ok().filter(|w| w != "1").map_or(String::new(), |w| format!(" --nproc {w}"));
            println!("run interrupted at step {}; its checkpoint is saved. Resume with: whetstone train --resume {}{nproc}", r.fit.progress.step, dir.display());
        }
        Some(t) => {
            println!("test {}", t.summary());
            let check = whetstone_run::baseline_check(t);
            if let Some(c) = &check {
                println!("{}", small_data::baseline_line(c));
            }
            if let Some(e) = &r.efficiency {
                println!("{}", e.summary());
            }
            println!(
                "trained {} steps in {:.1}s ({:.0} seq/s, {:.1}% padding); total {:.1}s",
                r.fit.progress.step,
                r.fit.progress.train_seconds,
                r.fit.seq_per_s,
                100.0 * r.fit.padding_fraction,
                r.wall_s
            );
            println!("run written to {} (report.md, metrics.json, curves.png, model.safetensors)", dir.display());
            // Last, so that it is what the user sees.
            if let Some(w) = check.as_ref().and_then(|c| c.warning.as_ref()) {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let run = compress_cmd::open_run(&whetstone_run::resume_dir(&a.runs_dir, &a.run), a.device.as_deref(), a.precision)?;
    let (source, split) = match &a.data {
        Some(p) => {
            let text_col = a.text_col.as_deref().unwrap_or(&run.recipe.data.text_col);
            let label_col = a.label_col.as_deref().unwrap_or(&run.recipe.data.label_col);
            (p.display().to_string(), run.read_labelled(&TableSpec::new(p, text_col, label_col))?)
        }
        None => ("the run's test split".to_string(), run.test_split()?),
    };
    let (_, report) = run.evaluate_split(&split)?;
    let attacked = whetstone_run::robustness::head(&split, a.attack_examples);
    let mut robust = Vec::new();
    for attack in &a.attack {
        robust.push(match attack.as_str() {
            "pgd" => {
                let attack = whetstone_train::adversarial::PgdAttack { epsilon: a.epsilon, alpha: None, steps: a.attack_steps };
                whetstone_run::robustness::pgd_report(&run, &attacked, &attack)?
            }
            _ => {
                let wordnet = whetstone_run::load_wordnet()?;
                whetstone_run::robustness::synonym_report(&run, &attacked, a.budget, &wordnet)?
            }
        });
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let (false, Some(o)) = (robust.is_empty(), v.as_object_mut()) {
            o.insert("attacks".into(), serde_json::to_value(&robust)?);
        }
        if let (Some(c), Some(o)) = (whetstone_run::baseline_check(&report), v.as_object_mut()) {
            o.insert("baseline".into(), serde_json::to_value(&c)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{} on {} ({} examples)", run.recipe.name, source, report.n);
        println!("accuracy {:.4}  macro-F1 {:.4}  MCC {:.4}", report.accuracy, report.macro_f1, report.mcc);
        if let Some(c) = whetstone_run::baseline_check(&report) {
            println!("{}", small_data::baseline_line(&c).replacen("test accuracy", "accuracy", 1));
            if let Some(w) = &c.warning {
                eprintln!("warning: {}", w.replace("test accuracy", "accuracy").replace("test examples", "examples"));
            }
        }
        for c in &report.per_class {
            println!("  {:<16} precision {:.4}  recall {:.4}  F1 {:.4}  support {}", c.label, c.precision, c.recall, c.f1, c.support);
        }
        if a.attack.iter().any(|x| x == "pgd") {
            // The scale against which the PGD radius is small or large.
            println!("mean L2 norm of a sentence's token embeddings: {:.3}", whetstone_run::robustness::mean_embedding_norm(&run, &attacked)?);
        }
        for r in &robust {
            let extra = match (r.mean_substitutions, r.queries_per_example) {
                (Some(s), Some(q)) => format!(" ({s:.2} words changed, {q:.0} queries per sentence)"),
                _ => String::new(),
            };
            println!("{} attack ({}) on {} examples: clean accuracy {:.4}, robust accuracy {:.4}{extra}", r.attack, r.settings, r.examples, r.clean_accuracy, r.robust_accuracy);
        }
    }
    Ok(())
}

fn data(names: Vec<String>, refetch: bool, verify: bool) -> Result<()> {
    let manifest = Manifest::builtin()?;
    let cache = whetstone_data::cache_dir();
    if verify {
        let all = names.is_empty() || names.as_slice() == ["all"];
        let names: Vec<String> = if all { manifest.names() } else { names };
        let (mut checked, mut failed) = (0, 0);
        for n in names {
            let entry = manifest.get(&n)?;
            match fetch::verify_cached(entry, &cache) {
                Ok(Some(v)) => {
                    checked += 1;
                    println!("{n}: ok ({} file{} re-hashed) {}", v.files, if v.files == 1 { "" } else { "s" }, v.path.display());
                }
                Ok(None) if all => {}
                Ok(None) => bail!("{n} is not in the data cache {}; fetch it with `whetstone data {n}`", cache.display()),
                Err(e) => {
                    failed += 1;
                    eprintln!("{n}: {e}");
                }
            }
        }
        if failed > 0 {
            bail!("{failed} cached dataset(s) failed verification (see above)");
        }
        if checked == 0 {
            println!("no dataset is in the data cache {}", cache.display());
        }
        return Ok(());
    }
    let names: Vec<String> = match names.as_slice() {
        [] => vec!["rotten-tomatoes".into()],
        [a] if a == "all" => manifest.datasets.iter().map(|d| d.name.clone()).collect(),
        _ => names,
    };
    for n in names {
        let entry = manifest.get(&n)?;
        let path = if refetch { fetch::refetch(entry, &cache)? } else { fetch(entry, &cache)? };
        println!("{n}: {}", path.display());
    }
    Ok(())
}

fn config(spec: &str, overrides: &[String]) -> Result<()> {
    let text = if recipe_source::EMBEDDED_PRETRAIN.iter().any(|(n, _)| *n == spec) {
        let (origin, text) = recipe_source::load_pretrain_text(spec)?;
        let r = recipe_source::parse_blaming(&origin, &text, overrides, whetstone_run::PretrainRecipe::parse)?;
        toml::to_string(&r).context("writing the recipe as TOML")?
    } else {
        let (origin, text) = recipe_source::load_text(spec)?;
        let r = recipe_source::parse_blaming(&origin, &text, overrides, Recipe::parse)?;
        toml::to_string(&r).context("writing the recipe as TOML")?
    };
    print!("{text}");
    Ok(())
}

fn list() -> Result<()> {
    for (title, recipes) in [("embedded recipes (whetstone train):", recipe_source::EMBEDDED), ("pretraining recipes (whetstone pretrain):", recipe_source::EMBEDDED_PRETRAIN)] {
        println!("{title}");
        for (name, text) in recipes {
            // The recipe's opening comment, up to its first full stop.
            let comment: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim()).collect();
            let comment = comment.join(" ");
            let first = comment.split_inclusive(". ").next().unwrap_or("").trim();
            println!("  {name:<16} {first}");
        }
    }
    println!("datasets:");
    for d in Manifest::builtin()?.datasets {
        println!("  {:<16} {} ({}=={})", d.name, d.description, d.package, d.version);
    }
    Ok(())
}
