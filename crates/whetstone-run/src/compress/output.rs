//! Writing a compressed model as an ordinary run folder, and opening one back.
//!
//! The folder has what `whetstone train` writes (`recipe.toml` whose `[model]` is the
//! compressed shape, `tokenizer.json`, `labels.json`, `model.safetensors`, `metrics.json`,
//! `report.md`), so `whetstone eval` and `whetstone predict` use it as any run, plus
//! `compression.json` saying how it was made (and `masks.safetensors` for unstructured
//! sparsity). A structurally pruned model is a smaller dense model and needs no masks.

use super::config::CompressConfig;
use super::source::Source;
use super::io;
use crate::RunDir;
use whetstone_compress::{CompressError, QuantizedClassifier, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use whetstone_eval::{classification_report, ClassificationReport, Efficiency};
use whetstone_models::{save_varstore, TextClassifier, TransformerClassifier, TransformerClassifierConfig};
use whetstone_train::{predict_in, BEST_MODEL_FILE};
use crate::{measure_efficiency, LoadedRun, LABELS_FILE, RECIPE_FILE, TOKENIZER_FILE};

/// File naming how a run was compressed.
pub const COMPRESSION_FILE: &str = "compression.json";
/// Unstructured-sparsity masks of a run (kept for further training; the weights are already zero).
pub const MASKS_FILE: &str = "masks.safetensors";
/// The int8 weights of a quantised run (its size is the checkpoint size reported).
pub const INT8_FILE: &str = "model-int8.safetensors";

/// How a run was made from another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// `distill` or `prune`.
    pub command: String,
    /// A short description (`2x128 student`, `magnitude 90% + finetune`, …).
    pub method: String,
    /// The input run (the teacher, or the pruned model's origin).
    pub source: PathBuf,
    /// Every setting used.
    pub config: CompressConfig,
    /// Fraction of zeros over the pruned weights, when unstructured pruning ran.
    pub sparsity: Option<f64>,
    /// Whether inference runs with int8 Linear layers.
    pub quantize: bool,
    /// Steps, costs and other facts worth keeping (teacher cache cost, transfer set size, …).
    pub notes: Vec<String>,
}

/// What a finished compression run measured.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The run folder.
    pub dir: PathBuf,
    /// Test-set report.
    pub test: ClassificationReport,
    /// Size and speed, when measured.
    pub efficiency: Option<Efficiency>,
    /// How it was made.
    pub provenance: Provenance,
    /// The test accuracy against the majority-class baseline (`None` for an empty test split).
    pub baseline: Option<crate::BaselineCheck>,
}

/// Write `model` (whose variables are `vs`, shaped `config`) into the run folder `run`, as a
/// run derived from `source`, evaluate it on the source's test split and measure it. With
/// `provenance.quantize`, evaluation and timing use the int8 model. Every file is written
/// atomically through `run`. Unless `quiet`, the efficiency measurement is announced on stderr.
pub fn finish_run(run: &RunDir, source: &Source, model: &TransformerClassifier, vs: &VarStore, config: TransformerClassifierConfig, provenance: Provenance, quiet: bool) -> Result<Finished> {
    let dir = run.path();
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "compressed".into());
    let recipe = source.derived_recipe(&name, config);
    run.write_toml(RECIPE_FILE, &recipe)?;
    run.copy_in(&source.run.dir.join(TOKENIZER_FILE), TOKENIZER_FILE)?;
    run.copy_in(&source.run.dir.join(LABELS_FILE), LABELS_FILE)?;
    let best = run.file(BEST_MODEL_FILE);
    save_varstore(vs, &best)?;
    run.write_json(COMPRESSION_FILE, &provenance)?;

    let quantized = if provenance.quantize { Some(QuantizedClassifier::new(model)?) } else { None };
    let (checkpoint, served): (PathBuf, &dyn TextClassifier) = match &quantized {
        Some(q) => {
            let p = run.file(INT8_FILE);
            whetstone_models::write_safetensors_atomic(&q.named_tensors(), &p)?;
            (p, q)
        }
        None => (best, model),
    };
    let device = source.device();
    // An int8 model runs its own kernels on float32 activations: it is measured in fp32.
    let precision = if quantized.is_some() { whetstone_train::Precision::Fp32 } else { provenance.config.precision };
    let p = predict_in(precision, served, &source.test, 128, device)?;
    let test = classification_report(&source.test.labels, &p.preds, &source.label_names)?;
    let c = &provenance.config;
    let efficiency = if c.latency_iters > 0 && !source.test.ids.is_empty() {
        if !quiet {
            eprintln!("{}", crate::efficiency_line(c.latency_iters, c.throughput_iters, "latency_iters"));
        }
        Some(measure_efficiency(served, vs, &checkpoint, &source.test, device, precision, c.latency_iters, c.throughput_iters)?)
    } else {
        None
    };
    let baseline = crate::baseline_check(&test);
    let metrics = json!({"name": name, "test": test, "test_loss": p.loss, "baseline": baseline, "efficiency": efficiency, "compression": provenance});
    run.write_json("metrics.json", &metrics)?;
    run.write("report.md", report_md(&name, &test, baseline.as_ref(), efficiency.as_ref(), &provenance).as_bytes())?;
    Ok(Finished { dir: dir.to_path_buf(), test, efficiency, provenance, baseline })
}

fn report_md(name: &str, test: &ClassificationReport, baseline: Option<&crate::BaselineCheck>, e: Option<&Efficiency>, p: &Provenance) -> String {
    let mut s = format!("# {name}\n\n`whetstone {}` from `{}`: {}\n\n", p.command, p.source.display(), p.method);
    s.push_str(&format!("Test accuracy **{:.4}**, macro-F1 {:.4}, MCC {:.4} ({} examples).\n\n", test.accuracy, test.macro_f1, test.mcc, test.n));
    if let Some(b) = baseline {
        s.push_str(&crate::small_data::baseline_markdown(b));
        s.push('\n');
    }
    if let Some(e) = e {
        s.push_str(&format!(
            "| parameters | checkpoint | latency b1 p50 | p95 | throughput b32 |\n|---:|---:|---:|---:|---:|\n| {} | {:.1} MB | {:.2} ms | {:.2} ms | {:.0} seq/s |\n\n",
            whetstone_eval::format_count(e.params),
            e.checkpoint_bytes as f64 / 1e6,
            e.latency_b1.p50_ms,
            e.latency_b1.p95_ms,
            e.throughput_b32
        ));
    }
    if let Some(sp) = p.sparsity {
        s.push_str(&format!("Sparsity of the pruned weights: {:.1}%.\n\n", 100.0 * sp));
    }
    for n in &p.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

/// Open any run folder for evaluation or prediction: as [`LoadedRun::open`], but a run that
/// `whetstone prune --quantize` (or `--method int8`) wrote serves its int8 model.
pub fn open_run(dir: &Path, device: Option<&str>) -> Result<LoadedRun> {
    let mut run = LoadedRun::open(dir, device)?;
    let path = dir.join(COMPRESSION_FILE);
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        // Only `quantize` matters here; the rest may come from another version's settings.
        let p: serde_json::Value = serde_json::from_str(&text).map_err(|e| CompressError::Run { run: dir.to_path_buf(), msg: format!("{}: {e}", path.display()) })?;
        if p.get("quantize").and_then(|q| q.as_bool()) == Some(true) {
            let t = run.model.as_transformer().ok_or_else(|| CompressError::Run { run: dir.to_path_buf(), msg: "int8 serving needs a Transformer model".into() })?;
            run.model = Box::new(QuantizedClassifier::new(t)?);
        }
    }
    Ok(run)
}
