//! Where runs go: the run-folder policy shared by every pipeline and the CLI.

use std::path::{Path, PathBuf};

/// A fresh folder under `runs_dir` for a run called `name`: `name`, or `name-2`, `name-3`…
/// so that no earlier run is ever overwritten.
///
/// ```
/// let runs = std::env::temp_dir().join(format!("whetstone-run-doc-{}", std::process::id()));
/// std::fs::create_dir_all(runs.join("demo")).unwrap();
/// assert_eq!(whetstone_run::fresh_run_dir(&runs, "demo"), runs.join("demo-2"));
/// assert_eq!(whetstone_run::fresh_run_dir(&runs, "other"), runs.join("other"));
/// # std::fs::remove_dir_all(&runs).ok();
/// ```
pub fn fresh_run_dir(runs_dir: &Path, name: &str) -> PathBuf {
    let mut dir = runs_dir.join(name);
    let mut i = 2;
    while dir.exists() {
        dir = runs_dir.join(format!("{name}-{i}"));
        i += 1;
    }
    dir
}

/// The folder of the run `run` names for resuming: `run` itself when it is a folder, else the
/// run of that name under `runs_dir`.
pub fn resume_dir(runs_dir: &Path, run: &str) -> PathBuf {
    if Path::new(run).is_dir() {
        PathBuf::from(run)
    } else {
        runs_dir.join(run)
    }
}
