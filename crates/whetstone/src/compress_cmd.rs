//! `whetstone distill` and `whetstone prune`: argument parsing and printing around
//! [`whetstone_run::compress`]. Every flag becomes a `key=value` override of the
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
    /// The teacher run: a name under --runs-dir, or a folder.
    #[arg(long, value_name = "RUN")]
    teacher: String,
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
    /// magnitude, movement, movement-soft, 2:4 (N:M), structured, structured-taylor, or int8
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
    if let Some(e) = &done.efficiency {
        println!("{}", e.summary());
    }
    if let Some(s) = done.provenance.sparsity {
        println!("sparsity of the pruned weights {:.1}%", 100.0 * s);
    }
    println!("run written to {} (report.md, metrics.json, model.safetensors)", done.dir.display());
}

/// Run `whetstone distill`.
pub fn distill(a: DistillArgs) -> Result<()> {
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
