//! A pretraining run from a recipe: corpus → tokenizer → windows → masked-LM training (from
//! scratch or from a checkpoint) or general distillation → exported encoder.

use super::recipe::{check_pretrain_size, PretrainRecipe};
use crate::experiment::{write_plot, RunOptions};
use crate::folder::RunDir;
use crate::identity::{data_identity, documents_fingerprint, DATA_IDENTITY, RECIPE_IDENTITY};
use crate::prologue::{prologue, Prologue};
use crate::reporter::Reporter;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::VarStore;
use whetstone_data::{chunk_documents, load_corpus, BucketedSource, Masker, TextTokenizer};
use whetstone_compress::GeneralDistillObjective;
use whetstone_models::{load_varstore, BertCheckpoint, MlmHead, TransformerEncoder};
use crate::{ENCODER_DIR, TOKENIZER_FILE};
use whetstone_train::{EvalContext, FitSummary, MlmObjective, MlmScore, Objective, Outcome, Result, TrainError, Trainer, BEST_MODEL_FILE};

/// The recipe a pretraining run started with, in its folder.
pub const PRETRAIN_RECIPE_FILE: &str = "pretrain.toml";

/// What a pretraining run produced.
#[derive(Debug, Clone)]
pub struct PretrainResult {
    pub dir: PathBuf,
    pub fit: FitSummary,
    /// Validation masked-LM score of the best weights (absent when interrupted, without a
    /// validation split, or for general distillation).
    pub valid: Option<MlmScore>,
    /// The objective's validation record of the best weights (`mlm_loss`, `perplexity`, … or
    /// `gd_loss`, `gd_hidden`, …), absent when interrupted or without a validation split.
    pub valid_record: Option<serde_json::Map<String, serde_json::Value>>,
    /// Training windows, their tokens, and the documents they came from.
    pub train_windows: usize,
    pub train_tokens: usize,
    pub documents: usize,
    pub wall_s: f64,
}

/// Runs `recipe` into `opts.folder` (or continues the run there), then exports the best
/// encoder to `<dir>/encoder/` and writes `metrics.json` and `curves.png/svg`.
///
/// As [`crate::train_recipe`]: everything is checked before a fresh folder is created, and a
/// resumed run must match the identity its checkpoint records (the recipe without
/// [`crate::PRETRAIN_RESUMABLE_SETTINGS`], and the corpus's documents).
pub fn pretrain_recipe(recipe: &PretrainRecipe, opts: &RunOptions) -> Result<PretrainResult> {
    let Prologue { started, say, recipe_id, resumed, device, rendezvous } = prologue(recipe, opts)?;
    crate::prologue::single_process(&rendezvous, "pretraining")?;

    // Domain-adaptive pretraining starts from a checkpoint; general distillation learns from a
    // teacher. Either brings its tokenizer. Both are resolved before anything is written.
    let init = recipe.init.as_ref().map(|spec| open_checkpoint(spec, "init")).transpose()?;
    let teacher = recipe.general.as_ref().map(|g| open_checkpoint(&g.teacher, "general.teacher")).transpose()?;
    let c = &recipe.corpus;
    let mut docs = Vec::new();
    for source in &c.sources {
        let d = load_corpus(source)?;
        say(format!("corpus: {source}: {} documents", d.len()));
        docs.extend(d);
    }
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed));
    if c.max_documents > 0 {
        order.truncate(c.max_documents);
    }
    let n_valid = ((order.len() as f64) * c.valid_fraction).round() as usize;
    let pick = |ix: &[usize]| ix.iter().map(|&i| docs[i].clone()).collect::<Vec<String>>();
    let (valid_docs, train_docs) = (pick(&order[..n_valid]), pick(&order[n_valid..]));
    if train_docs.is_empty() {
        return Err(TrainError::Config("no documents left for training after the validation hold-out".into()));
    }
    let data_id = data_identity(&[("train", documents_fingerprint(&train_docs)), ("valid", documents_fingerprint(&valid_docs))]);
    if let Some(r) = &resumed {
        r.check(DATA_IDENTITY, &data_id)?;
    }

    let t0 = Instant::now();
    let source_tokenizer = init.as_ref().or(teacher.as_ref()).map(BertCheckpoint::tokenizer_path);
    let tokenizer = match (&resumed, &source_tokenizer) {
        (Some(r), _) => TextTokenizer::from_file(&r.run.file(TOKENIZER_FILE))?,
        (None, Some(p)) => TextTokenizer::from_file(p)?,
        (None, None) => match &recipe.tokenizer.path {
            Some(p) => TextTokenizer::from_file(p)?,
            None => TextTokenizer::train_wordpiece(&train_docs, recipe.tokenizer.vocab_size, recipe.tokenizer.min_frequency, recipe.tokenizer.lowercase)?,
        },
    };
    for (ckpt, what) in [(&init, "init"), (&teacher, "general.teacher")] {
        if let Some(ckpt) = ckpt {
            if ckpt.vocab_size() != tokenizer.vocab_size() as i64 {
                return Err(TrainError::Config(format!("{what} {}: config.json has {} word embeddings but its tokenizer.json {} ids", ckpt.dir().display(), ckpt.vocab_size(), tokenizer.vocab_size())));
            }
        }
    }
    let encoder_config = match &init {
        Some(ckpt) => ckpt.encoder_config().clone(),
        None => recipe.model.clone(),
    };
    if c.max_len > encoder_config.max_len {
        return Err(TrainError::Config(format!("corpus.max_len ({}) exceeds the {} positions of init's encoder", c.max_len, encoder_config.max_len)));
    }
    if let Some(t) = teacher.as_ref().filter(|t| c.max_len > t.encoder_config().max_len) {
        return Err(TrainError::Config(format!("corpus.max_len ({}) exceeds the {} positions of the teacher {}", c.max_len, t.encoder_config().max_len, t.dir().display())));
    }
    check_pretrain_size(&encoder_config, tokenizer.vocab_size())?;
    let train = chunk_documents(&tokenizer, &train_docs, c.max_len, c.min_tokens)?;
    let valid = chunk_documents(&tokenizer, &valid_docs, c.max_len, c.min_tokens)?;
    let tokens: usize = train.ids.iter().map(Vec::len).sum();
    say(format!(
        "windows: {} train ({} tokens) / {} valid from {} / {} documents, vocabulary {} ({:.1}s)",
        train.len(),
        tokens,
        valid.len(),
        train_docs.len(),
        valid_docs.len(),
        tokenizer.vocab_size(),
        t0.elapsed().as_secs_f64()
    ));
    if train.is_empty() {
        return Err(TrainError::Config(format!("the corpus gives no training window of at least {} tokens", c.min_tokens)));
    }

    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(device);
    let params = |vs: &VarStore| whetstone_eval::format_count(whetstone_models::count_parameters(vs));
    // The encoder alone: neither masked-LM nor general distillation needs a classification
    // head, so none is built or saved.
    let (model, objective, optim): (TransformerEncoder, Box<dyn Objective>, _) = match (&teacher, &recipe.general) {
        (Some(tckpt), Some(g)) => {
            let model = TransformerEncoder::new(&vs.root(), tokenizer.vocab_size() as i64, &encoder_config)?;
            let tvs = VarStore::new(device);
            let t = tckpt.load_encoder(&tvs.root())?;
            if g.student_init == "svd" {
                whetstone_compress::svd_encoder_embeddings(&t, &model)?;
            }
            let objective = GeneralDistillObjective::new(t, Some(tvs), &model, g.config()?)?;
            let tc = objective.teacher().config();
            say(format!(
                "model: student encoder {} layers × {} ({} heads) with {} parameters ({} embeddings), distilled from {} ({} layers × {}, {} heads); layer pairs (student:teacher) {}",
                encoder_config.layers,
                encoder_config.hidden,
                encoder_config.heads,
                params(&vs),
                g.student_init,
                tckpt.dir().display(),
                tc.layers,
                tc.hidden,
                tc.heads,
                objective.pairs().iter().map(|(s, t)| format!("{s}:{t}")).collect::<Vec<_>>().join(",")
            ));
            let optim = whetstone_compress::build_optimizer(&recipe.optim, &[&vs, objective.projections()])?;
            (model, Box::new(objective), optim)
        }
        _ => {
            let model = match &init {
                Some(ckpt) => ckpt.load_encoder(&vs.root())?,
                None => TransformerEncoder::new(&vs.root(), tokenizer.vocab_size() as i64, &encoder_config)?,
            };
            let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &model);
            let from = init.as_ref().map(|c| format!(", weights from {}", c.dir().display())).unwrap_or_default();
            say(format!("model: encoder {} layers × {} with {} parameters (new MLM head tied to the word embeddings{from}) on {}", encoder_config.layers, encoder_config.hidden, params(&vs), whetstone_models::device_name(device)));
            let objective = MlmObjective { head, masker: Masker::new(&tokenizer, recipe.mlm.clone(), device)?, eval_seed: recipe.seed as i64 ^ 0x5eed };
            (model, Box::new(objective), recipe.optim.build(&vs)?)
        }
    };
    let general = recipe.general.is_some();
    let metric = if general { "gd_loss" } else { "perplexity" };

    // Everything is checked: only now does a fresh run get its folder.
    let run = match resumed {
        Some(r) => r.run,
        None => RunDir::open(&opts.folder)?,
    };
    say(format!("run folder: {}", run.path().display()));
    let dir = run.path().to_path_buf();
    let tok_path = run.file(TOKENIZER_FILE);
    let result = (|| -> Result<PretrainResult> {
        if run.is_fresh() {
            tokenizer.save(&tok_path)?;
            run.write_toml(PRETRAIN_RECIPE_FILE, recipe)?;
        }
        let mut trainer = Trainer::new(&model, &vs, optim, recipe.optim.lr, dir.clone())
            .objective(objective)
            .schedule(recipe.schedule.clone())
            .config(recipe.train.clone())
            .seed(recipe.seed)
            .device(device)
            .precision(recipe.precision)
            .identity(RECIPE_IDENTITY, recipe_id)
            .identity(DATA_IDENTITY, data_id)
            .observer(Reporter::quiet(opts.quiet))
            .stop_after(opts.stop_after)
            .keep_checkpoint(true);
        let source = BucketedSource::new(&train, recipe.train.batch_size, recipe.train.bucket_factor);
        let fit = trainer.fit(&source, &valid, !run.is_fresh())?;
        // Keep the objective (its head lives in `vs`) and end the trainer's borrows of the store.
        let mut objective = trainer.into_objective();
        let result = |valid, valid_record| PretrainResult {
            dir: dir.clone(),
            fit: fit.clone(),
            valid,
            valid_record,
            train_windows: train.len(),
            train_tokens: tokens,
            documents: train_docs.len(),
            wall_s: started.elapsed().as_secs_f64(),
        };
        if fit.outcome == Outcome::Interrupted {
            return Ok(result(None, None));
        }

        load_varstore(&mut vs, &run.file(BEST_MODEL_FILE))?;
        let record = if valid.is_empty() {
            None
        } else {
            let cx = EvalContext { model: &model, vs: &vs, device, batch_size: recipe.train.eval_batch_size, metric, label_names: &[] };
            let _amp = recipe.precision.region(device)?;
            Some(objective.validate(&cx, &valid)?.record)
        };
        let score = record.as_ref().filter(|_| !general).map(MlmScore::from_record);
        model.save_pretrained(&run.file(ENCODER_DIR), &tok_path)?;
        let metrics = json!({
            "name": recipe.name,
            "objective": if general { "general-distillation" } else { "mlm" },
            "init": init.as_ref().map(|c| c.dir().display().to_string()),
            "teacher": teacher.as_ref().map(|c| c.dir().display().to_string()),
            "valid": record.clone(),
            "train": {
                "device": whetstone_models::device_name(device),
                "precision": recipe.precision.as_str(),
                "steps": fit.progress.step,
                "epochs": fit.progress.epoch,
                "outcome": format!("{:?}", fit.outcome),
                "best_step": fit.progress.best_step,
                "train_seconds": fit.progress.train_seconds,
                "train_seq_per_s": fit.seq_per_s,
                "padding_fraction": fit.padding_fraction,
                "train_windows": train.len(),
                "train_tokens": tokens,
                "valid_windows": valid.len(),
                "documents": docs.len(),
                "wall_seconds": started.elapsed().as_secs_f64(),
            },
            "encoder": run.file(ENCODER_DIR),
        });
        run.write_json("metrics.json", &metrics)?;
        if let Err(e) = write_plot(&dir, &recipe.name, metric) {
            say(format!("warning: no curves plot: {e}"));
        }
        Ok(result(score, record))
    })();
    run.end(result)
}

/// The checkpoint `spec` (recipe key `key`) names, opened: a manifest model, a BERT folder or
/// a pretraining run.
fn open_checkpoint(spec: &str, key: &str) -> Result<BertCheckpoint> {
    let dir = crate::resolve_pretrained(std::path::Path::new(spec)).map_err(|e| TrainError::Config(format!("{key}: {e}")))?;
    let ckpt = BertCheckpoint::open(&dir).map_err(|e| TrainError::Config(format!("{key} = {spec:?}: {e}")))?;
    if !ckpt.tokenizer_path().is_file() {
        return Err(TrainError::Config(format!("{key} = {spec:?}: {} has no tokenizer.json, which the run needs", dir.display())));
    }
    Ok(ckpt.ignoring(["cls."]))
}
