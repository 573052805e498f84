//! `compress-study --ablation`: the task-distillation ablation of one student shape, several
//! seeds per row, each row a `whetstone distill` run through the library (cached under
//! `<cache>/ablation-<shape>/<row>-s<seed>/`).
//!
//! Rows switch four things on or off: general distillation (the student starts from a
//! general-distilled encoder, `--general RUN`, instead of a fresh student with SVD-projected
//! teacher embeddings), task distillation (KD from the teacher's logits against hard labels
//! only), the augmented transfer set (TinyBERT's embedding-neighbour rewrites of the training
//! texts, labelled by the teacher), and the intermediate-layer losses (a first stage with
//! hidden-state, attention and embedding losses, then the row's prediction-layer KD from it).
//! Writes `<out>/distill-ablation.{md,json}`.

use super::{measure, Timed};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;
use whetstone_benches::machine::{cpu_model, load_avg};
use whetstone_benches::study::mean_std;
use whetstone_data::Batch;
use whetstone_run::compress::{self as pipeline, CompressConfig, Source};
use whetstone_run::RunFolder;

/// One row of the ablation.
#[derive(Debug, Clone, Copy)]
pub struct Abl {
    pub name: &'static str,
    /// Starts from the general-distilled encoder (else a fresh student, SVD init).
    pub general: bool,
    /// Task KD from the teacher's logits (else hard labels only: the same student without KD).
    pub kd: bool,
    /// The augmented transfer set (KD rows only).
    pub aug: bool,
    /// A first stage of intermediate-layer distillation.
    pub inter: bool,
}

/// The rows, most important first.
pub const ROWS: [Abl; 9] = [
    Abl { name: "svd-ce", general: false, kd: false, aug: false, inter: false },
    Abl { name: "svd-kd-aug", general: false, kd: true, aug: true, inter: false },
    Abl { name: "gd-ce", general: true, kd: false, aug: false, inter: false },
    Abl { name: "gd-kd-aug", general: true, kd: true, aug: true, inter: false },
    Abl { name: "svd-kd", general: false, kd: true, aug: false, inter: false },
    Abl { name: "gd-kd", general: true, kd: true, aug: false, inter: false },
    Abl { name: "gd-kd-inter", general: true, kd: true, aug: false, inter: true },
    Abl { name: "gd-kd-aug-inter", general: true, kd: true, aug: true, inter: true },
    Abl { name: "svd-kd-aug-inter", general: false, kd: true, aug: true, inter: true },
];

/// The ablation's settings.
pub struct Plan<'a> {
    pub teacher: &'a Path,
    pub cache: PathBuf,
    pub out: &'a Path,
    /// Student shape of the fresh rows (e.g. `4x128`); the general-distilled encoder must have it.
    pub shape: &'a str,
    /// The general-distillation run (`whetstone` pretrain run folder or HF BERT folder).
    pub general: &'a Path,
    pub seeds: u64,
    pub threads: i32,
    pub quick: bool,
    /// Epochs over the training split alone (rows without the transfer set).
    pub epochs: u64,
    /// Epochs over training split + transfer set.
    pub aug_epochs: u64,
    /// Neighbour-rewritten copies of each training text, and the cap on the transfer set.
    pub aug_copies: usize,
    pub aug_max: usize,
    /// Epochs of the intermediate-layer stage.
    pub inter_epochs: u64,
    pub latency_sentences: usize,
    pub latency_rounds: usize,
}

impl Plan<'_> {
    fn row_dir(&self, name: &str, seed: u64) -> PathBuf {
        self.cache.join(format!("{name}-s{seed}"))
    }

    /// The `key=value` overrides of one distillation run of `row` with `seed`, from `student`.
    fn overrides(&self, row: &Abl, seed: u64, student: &str, stage1: bool) -> Vec<String> {
        let mut v = vec![
            format!("threads={}", self.threads),
            "device=\"cpu\"".into(),
            "latency_iters=0".into(),
            format!("seed={seed}"),
            format!("distill.student={student:?}"),
            "distill.init=\"svd\"".into(),
        ];
        if self.quick {
            v.push("train_limit=256".into());
        }
        if !row.kd {
            v.extend(["distill.loss.alpha=1.0".to_string(), "distill.cache_teacher=false".into()]);
        } else {
            v.extend(["distill.loss.alpha=0.1".to_string(), "distill.loss.temperature=2".into()]);
        }
        if row.aug {
            v.push("distill.transfer=\"neighbour\"".into());
            v.push(format!("distill.transfer_copies={}", self.aug_copies));
            v.push(format!("distill.transfer_max={}", if self.quick { 64 } else { self.aug_max }));
        }
        let epochs = if stage1 {
            v.extend(["distill.loss.hidden=1.0".to_string(), "distill.loss.attention=1.0".into(), "distill.loss.embedding=1.0".into()]);
            self.inter_epochs
        } else if row.aug {
            self.aug_epochs
        } else {
            self.epochs
        };
        v.push(format!("distill.epochs={}", if self.quick { 1 } else { epochs }));
        v
    }

    /// Build `row` with `seed` unless cached; the build's wall seconds (0 when cached).
    fn build(&self, row: &Abl, seed: u64) -> Result<f64> {
        let dir = self.row_dir(row.name, seed);
        if dir.join("metrics.json").exists() {
            return Ok(0.0);
        }
        let t0 = Instant::now();
        let init = if row.general { self.general.display().to_string() } else { self.shape.to_string() };
        let mut student = init.clone();
        if row.inter {
            let s1 = self.row_dir(&format!("{}-stage1", row.name), seed);
            if !s1.join("metrics.json").exists() {
                let _ = std::fs::remove_dir_all(&s1);
                let c = CompressConfig::parse(&format!("{} stage 1", row.name), "", &self.overrides(row, seed, &init, true))?;
                pipeline::distill(self.teacher, &c, &RunFolder::At(s1.clone()), true)?;
            }
            student = s1.display().to_string();
        }
        let _ = std::fs::remove_dir_all(&dir);
        let c = CompressConfig::parse(row.name, "", &self.overrides(row, seed, &student, false))?;
        pipeline::distill(self.teacher, &c, &RunFolder::At(dir.clone()), true)?;
        let secs = t0.elapsed().as_secs_f64();
        std::fs::write(dir.join("study.json"), json!({"build_seconds": secs, "load_avg_after": load_avg()}).to_string())?;
        Ok(secs)
    }

    fn what(&self, row: &Abl) -> String {
        let mut s = if row.general { format!("{} student from the general-distilled encoder `{}`", self.shape, self.general.display()) } else { format!("fresh {} student, SVD-projected teacher embeddings", self.shape) };
        if row.inter {
            s.push_str(&format!("; stage 1: hidden-state + attention + embedding losses (weights 1, uniform layer map) + logit KD, {} epoch(s)", self.inter_epochs));
        }
        if row.kd {
            s.push_str("; KD from the teacher's logits (T = 2, α = 0.1)");
        } else {
            s.push_str("; hard labels only (no distillation)");
        }
        if row.aug {
            s.push_str(&format!(
                " on the train split + {} neighbour-rewritten copies of each training text (TinyBERT augmentation, capped at {}), teacher-labelled, {} epochs",
                self.aug_copies, self.aug_max, self.aug_epochs
            ));
        } else {
            s.push_str(&format!(" on the train split, {} epochs", self.epochs));
        }
        s
    }
}

/// Build every selected row for every seed, then write the report.
pub fn run(plan: &Plan, only: Option<&[String]>, measure_only: bool) -> Result<()> {
    std::fs::create_dir_all(&plan.cache)?;
    let rows: Vec<Abl> = ROWS.iter().copied().filter(|r| only.is_none_or(|v| v.iter().any(|n| n == r.name))).collect();
    let started = Instant::now();
    if !measure_only {
        // Seed-major: a complete first seed of every row before the second.
        for seed in 0..plan.seeds {
            for row in &rows {
                if row.general && !plan.general.exists() {
                    eprintln!("{} seed {seed}: {} does not exist yet, skipped", row.name, plan.general.display());
                    continue;
                }
                eprintln!("[{:>6.0}s] {} seed {seed} … load {}", started.elapsed().as_secs_f64(), row.name, load_avg());
                match plan.build(row, seed) {
                    Ok(s) if s > 0.0 => eprintln!("[{:>6.0}s]   built in {s:.0}s", started.elapsed().as_secs_f64()),
                    Ok(_) => {}
                    Err(e) => eprintln!("[{:>6.0}s]   FAILED: {e:#}", started.elapsed().as_secs_f64()),
                }
            }
        }
    }
    report(plan)
}

fn read_json(p: &Path) -> Option<Value> {
    std::fs::read_to_string(p).ok().and_then(|t| serde_json::from_str(&t).ok())
}

/// Every row with its finished seeds (all rows of [`ROWS`], whatever was selected this time).
fn report(plan: &Plan) -> Result<()> {
    let teacher_src = Source::open(plan.teacher, Some("cpu"))?;
    let teacher_run = &teacher_src.run;
    let t_acc = teacher_run.evaluate_split(&teacher_src.run.test_split()?)?.1.accuracy;
    let mut table = Vec::new();
    for row in ROWS.iter() {
        let mut accs = Vec::new();
        let mut secs = Vec::new();
        let mut seeds = Vec::new();
        for seed in 0..plan.seeds {
            let dir = plan.row_dir(row.name, seed);
            let Some(m) = read_json(&dir.join("metrics.json")) else { continue };
            let acc = m["test"]["accuracy"].as_f64().context("metrics.json test accuracy")?;
            accs.push(acc);
            seeds.push(seed);
            // (an intermediate row's build includes its stage-1 run)
            secs.push(read_json(&dir.join("study.json")).and_then(|v| v["build_seconds"].as_f64()).unwrap_or(f64::NAN));
        }
        if accs.is_empty() {
            continue;
        }
        let (m, sd) = mean_std(&accs);
        let notes = read_json(&plan.row_dir(row.name, seeds[0]).join(pipeline::COMPRESSION_FILE)).map(|v| v["notes"].clone()).unwrap_or(Value::Null);
        table.push(json!({
            "name": row.name, "what": plan.what(row), "general": row.general, "kd": row.kd, "aug": row.aug, "inter": row.inter,
            "seeds": seeds, "accuracies": accs, "mean": m, "std": sd, "min": accs.iter().cloned().fold(f64::INFINITY, f64::min),
            "build_seconds": secs, "notes_seed0": notes,
        }));
    }
    // One latency measurement: the teacher against one student of each initialisation (the
    // general-distilled encoder may differ from the fresh shape in its heads), interleaved
    // sentence by sentence.
    let first = |general: bool| ROWS.iter().filter(|r| r.general == general).flat_map(|r| (0..plan.seeds).map(move |s| (r, s))).map(|(r, s)| plan.row_dir(r.name, s)).find(|d| d.join("metrics.json").exists());
    let students: Vec<(&str, PathBuf)> = [("fresh", first(false)), ("general", first(true))].into_iter().filter_map(|(k, d)| d.map(|d| (k, d))).collect();
    let mut lat = json!({});
    if !students.is_empty() {
        let loaded = students.iter().map(|(_, d)| pipeline::open_run(d, Some("cpu"))).collect::<Result<Vec<_>, _>>()?;
        let mut models = vec![&teacher_run.model];
        models.extend(loaded.iter().map(|r| &r.model));
        let timed: Vec<Timed> = models
            .iter()
            .map(|m| Timed {
                forward: Box::new(move |b: &Batch| {
                    let _ = m.forward_t(&b.input_ids, &b.attention_mask, false)?;
                    Ok(())
                }),
            })
            .collect();
        let before = load_avg();
        let r = measure(&timed, &teacher_src.test, plan.latency_sentences, plan.latency_rounds)?;
        let after = load_avg();
        for (k, (kind, dir)) in students.iter().enumerate() {
            let (t, st) = (&r[0].0, &r[k + 1].0);
            lat[*kind] = json!({
                "student_run": dir, "teacher": t, "student": st, "teacher_b32": r[0].1, "student_b32": r[k + 1].1,
                "ratio_p50": t.p50_ms / st.p50_ms, "ratio_mean": t.mean_ms / st.mean_ms,
                "params": whetstone_models::count_parameters(&loaded[k].vs), "load_before": before, "load_after": after,
            });
        }
    }
    let report = json!({
        "teacher": plan.teacher, "teacher_accuracy": t_acc, "shape": plan.shape, "general": plan.general, "seeds": plan.seeds, "threads": plan.threads,
        "cpu": cpu_model(), "quick": plan.quick, "rows": table, "latency": lat,
        "settings": {"epochs": plan.epochs, "aug_epochs": plan.aug_epochs, "aug_copies": plan.aug_copies, "aug_max": plan.aug_max, "inter_epochs": plan.inter_epochs},
    });
    write(plan, &report)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn write(plan: &Plan, r: &Value) -> Result<()> {
    std::fs::create_dir_all(plan.out)?;
    let stem = if plan.quick { "distill-ablation-quick" } else { "distill-ablation" };
    std::fs::write(plan.out.join(format!("{stem}.json")), serde_json::to_string_pretty(r)?)?;
    let t_acc = f(r, "teacher_accuracy");
    let mut md = format!(
        "# Task-distillation ablation: {} student of the MiniLM-L6 rotten-tomatoes teacher\n\n<!-- generated by `compress-study --ablation` (benches/src/bin/compress_study/ablation.rs) -->\n\n",
        plan.shape
    );
    if plan.quick {
        md.push_str("**QUICK MODE: tiny budgets; numbers mean nothing.**\n\n");
    }
    md.push_str(&format!(
        "Teacher `{}`: test accuracy {:.4}. CPU: {}, {} intra-op thread(s). Test accuracy on the 854-sentence test split, mean ± sample std over seeds; every run picks its best epoch on the validation split.\n\n",
        plan.teacher.display(), t_acc, r["cpu"].as_str().unwrap_or(""), plan.threads
    ));
    let ratio_of = |general: bool| f(&r["latency"][if general { "general" } else { "fresh" }], "ratio_p50");
    for (kind, what) in [("fresh", "fresh student"), ("general", "student from the general-distilled encoder")] {
        let lat = &r["latency"][kind];
        if lat.is_null() {
            continue;
        }
        md.push_str(&format!(
            "Latency of the {what} (`{}`; batch 1, 1 thread, {} test sentences × {} rounds, teacher and students interleaved sentence by sentence; load {} before, {} after): teacher p50 {:.2} ms (mean {:.2}), student p50 {:.2} ms (mean {:.2}): **{:.1}× lower p50** ({:.1}× mean). {} parameters.\n\n",
            lat["student_run"].as_str().unwrap_or(""), plan.latency_sentences, plan.latency_rounds, lat["load_before"].as_str().unwrap_or(""), lat["load_after"].as_str().unwrap_or(""),
            f(&lat["teacher"], "p50_ms"), f(&lat["teacher"], "mean_ms"), f(&lat["student"], "p50_ms"), f(&lat["student"], "mean_ms"), f(lat, "ratio_p50"), f(lat, "ratio_mean"),
            whetstone_eval::format_count(lat["params"].as_u64().unwrap_or(0))
        ));
    }
    md.push_str("| row | general distillation | task KD | augmentation | intermediate losses | seeds | test acc (mean ± std) | min | % of teacher | per seed | build s (mean) |\n|---|---|---|---|---|---:|---:|---:|---:|---|---:|\n");
    let rows = r["rows"].as_array().cloned().unwrap_or_default();
    let yn = |b: bool| if b { "on" } else { "off" };
    for x in &rows {
        let accs: Vec<String> = x["accuracies"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(|a| format!("{:.4}", a)).collect();
        let secs: Vec<f64> = x["build_seconds"].as_array().into_iter().flatten().filter_map(Value::as_f64).filter(|s| s.is_finite() && *s > 0.0).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.4} ± {:.4} | {:.4} | {:.1}% | {} | {} |\n",
            x["name"].as_str().unwrap_or(""),
            yn(x["general"].as_bool() == Some(true)),
            yn(x["kd"].as_bool() == Some(true)),
            yn(x["aug"].as_bool() == Some(true)),
            yn(x["inter"].as_bool() == Some(true)),
            accs.len(),
            f(x, "mean"),
            f(x, "std"),
            f(x, "min"),
            100.0 * f(x, "mean") / t_acc,
            accs.join(", "),
            if secs.is_empty() { "–".into() } else { format!("{:.0}", secs.iter().sum::<f64>() / secs.len() as f64) },
        ));
    }
    md.push_str("\n## What each row is\n\n");
    for x in &rows {
        md.push_str(&format!("- **{}**: {}\n", x["name"].as_str().unwrap_or(""), x["what"].as_str().unwrap_or("")));
    }
    md.push_str("\n## Checks\n\n");
    let get = |n: &str| rows.iter().find(|x| x["name"] == n);
    let best = rows.iter().filter(|x| x["kd"].as_bool() == Some(true)).max_by(|a, b| f(a, "mean").total_cmp(&f(b, "mean")));
    if let Some(b) = best {
        let keep = 100.0 * f(b, "mean") / t_acc;
        let ratio = ratio_of(b["general"].as_bool() == Some(true));
        md.push_str(&format!(
            "- **≥ 97% of the teacher (≥ {:.4}) at ≥ 10× lower batch-1 latency, over the seeds**: best distilled row {} keeps {:.4} ± {:.4} ({keep:.1}%; worst seed {:.4}) at {ratio:.1}× — {}.\n",
            0.97 * t_acc,
            b["name"].as_str().unwrap_or(""),
            f(b, "mean"),
            f(b, "std"),
            f(b, "min"),
            match (keep >= 97.0, ratio >= 10.0) {
                (true, true) => "met".to_string(),
                (false, true) => format!("accuracy missed by {:.1} points of teacher accuracy ({:.4} short)", 97.0 - keep, 0.97 * t_acc - f(b, "mean")),
                (true, false) => format!("latency missed ({ratio:.1}× < 10×)"),
                (false, false) => format!("both missed ({keep:.1}%, {ratio:.1}×)"),
            }
        ));
    }
    for (kd, ce) in [("gd-kd-aug", "gd-ce"), ("gd-kd", "gd-ce"), ("gd-kd-inter", "gd-ce"), ("gd-kd-aug-inter", "gd-ce"), ("svd-kd-aug", "svd-ce"), ("svd-kd", "svd-ce"), ("svd-kd-aug-inter", "svd-ce")] {
        if let (Some(a), Some(b)) = (get(kd), get(ce)) {
            let d = 100.0 * (f(a, "mean") - f(b, "mean"));
            let spread = 100.0 * f(a, "std").max(f(b, "std"));
            let no_overlap = f(a, "min") > b["accuracies"].as_array().into_iter().flatten().filter_map(Value::as_f64).fold(f64::NEG_INFINITY, f64::max);
            md.push_str(&format!(
                "- **Distillation beats the same student without it** ({kd} vs {ce}, same initialisation): {d:+.1} points (larger seed std {spread:.1}; seed ranges {}) — {}.\n",
                if no_overlap { "do not overlap" } else { "overlap" },
                if d > spread && no_overlap { "met" } else if d > spread { "ahead by more than the larger std, but the seed ranges overlap" } else { "not met" }
            ));
        }
    }
    std::fs::write(plan.out.join(format!("{stem}.md")), md)?;
    eprintln!("wrote {}", plan.out.join(format!("{stem}.md")).display());
    Ok(())
}

/// `--latency-shapes`: fresh students of each shape (random weights: the latency does not depend
/// on them) timed against the teacher, interleaved. Writes `<out>/distill-latency.json` and
/// prints a table.
pub fn latency_shapes(teacher: &Path, shapes: &[String], out: &Path, sentences: usize, rounds: usize) -> Result<()> {
    use whetstone_run::compress::{build_student, StudentInit, StudentSpec};
    let src = Source::open(teacher, Some("cpu"))?;
    let mut built = Vec::new();
    for s in shapes {
        let spec: StudentSpec = s.parse()?;
        let mut vs = tch::nn::VarStore::new(Device::Cpu);
        let (_, m) = build_student(&spec, StudentInit::Random, src.transformer()?, teacher, &mut vs)?;
        built.push((s.clone(), whetstone_models::count_parameters(&vs), vs, m));
    }
    let t = src.transformer()?;
    let mut timed: Vec<Timed> = vec![Timed {
        forward: Box::new(move |b: &Batch| {
            let _ = whetstone_models::TextClassifier::forward_t(t, &b.input_ids, &b.attention_mask, false)?;
            Ok(())
        }),
    }];
    for (_, _, _, m) in &built {
        timed.push(Timed {
            forward: Box::new(move |b: &Batch| {
                let _ = whetstone_models::TextClassifier::forward_t(m, &b.input_ids, &b.attention_mask, false)?;
                Ok(())
            }),
        });
    }
    let before = load_avg();
    let r = measure(&timed, &src.test, sentences, rounds)?;
    let after = load_avg();
    let tl = &r[0].0;
    println!("load {before} before, {after} after; {sentences} sentences × {rounds} rounds, interleaved");
    println!("| model | params | p50 ms | p95 ms | mean ms | b32 seq/s | p50 ratio | mean ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("| teacher | 22.57M | {:.3} | {:.3} | {:.3} | {:.0} | 1.0× | 1.0× |", tl.p50_ms, tl.p95_ms, tl.mean_ms, r[0].1);
    let mut rows = vec![json!({"shape": "teacher", "latency": tl, "b32": r[0].1})];
    for (k, (s, params, _, _)) in built.iter().enumerate() {
        let l = &r[k + 1].0;
        println!(
            "| {s} | {} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1}× | {:.1}× |",
            whetstone_eval::format_count(*params),
            l.p50_ms,
            l.p95_ms,
            l.mean_ms,
            r[k + 1].1,
            tl.p50_ms / l.p50_ms,
            tl.mean_ms / l.mean_ms
        );
        rows.push(json!({"shape": s, "params": params, "latency": l, "b32": r[k + 1].1, "ratio_p50": tl.p50_ms / l.p50_ms, "ratio_mean": tl.mean_ms / l.mean_ms}));
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("distill-latency.json"), serde_json::to_string_pretty(&json!({"load_before": before, "load_after": after, "sentences": sentences, "rounds": rounds, "rows": rows, "cpu": cpu_model()}))?)?;
    Ok(())
}

/// `--cut-layers`: the encoder of `src` (a pretrain run folder or Hugging Face BERT folder)
/// with only `layers` (0-based, in this order) kept, written as a BERT folder at `out`. Keeping
/// the bottom layers of a general-distilled student leaves an exact sub-network whose output is
/// the student's intermediate state that general distillation matched to a teacher layer.
pub fn cut_encoder(src: &Path, layers: &[usize], out: &Path) -> Result<()> {
    use std::collections::HashMap;
    use whetstone_models::pretrained::BertCheckpoint;
    use whetstone_models::TransformerEncoder;
    let dir = whetstone_run::resolve_pretrained(src)?;
    let ckpt = BertCheckpoint::open(&dir)?;
    let n = ckpt.encoder_config().layers;
    anyhow::ensure!(!layers.is_empty() && layers.iter().all(|&l| l < n), "--cut-layers {layers:?}: the encoder {} has {n} layers", dir.display());
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let full = ckpt.load_encoder(&vs.root())?;
    let mut config = ckpt.encoder_config().clone();
    config.layers = layers.len();
    if !config.layer_shapes.is_empty() {
        config.layer_shapes = layers.iter().map(|&l| config.layer_shapes[l].clone()).collect();
    }
    let cvs = tch::nn::VarStore::new(Device::Cpu);
    let cut = TransformerEncoder::new(&cvs.root(), ckpt.vocab_size(), &config)?;
    let source: HashMap<String, tch::Tensor> = full.named_parameters().into_iter().collect();
    for (name, t) in cut.named_parameters() {
        let from = match name.strip_prefix("encoder.layer.") {
            Some(rest) => {
                let (i, tail) = rest.split_once('.').context("layer parameter name")?;
                format!("encoder.layer.{}.{tail}", layers[i.parse::<usize>()?])
            }
            None => name.clone(),
        };
        let s = source.get(&from).with_context(|| format!("{from} missing from {}", dir.display()))?;
        tch::no_grad(|| t.shallow_clone().f_copy_(s))?;
    }
    cut.save_pretrained(out, &ckpt.tokenizer_path())?;
    eprintln!("wrote {} ({} of {n} layers: {layers:?})", out.display(), layers.len());
    Ok(())
}
