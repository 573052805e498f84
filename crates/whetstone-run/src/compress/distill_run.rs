//! `whetstone distill`: a student trained from a teacher run, written as a run folder.

use super::config::{CompressConfig, StudentSpec};
use super::output::{finish_run, Finished, Provenance};
use super::phase::Phase;
use super::source::Source;
use super::student::build_student;
use super::transfer::{neighbour_transfer, transfer_sentences, NEIGHBOUR};
use whetstone_compress::{CompressError, DistillObjective, Result, TeacherCache};
use std::path::Path;
use tch::nn::VarStore;
use whetstone_data::{encode, load_splits, make_batch, BucketBatcher, Encoded, Split};
use whetstone_models::{load_varstore, TextClassifier};
use whetstone_train::{predict_in, Objective, BEST_MODEL_FILE};
use crate::{LoadedRun, RunDir, RunFolder};

/// The teacher's arg-max class of the examples `from..` of `train`, from `cache`.
fn cached_predictions(cache: &TeacherCache, train: &Encoded, from: usize, device: tch::Device) -> Result<Vec<i64>> {
    let lengths: Vec<usize> = train.ids[from..].iter().map(Vec::len).collect();
    let mut preds = vec![0i64; lengths.len()];
    for idx in BucketBatcher::new(128, 1).eval_order(&lengths) {
        let global: Vec<usize> = idx.iter().map(|i| from + i).collect();
        let logits = cache.lookup(&make_batch(train, &global, device)?)?.ok_or_else(|| CompressError::Config("a transfer sentence is missing from the teacher cache".into()))?;
        let arg = Vec::<i64>::try_from(&logits.f_argmax(-1, false)?.f_to_device(tch::Device::Cpu)?)?;
        for (i, a) in idx.iter().zip(arg) {
            preds[*i] = a;
        }
    }
    Ok(preds)
}

/// Distil the teacher run in `teacher_dir` into the student `config.distill` describes, training
/// on the teacher's training split (plus the transfer set, labelled by the teacher), selecting
/// on its validation split, and write the run folder `out` (created only once the config, the
/// teacher and the student have been checked; a compression run is not resumable).
pub fn distill(teacher_dir: &Path, config: &CompressConfig, out: &RunFolder, quiet: bool) -> Result<Finished> {
    config.validate()?;
    not_resumable(out)?;
    if config.threads > 0 {
        tch::set_num_threads(config.threads as i32);
    }
    let mut source = Source::open(teacher_dir, config.device.as_deref())?;
    super::check_precision(config, source.device())?;
    source.limit_train(config.train_limit);
    let device = source.device();
    let d = &config.distill;
    // TinyBERT's transfer set needs the embeddings of the teacher's pretrained checkpoint.
    let neighbour_checkpoint = if d.transfer == NEIGHBOUR { Some(pretrained_checkpoint(&source)?) } else { None };
    let spec: StudentSpec = d.student.parse()?;
    config.check_student_size(source.transformer()?.encoder().vocab_size() as usize)?;
    tch::manual_seed(config.seed as i64);
    let mut svs = VarStore::new(device);
    let (scfg, student) = build_student(&spec, d.init, source.transformer()?, teacher_dir, &mut svs)?;
    let mut notes = vec![format!("student {} ({} init), {} parameters", d.student, format!("{:?}", d.init).to_lowercase(), whetstone_eval::format_count(whetstone_models::count_parameters(&svs)))];

    // The teacher, loaded a second time: the objective owns it.
    let teacher = LoadedRun::open(teacher_dir, config.device.as_deref())?.model;
    let mut train = source.train.clone();
    let labelled = train.len();
    if !d.transfer.is_empty() {
        let t0 = std::time::Instant::now();
        // The neighbour set's texts, how many training texts it rewrote and how long it took.
        let mut augmented = None;
        let texts = match &neighbour_checkpoint {
            Some(checkpoint) => {
                // The teacher's own training texts, as many as `train_limit` kept.
                let r = &source.run.recipe;
                let splits = load_splits(&r.data.source(), r.data.valid_fraction, r.data.test_fraction, r.seed)?;
                let originals = &splits.train.texts[..labelled.min(splits.train.texts.len())];
                let t1 = std::time::Instant::now();
                if !quiet {
                    eprintln!("building the transfer set: {} neighbour copies of each of {} training texts…", d.transfer_copies, originals.len());
                }
                let texts = neighbour_transfer(originals, checkpoint, d.transfer_copies, d.transfer_max, config.seed)?;
                augmented = Some((originals.len(), checkpoint.clone(), t1.elapsed().as_secs_f64()));
                texts
            }
            None => transfer_sentences(&d.transfer, d.transfer_max, config.seed)?,
        };
        let split = Split { labels: vec![0; texts.len()], texts };
        let extra = encode(&source.run.tokenizer, &split, source.run.max_len())?;
        notes.push(match augmented {
            Some((n, checkpoint, secs)) => format!(
                "transfer set: {} neighbour sentences ({} copies of each of {} training texts, NeighbourReplace p = {} K = {} over the word embeddings of {}, capped at {}; augmented in {secs:.1}s, {:.1}s in all to build and tokenise)",
                extra.len(),
                d.transfer_copies,
                n,
                whetstone_augment::NeighbourReplace::DEFAULT_P,
                whetstone_augment::NeighbourReplace::DEFAULT_K,
                checkpoint.display(),
                d.transfer_max,
                t0.elapsed().as_secs_f64()
            ),
            None => format!("transfer set: {} {} sentences ({:.1}s to read and tokenise)", extra.len(), d.transfer, t0.elapsed().as_secs_f64()),
        });
        train.ids.extend(extra.ids);
        train.labels.extend(extra.labels);
    }
    // Keyed by example index in `train`: the transfer sentences' labels, set below, do not
    // change what the teacher saw.
    let cache = if d.cache_teacher && !d.loss.needs_internals() {
        if !quiet {
            eprintln!("caching teacher logits for {} examples…", train.len());
        }
        let cache = {
            let _amp = config.precision.region(device).map_err(whetstone_train::TrainError::from)?;
            TeacherCache::build_split(teacher.as_ref(), &train, 128, device)?
        };
        notes.push(format!("teacher logits computed once for {} examples in {:.1}s (instead of every epoch)", cache.len(), cache.seconds));
        Some(cache)
    } else {
        None
    };
    if train.len() > labelled {
        // The transfer sentences' hard labels are the teacher's predictions.
        let preds = match &cache {
            Some(c) => cached_predictions(c, &train, labelled, device)?,
            None => {
                let extra = Encoded { ids: train.ids[labelled..].to_vec(), labels: train.labels[labelled..].to_vec(), pad_id: train.pad_id };
                predict_in(config.precision, teacher.as_ref(), &extra, 128, device)?.preds
            }
        };
        train.labels.truncate(labelled);
        train.labels.extend(preds);
    }
    let mut objective = DistillObjective::new(teacher, &student, d.loss.clone())?;
    if let Some(c) = cache {
        objective = objective.with_cache(c);
    }
    // The projections (when the widths differ) train with the student.
    let optim = config.optimizer(d.lr, &[&svs, objective.projections()])?;
    let objective: Box<dyn Objective> = match &d.adversarial {
        Some(a) => a.wrap(Box::new(objective), &student)?,
        None => Box::new(objective),
    };
    // Everything is checked: only now does the run get its folder.
    let run = RunDir::open(out)?;
    let result = (|| -> Result<Finished> {
        let phase = Phase {
            model: &student,
            vs: &svs,
            objective,
            optim,
            lr: d.lr,
            precision: config.precision,
            schedule: config.schedule.clone(),
            train: config.train.for_phase(d.epochs, d.batch_size),
            seed: config.seed,
            device,
            label_names: source.label_names.clone(),
            quiet,
        };
        let fit = phase.run(&train, &source.valid, run.path())?;
        notes.push(format!("{} steps on {} examples in {:.1}s ({:.0} seq/s)", fit.progress.step, train.len(), fit.progress.train_seconds, fit.seq_per_s));
        load_varstore(&mut svs, &run.file(BEST_MODEL_FILE))?;
        let provenance = Provenance {
            command: "distill".into(),
            method: format!("{} student{}", d.student, if config.quantize { " + int8" } else { "" }),
            source: teacher_dir.to_path_buf(),
            config: config.clone(),
            sparsity: None,
            quantize: config.quantize,
            notes,
        };
        finish_run(&run, &source, &student, &svs, scfg, provenance, quiet)
    })();
    run.end(result)
}

/// The teacher's `[model] pretrained` checkpoint, whose word embeddings give the neighbours of
/// `distill.transfer = "neighbour"`.
fn pretrained_checkpoint(source: &Source) -> Result<std::path::PathBuf> {
    let pretrained = match &source.run.recipe.model {
        whetstone_models::ModelConfig::Transformer(c) => c.pretrained.clone(),
        _ => None,
    };
    pretrained.ok_or_else(|| CompressError::Run {
        run: source.run.dir.clone(),
        msg: format!("distill.transfer = \"{NEIGHBOUR}\" needs a teacher fine-tuned from a pretrained checkpoint (`[model] pretrained`), whose word embeddings give the replacement words; this teacher has none (use a dataset name such as `imdb`, or no transfer set)"),
    })
}

/// A compression run always starts afresh.
pub(crate) fn not_resumable(out: &RunFolder) -> Result<()> {
    if out.is_resume() {
        return Err(CompressError::Config("a compression run cannot be resumed: start it again (it writes a new folder)".into()));
    }
    Ok(())
}

/// The teacher of `dir` as a boxed classifier (for distillation recovery after pruning).
pub(crate) fn load_teacher(dir: &Path, device: Option<&str>) -> Result<Box<dyn TextClassifier>> {
    Ok(LoadedRun::open(dir, device)?.model)
}
