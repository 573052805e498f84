//! `whetstone pretrain`: masked-LM pretraining of a Transformer encoder on unlabelled text,
//! from scratch or continued from a pretrained encoder (`--init`, domain-adaptive
//! pretraining), or general distillation from a teacher (recipes with `[general]`).

use crate::recipe_source;
use anyhow::{bail, Result};
use clap::Args;
use whetstone_run::{pretrain_recipe, Outcome, PretrainRecipe, RunFolder, ENCODER_DIR, PRETRAIN_RECIPE_FILE};

#[derive(Args)]
pub struct PretrainArgs {
    /// An embedded pretraining recipe (mlm-imdb, mlm-wiki100, dapt-imdb, gd-imdb) or a TOML file.
    #[arg(long, default_value = "mlm-imdb")]
    recipe: String,
    /// Override any recipe field, e.g. `--set train.epochs=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Corpora to pretrain on instead of the recipe's: manifest names (imdb, wiki100) or
    /// .txt files / folders (repeatable).
    #[arg(long = "corpus", value_name = "NAME|PATH")]
    corpus: Vec<String>,
    /// Continue masked-LM training of this pretrained encoder (domain-adaptive pretraining): a
    /// manifest model (minilm-l6), a BERT folder or a pretraining run. Its tokenizer and shape
    /// are used and a new MLM head is trained (the same as `--set init=…`).
    #[arg(long, value_name = "MODEL|PATH")]
    init: Option<String>,
    #[command(flatten)]
    run: crate::RunArgs,
}

pub fn pretrain(a: PretrainArgs) -> Result<()> {
    let (recipe, dir, resume) = if let Some(run) = &a.run.resume {
        if !a.overrides.is_empty() || !a.corpus.is_empty() || a.run.name.is_some() || a.init.is_some() {
            bail!("--resume continues a run with its own recipe; drop --set/--corpus/--name/--init");
        }
        let dir = a.run.resume_dir(run);
        let path = dir.join(PRETRAIN_RECIPE_FILE);
        if !path.is_file() {
            bail!("{} is not a pretraining run: {} is missing", dir.display(), path.display());
        }
        let text = std::fs::read_to_string(&path)?;
        let mut recipe = PretrainRecipe::parse(&path.display().to_string(), &text, &[]).map_err(anyhow::Error::msg)?;
        // The device and the precision may change on resume (not part of the run's identity).
        if let Some(d) = &a.run.device {
            recipe.device = d.clone();
        }
        if let Some(p) = a.run.precision {
            recipe.precision = p;
        }
        if let Some(t) = a.run.threads {
            recipe.threads = t;
        }
        if a.run.lr.is_some() {
            bail!("--lr cannot change on --resume: the learning rate is part of the run's recipe");
        }
        recipe.validate()?;
        (recipe, RunFolder::Resume(dir), true)
    } else {
        let (origin, text) = recipe_source::load_pretrain_text(&a.recipe)?;
        let mut overrides = a.overrides.clone();
        if !a.corpus.is_empty() {
            overrides.push(format!("corpus.sources={:?}", a.corpus));
        }
        if let Some(init) = &a.init {
            overrides.push(format!("init={init:?}"));
        }
        overrides.extend(a.run.overrides());
        let mut recipe = crate::recipe_source::parse_blaming(&origin, &text, &overrides, PretrainRecipe::parse)?;
        // Pretraining on the user's own text is named after it (`--corpus notes.txt` → `notes-mlm`).
        if let (Some(first), None) = (a.corpus.first(), &a.run.name) {
            if !a.overrides.iter().any(|o| o.trim_start().starts_with("name=")) {
                let stem = std::path::Path::new(first).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| first.clone());
                let what = if recipe.general.is_some() { "gd" } else if recipe.init.is_some() { "dapt" } else { "mlm" };
                recipe.name = format!("{stem}-{what}");
            }
        }
        let folder = RunFolder::named(&a.run.runs_dir, &recipe.name);
        (recipe, folder, false)
    };
    if !a.run.quiet {
        if resume {
            eprintln!("resuming pretraining run {} ({})", recipe.name, dir.display_path().display());
        } else {
            eprintln!("starting pretraining run {}", recipe.name);
        }
    }
    run(&recipe, &a.run.options(dir))
}

/// Run `recipe` and print what it produced (shared with `whetstone distill --general`).
pub fn run(recipe: &PretrainRecipe, options: &whetstone_run::RunOptions) -> Result<()> {
    let r = pretrain_recipe(recipe, options)?;
    let dir = &r.dir;
    match (&r.fit.outcome, &r.valid) {
        (Outcome::Interrupted, _) => println!("run interrupted at step {}; its checkpoint is saved. Resume with: whetstone pretrain --resume {}", r.fit.progress.step, dir.display()),
        (_, valid) => {
            if let Some(v) = valid {
                println!("valid MLM loss {:.4}  perplexity {:.2}  masked-token accuracy {:.4} ({} masked tokens)", v.loss, v.perplexity, v.accuracy, v.tokens);
            } else if let Some(v) = r.valid_record.as_ref().filter(|v| v.contains_key("gd_loss")) {
                let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                println!("valid distillation loss {:.4} (embedding {:.4}, hidden {:.4}, attention {:.4})", f("gd_loss"), f("gd_embedding"), f("gd_hidden"), f("gd_attention"));
            }
            println!(
                "trained {} steps on {} windows ({} tokens) in {:.1}s ({:.0} seq/s); total {:.1}s",
                r.fit.progress.step,
                r.train_windows,
                r.train_tokens,
                r.fit.progress.train_seconds,
                r.fit.seq_per_s,
                r.wall_s
            );
            println!("encoder: {} (fine-tune it with `[model] pretrained = \"{}\"`)", dir.join(ENCODER_DIR).display(), dir.display());
        }
    }
    Ok(())
}
