//! `whetstone distill` and `whetstone prune`: argument parsing and printing around
//! [`whetstone_run::compress`] (`whetstone distill --general` runs the pretraining pipeline
//! with a general-distillation recipe instead). Every flag becomes a `key=value` override of the
//! compression config, so errors name the setting (`prune.sparsity`, …).

use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use whetstone_run::compress::{self as pipeline, CompressConfig, Finished};
use whetstone_run::{LoadedRun, RunFolder};

/// Options shared by both commands.
#[derive(Args)]
pub struct CommonArgs {
    /// A compression config (TOML; see `whetstone_run::compress::CompressConfig`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config field, e.g. `--set distill.loss.temperature=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Serve the result with int8 Linear layers.
    #[arg(long)]
    quantize: bool,
    /// cpu, cuda, cuda:N or auto (default: the input run's).
    #[arg(long)]
    device: Option<String>,
    /// Precision of the training phases, the evaluation and the timing: fp32 (default), bf16,
    /// or fp16 (CUDA only); same as `--set precision=…`.
    #[arg(long, value_parser = crate::precision_arg)]
    precision: Option<whetstone_run::Precision>,
    /// Name of the output run (default: derived from the input and the method).
    #[arg(long)]
    name: Option<String>,
    /// Folder that holds runs.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

/// `whetstone distill`.
#[derive(Args)]
pub struct DistillArgs {
    /// The teacher run: a name under --runs-dir, or a folder. With --general: a pretrained
    /// encoder (a manifest model such as minilm-l6, a BERT folder, or a pretraining run).
    #[arg(long, value_name = "RUN")]
    teacher: String,
    /// General (task-agnostic) distillation on unlabelled text (TinyBERT's first stage): the
    /// student learns the teacher's embeddings, hidden states and attention maps, and the run
    /// exports a pretrained encoder (`runs/<name>/encoder`) for `[model] pretrained = "runs/<name>"`.
    /// --config then names a pretraining recipe [default: the embedded gd-imdb].
    #[arg(long)]
    general: bool,
    /// With --general: the unlabelled text, manifest names (imdb, wiki100) or .txt files /
    /// folders (repeatable) [default: the recipe's, imdb].
    #[arg(long = "corpus", value_name = "NAME|PATH", requires = "general")]
    corpus: Vec<String>,
    /// With --general: which teacher layer each student layer learns from, `uniform`, `last` or
    /// 0-based pairs `0:1,1:3,…` [default: uniform].
    #[arg(long, value_name = "MAP", requires = "general")]
    layers_map: Option<String>,
    /// With --general: intra-op threads of libtorch [default: the recipe's; 0 = all cores].
    #[arg(long, requires = "general")]
    threads: Option<usize>,
    /// Stop after this many optimiser steps, as a kill would (tests; --general only; resume
    /// with `whetstone pretrain --resume RUN`).
    #[arg(long, hide = true, default_value_t = 0)]
    stop_after: u64,
    /// The student: `2x128` (layers x width), `4x256x4x1024` (… x heads x ffn),
    /// `teacher:0,2,4` (teacher layers, DistilBERT-style) or a run folder with the teacher's
    /// tokenizer [default: 2x128].
    #[arg(long)]
    student: Option<String>,
    /// Training epochs of the student [default: 3].
    #[arg(long)]
    epochs: Option<u64>,
    /// A dataset whose sentences the teacher labels as extra training data (e.g. imdb), or
    /// `neighbour`: TinyBERT's neighbour-replaced copies of the teacher's training texts.
    #[arg(long)]
    transfer: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

/// `whetstone prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// The run to prune: a name under --runs-dir, or a folder.
    #[arg(long, value_name = "RUN")]
    run: String,
    /// magnitude, fisher (oBERT-style w²·F), movement, movement-soft, 2:4 (N:M), structured, structured-taylor, or int8
    /// [default: magnitude].
    #[arg(long)]
    method: Option<String>,
    /// Fraction removed, in [0, 1): of the weights, or of heads and neurons (structured)
    /// [default: 0.5].
    #[arg(long, allow_hyphen_values = true)]
    sparsity: Option<f64>,
    /// global or per-layer [default: global].
    #[arg(long)]
    scope: Option<String>,
    /// one-shot or gradual (magnitude) [default: gradual, over 2 epochs].
    #[arg(long)]
    schedule: Option<String>,
    /// none, finetune or distill (from the unpruned run) [default: finetune].
    #[arg(long)]
    recovery: Option<String>,
    /// Epochs of the recovery phase [default: 1] (`--recovery-epochs` is the old name).
    #[arg(long = "epochs", alias = "recovery-epochs", value_name = "N")]
    recovery_epochs: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

fn quoted(key: &str, v: &str) -> String {
    format!("{key}={v:?}")
}

/// The config file (or defaults) with the flags' overrides, then `--set`, applied.
fn config(common: &CommonArgs, mut flags: Vec<String>) -> Result<CompressConfig> {
    let (origin, text) = match &common.config {
        Some(p) => (p.display().to_string(), std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => ("command line".to_string(), String::new()),
    };
    if common.quantize {
        flags.push("quantize=true".into());
    }
    if let Some(d) = &common.device {
        flags.push(quoted("device", d));
    }
    if let Some(p) = common.precision {
        flags.push(quoted("precision", p.as_str()));
    }
    if let Some(n) = &common.name {
        flags.push(quoted("name", n));
    }
    flags.extend(common.overrides.iter().cloned());
    Ok(CompressConfig::parse(&origin, &text, &flags)?)
}


fn base_name(run: &Path) -> String {
    let name = run.file_name().map(|n| n.to_string_lossy().trim_start_matches('.').to_string()).unwrap_or_default();
    if name.is_empty() {
        "run".into()
    } else {
        name
    }
}

fn print(done: &Finished) {
    let t = &done.test;
    println!("{}: {}", done.provenance.command, done.provenance.method);
    println!("test {}", t.summary());
    if let Some(c) = &done.baseline {
        println!("{}", whetstone_run::small_data::baseline_line(c));
    }
    if let Some(e) = &done.efficiency {
        println!("{}", e.summary());
    }
    if let Some(s) = done.provenance.sparsity {
        println!("sparsity of the pruned weights {:.1}%", 100.0 * s);
    }
    println!("run written to {} (report.md, metrics.json, model.safetensors)", done.dir.display());
    // Last, so that it is what the user sees.
    if let Some(w) = done.baseline.as_ref().and_then(|c| c.warning.as_ref()) {
        eprintln!("warning: {w}");
    }
}

/// Run `whetstone distill`.
pub fn distill(a: DistillArgs) -> Result<()> {
    if a.general {
        return distill_general(a);
    }
    if a.stop_after > 0 {
        anyhow::bail!("--stop-after applies to --general distillation only");
    }
    let mut flags = Vec::new();
    if let Some(s) = &a.student {
        flags.push(quoted("distill.student", s));
    }
    if let Some(e) = a.epochs {
        flags.push(format!("distill.epochs={e}"));
    }
    if let Some(t) = &a.transfer {
        flags.push(quoted("distill.transfer", t));
    }
    let c = config(&a.common, flags)?;
    let teacher = whetstone_run::resume_dir(&a.common.runs_dir, &a.teacher);
    // A derived name is sanitised by the run folder (`teacher:0,2` becomes `teacher-0-2`).
    let name = c.name.clone().unwrap_or_else(|| format!("{}-distill-{}", base_name(&teacher), c.distill.student.replace([':', ',', '/', '\\'], "-")));
    let out = RunFolder::named(&a.common.runs_dir, name);
    if !a.common.quiet {
        eprintln!("distilling {} into {} ({})", teacher.display(), c.distill.student, out.display_path().display());
    }
    print(&pipeline::distill(&teacher, &c, &out, a.common.quiet)?);
    Ok(())
}

/// Run `whetstone prune`.
pub fn prune(a: PruneArgs) -> Result<()> {
    let mut flags = Vec::new();
    if let Some(m) = &a.method {
        flags.push(quoted("prune.method", m));
    }
    if let Some(s) = a.sparsity {
        flags.push(format!("prune.sparsity={s}"));
    }
    for (k, v) in [("prune.scope", &a.scope), ("prune.schedule", &a.schedule), ("recovery.mode", &a.recovery)] {
        if let Some(v) = v {
            flags.push(quoted(k, v));
        }
    }
    if let Some(e) = a.recovery_epochs {
        flags.push(format!("recovery.epochs={e}"));
    }
    let c = config(&a.common, flags)?;
    let run = whetstone_run::resume_dir(&a.common.runs_dir, &a.run);
    let method = c.prune.method.replace(':', "-");
    let name = c.name.clone().unwrap_or_else(|| match method.as_str() {
        "int8" | "quantize" => format!("{}-int8", base_name(&run)),
        _ => format!("{}-{method}-{:.0}", base_name(&run), 100.0 * c.prune.sparsity),
    });
    let out = RunFolder::named(&a.common.runs_dir, name);
    if !a.common.quiet {
        eprintln!("pruning {} with {} ({})", run.display(), c.prune.method, out.display_path().display());
    }
    print(&pipeline::prune(&run, &c, &out, a.common.quiet)?);
    Ok(())
}

/// A run folder for `eval` / `predict`: int8 when it was quantised.
pub fn open_run(dir: &Path, device: Option<&str>, precision: Option<whetstone_run::Precision>) -> Result<LoadedRun> {
    let run = pipeline::open_run(dir, device)?;
    Ok(match precision {
        Some(p) => run.with_precision(p)?,
        None => run,
    })
}

/// `--student` for general distillation as `model.*` overrides: `LxH` or `LxHxAxF` (layers ×
/// hidden × heads × ffn); heads default to hidden / 64 (at least 1), ffn to 4 × hidden.
fn student_shape(spec: &str) -> Result<Vec<String>> {
    let parts: Vec<usize> = spec
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--student {spec:?}: with --general give the student's shape as LAYERSxHIDDEN or LAYERSxHIDDENxHEADSxFFN, e.g. 4x128"))?;
    let (layers, hidden, heads, ffn) = match parts.as_slice() {
        [l, h] => (*l, *h, (*h / 64).max(1), 4 * *h),
        [l, h, a, f] => (*l, *h, *a, *f),
        _ => anyhow::bail!("--student {spec:?}: expected LAYERSxHIDDEN or LAYERSxHIDDENxHEADSxFFN, e.g. 4x128"),
    };
    Ok(vec![format!("model.layers={layers}"), format!("model.hidden={hidden}"), format!("model.heads={heads}"), format!("model.ffn={ffn}")])
}

/// `whetstone distill --general`: a pretraining run whose objective is general distillation
/// (the embedded recipe gd-imdb, or --config), run by the pretraining pipeline.
fn distill_general(a: DistillArgs) -> Result<()> {
    let c = &a.common;
    if a.transfer.is_some() || c.quantize {
        anyhow::bail!("--transfer and --quantize do not apply to --general distillation, which trains an encoder on unlabelled text");
    }
    let (origin, text) = match &c.config {
        Some(p) => (p.display().to_string(), std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => crate::recipe_source::load_pretrain_text("gd-imdb")?,
    };
    // A teacher named as a run under --runs-dir is that folder; anything else goes to the
    // recipe as given (a manifest model or a folder).
    let under_runs = c.runs_dir.join(&a.teacher);
    let teacher = if !Path::new(&a.teacher).is_dir() && under_runs.is_dir() { under_runs.display().to_string() } else { a.teacher.clone() };
    let mut o = vec![quoted("general.teacher", &teacher)];
    if !a.corpus.is_empty() {
        o.push(format!("corpus.sources={:?}", a.corpus));
    }
    if let Some(s) = &a.student {
        o.extend(student_shape(s)?);
    }
    if let Some(m) = &a.layers_map {
        o.push(quoted("general.mapping", m));
    }
    if let Some(e) = a.epochs {
        o.push(format!("train.epochs={e}"));
    }
    if let Some(t) = a.threads {
        o.push(format!("threads={t}"));
    }
    if let Some(d) = &c.device {
        o.push(quoted("device", d));
    }
    if let Some(p) = c.precision {
        o.push(quoted("precision", p.as_str()));
    }
    let named = c.name.is_some() || c.overrides.iter().any(|o| o.trim_start().starts_with("name="));
    if let Some(n) = &c.name {
        o.push(quoted("name", n));
    }
    o.extend(c.overrides.iter().cloned());
    let mut recipe = crate::recipe_source::parse_blaming(&origin, &text, &o, whetstone_run::PretrainRecipe::parse)?;
    if !named {
        recipe.name = format!("gd-{}x{}", recipe.model.layers, recipe.model.hidden);
    }
    if !c.quiet {
        eprintln!("general distillation of {teacher} into a {}x{} student ({})", recipe.model.layers, recipe.model.hidden, c.runs_dir.join(&recipe.name).display());
    }
    let options = whetstone_run::RunOptions { quiet: c.quiet, stop_after: a.stop_after, ..whetstone_run::RunOptions::named(&c.runs_dir, &recipe.name) };
    crate::pretrain_cmd::run(&recipe, &options)
}
