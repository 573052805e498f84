//! A whole run from a recipe: data → tokenizer → model → training → test → report.

use crate::folder::{RunDir, RunFolder};
use crate::identity::{data_identity, labels_identity, split_fingerprint, DATA_IDENTITY, LABELS_IDENTITY, RECIPE_IDENTITY};
use crate::prologue::{prologue, Prologue};
use crate::recipe_parse::check_model_size;
use crate::reporter::Reporter;
use crate::{display_names, efficiency_line, measure_efficiency, resolve_model, Recipe, LABELS_FILE, RECIPE_FILE, TOKENIZER_FILE};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use whetstone_data::{encode, load_splits_with, BatchSource, BucketedSource, DataProfile, LoadOptions, ShardedSource, TextTokenizer};
use whetstone_dist::DataParallel;
use whetstone_eval::{classification_report, plot_training_curves, read_jsonl, write_report_md, ClassificationReport, Curve, Efficiency, RunReport};
use whetstone_models::{load_varstore, BertCheckpoint, ModelConfig};
use whetstone_train::{predict_in, steps_per_epoch, FitSummary, Outcome, Result, TrainError, Trainer, BEST_MODEL_FILE, METRICS_LOG_FILE};

/// Options of a run that are not part of the recipe (none of them is written to
/// `recipe.toml`, so none of them comes back on `--resume`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the run goes, or which run it continues. A fresh folder is created only once
    /// everything has been checked (a bad setting leaves no folder behind).
    pub folder: RunFolder,
    /// No progress output.
    pub quiet: bool,
    /// Stop abruptly after this many optimiser steps, as a kill would (0 = never): a run
    /// option for tests and debugging, so a resumed run does not stop again.
    pub stop_after: u64,
    /// Drop rows whose label is missing, empty, null or NaN-like instead of refusing the data
    /// (the count dropped is printed and goes into report.md). Give it again on `--resume`:
    /// the data must be the same as when the run started.
    pub drop_bad_labels: bool,
    /// Keep the resumable checkpoint once the run has finished and written its reports
    /// (default `true` here; the CLI removes it unless `--keep-checkpoint`). An interrupted run
    /// always keeps it. Fine-tuning runs only: pretraining and multi-task runs keep it.
    pub keep_checkpoint: bool,
    /// The defaults chosen for the data's size ([`crate::choose_for_size`]), recorded in
    /// `metrics.json` (`size_defaults`) and `report.md`; kept in the run folder
    /// ([`SIZE_PLAN_FILE`]) so that a resumed run reports them too.
    pub size_plan: Option<crate::SizePlan>,
}

/// Where a run keeps the defaults chosen for its data's size.
pub const SIZE_PLAN_FILE: &str = "size-defaults.json";

impl RunOptions {
    /// A fresh run in exactly the folder `dir` (which must not exist yet), with progress output.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { folder: RunFolder::At(dir.into()), quiet: false, stop_after: 0, drop_bad_labels: false, keep_checkpoint: true, size_plan: None }
    }

    /// A fresh run called `name` under `runs_dir` (`<name>`, or `<name>-2`, … when taken).
    pub fn named(runs_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self { folder: RunFolder::named(runs_dir, name), quiet: false, stop_after: 0, drop_bad_labels: false, keep_checkpoint: true, size_plan: None }
    }

    /// Continue the run in `dir` from its checkpoint.
    pub fn resume(dir: impl Into<PathBuf>) -> Self {
        Self { folder: RunFolder::Resume(dir.into()), quiet: false, stop_after: 0, drop_bad_labels: false, keep_checkpoint: true, size_plan: None }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub dir: PathBuf,
    pub fit: FitSummary,
    /// Test-set report (absent when the run was interrupted).
    pub test: Option<ClassificationReport>,
    pub valid: Option<ClassificationReport>,
    pub efficiency: Option<Efficiency>,
    pub wall_s: f64,
    /// The data-parallel rank of this process (0 for a single process). Only rank 0 writes,
    /// evaluates and reports; the others return once training is done, with no test report.
    pub rank: usize,
}

/// The opened checkpoint of a resolved model config, if it has one.
fn checkpoint_of(model: &ModelConfig) -> Result<Option<BertCheckpoint>> {
    match model {
        ModelConfig::Transformer(c) => Ok(c.pretrained.as_ref().map(BertCheckpoint::open).transpose()?),
        _ => Ok(None),
    }
}

/// The `tokenizer.json` of a pretrained checkpoint, which its embeddings were trained with.
fn pretrained_tokenizer(ckpt: &BertCheckpoint) -> Result<TextTokenizer> {
    let path = ckpt.tokenizer_path();
    if !path.is_file() {
        return Err(TrainError::Config(format!(
            "the pretrained checkpoint {} has no tokenizer.json; set tokenizer.path to the tokenizer its vocabulary came from",
            ckpt.dir().display()
        )));
    }
    Ok(TextTokenizer::from_file(&path)?)
}

/// Train `recipe` into `opts.folder`, evaluate the best checkpoint on the test split and write
/// `metrics.json`, `report.md` and the training-curve plot next to the checkpoints.
///
/// Everything is checked before the folder is created: the recipe's values, the data, the
/// tokenizer, the model's size and the optimiser. A resumed run is checked against the
/// identity its checkpoint records (the recipe without [`crate::RESUMABLE_SETTINGS`], the data's
/// fingerprint, the label set) before anything is trained; the error says what changed.
pub fn train_recipe(recipe: &Recipe, opts: &RunOptions) -> Result<RunResult> {
    if !recipe.tasks.is_empty() {
        return crate::multitask::train_multitask(recipe, opts);
    }
    let Prologue { started, say, recipe_id, resumed, device, rendezvous } = prologue(recipe, opts)?;
    // Data parallelism: join the other processes before any data is read, so a rank that
    // fails early makes the others fail at the rendezvous, not later.
    let mut dp = rendezvous.as_ref().map(|r| DataParallel::join(r, device)).transpose()?;
    let world = rendezvous.as_ref().map_or(1, |r| r.world);
    let follower = rendezvous.as_ref().is_some_and(|r| r.rank != 0);
    if let (Some(dp), Some(r)) = (&mut dp, &rendezvous) {
        dp.agree("recipe", &recipe_id)?;
        say(format!(
            "data parallel: {} processes ({}), effective batch {} × {} × {} (grad_accum) = {} examples per step",
            r.world,
            dp.backend().as_str(),
            r.world,
            recipe.train.batch_size,
            recipe.train.grad_accum,
            r.world * recipe.train.batch_size * recipe.train.grad_accum
        ));
    }
    let d = &recipe.data;
    let load = LoadOptions { drop_bad_labels: opts.drop_bad_labels || d.drop_bad_labels, ..d.load_options(recipe.seed) };
    let splits = load_splits_with(&d.source(), &load)?;
    // Warnings do not stop the run, but are shown even when it is quiet (and go into report.md).
    for w in &splits.warnings {
        eprintln!("warning: {w}");
    }
    let names = display_names(recipe, &splits);
    let data_id = data_identity(&[("train", split_fingerprint(&splits.train)), ("valid", split_fingerprint(&splits.valid)), ("test", split_fingerprint(&splits.test))]);
    let labels_id = labels_identity(&splits.labels.names);
    if let Some(r) = &resumed {
        r.check(DATA_IDENTITY, &data_id)?;
        r.check(LABELS_IDENTITY, &labels_id)?;
    }
    if let Some(dp) = &mut dp {
        dp.agree("data", &data_id)?;
    }
    say(format!(
        "data: {} — train {} / valid {} / test {} examples, {} classes ({})",
        recipe.data.describe(),
        splits.train.len(),
        splits.valid.len(),
        splits.test.len(),
        splits.labels.len(),
        names.join(", ")
    ));

    let model_config = resolve_model(&recipe.model)?;
    let checkpoint = checkpoint_of(&model_config)?;
    let tok_source = match (&recipe.tokenizer.path, &checkpoint) {
        (Some(_), _) => "loaded",
        (None, Some(_)) => "the pretrained checkpoint's",
        (None, None) => "WordPiece trained on the train split",
    };
    let tokenizer = match &resumed {
        Some(r) => TextTokenizer::from_file(&r.run.file(TOKENIZER_FILE))?,
        None => match (&recipe.tokenizer.path, &checkpoint) {
            (Some(p), _) => TextTokenizer::from_file(p)?,
            (None, Some(ck)) => pretrained_tokenizer(ck)?,
            (None, None) => TextTokenizer::train_wordpiece(&splits.train.texts, recipe.tokenizer.vocab_size, recipe.tokenizer.min_frequency, recipe.tokenizer.lowercase)?,
        },
    };
    // Every replica uses rank 0's tokenizer (WordPiece training need not be deterministic).
    let tokenizer = match &mut dp {
        Some(dp) => {
            let json = if follower { None } else { Some(tokenizer.to_json()?) };
            let bytes = dp.share("tokenizer", json.as_deref().map(str::as_bytes))?;
            TextTokenizer::from_json(&bytes, "rank 0")?
        }
        None => tokenizer,
    };
    check_model_size(&model_config, tokenizer.vocab_size(), splits.labels.len(), "the tokenizer's vocabulary")?;
    let max_len = model_config.max_len().map_or(recipe.data.max_len, |m| m.min(recipe.data.max_len));
    let t0 = Instant::now();
    let train = encode(&tokenizer, &splits.train, max_len)?;
    let valid = encode(&tokenizer, &splits.valid, max_len)?;
    let test = encode(&tokenizer, &splits.test, max_len)?;
    say(format!("tokenizer: vocabulary {} ({tok_source}), encoded in {:.2}s", tokenizer.vocab_size(), t0.elapsed().as_secs_f64()));
    let profile = DataProfile::new(&splits, Some([&train.lengths(), &valid.lengths(), &test.lengths()]), Some(max_len));
    let data_md = profile.to_markdown(Some(&names));

    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(device);
    let model = model_config.build(&vs.root(), tokenizer.vocab_size() as i64, splits.labels.len() as i64)?;
    say(format!("model: {} with {} parameters on {}", recipe.model.kind(), whetstone_eval::format_count(whetstone_models::count_parameters(&vs)), whetstone_models::device_name(device)));
    let finetune = &recipe.finetune;
    let init_std = checkpoint.as_ref().map(|c| c.encoder_config().init_std).or(match &model_config {
        whetstone_models::ModelConfig::Transformer(c) => Some(c.encoder.init_std),
        _ => None,
    });
    for line in finetune.prepare(&vs, init_std, recipe.seed)? {
        say(format!("finetune: {line}"));
    }
    let objective = recipe.objective(model.as_ref())?;
    let optim = recipe.optim.build(&vs)?;
    // With data parallelism the sources plan global batches (world × batch_size examples) and
    // this process trains on its share of each.
    let global_train = whetstone_train::TrainConfig { batch_size: recipe.train.batch_size * world, ..recipe.train.clone() };
    let bucketed = BucketedSource::new(&train, global_train.batch_size, global_train.bucket_factor);
    // `[augment]`: the raw training texts, augmented afresh in every batch.
    let augmented = recipe.augment.as_ref().map(|a| a.source(&splits.train, tokenizer.clone(), max_len, &global_train)).transpose()?;
    if let Some(a) = &augmented {
        say(format!("augment: {} on the fly, probability {}", a.augmenter().config(), recipe.augment.as_ref().map_or(0.0, |r| r.probability)));
    }
    let global: &dyn BatchSource = match &augmented {
        Some(a) => a,
        None => &bucketed,
    };
    let sharded = rendezvous.as_ref().map(|r| ShardedSource::new(global, r.rank, r.world)).transpose()?;
    let source: &dyn BatchSource = match &sharded {
        Some(s) => s,
        None => global,
    };
    let optim = finetune.wrap_optimizer(optim, &vs, steps_per_epoch(&recipe.train, source, recipe.seed)?)?;

    // Everything is checked: only now does a fresh run get its folder (rank 0's alone).
    let resuming = resumed.is_some();
    let run = match resumed {
        Some(r) => r.run,
        None if follower => RunDir::follow(&opts.folder.display_path()),
        None => RunDir::open(&opts.folder)?,
    };
    say(format!("run folder: {}", run.path().display()));
    let dir = run.path().to_path_buf();
    let result = (|| -> Result<RunResult> {
        if resuming && !follower {
            // What may change on resume (more epochs, device, precision) is recorded.
            run.write_toml(RECIPE_FILE, recipe)?;
        }
        if run.is_fresh() {
            tokenizer.save(&run.file(TOKENIZER_FILE))?;
            run.write_toml(RECIPE_FILE, recipe)?;
            run.write_json(LABELS_FILE, &json!({"labels": splits.labels.names, "display": names}))?;
            if let Some(plan) = &opts.size_plan {
                run.write_json(SIZE_PLAN_FILE, plan)?;
            }
        }
        let mut trainer = Trainer::new(model.as_ref(), &vs, optim, recipe.optim.lr, dir.clone())
            .objective(objective)
            .schedule(recipe.schedule.clone())
            .config(recipe.train.clone())
            .seed(recipe.seed)
            .device(device)
            .precision(recipe.precision)
            .label_names(names.clone())
            .identity(RECIPE_IDENTITY, recipe_id)
            .identity(DATA_IDENTITY, data_id)
            .identity(LABELS_IDENTITY, labels_id)
            .observer(Reporter::quiet(opts.quiet || follower))
            .stop_after(opts.stop_after)
            // Removed below once the reports are written, not when training ends: a kill during
            // the test evaluation must still leave something to resume.
            .keep_checkpoint(true);
        if let Some(dp) = dp.as_mut() {
            trainer = trainer.replicas(dp);
        }
        let fit = trainer.fit(source, &valid, resuming)?;
        drop(trainer);
        if follower {
            // Rank 0 evaluates, measures and writes the run; this replica is done.
            let r = rendezvous.as_ref().map_or(0, |r| r.rank);
            whetstone_train::eprint_line(&format!("rank {r} of {world}: {} steps done ({:?}); rank 0 writes the run", fit.progress.step, fit.outcome));
            return Ok(RunResult { dir: dir.clone(), fit, test: None, valid: None, efficiency: None, wall_s: started.elapsed().as_secs_f64(), rank: r });
        }
        if fit.outcome == Outcome::Interrupted {
            return Ok(RunResult { dir: dir.clone(), fit, test: None, valid: None, efficiency: None, wall_s: started.elapsed().as_secs_f64(), rank: 0 });
        }

        let best = run.file(BEST_MODEL_FILE);
        load_varstore(&mut vs, &best)?;
        let test_pred = predict_in(recipe.precision, model.as_ref(), &test, recipe.train.eval_batch_size, device)?;
        let test_report = classification_report(&test.labels, &test_pred.preds, &names)?;
        let check = crate::baseline_check(&test_report);
        // The plan this run was started with (a resumed run reads it back from its folder).
        let size_plan = opts.size_plan.clone().or_else(|| std::fs::read_to_string(run.file(SIZE_PLAN_FILE)).ok().and_then(|t| serde_json::from_str::<crate::SizePlan>(&t).ok()));
        let valid_report = if valid.ids.is_empty() {
            None
        } else {
            let p = predict_in(recipe.precision, model.as_ref(), &valid, recipe.train.eval_batch_size, device)?;
            Some(classification_report(&valid.labels, &p.preds, &names)?)
        };
        let efficiency = if recipe.eval.latency_iters > 0 && !test.ids.is_empty() {
            say(efficiency_line(recipe.eval.latency_iters, recipe.eval.throughput_iters, "eval.latency_iters"));
            Some(measure_efficiency(model.as_ref(), &vs, &best, &test, device, recipe.precision, recipe.eval.latency_iters, recipe.eval.throughput_iters)?)
        } else {
            None
        };
        let wall_s = started.elapsed().as_secs_f64();
        let summary = json!({
            "device": whetstone_models::device_name(device),
            "precision": recipe.precision.as_str(),
            "model": recipe.model.kind(),
            "steps": fit.progress.step,
            "epochs": fit.progress.epoch,
            "outcome": format!("{:?}", fit.outcome),
            "best_step": fit.progress.best_step,
            "best_valid": fit.progress.best_metric,
            "valid_metric": recipe.train.metric,
            "train_seconds": fit.progress.train_seconds,
            "train_seq_per_s": fit.seq_per_s,
            "padding_fraction": fit.padding_fraction,
            "wall_seconds": wall_s,
            "train_examples": train.ids.len(),
            "world_size": world,
            "batch_size_per_process": recipe.train.batch_size,
            "effective_batch": world * recipe.train.batch_size * recipe.train.grad_accum,
            "test_majority_baseline": check.as_ref().map(|c| c.baseline),
            "test_majority_class": check.as_ref().map(|c| c.class.clone()),
        });
        let metrics = json!({
            "name": recipe.name,
            "test": test_report,
            "valid": valid_report,
            "test_loss": test_pred.loss,
            "efficiency": efficiency,
            "train": summary,
            "data": profile,
            "baseline": check,
            "size_defaults": size_plan,
        });
        run.write_json("metrics.json", &metrics)?;
        let plot_ok = write_plot(&dir, &recipe.name, &recipe.train.metric).is_ok();
        let recipe_toml = std::fs::read_to_string(run.file(RECIPE_FILE)).unwrap_or_default();
        write_report_md(
            &RunReport {
                name: &recipe.name,
                recipe_toml: &recipe_toml,
                test: &test_report,
                valid: valid_report.as_ref(),
                efficiency: efficiency.as_ref(),
                train_summary: &summary,
                plot_png: plot_ok.then_some("curves.png"),
                data_md: Some(&data_md),
                baseline_md: check.as_ref().map(crate::small_data::baseline_markdown).as_deref(),
                size_md: size_plan.as_ref().map(crate::SizePlan::markdown).as_deref(),
            },
            &run.file("report.md"),
        )?;
        if !opts.keep_checkpoint {
            let ckpt = run.file(whetstone_train::CHECKPOINT_FILE);
            match std::fs::remove_file(&ckpt) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(TrainError::Io { path: ckpt, source: e }),
                _ => {}
            }
        }
        Ok(RunResult { dir: dir.clone(), fit, test: Some(test_report), valid: valid_report, efficiency, wall_s, rank: 0 })
    })();
    run.end(result)
}

/// Draw `curves.png` / `curves.svg` from the run's metrics log.
pub fn write_plot(dir: &Path, name: &str, metric: &str) -> Result<()> {
    let records = read_jsonl(dir.join(METRICS_LOG_FILE))?;
    let series = |split: &str, key: &str| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.get("split").and_then(|s| s.as_str()) == Some(split))
            .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
            .collect()
    };
    let loss = Curve::new("train loss", series("train", "loss"));
    let val = Curve::new(format!("valid {metric}"), series("valid", metric));
    plot_training_curves(&loss, &val, name, &dir.join("curves.png"), &dir.join("curves.svg"))?;
    Ok(())
}
