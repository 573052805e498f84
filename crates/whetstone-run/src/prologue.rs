//! The steps every training pipeline (fine-tuning, multi-task, pretraining) takes before it
//! reads any data: the wall clock starts, the recipe is validated, a resumed run is locked and
//! its recipe checked, torch's threads are set, and the device is parsed and checked against
//! the precision.

use crate::folder::RunFolder;
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

/// The recipe settings [`prologue`] needs, whatever the recipe's type.
pub(crate) struct Settings<'a> {
    pub threads: usize,
    pub device: &'a str,
    pub precision: Precision,
}

/// Starts the clock, runs `validate`, then opens a resumed run in `folder` (checking
/// `recipe`'s identity without the `resumable` settings), sets the threads and parses the
/// device, in that order.
pub(crate) fn prologue<R: Serialize>(
    recipe: &R,
    validate: impl FnOnce() -> Result<()>,
    settings: Settings<'_>,
    resumable: &'static [&'static str],
    folder: &RunFolder,
    quiet: bool,
) -> Result<Prologue<impl Fn(String) + Copy>> {
    let started = Instant::now();
    validate()?;
    let say = move |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    // A resumed run is locked and its recipe checked before any data is read.
    let recipe_id = recipe_identity(recipe, resumable)?;
    let resumed = Resumed::open(folder, &recipe_id, resumable)?;
    if settings.threads > 0 {
        tch::set_num_threads(settings.threads as i32);
    }
    let device = parse_device(settings.device)?;
    crate::run::check_precision(settings.precision, device)?;
    Ok(Prologue { started, say, recipe_id, resumed, device })
}
