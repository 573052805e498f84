//! `cargo xtask bench precision`: accuracy and training speed of fp32 against bf16 mixed
//! precision, on the embedded recipes `minilm-rt` (all-MiniLM-L6-v2 fine-tuned) and
//! `rt-transformer` (2 × 128 from scratch), 3 seeds each.
//!
//! Every run is the real `whetstone train` pipeline (`train_recipe`) with the recipe as
//! embedded, only `seed`, `threads` and `precision` set; it picks its best checkpoint on the
//! validation split and is scored on the test split. Training throughput is the loop's own
//! seq/s (training steps only, evaluation excluded). Finished runs are cached in
//! `target/precision-study/cache.jsonl`, so the study resumes after an interruption; the
//! report (`reports/precision.md`, `reports/precision.json`) is written from the cache, with
//! `reports/precision-notes.md` (GPU results, discussion) appended when it exists.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::path::PathBuf;
use whetstone_benches::study::{append_cache, field, mean_std, read_cache};
use whetstone_run::{train_recipe, Precision, Recipe, RunOptions};

const RECIPES: [(&str, &str); 2] = [
    ("rt-transformer", include_str!("../../../crates/whetstone/recipes/rt-transformer.toml")),
    ("minilm-rt", include_str!("../../../crates/whetstone/recipes/minilm-rt.toml")),
];

#[derive(Parser, Debug)]
#[command(about = "fp32 against bf16 mixed precision: test accuracy and training seq/s")]
struct Args {
    /// Recipes (embedded): rt-transformer, minilm-rt.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["rt-transformer".to_string(), "minilm-rt".to_string()])]
    recipes: Vec<String>,
    /// Precisions to compare.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["fp32".to_string(), "bf16".to_string()])]
    precisions: Vec<String>,
    /// Seeds per (recipe, precision): 42, 43, …
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Extra recipe overrides for every run (`key=value`), recorded in the report; e.g.
    /// `train.epochs=1` for a shorter study.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Keep the run folders of the first seed (e.g. a minilm-rt teacher for the compression
    /// study); the others are removed once their numbers are cached.
    #[arg(long)]
    keep_first: bool,
    /// Train nothing: write the report from the cache.
    #[arg(long)]
    report_only: bool,
    /// Where the report goes.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Run folders and the cache.
    #[arg(long, default_value = "target/precision-study")]
    work: PathBuf,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Device (cpu, cuda, auto).
    #[arg(long, default_value = "auto")]
    device: String,
}

fn key(recipe: &str, precision: &str, seed: u64, overrides: &[String], device: &str) -> String {
    format!("{recipe}|{precision}|{seed}|{}|{device}", overrides.join(","))
}

fn main() -> Result<()> {
    let args = Args::parse();
    for r in &args.recipes {
        if !RECIPES.iter().any(|(n, _)| n == r) {
            bail!("unknown recipe `{r}` (known: rt-transformer, minilm-rt)");
        }
    }
    for p in &args.precisions {
        p.parse::<Precision>().map_err(|e| anyhow::anyhow!("--precisions: {e}"))?;
    }
    let cache_path = args.work.join("cache.jsonl");
    let mut cache = read_cache(&cache_path);
    if !args.report_only {
        let total = args.recipes.len() * args.precisions.len() * args.seeds as usize;
        let mut done = 0;
        // Seed-major order: an interrupted study still has comparable pairs.
        for s in 0..args.seeds {
            for name in &args.recipes {
                for p in &args.precisions {
                    done += 1;
                    let seed = 42 + s;
                    let k = key(name, p, seed, &args.overrides, &args.device);
                    if cache.contains_key(&k) {
                        continue;
                    }
                    let text = RECIPES.iter().find(|(n, _)| n == name).map(|(_, t)| *t).context("recipe")?;
                    let mut sets = vec![format!("seed={seed}"), format!("threads={}", args.threads), format!("precision=\"{p}\""), format!("device=\"{}\"", args.device), format!("name=\"{name}-{p}-s{seed}\"")];
                    sets.extend(args.overrides.iter().cloned());
                    let recipe = Recipe::parse(&format!("embedded recipe `{name}`"), text, &sets).map_err(anyhow::Error::msg)?;
                    let dir = args.work.join("runs").join(&recipe.name);
                    let _ = std::fs::remove_dir_all(&dir);
                    eprintln!("[{done}/{total}] {name} {p} seed {seed}");
                    let out = train_recipe(&recipe, &RunOptions { quiet: true, ..RunOptions::new(dir.clone()) })?;
                    let test = out.test.context("the run was interrupted")?;
                    let rec = json!({
                        "key": k, "recipe": name, "precision": p, "seed": seed, "overrides": args.overrides, "device": args.device,
                        "test_accuracy": test.accuracy, "test_macro_f1": test.macro_f1,
                        "valid_accuracy": out.valid.as_ref().map(|v| v.accuracy),
                        "train_seq_per_s": out.fit.seq_per_s, "train_seconds": out.fit.progress.train_seconds,
                        "steps": out.fit.progress.step, "best_step": out.fit.progress.best_step, "wall_s": out.wall_s,
                        "load_avg": whetstone_benches::machine::load_avg(),
                    });
                    eprintln!("    test accuracy {:.4}, {:.1} seq/s, {:.0}s", test.accuracy, out.fit.seq_per_s, out.wall_s);
                    append_cache(&cache_path, &rec)?;
                    cache.insert(k, rec);
                    if !(args.keep_first && s == 0) {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                }
            }
        }
    }
    report(&args, &cache)
}

/// The report covers every (recipe, overrides) group in the cache on `--device`, so studies run
/// with different settings per recipe (e.g. a shorter budget for the slow one) share one report.
fn report(args: &Args, cache: &std::collections::BTreeMap<String, Value>) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let overrides_of = |r: &Value| -> Vec<String> { r["overrides"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default() };
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in cache.values().filter(|r| r["device"] == args.device.as_str()) {
        let g = (r["recipe"].as_str().unwrap_or("").to_string(), overrides_of(r));
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.sort();
    let runs = |name: &str, ov: &[String], p: &str| -> Vec<&Value> { (0..args.seeds).filter_map(|s| cache.get(&key(name, p, 42 + s, ov, &args.device))).collect() };
    let mut md = String::from("# Mixed precision: fp32 against bf16\n\n<!-- generated by `cargo xtask bench precision` (benches/src/bin/precision-study.rs) -->\n\n");
    md.push_str(&format!(
        "Machine: {}; device `{}`; {} intra-op threads; load average at the end {}. Each cell is the real `whetstone train --recipe R --precision P` pipeline \
         with only `seed` (42, 43, 44), `threads` and `precision` set (and the overrides shown); test accuracy on the recipe's test split (best checkpoint by validation accuracy), \
         mean ± sample std over seeds; seq/s is the loop's training throughput (evaluation excluded), mean over seeds.\n\n",
        whetstone_benches::machine::cpu_model(),
        args.device,
        args.threads,
        whetstone_benches::machine::load_avg(),
    ));
    md.push_str("| recipe | overrides | precision | seeds | test accuracy (%) | train seq/s | speed-up vs fp32 | Δ accuracy vs fp32 (points) |\n|---|---|---|---:|---:|---:|---:|---:|\n");
    let mut cells = Vec::new();
    let mut checks = Vec::new();
    for (name, ov) in &groups {
        let shown = if ov.is_empty() { "–".to_string() } else { format!("`{}`", ov.join("`, `")) };
        let base = runs(name, ov, "fp32");
        let base_acc = (!base.is_empty()).then(|| mean_std(&base.iter().map(|r| field(r, "test_accuracy")).collect::<Vec<_>>()).0);
        let base_sps = (!base.is_empty()).then(|| mean_std(&base.iter().map(|r| field(r, "train_seq_per_s")).collect::<Vec<_>>()).0);
        for p in &args.precisions {
            let rs = runs(name, ov, p);
            if rs.is_empty() {
                md.push_str(&format!("| {name} | {shown} | {p} | 0 | – | – | – | – |\n"));
                continue;
            }
            let accs: Vec<f64> = rs.iter().map(|r| field(r, "test_accuracy")).collect();
            let sps: Vec<f64> = rs.iter().map(|r| field(r, "train_seq_per_s")).collect();
            let (m, sd) = mean_std(&accs);
            let (s, _) = mean_std(&sps);
            let speed = base_sps.map(|b| s / b);
            let delta = base_acc.map(|b| 100.0 * (m - b));
            md.push_str(&format!(
                "| {name} | {shown} | {p} | {} | {:.2} ± {:.2} | {:.1} | {} | {} |\n",
                rs.len(),
                100.0 * m,
                100.0 * sd,
                s,
                speed.map_or("–".into(), |x| format!("{x:.2}×")),
                delta.map_or("–".into(), |d| format!("{d:+.2}"))
            ));
            cells.push(json!({"recipe": name, "overrides": ov, "precision": p, "seeds": rs.len(), "accuracies": accs, "mean": m, "std": sd, "train_seq_per_s": sps, "speedup_vs_fp32": speed, "delta_points_vs_fp32": delta}));
            if p == "bf16" && base.len() == rs.len() {
                if let (Some(x), Some(d)) = (speed, delta) {
                    checks.push(format!(
                        "- **{name}** ({shown}): bf16 trains at **{x:.2}×** the seq/s of fp32{}; test accuracy {d:+.2} points ({}).",
                        if name == "minilm-rt" { if x >= 2.0 { " (goal ≥ 2×: met)" } else { " (goal ≥ 2×: not met)" } } else { "" },
                        if d.abs() <= 0.5 { "within the 0.5-point goal" } else if d > 0.0 { "better than fp32 by more than 0.5 points" } else { "outside the 0.5-point goal" }
                    ));
                }
            }
        }
    }
    if !checks.is_empty() {
        md.push_str("\n## Goal checks\n\n");
        md.push_str(&checks.join("\n"));
        md.push('\n');
    }
    md.push_str("\nPer-run numbers (test accuracy, seq/s, steps, wall time, load average) are in `precision.json`.\n");
    if let Ok(n) = std::fs::read_to_string(args.out.join("precision-notes.md")) {
        md.push('\n');
        md.push_str(&n);
    }
    let all: Vec<&Value> = cache.values().collect();
    whetstone_eval::write_atomic(&args.out.join("precision.md"), md.as_bytes())?;
    whetstone_eval::write_atomic(&args.out.join("precision.json"), serde_json::to_string_pretty(&json!({"cells": cells, "runs": all}))?.as_bytes())?;
    eprintln!("wrote {}", args.out.join("precision.md").display());
    Ok(())
}
