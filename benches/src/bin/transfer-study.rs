//! `cargo xtask bench transfer`: the small-sample study of the transfer-learning issue.
//!
//! rotten-tomatoes with N ∈ {50, 100, 200, 500, 1000, all} labelled training examples (a
//! class-balanced sample of the training split, drawn per seed) × 3 seeds, three arms:
//! * `scratch`: the small 2 × 128 BERT-style Transformer (rt-transformer's shape) from random
//!   initialisation;
//! * `mlm-imdb`: the same Transformer pretrained with masked-LM on the imdb review text
//!   (`whetstone pretrain --recipe mlm-imdb`), then fine-tuned;
//! * `minilm`: all-MiniLM-L6-v2 (6 × 384, 22.7M parameters) fine-tuned;
//! * `gd-4x128`: whetstone's own small encoder, a 4 × 128 student general-distilled from
//!   MiniLM-L6 on imdb text (`--general RUN`), fine-tuned;
//! * `scratch-4x128`: the same 4 × 128 shape (4 heads, ffn 512) from random initialisation, with MiniLM's
//!   tokenizer (the general-distilled encoder's), so it differs from `gd-4x128` only in its
//!   initial weights;
//! * `gd-2x128` / `scratch-2x128`: the same pair at 2 × 128 (4 heads, ffn 512): a student
//!   general-distilled directly into two layers (`--general2 RUN`, e.g. `runs/gd-2x128-long`)
//!   against that shape from random initialisation with MiniLM's tokenizer;
//! * `dapt-minilm`: MiniLM-L6 after domain-adaptive MLM pretraining on imdb (`--dapt RUN`),
//!   fine-tuned exactly as `minilm`.
//!
//! The scratch arm uses the pretraining run's tokenizer, so the two small arms differ only in
//! their initial weights. Every run selects its best epoch on the same full validation split
//! and is scored on the same test split (854 reviews). Finished runs are cached in
//! `target/transfer-study/cache.jsonl`, so the study resumes after an interruption; the report
//! (`reports/transfer.md`, `reports/transfer.json`, `reports/transfer.png`) is written from the
//! cache.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use whetstone_benches::study::{append_cache, field, mean_std, read_cache, sample, write_csv};
use whetstone_data::{load_splits, DataSource, Splits};
use whetstone_eval::{plot_lines_log_x, Curve};
use whetstone_run::{train_recipe, Recipe, RunOptions};

#[derive(Parser, Debug)]
#[command(about = "Small-sample transfer study on rotten-tomatoes")]
struct Args {
    /// The `whetstone pretrain --recipe mlm-imdb` run folder.
    #[arg(long, default_value = "runs/mlm-imdb")]
    pretrained: PathBuf,
    /// Training-set sizes (0 = all).
    #[arg(long, value_delimiter = ',', default_values_t = vec![50, 100, 200, 500, 1000, 0])]
    sizes: Vec<usize>,
    /// Arms to run: scratch, mlm-imdb, minilm, gd-4x128, scratch-4x128, gd-2x128, scratch-2x128, dapt-minilm.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["scratch".to_string(), "mlm-imdb".to_string(), "minilm".to_string()])]
    arms: Vec<String>,
    /// The general-distilled encoder of the `gd-4x128` arm (a pretrain run folder or HF BERT folder).
    #[arg(long, default_value = "runs/gd-4x128")]
    general: PathBuf,
    /// The general-distilled 2-layer encoder of the `gd-2x128` arm.
    #[arg(long, default_value = "runs/gd-2x128-long")]
    general2: PathBuf,
    /// The domain-adapted MiniLM of the `dapt-minilm` arm.
    #[arg(long, default_value = "runs/dapt-minilm")]
    dapt: PathBuf,
    /// Peak learning rate of the `gd-4x128` and `gd-2x128` arms.
    #[arg(long, default_value_t = 2e-4)]
    gd_lr: f64,
    /// Peak learning rate of the `scratch-4x128` and `scratch-2x128` arms (to tune both arms
    /// alike; the cache key does not include it, so give each rate its own --work folder).
    #[arg(long, alias = "scratch-lr", default_value_t = 5e-4)]
    scratch4_lr: f64,
    /// Seeds per (arm, N).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Tiny budgets (one epoch): a smoke test of the pipeline; numbers mean nothing.
    #[arg(long)]
    quick: bool,
    /// Train nothing: write the report from the cache.
    #[arg(long)]
    report_only: bool,
    /// Where the report goes.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Run folders and the cache.
    #[arg(long, default_value = "target/transfer-study")]
    work: PathBuf,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

const ARMS: [&str; 8] = ["scratch", "mlm-imdb", "minilm", "scratch-4x128", "gd-4x128", "scratch-2x128", "gd-2x128", "dapt-minilm"];

/// The arms fine-tuned like MiniLM (budgets and learning rate).
fn minilm_like(arm: &str) -> bool {
    arm == "minilm" || arm == "dapt-minilm"
}

/// Epochs for `n` training examples: many passes over tiny sets, few over the full one, so
/// that every run takes a comparable number of steps (early stopping picks the best epoch).
fn epochs(arm: &str, n: usize, quick: bool) -> u64 {
    if quick {
        return 1;
    }
    let big = minilm_like(arm);
    match (big, n) {
        (true, 0) => 2,
        (_, 0) => 5,
        (true, n) if n <= 200 => 15,
        (true, n) if n <= 1000 => 6,
        (true, _) => 2,
        (_, n) if n <= 200 => 20,
        (_, n) if n <= 1000 => 12,
        _ => 5,
    }
}

/// The recipe of one run.
fn recipe(arm: &str, n: usize, seed: u64, files: &(PathBuf, PathBuf, PathBuf), args: &Args, minilm_tokenizer: &Path) -> Result<Recipe> {
    let (pretrained, threads, quick) = (&args.pretrained, args.threads, args.quick);
    let small = "kind = \"transformer\"\nlayers = 2\nhidden = 128\nheads = 2\nffn = 512\nmax_len = 128\ndropout = 0.1\npooling = \"mean\"\n";
    // The shapes of the students general-distilled with `--student 2x128x4x512` and
    // `4x128x4x512`: 4 heads, so that a scratch arm differs from its gd arm only in its
    // initial weights. (Before 2026-11-30 `scratch-4x128` had 2 heads.)
    let small2 = small.replace("heads = 2", "heads = 4");
    let small4 = small2.replace("layers = 2", "layers = 4");
    let tokenizer = pretrained.join("tokenizer.json");
    let path = |p: &Path| format!("{:?}", p.display().to_string());
    let (model, tok, lr) = match arm {
        "scratch" => (small.to_string(), format!("[tokenizer]\npath = {:?}\n", tokenizer.display().to_string()), 5e-4),
        "scratch-4x128" => (small4, format!("[tokenizer]\npath = {}\n", path(minilm_tokenizer)), args.scratch4_lr),
        "gd-4x128" => (format!("kind = \"transformer\"\npretrained = {}\npooling = \"mean\"\n", path(&args.general)), String::new(), args.gd_lr),
        "scratch-2x128" => (small2, format!("[tokenizer]\npath = {}\n", path(minilm_tokenizer)), args.scratch4_lr),
        "gd-2x128" => (format!("kind = \"transformer\"\npretrained = {}\npooling = \"mean\"\n", path(&args.general2)), String::new(), args.gd_lr),
        "dapt-minilm" => (format!("kind = \"transformer\"\npretrained = {}\npooling = \"mean\"\n", path(&args.dapt)), String::new(), 5e-5),
        "mlm-imdb" => (format!("kind = \"transformer\"\npretrained = {:?}\npooling = \"mean\"\n", pretrained.display().to_string()), String::new(), 2e-4),
        "minilm" => ("kind = \"transformer\"\npretrained = \"minilm-l6\"\npooling = \"mean\"\n".to_string(), String::new(), 5e-5),
        other => bail!("unknown arm `{other}` (known: {})", ARMS.join(", ")),
    };
    let batch = if n > 0 && n <= 500 { 16 } else { 32 };
    // About 8 validation passes per run: for tiny N, evaluating the 853 validation reviews
    // every epoch would cost more than the training itself.
    let examples = if n == 0 { 6822 } else { n };
    let epochs = epochs(arm, n, quick);
    let total = examples.div_ceil(batch) as u64 * epochs;
    let eval_every = (total / 8).max(examples.div_ceil(batch) as u64);
    let text = format!(
        "name = \"{arm}-n{n}-s{seed}\"\nseed = {seed}\ndevice = \"auto\"\nthreads = {threads}\n\
         [data]\npath = {:?}\nvalid_path = {:?}\ntest_path = {:?}\nmax_len = 64\n\
         {tok}[model]\n{model}\
         [optim]\nkind = \"adamw\"\nlr = {lr}\nweight_decay = 0.01\n\
         [schedule]\nkind = \"warmup-linear\"\nwarmup_ratio = 0.1\n\
         [train]\nepochs = {epochs}\nbatch_size = {batch}\neval_every = {eval_every}\npatience = 4\nlog_every = 50\n\
         [eval]\nlatency_iters = 0\n",
        files.0.display().to_string(),
        files.1.display().to_string(),
        files.2.display().to_string(),
    );
    Recipe::parse(&format!("transfer recipe {arm} n={n} seed={seed}"), &text, &[]).map_err(anyhow::Error::msg)
}

fn key(arm: &str, n: usize, seed: u64, quick: bool) -> String {
    format!("{arm}|{n}|{seed}{}", if quick { "|quick" } else { "" })
}

fn main() -> Result<()> {
    let args = Args::parse();
    for a in &args.arms {
        if !ARMS.contains(&a.as_str()) {
            bail!("unknown arm `{a}` (known: {})", ARMS.join(", "));
        }
    }
    let cache_path = args.work.join("cache.jsonl");
    let mut cache = read_cache(&cache_path);
    if !args.report_only {
        let needs = |arm: &str, dir: &Path| args.arms.iter().any(|a| a == arm) && !dir.join("encoder").join("config.json").is_file() && !dir.join("config.json").is_file();
        for (arm, dir) in [("gd-4x128", &args.general), ("gd-2x128", &args.general2), ("dapt-minilm", &args.dapt)] {
            if needs(arm, dir) {
                bail!("the {arm} arm needs a finished run or HF BERT folder at {} (no encoder/config.json or config.json there)", dir.display());
            }
        }
        if args.arms.iter().any(|a| a == "scratch" || a == "mlm-imdb") && !args.pretrained.join("encoder").join("config.json").is_file() {
            bail!(
                "{} is not a finished pretraining run (no encoder/config.json): run `cargo xtask train` … or `whetstone pretrain --recipe mlm-imdb` first, or pass --pretrained RUN",
                args.pretrained.display()
            );
        }
        let splits: Splits = load_splits(&DataSource::Named { name: "rotten-tomatoes".into() }, 0.1, 0.1, 42)?;
        let names = splits.labels.names.clone();
        let minilm_tokenizer = whetstone_run::resolve_pretrained(Path::new("minilm-l6"))?.join("tokenizer.json");
        let data_dir = args.work.join("data");
        std::fs::create_dir_all(&data_dir)?;
        let (valid_csv, test_csv) = (data_dir.join("valid.csv"), data_dir.join("test.csv"));
        write_csv(&valid_csv, &splits.valid, &names)?;
        write_csv(&test_csv, &splits.test, &names)?;
        let total = args.arms.len() * args.sizes.len() * args.seeds as usize;
        let mut done = 0;
        for arm in &args.arms {
            for &n in &args.sizes {
                for seed in 0..args.seeds {
                    done += 1;
                    let k = key(arm, n, seed, args.quick);
                    if cache.contains_key(&k) {
                        continue;
                    }
                    let sub = sample(&splits.train, n, seed);
                    let train_csv = data_dir.join(format!("train-n{n}-s{seed}.csv"));
                    write_csv(&train_csv, &sub, &names)?;
                    let r = recipe(arm, n, seed, &(train_csv, valid_csv.clone(), test_csv.clone()), &args, &minilm_tokenizer)?;
                    let dir = args.work.join("runs").join(&r.name);
                    let _ = std::fs::remove_dir_all(&dir);
                    eprintln!("[{done}/{total}] {arm} N={} seed {seed} ({} epochs)", if n == 0 { "all".into() } else { n.to_string() }, r.train.epochs);
                    let t0 = Instant::now();
                    let out = train_recipe(&r, &RunOptions { quiet: true, ..RunOptions::new(dir.clone()) })?;
                    let test = out.test.context("the run was interrupted")?;
                    let rec = json!({
                        "key": k, "arm": arm, "n": sub.len(), "n_arg": n, "seed": seed,
                        "test_accuracy": test.accuracy, "test_macro_f1": test.macro_f1,
                        "valid_accuracy": out.valid.as_ref().map(|v| v.accuracy),
                        "steps": out.fit.progress.step, "epochs_run": out.fit.progress.epoch, "best_step": out.fit.progress.best_step,
                        "wall_s": t0.elapsed().as_secs_f64(),
                    });
                    eprintln!("    test accuracy {:.4} in {:.0}s", test.accuracy, t0.elapsed().as_secs_f64());
                    append_cache(&cache_path, &rec)?;
                    cache.insert(k, rec);
                    // Keep only the numbers: the run folders of a full study would take gigabytes.
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
    }
    report(&args, &cache)
}

fn report(args: &Args, cache: &std::collections::BTreeMap<String, Value>) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let label = |n: usize| if n == 0 { "all".to_string() } else { n.to_string() };
    let mut md = String::from("# Small-sample transfer study (rotten-tomatoes)\n\n<!-- generated by `cargo xtask bench transfer` (benches/src/bin/transfer-study.rs) -->\n");
    if args.quick {
        md.push_str("\n**QUICK MODE: one epoch per run; these numbers mean nothing.**\n");
    }
    md.push_str(&format!(
        "\nMachine: {}; load average {}. Test accuracy (mean ± sample std over seeds) on the fixed 854-review test split; \
         every run picks its best epoch on the same 853-review validation split.\n\n",
        whetstone_benches::machine::cpu_model(),
        whetstone_benches::machine::load_avg()
    ));
    md.push_str("| arm | ".to_string().as_str());
    md.push_str(&args.sizes.iter().map(|&n| format!("N={}", label(n))).collect::<Vec<_>>().join(" | "));
    md.push_str(" |\n|---|");
    md.push_str(&"---:|".repeat(args.sizes.len()));
    md.push('\n');
    let mut curves = Vec::new();
    let mut table = Vec::new();
    for arm in ARMS {
        let mut row = format!("| {arm} |");
        let mut points = Vec::new();
        let mut spread = Vec::new();
        for &n in &args.sizes {
            let accs: Vec<f64> = (0..args.seeds).filter_map(|s| cache.get(&key(arm, n, s, args.quick))).map(|r| field(r, "test_accuracy")).collect();
            let real_n = (0..args.seeds).filter_map(|s| cache.get(&key(arm, n, s, args.quick))).map(|r| field(r, "n")).next();
            if accs.is_empty() {
                row.push_str(" – |");
                continue;
            }
            let (m, sd) = mean_std(&accs);
            row.push_str(&format!(" {:.1} ± {:.1} ({}) |", 100.0 * m, 100.0 * sd, accs.len()));
            if let Some(x) = real_n {
                points.push((x, 100.0 * m));
                spread.push(100.0 * sd);
            }
            table.push(json!({"arm": arm, "n": label(n), "train_examples": real_n, "mean": m, "std": sd, "seeds": accs.len(), "accuracies": accs}));
        }
        md.push_str(&row);
        md.push('\n');
        if !points.is_empty() {
            curves.push(Curve::new(arm, points).with_spread(spread));
        }
    }
    md.push_str("\nCells: mean ± std (number of seeds). N=all is the whole training split (6,822 reviews).\n");
    // Mean, std and seed count of an arm at N.
    let stats = |arm: &str, n: usize| {
        let v: Vec<f64> = (0..args.seeds).filter_map(|s| cache.get(&key(arm, n, s, args.quick))).map(|r| field(r, "test_accuracy")).collect();
        (!v.is_empty()).then(|| {
            let (m, sd) = mean_std(&v);
            (m, sd, v.len())
        })
    };
    let gap = |a: &str, b: &str, n: usize| Some((stats(a, n)?, stats(b, n)?));
    if let Some(((a, _, _), (b, _, _))) = gap("mlm-imdb", "scratch", 200) {
        let g = 100.0 * (a - b);
        md.push_str(&format!(
            "\n**Goal check (N=200): MLM-pretrained minus from-scratch = {g:+.1} points** (goal: at least +10). {}\n",
            if g >= 10.0 { "Met." } else { "Not met." }
        ));
    }
    if let Some(((a, sa, ka), (b, sb, kb))) = gap("gd-4x128", "scratch-4x128", 200) {
        let g = 100.0 * (a - b);
        md.push_str(&format!(
            "\n**Goal check (N=200): whetstone's own general-distilled 4×128 encoder minus the same shape from scratch = {g:+.1} points** ({:.1} ± {:.1}, {ka} seeds, against {:.1} ± {:.1}, {kb} seeds; goal: at least +10). {}\n",
            100.0 * a, 100.0 * sa, 100.0 * b, 100.0 * sb,
            if g >= 10.0 { "Met.".to_string() } else { format!("Not met (short by {:.1} points).", 10.0 - g) }
        ));
    }
    for n in args.sizes.iter().copied() {
        if let Some(((a, sa, ka), (b, sb, kb))) = gap("dapt-minilm", "minilm", n) {
            md.push_str(&format!(
                "\n**DAPT (N={}): domain-adapted MiniLM minus plain MiniLM = {:+.1} points** ({:.1} ± {:.1}, {ka} seeds, against {:.1} ± {:.1}, {kb} seeds).\n",
                label(n), 100.0 * (a - b), 100.0 * a, 100.0 * sa, 100.0 * b, 100.0 * sb
            ));
        }
    }
    let png = args.out.join("transfer.png");
    if !curves.is_empty() {
        plot_lines_log_x(&curves, "labelled training examples (log scale)", "test accuracy (%), mean ± std over seeds", "rotten-tomatoes: test accuracy against labelled examples", &png, &png.with_extension("svg"))?;
        md.push_str("\n![learning curves](transfer.png)\n");
    }
    let wall: f64 = cache.values().filter(|r| r.get("key").and_then(Value::as_str).is_some_and(|k| k.ends_with("|quick") == args.quick)).map(|r| field(r, "wall_s")).sum();
    md.push_str(&format!("\nTotal training wall time in the cache: {:.0} min.\n", wall / 60.0));
    let notes = args.out.join("transfer-notes.md");
    if let Ok(n) = std::fs::read_to_string(&notes) {
        md.push('\n');
        md.push_str(&n);
    }
    std::fs::write(args.out.join("transfer.md"), md)?;
    std::fs::write(args.out.join("transfer.json"), serde_json::to_string_pretty(&json!({"quick": args.quick, "cells": table}))?)?;
    eprintln!("wrote {}", args.out.join("transfer.md").display());
    Ok(())
}
