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

/// Write `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename
/// over `path`, then fsync of the folder. Readers see the old file or the new one, never a
/// torn one, even after a crash. The temporary name is unique to the process and the call, so
/// concurrent writers (threads or processes) never share one. The one atomic writer of every
/// whetstone crate.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let tmp = dir.join(format!(".{}.{}-{}.tmp", name.to_string_lossy(), std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the folder's entry is on disk.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn write_atomic_replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomic(&dir.path().join("missing/b.json"), b"x").is_err());
    }
}
