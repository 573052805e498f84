//! Filesystem operations that attach the path to any error.
//!
//! `std::io::Error` does not say which file failed; wrapping each call here
//! keeps `EvalError::Io` informative everywhere in the crate.

use std::path::Path;

use crate::EvalError;

/// Build an `EvalError::Io` for `path`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> EvalError {
    EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create the parent directory of `path` (if it has one), so writers can be
/// pointed at `runs/<name>/file` before the run directory exists.
pub(crate) fn create_parent_dir(path: &Path) -> Result<(), EvalError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))
        }
        _ => Ok(()),
    }
}
