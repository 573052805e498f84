//! The steps every training pipeline (fine-tuning, multi-task, pretraining) takes before it
//! reads any data: the wall clock starts, the recipe is validated, a resumed run is locked and
//! its recipe checked, torch's threads are set, and the device is parsed and checked against
//! the precision.

use crate::experiment::RunOptions;
use crate::identity::{recipe_identity, Resumed};
use serde::Serialize;
use std::time::Instant;
use tch::Device;
use whetstone_models::parse_device;
use whetstone_train::{Precision, Result};

/// What [`prologue`] hands back; pipelines destructure it.
pub(crate) struct Prologue<S> {
    /// When the pipeline started (before the recipe was validated).
    pub started: Instant,
    /// Prints a progress line to stderr unless the run is quiet.
    pub say: S,
    /// The recipe's identity without its resumable settings.
    pub recipe_id: String,
    /// The checkpoint of a run being resumed in the folder, if any.
    pub resumed: Option<Resumed>,
    pub device: Device,
}

/// A recipe a pipeline starts from: what [`prologue`] needs of it, whatever its type.
pub(crate) trait PipelineRecipe: Serialize {
    /// The settings a resumed run may change (left out of the recipe's identity).
    const RESUMABLE: &'static [&'static str];
    /// The recipe's own validation.
    fn check(&self) -> Result<()>;
    fn threads(&self) -> usize;
    fn device(&self) -> &str;
    fn precision(&self) -> Precision;
}

/// Implements [`PipelineRecipe`] for a recipe type with `validate`, `threads`, `device` and
/// `precision`.
macro_rules! pipeline_recipe {
    ($ty:ty, $resumable:expr) => {
        impl PipelineRecipe for $ty {
            const RESUMABLE: &'static [&'static str] = $resumable;
            fn check(&self) -> Result<()> {
                self.validate()
            }
            fn threads(&self) -> usize {
                self.threads
            }
            fn device(&self) -> &str {
                &self.device
            }
            fn precision(&self) -> Precision {
                self.precision
            }
        }
    };
}

pipeline_recipe!(crate::Recipe, crate::RESUMABLE_SETTINGS);
pipeline_recipe!(crate::PretrainRecipe, crate::PRETRAIN_RESUMABLE_SETTINGS);

/// Starts the clock, validates `recipe`, then opens a resumed run in `opts.folder` (checking
/// the recipe's identity without its resumable settings), sets the threads and parses and
/// checks the device, in that order.
pub(crate) fn prologue<R: PipelineRecipe>(recipe: &R, opts: &RunOptions) -> Result<Prologue<impl Fn(String) + Copy>> {
    let started = Instant::now();
    recipe.check()?;
    let quiet = opts.quiet;
    let say = move |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    // A resumed run is locked and its recipe checked before any data is read.
    let recipe_id = recipe_identity(recipe, R::RESUMABLE)?;
    let resumed = Resumed::open(&opts.folder, &recipe_id, R::RESUMABLE)?;
    if recipe.threads() > 0 {
        tch::set_num_threads(recipe.threads() as i32);
    }
    let device = parse_device(recipe.device())?;
    crate::run::check_precision(recipe.precision(), device)?;
    Ok(Prologue { started, say, recipe_id, resumed, device })
}
