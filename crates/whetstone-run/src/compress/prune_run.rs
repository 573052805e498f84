//! `whetstone prune`: unstructured, N:M or structured pruning of a run (or int8 alone), each
//! followed by an optional recovery phase, written as a run folder.

use super::config::{CompressConfig, PruneSchedule, PruneStep, RecoveryMode};
use super::distill_run::{load_teacher, not_resumable};
use super::output::{finish_run, Finished, Provenance, MASKS_FILE};
use super::phase::Phase;
use super::source::Source;
use super::io;
use crate::{RunDir, RunFolder};
use whetstone_compress::{
    magnitude_importance, magnitude_masks, nm_masks, prune_structured, taylor_importance, CubicSchedule, Criterion, DistillConfig, DistillObjective, GradualPruning, MaskSet, Masked, ParamSelector,
    PruneMethod, Result, StructuredPlan, TeacherCache,
};
use std::path::Path;
use tch::nn::VarStore;
use whetstone_data::{make_batch, BucketBatcher, BucketedSource};
use whetstone_models::{load_varstore, TransformerClassifier};
use whetstone_train::{steps_per_epoch, CrossEntropy, Objective, BEST_MODEL_FILE};

/// Prune the run in `run_dir` as `config.prune` says, recover as `config.recovery` says, and
/// write the run folder `out` (created once the config and the input run have been checked;
/// removed again when pruning fails before a model was written; not resumable).
pub fn prune(run_dir: &Path, config: &CompressConfig, out: &RunFolder, quiet: bool) -> Result<Finished> {
    config.validate()?;
    not_resumable(out)?;
    if config.threads > 0 {
        tch::set_num_threads(config.threads as i32);
    }
    let mut source = Source::open(run_dir, config.device.as_deref())?;
    super::check_precision(config, source.device())?;
    source.limit_train(config.train_limit);
    let step = config.prune.step()?;
    tch::manual_seed(config.seed as i64);
    let run = RunDir::open(out)?;
    let result = prune_into(&run, &source, run_dir, config, step, quiet);
    run.end(result)
}

/// [`prune`] into the folder `out`.
fn prune_into(out: &RunDir, source: &Source, run_dir: &Path, config: &CompressConfig, step: PruneStep, quiet: bool) -> Result<Finished> {
    let p = &config.prune;
    let provenance = |method: String, sparsity: Option<f64>, notes: Vec<String>| Provenance {
        command: "prune".into(),
        method: format!("{method}{}", if config.quantize || step == PruneStep::Int8 { " + int8" } else { "" }),
        source: run_dir.to_path_buf(),
        config: config.clone(),
        sparsity,
        quantize: config.quantize || step == PruneStep::Int8,
        notes,
    };
    let recovery = match config.recovery.mode {
        RecoveryMode::None => String::new(),
        m => format!(" + {} epoch(s) {m:?} recovery", config.recovery.epochs).to_lowercase(),
    };
    let method = match step {
        PruneStep::Int8 => {
            let prov = provenance("int8 dynamic quantisation".into(), None, Vec::new());
            return finish_run(out, source, source.transformer()?, &source.run.vs, source.model_config()?, prov, quiet);
        }
        PruneStep::Prune(m) => m,
    };
    match method {
        PruneMethod::StructuredMagnitude | PruneMethod::StructuredTaylor => {
            let model = source.transformer()?;
            let importance = if method == PruneMethod::StructuredTaylor {
                let order = BucketBatcher::new(config.train.batch_size, 1).epoch_order(&source.train.lengths(), config.seed, 0);
                let batches = order.iter().take(p.importance_batches.max(1)).map(|idx| make_batch(&source.train, idx, source.device())).collect::<std::result::Result<Vec<_>, _>>()?;
                taylor_importance(model, &batches)?
            } else {
                magnitude_importance(model, &model.named_parameters())?
            };
            let (hf, ff) = p.structured_fractions();
            let plan = StructuredPlan::from_importance(&importance, hf, ff, p.scope)?;
            let mut pvs = VarStore::new(source.device());
            let (pcfg, pruned) = prune_structured(model, &plan, &pvs.root())?;
            let kept: Vec<String> = plan.layer_shapes().iter().map(|s| format!("{}h/{}f", s.heads, s.ffn)).collect();
            let mut notes = vec![format!("kept per layer: {}", kept.join(", "))];
            notes.extend(recover(source, run_dir, config, &pruned, &mut pvs, None, out.path(), quiet)?);
            let prov = provenance(format!("{method} heads {:.0}% ffn {:.0}%{recovery}", 100.0 * hf, 100.0 * ff), None, notes);
            finish_run(out, source, &pruned, &pvs, pcfg, prov, quiet)
        }
        PruneMethod::NM { n, m } => {
            let (mut vs, model) = clone_model(source)?;
            let masks = nm_masks(&ParamSelector::default().select_vs(&vs)?, n, m)?;
            masks.apply(&vs)?;
            let sparsity = masks.sparsity()?;
            let notes = recover(source, run_dir, config, &model, &mut vs, Some(masks.clone()), out.path(), quiet)?;
            masks.save(&out.file(MASKS_FILE))?;
            finish_run(out, source, &model, &vs, source.model_config()?, provenance(format!("{n}:{m}{recovery}"), Some(sparsity), notes), quiet)
        }
        PruneMethod::Magnitude | PruneMethod::MovementHard | PruneMethod::MovementSoft | PruneMethod::Fisher => {
            let (mut vs, model) = clone_model(source)?;
            let selected = ParamSelector::default().select_vs(&vs)?;
            let mut notes = Vec::new();
            let one_shot = p.schedule == PruneSchedule::OneShot && method == PruneMethod::Magnitude;
            if !one_shot {
                // Gradual: the cubic schedule over the first `prune.ramp` (70%) of the pruning
                // phase, the last weights kept (validation would prefer the earlier, denser
                // ones). A phase shorter than `prune.every` steps still ends at the target: the
                // updates come closer together, so the last one is always within the phase.
                let train = config.train.for_phase(p.epochs.max(1), None);
                let steps = steps_per_epoch(&train, &BucketedSource::new(&source.train, train.batch_size, train.bucket_factor), config.seed)? * train.epochs;
                let span = ((steps as f64 * p.ramp) as u64).max(1);
                let every = p.every.clamp(1, span);
                let updates = (span / every).max(1);
                let schedule = CubicSchedule { initial: 0.0, target: p.sparsity, start: 0, every, updates };
                let criterion = match method {
                    PruneMethod::Magnitude => Criterion::Magnitude,
                    PruneMethod::MovementHard => Criterion::MovementHard,
                    PruneMethod::Fisher => Criterion::Fisher,
                    _ => Criterion::MovementSoft { threshold: p.soft_threshold },
                };
                let optim = Masked::gradual(config.optimizer(p.lr, &[&vs])?, &selected, GradualPruning { criterion, schedule, scope: p.scope })?;
                let dir = out.file("pruning-phase");
                let (objective, how): (Box<dyn Objective>, String) = if p.distill {
                    let (objective, secs) = cached_distillation(source, run_dir, config, &model, p.temperature, p.alpha)?;
                    (Box::new(objective), format!("distillation from the unpruned run (T = {}, α = {}; teacher logits cached in {secs:.1}s)", p.temperature, p.alpha))
                } else {
                    (Box::new(CrossEntropy { label_smoothing: config.train.label_smoothing }), "hard labels".into())
                };
                let phase = Phase { optim: Box::new(optim), lr: p.lr, train, ..phase_base(source, &model, &vs, objective, config, quiet)? };
                let fit = phase.run(&source.train, &empty(source), &dir)?;
                notes.push(format!(
                    "gradual {} pruning with {how}: cubic schedule over {:.0}% of the phase, {} mask updates every {} steps, {} steps in {:.1}s",
                    format!("{criterion:?}").to_lowercase(),
                    100.0 * p.ramp,
                    updates,
                    every,
                    fit.progress.step,
                    fit.progress.train_seconds
                ));
                load_varstore(&mut vs, &dir.join(BEST_MODEL_FILE))?;
                // The phase's scratch folder (its last weights, now loaded, and its log).
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            let masks = if one_shot { magnitude_masks(&selected, p.sparsity, p.scope)? } else { nonzero_masks(&selected)? };
            masks.apply(&vs)?;
            let sparsity = masks.sparsity()?;
            notes.extend(recover(source, run_dir, config, &model, &mut vs, Some(masks.clone()), out.path(), quiet)?);
            masks.save(&out.file(MASKS_FILE))?;
            let how = if one_shot { "one-shot" } else { "gradual" };
            finish_run(out, source, &model, &vs, source.model_config()?, provenance(format!("{method} {how} {:.0}%{recovery}", 100.0 * p.sparsity), Some(sparsity), notes), quiet)
        }
    }
}

/// Masks keeping the non-zero entries of `params` (what gradual pruning left).
fn nonzero_masks(params: &[(String, tch::Tensor)]) -> Result<MaskSet> {
    let mut set = MaskSet::default();
    for (n, t) in params {
        set.insert(n.clone(), t.f_ne(0.0)?)?;
    }
    Ok(set)
}

/// An empty split: the phase keeps its last weights.
fn empty(source: &Source) -> whetstone_data::Encoded {
    whetstone_data::Encoded { ids: Vec::new(), labels: Vec::new(), pad_id: source.train.pad_id }
}

/// A copy of the source model in a fresh store (the source stays unpruned).
fn clone_model(source: &Source) -> Result<(VarStore, TransformerClassifier)> {
    let t = source.transformer()?;
    let mut vs = VarStore::new(source.device());
    let model = TransformerClassifier::new(&vs.root(), t.encoder().vocab_size(), t.head().num_labels(), &source.model_config()?)?;
    vs.copy(&source.run.vs)?;
    Ok((vs, model))
}

/// A recovery phase of `model` with `objective`: `[optim]` over `vs` at `recovery.lr`,
/// `[schedule]`, `[train]` for `recovery.epochs`.
fn phase_base<'a>(source: &Source, model: &'a TransformerClassifier, vs: &'a VarStore, objective: Box<dyn Objective>, config: &CompressConfig, quiet: bool) -> Result<Phase<'a>> {
    let r = &config.recovery;
    Ok(Phase {
        model,
        vs,
        objective,
        optim: config.optimizer(r.lr, &[vs])?,
        lr: r.lr,
        precision: config.precision,
        schedule: config.schedule.clone(),
        train: config.train.for_phase(r.epochs, None),
        seed: config.seed,
        device: source.device(),
        label_names: source.label_names.clone(),
        quiet,
    })
}

/// Logit distillation of `model` from the unpruned run in `run_dir` at `temperature` and
/// hard-label weight `alpha`, the teacher's logits over the training split computed once (in
/// `config.precision`); returns the objective and the seconds the cache took.
fn cached_distillation(source: &Source, run_dir: &Path, config: &CompressConfig, model: &TransformerClassifier, temperature: f64, alpha: f64) -> Result<(DistillObjective, f64)> {
    let teacher = load_teacher(run_dir, config.device.as_deref())?;
    let cache = {
        let _amp = config.precision.region(source.device()).map_err(whetstone_train::TrainError::from)?;
        TeacherCache::build_split(teacher.as_ref(), &source.train, 128, source.device())?
    };
    let secs = cache.seconds;
    let cfg = DistillConfig { temperature: temperature.into(), alpha: alpha.into(), ..Default::default() };
    Ok((DistillObjective::new(teacher, model, cfg)?.with_cache(cache), secs))
}

/// The recovery phase: fine-tune (or distil from the unpruned run) with `masks` kept, the best
/// weights by validation (`train.metric`) loaded back into `vs`. Returns notes for the report.
#[allow(clippy::too_many_arguments)]
fn recover(source: &Source, run_dir: &Path, config: &CompressConfig, model: &TransformerClassifier, vs: &mut VarStore, masks: Option<MaskSet>, out: &Path, quiet: bool) -> Result<Vec<String>> {
    let r = &config.recovery;
    let objective: Box<dyn Objective> = match r.mode {
        RecoveryMode::None => return Ok(vec!["no recovery phase".into()]),
        RecoveryMode::Finetune => Box::new(CrossEntropy { label_smoothing: config.train.label_smoothing }),
        RecoveryMode::Distill => Box::new(cached_distillation(source, run_dir, config, model, r.temperature, r.alpha)?.0),
    };
    let mut phase = phase_base(source, model, vs, objective, config, quiet)?;
    if let Some(m) = masks {
        phase.optim = Box::new(Masked::new(phase.optim, m, vs)?);
    }
    let metric = phase.train.metric.clone();
    let fit = phase.run(&source.train, &source.valid, out)?;
    load_varstore(vs, &out.join(BEST_MODEL_FILE))?;
    let best = fit.progress.best_metric.map_or("none (no validation split)".to_string(), |m| format!("{m:.4}"));
    Ok(vec![format!("{} recovery: {} steps, best validation {metric} {best} at step {}", format!("{:?}", r.mode).to_lowercase(), fit.progress.step, fit.progress.best_step)])
}
