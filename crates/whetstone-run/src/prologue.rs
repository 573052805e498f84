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
use whetstone_dist::Rendezvous;
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
    /// This process's place in a data-parallel run (torchrun's environment), if it is one.
    pub rendezvous: Option<Rendezvous>,
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
    let rendezvous = Rendezvous::from_env()?;
    let follower = rendezvous.as_ref().is_some_and(|r| r.rank != 0);
    // Only rank 0 talks; the others print one line when they are done.
    let quiet = opts.quiet || follower;
    let say = move |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    // A resumed run is locked and its recipe checked before any data is read.
    let recipe_id = recipe_identity(recipe, R::RESUMABLE)?;
    let resumed = Resumed::open_as(&opts.folder, &recipe_id, R::RESUMABLE, follower)?;
    // Accepted: the loop checks its checkpoint against what it recorded.
    let recipe_id = resumed.as_ref().and_then(|r| r.recorded(crate::identity::RECIPE_IDENTITY)).map_or(recipe_id, str::to_string);
    if recipe.threads() > 0 {
        tch::set_num_threads(recipe.threads() as i32);
    }
    let mut device = parse_device(recipe.device())?;
    if let (Some(r), Device::Cuda(_)) = (&rendezvous, device) {
        // One GPU per process on each machine, as torchrun arranges.
        device = Device::Cuda(r.local_rank);
    }
    crate::run::check_precision(recipe.precision(), device)?;
    Ok(Prologue { started, say, recipe_id, resumed, device, rendezvous })
}

/// Refuse data parallelism in a pipeline that does not support it yet, before anything is read.
pub(crate) fn single_process(rendezvous: &Option<Rendezvous>, pipeline: &str) -> Result<()> {
    match rendezvous {
        Some(r) => Err(whetstone_train::TrainError::Config(format!(
            "{pipeline} does not run data-parallel yet (WORLD_SIZE={} is set); run it as one process, or use `whetstone train` without [[tasks]] for data parallelism",
            r.world
        ))),
        None => Ok(()),
    }
}
