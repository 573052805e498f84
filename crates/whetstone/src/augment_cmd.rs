//! `whetstone augment`: write an augmented copy of a labelled dataset as JSON lines. The
//! augmenters are whetstone-augment's; their resources come through whetstone-run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use whetstone_augment::{augment_dataset, to_jsonl, AugmentSpec};
use whetstone_data::{cache_dir, obtain, read_table, Manifest, TableSpec};

#[derive(Args)]
pub struct AugmentArgs {
    /// A CSV, TSV or JSONL file of labelled text, or a dataset of the manifest (rotten-tomatoes, …).
    #[arg(long)]
    data: String,
    /// Column (or JSON field) holding the text (files only).
    #[arg(long, default_value = "text")]
    text_col: String,
    /// Column (or JSON field) holding the label (files only).
    #[arg(long, default_value = "label")]
    label_col: String,
    /// eda, synonym, insert, swap, delete, cutoff, span-cutoff, mask, neighbour or mlm.
    #[arg(long)]
    method: String,
    /// Augmentations per example.
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The method's strength in [0, 1] (EDA's α, a probability, or the share cut); default per method.
    #[arg(long)]
    alpha: Option<f64>,
    /// For `neighbour`: a manifest model, checkpoint folder or `whetstone pretrain` run; for
    /// `mlm`: a `whetstone pretrain` run (its encoder and masked-LM head).
    #[arg(long, default_value = "minilm-l6")]
    model: PathBuf,
    /// For `neighbour`: candidates per word.
    #[arg(long, default_value_t = 15)]
    k: usize,
    /// For `mask`: the token put in place of a word.
    #[arg(long, default_value = "[MASK]")]
    mask_token: String,
    /// Also write each original example (before its augmentations).
    #[arg(long)]
    keep_original: bool,
    /// The JSON-lines file to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
}

/// The table `data` names: a file, else a table of the manifest.
fn table(a: &AugmentArgs) -> Result<TableSpec> {
    let path = PathBuf::from(&a.data);
    if path.exists() {
        return Ok(TableSpec::new(path, &a.text_col, &a.label_col));
    }
    let manifest = Manifest::builtin()?;
    match manifest.get(&a.data) {
        Ok(entry) if !entry.is_folder() => Ok(entry.table_spec(obtain(entry, &cache_dir())?)?),
        _ => bail!("--data {}: no such file, nor a labelled dataset of the manifest ({})", a.data, manifest.datasets.iter().filter(|d| !d.is_folder()).map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

pub fn augment(a: AugmentArgs) -> Result<()> {
    let spec = AugmentSpec { method: a.method.clone(), alpha: a.alpha, k: a.k, mask_token: a.mask_token.clone() };
    spec.validate()?;
    if a.n == 0 && !a.keep_original {
        bail!("--n 0 without --keep-original would write nothing");
    }
    if a.out.extension().and_then(|e| e.to_str()) != Some("jsonl") {
        bail!("--out {}: write a .jsonl file", a.out.display());
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("--out {}: the folder {} does not exist", a.out.display(), dir.display());
        }
    }
    let rows = read_table(&table(&a)?)?;
    let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let augmenter = whetstone_run::build_augmenter(&spec, &a.model)?;
    let t0 = Instant::now();
    let out = augment_dataset(&texts, &labels, a.n, a.seed, augmenter.as_ref(), a.keep_original)?;
    let seconds = t0.elapsed().as_secs_f64();
    whetstone_eval::write_atomic(&a.out, to_jsonl(&out)?.as_bytes()).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{}: {} rows ({} examples × {} augmentations{}) by {} in {seconds:.2}s ({:.0} augmentations/s)",
        a.out.display(),
        out.len(),
        texts.len(),
        a.n,
        if a.keep_original { " + originals" } else { "" },
        augmenter.config(),
        (texts.len() * a.n) as f64 / seconds.max(1e-9)
    );
    Ok(())
}
