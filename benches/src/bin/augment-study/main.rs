//! `cargo xtask bench augment`: the data-and-algorithm study of the augmentation issue, on the
//! fixed rotten-tomatoes test split (854 reviews), 3 seeds per cell, mean ± std.
//!
//! Sections (`--sections`, all by default):
//! * `eda`: TextCNN (the default recipe's CNN-rand) and the 2 × 128 Transformer at
//!   N ∈ {500, 2000, all} labelled examples, trained on the sample alone and on the sample plus
//!   EDA's augmentations with the paper's settings for its size (Wei & Zou 2019, Table 3:
//!   α 0.05 and 16 per sentence at 500, α 0.05 and 8 at 2,000, α 0.1 and 4 beyond), written
//!   offline as the paper does;
//! * `adv`: baseline, FGM, PGD, FreeLB and R-Drop on the 2 × 128 Transformer (all data) and on
//!   MiniLM-L6 fine-tuning (the `minilm-rt` recipe), each row with clean accuracy and accuracy
//!   under the embedding-space PGD attack and the greedy WordNet synonym attack;
//! * `mtl`: rotten-tomatoes at N = 500 and all, alone and together with imdb, sms-spam and
//!   WNUT-16 NER, for each loss weighting.
//!
//! Every run is the real `whetstone train` pipeline (`train_recipe` / the multi-task pipeline);
//! it picks its best checkpoint on the same full validation split (853 reviews). Finished runs
//! are cached in `target/augment-study/cache.jsonl`, so the study resumes after an
//! interruption; the report (`reports/augment.md`, `reports/augment.json`,
//! `reports/augment.png`) is written from the cache, with `reports/augment-notes.md` appended
//! when it exists.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use whetstone_augment::{augment_all, Eda, EdaConfig, StopWords, WordNet};
use whetstone_benches::study::{append_cache, mean_std, read_cache, sample, write_csv};
pub use whetstone_benches::study::field;
use whetstone_data::{cache_dir, load_splits, obtain, DataSource, Manifest, Split, Splits};
use whetstone_run::{train_recipe, Recipe, RunOptions};

mod adv;
mod mtl;

#[derive(Parser, Debug)]
#[command(about = "EDA, adversarial/consistency training and multi-task learning on rotten-tomatoes")]
pub struct Args {
    /// Sections to run: eda, adv, mtl.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["eda".to_string(), "adv".to_string(), "mtl".to_string()])]
    sections: Vec<String>,
    /// Models of the eda and adv sections: textcnn, transformer, minilm (adv only).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["textcnn".to_string(), "transformer".to_string(), "minilm".to_string()])]
    models: Vec<String>,
    /// Training-set sizes of the eda and mtl sections (0 = all).
    #[arg(long, value_delimiter = ',', default_values_t = vec![500, 2000, 0])]
    sizes: Vec<usize>,
    /// Arms of the adv section: none, fgm, pgd, freelb, rdrop.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["none".to_string(), "fgm".to_string(), "pgd".to_string(), "freelb".to_string(), "rdrop".to_string()])]
    adv_arms: Vec<String>,
    /// Arms of the mtl section: single, fixed, pcgrad, uncertainty, gradnorm, fixed-no-imdb, fixed-imdb-only.
    #[arg(long, value_delimiter = ',', default_values_t = ["single", "fixed", "pcgrad", "uncertainty", "gradnorm", "fixed-no-imdb", "fixed-imdb-only"].map(String::from).to_vec())]
    mtl_arms: Vec<String>,
    /// Seeds per cell.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Test examples attacked per run in the adv section (0 = the whole test split).
    #[arg(long, default_value_t = 300)]
    attack_examples: usize,
    /// Words the synonym attack may change per sentence.
    #[arg(long, default_value_t = 2)]
    attack_budget: usize,
    /// Radii ε of the embedding-space PGD attack, relative to the mean L2 norm of a sentence's
    /// token embeddings (measured per run): 0.1 perturbs a review by a tenth of its embeddings' size.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.01, 0.03, 0.1])]
    attack_epsilon: Vec<f64>,
    /// Tiny budgets (one epoch, one seed): a smoke test of the pipeline; numbers mean nothing.
    #[arg(long)]
    quick: bool,
    /// Train nothing: write the report from the cache.
    #[arg(long)]
    report_only: bool,
    /// Where the report goes.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Run folders and the cache.
    #[arg(long, default_value = "target/augment-study")]
    work: PathBuf,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// What every section shares: the fixed splits written as files, the cache, the arguments.
pub struct Study {
    pub args: Args,
    pub splits: Splits,
    pub names: Vec<String>,
    pub valid_csv: PathBuf,
    pub test_csv: PathBuf,
    pub cache: BTreeMap<String, Value>,
    cache_path: PathBuf,
}

impl Study {
    /// The cache key of one run.
    pub fn key(&self, parts: &[&str], seed: u64) -> String {
        format!("{}|{seed}{}", parts.join("|"), if self.args.quick { "|quick" } else { "" })
    }

    /// The cached record of `key`, if that run finished.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cache.get(key)
    }

    /// Record a finished run.
    pub fn put(&mut self, rec: Value) -> Result<()> {
        append_cache(&self.cache_path, &rec)?;
        let k = rec.get("key").and_then(Value::as_str).context("a study record needs a key")?.to_string();
        self.cache.insert(k, rec);
        Ok(())
    }

    /// Seeds of a cell (one in quick mode).
    pub fn seeds(&self) -> std::ops::Range<u64> {
        0..if self.args.quick { 1 } else { self.args.seeds }
    }

    /// Write `split` to the study's data folder as `file` and return its path.
    pub fn write_train(&self, split: &Split, file: &str) -> Result<PathBuf> {
        let p = self.args.work.join("data").join(file);
        write_csv(&p, split, &self.names)?;
        Ok(p)
    }

    /// A fresh run folder for `name` under the study's work folder.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        let dir = self.args.work.join("runs").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Mean ± std (in points) of `metric` over the seeds of the cell `parts`, with the values.
    pub fn cell(&self, parts: &[&str], metric: &str) -> Option<(f64, f64, Vec<f64>)> {
        let v: Vec<f64> = self.seeds().filter_map(|s| self.get(&self.key(parts, s))).map(|r| 100.0 * field(r, metric)).filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let (m, s) = mean_std(&v);
        Some((m, s, v))
    }
}

impl Study {
    /// The mean difference in points of `metric` between the cells `parts` and `base` over the
    /// seeds both have (the arms of a seed share its sample and split), and that seed count.
    pub fn paired_gain(&self, base: &[&str], parts: &[&str], metric: &str) -> Option<(f64, usize)> {
        let d: Vec<f64> = self
            .seeds()
            .filter_map(|s| Some(100.0 * (field(self.get(&self.key(parts, s))?, metric) - field(self.get(&self.key(base, s))?, metric))))
            .filter(|x| x.is_finite())
            .collect();
        (!d.is_empty()).then(|| (d.iter().sum::<f64>() / d.len() as f64, d.len()))
    }
}

/// A paired gain as `+1.2 (3)`, or `–`.
pub fn fmt_gain(g: Option<(f64, usize)>) -> String {
    g.map_or("–".into(), |(g, n)| format!("{g:+.1} ({n})"))
}

/// `mean ± std (seeds)` of a cell, or `–`.
pub fn fmt_cell(c: Option<(f64, f64, Vec<f64>)>) -> String {
    match c {
        Some((m, s, v)) => format!("{m:.1} ± {s:.1} ({})", v.len()),
        None => "–".into(),
    }
}

/// The label of a training-set size.
pub fn size_label(n: usize) -> String {
    if n == 0 {
        "all".into()
    } else {
        n.to_string()
    }
}

/// The `[model]` section and learning rate of a model name.
pub fn model_section(model: &str) -> Result<(&'static str, f64)> {
    Ok(match model {
        "textcnn" => ("kind = \"textcnn\"\nembed_dim = 300\nkernel_sizes = [3, 4, 5]\nchannels = 100\ndropout = 0.5\n", 1e-3),
        "transformer" => ("kind = \"transformer\"\nlayers = 2\nhidden = 128\nheads = 2\nffn = 512\nmax_len = 128\ndropout = 0.1\npooling = \"mean\"\n", 5e-4),
        "minilm" => ("kind = \"transformer\"\npretrained = \"minilm-l6\"\npooling = \"mean\"\n", 5e-5),
        other => bail!("unknown model `{other}` (known: textcnn, transformer, minilm)"),
    })
}

/// A recipe over the study's files: `train_csv` with the fixed valid and test splits, plus any
/// extra sections (`[adversarial]`, …).
pub fn recipe(study: &Study, name: &str, model: &str, seed: u64, train_csv: &Path, epochs: u64, batch: usize, extra: &str) -> Result<Recipe> {
    let (model_toml, lr) = model_section(model)?;
    let tokenizer = if model == "minilm" { String::new() } else { "[tokenizer]\nvocab_size = 16000\nmin_frequency = 2\nlowercase = true\n".to_string() };
    let (clip, eval_batch) = if model == "minilm" { (1.0, 128) } else { (3.0, 256) };
    let text = format!(
        "name = {name:?}\nseed = {seed}\ndevice = \"auto\"\nthreads = {threads}\n\
         [data]\npath = {train:?}\nvalid_path = {valid:?}\ntest_path = {test:?}\nmax_len = 64\n\
         {tokenizer}[model]\n{model_toml}\
         [optim]\nkind = \"adamw\"\nlr = {lr}\nweight_decay = 0.01\n\
         [schedule]\nkind = \"warmup-linear\"\nwarmup_ratio = 0.1\n\
         [train]\nepochs = {epochs}\nbatch_size = {batch}\nclip_norm = {clip}\npatience = 3\nlog_every = 100\neval_batch_size = {eval_batch}\n\
         [eval]\nlatency_iters = 0\n{extra}",
        threads = study.args.threads,
        train = train_csv.display().to_string(),
        valid = study.valid_csv.display().to_string(),
        test = study.test_csv.display().to_string(),
    );
    Recipe::parse(&format!("augment-study recipe {name}"), &text, &[]).map_err(anyhow::Error::msg)
}

/// Train `recipe` in a fresh folder; the folder is kept (for attacks) when `keep` is set.
pub fn train(study: &Study, recipe: &Recipe, keep: bool) -> Result<(PathBuf, Value)> {
    let dir = study.run_dir(&recipe.name);
    let t0 = Instant::now();
    let out = train_recipe(recipe, &RunOptions { quiet: true, ..RunOptions::new(dir.clone()) })?;
    let test = out.test.context("the run was interrupted")?;
    let rec = json!({
        "test_accuracy": test.accuracy, "test_macro_f1": test.macro_f1,
        "valid_accuracy": out.valid.as_ref().map(|v| v.accuracy),
        "steps": out.fit.progress.step, "epochs_run": out.fit.progress.epoch, "best_step": out.fit.progress.best_step,
        "train_seq_per_s": out.fit.seq_per_s,
        "wall_s": t0.elapsed().as_secs_f64(),
    });
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((dir, rec))
}

/// Merge `extra` fields into a record.
pub fn with(mut rec: Value, extra: Value) -> Value {
    if let (Some(r), Some(e)) = (rec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    rec
}

/// A dataset of the manifest, fetched into the data cache when missing.
pub fn fetched(name: &str) -> Result<PathBuf> {
    let manifest = Manifest::builtin()?;
    Ok(obtain(manifest.get(name)?, &cache_dir())?)
}

/// Epochs of the eda section: many passes over small sets, fewer over augmented ones (which
/// are 5–17× larger); early stopping on the validation split picks the best epoch.
fn eda_epochs(model: &str, n: usize, augmented: bool, quick: bool) -> u64 {
    if quick {
        return 1;
    }
    match (augmented, n, model) {
        (false, 1..=1000, _) => 20,
        (false, 1001..=3000, _) => 12,
        (false, _, "textcnn") => 8,
        (false, _, _) => 6,
        (true, 1..=3000, _) => 5,
        (true, _, _) => 4,
    }
}

fn eda_section(study: &mut Study) -> Result<()> {
    let wordnet = Arc::new(WordNet::load(&fetched("wordnet")?)?);
    let models: Vec<String> = study.args.models.iter().filter(|m| *m != "minilm").cloned().collect();
    for model in &models {
        for &n in &study.args.sizes.clone() {
            for arm in ["none", "eda"] {
                for seed in study.seeds() {
                    let k = study.key(&["eda", model, &size_label(n), arm], seed);
                    if study.get(&k).is_some() {
                        continue;
                    }
                    let sub = sample(&study.splits.train, n, seed);
                    let mut data = sub.clone();
                    let config = EdaConfig::for_train_size(sub.len());
                    if arm == "eda" {
                        let eda = Eda::new(config.clone(), wordnet.clone(), StopWords::english())?;
                        for a in augment_all(&sub.texts, config.n_aug, 1000 + seed, &eda)? {
                            data.texts.push(a.text);
                            data.labels.push(sub.labels[a.source]);
                        }
                    }
                    let csv = study.write_train(&data, &format!("eda-{model}-{}-{arm}-s{seed}.csv", size_label(n)))?;
                    let batch = if model == "textcnn" { 50 } else if sub.len() <= 500 { 16 } else { 32 };
                    let r = recipe(study, &format!("eda-{model}-{}-{arm}-s{seed}", size_label(n)), model, seed, &csv, eda_epochs(model, n, arm == "eda", study.args.quick), batch, "")?;
                    eprintln!("eda: {model} N={} {arm} seed {seed}: {} training examples, {} epochs", size_label(n), data.len(), r.train.epochs);
                    let (_, rec) = train(study, &r, false)?;
                    eprintln!("    test accuracy {:.4} in {:.0}s", field(&rec, "test_accuracy"), field(&rec, "wall_s"));
                    let rec = with(rec, json!({"key": k, "section": "eda", "model": model, "n": sub.len(), "n_arg": n, "arm": arm, "seed": seed, "train_examples": data.len(), "alpha": config.alpha_sr, "n_aug": if arm == "eda" { config.n_aug } else { 0 }}));
                    study.put(rec)?;
                    let _ = std::fs::remove_file(&csv);
                }
            }
        }
    }
    Ok(())
}

fn eda_report(study: &Study, md: &mut String, json_cells: &mut Vec<Value>) {
    md.push_str("\n## EDA (Wei & Zou 2019) at N labelled examples\n\n");
    md.push_str("Test accuracy (%), mean ± std (seeds). EDA rows train on the sample plus its augmentations (α and copies per sentence from the paper's Table 3 for the sample's size).\n\n");
    md.push_str("| model | N | no augmentation | EDA | gain (points, paired seeds) |\n|---|---:|---:|---:|---:|\n");
    for model in ["textcnn", "transformer"] {
        for &n in &study.args.sizes {
            let none = study.cell(&["eda", model, &size_label(n), "none"], "test_accuracy");
            let eda = study.cell(&["eda", model, &size_label(n), "eda"], "test_accuracy");
            if none.is_none() && eda.is_none() {
                continue;
            }
            let gain = fmt_gain(study.paired_gain(&["eda", model, &size_label(n), "none"], &["eda", model, &size_label(n), "eda"], "test_accuracy"));
            json_cells.push(json!({"section": "eda", "model": model, "n": size_label(n), "none": none.as_ref().map(|c| &c.2), "eda": eda.as_ref().map(|c| &c.2)}));
            md.push_str(&format!("| {model} | {} | {} | {} | {gain} |\n", size_label(n), fmt_cell(none), fmt_cell(eda)));
        }
    }
    if let Some((g, _)) = study.paired_gain(&["eda", "textcnn", "500", "none"], &["eda", "textcnn", "500", "eda"], "test_accuracy") {
        md.push_str(&format!("\n**Goal check (TextCNN, N = 500): EDA gain {g:+.1} points** (goal: at least +3). {}\n", if g >= 3.0 { "Met." } else { "Not met." }));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    for s in &args.sections {
        if !["eda", "adv", "mtl"].contains(&s.as_str()) {
            bail!("unknown section `{s}` (known: eda, adv, mtl)");
        }
    }
    for m in &args.models {
        model_section(m)?;
    }
    let splits: Splits = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 42)?;
    let names = splits.labels.names.clone();
    let data_dir = args.work.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let (valid_csv, test_csv) = (data_dir.join("valid.csv"), data_dir.join("test.csv"));
    write_csv(&valid_csv, &splits.valid, &names)?;
    write_csv(&test_csv, &splits.test, &names)?;
    let cache_path = args.work.join("cache.jsonl");
    let cache = read_cache(&cache_path);
    let mut study = Study { args, splits, names, valid_csv, test_csv, cache, cache_path };
    if !study.args.report_only {
        let sections = study.args.sections.clone();
        for s in &sections {
            match s.as_str() {
                "eda" => eda_section(&mut study)?,
                "adv" => adv::run(&mut study)?,
                "mtl" => mtl::run(&mut study)?,
                _ => unreachable!(),
            }
        }
    }
    report(&study)
}

fn report(study: &Study) -> Result<()> {
    let out = &study.args.out;
    std::fs::create_dir_all(out)?;
    let mut md = String::from("# Augmentation, adversarial training and multi-task learning (rotten-tomatoes)\n\n<!-- generated by `cargo xtask bench augment` (benches/src/bin/augment-study/) -->\n");
    if study.args.quick {
        md.push_str("\n**QUICK MODE: one epoch, one seed per run; these numbers mean nothing.**\n");
    }
    md.push_str(&format!(
        "\nMachine: {}; load average {}. Every run picks its best checkpoint on the same 853-review validation split and is scored on the fixed 854-review test split.\n",
        whetstone_benches::machine::cpu_model(),
        whetstone_benches::machine::load_avg()
    ));
    let mut cells = Vec::new();
    eda_report(study, &mut md, &mut cells);
    adv::report(study, &mut md, &mut cells);
    mtl::report(study, &mut md, &mut cells);
    let wall: f64 = study.cache.values().filter(|r| r.get("key").and_then(Value::as_str).is_some_and(|k| k.ends_with("|quick") == study.args.quick)).map(|r| field(r, "wall_s")).sum();
    md.push_str(&format!("\nTotal wall time in the cache: {:.0} min.\n", wall / 60.0));
    if let Ok(n) = std::fs::read_to_string(out.join("augment-notes.md")) {
        md.push('\n');
        md.push_str(&n);
    }
    std::fs::write(out.join("augment.md"), md)?;
    std::fs::write(out.join("augment.json"), serde_json::to_string_pretty(&json!({"quick": study.args.quick, "cells": cells}))?)?;
    eprintln!("wrote {}", out.join("augment.md").display());
    Ok(())
}
