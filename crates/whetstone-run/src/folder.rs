//! Run folders: where a run's files go, and the one way a run writes them.
//!
//! A [`RunDir`] owns a run's folder for the run's lifetime:
//!
//! * **Creation under the runs folder only.** A run name is a plain folder name
//!   ([`run_name`]): `..`, path separators, absolute paths and leading dots are refused, other
//!   characters outside `[A-Za-z0-9._-]` become `-`. A fresh folder is made with one
//!   `create_dir` (not `create_dir_all`), so two runs started at once with the same name get
//!   `<name>` and `<name>-2`, never one folder between them.
//! * **A lock.** The folder's [`LOCK_FILE`] is locked (`File::try_lock`) while the `RunDir`
//!   lives; a second process that tries to resume a running run is refused with a clear
//!   error instead of sharing the folder. The lock is released when the `RunDir` is finished
//!   or dropped (also when the process dies: the operating system releases it).
//! * **One atomic write.** Every file goes through [`RunDir::write`]
//!   ([`whetstone_eval::write_atomic`]: a temporary file, fsync, rename, fsync of the folder),
//!   so a reader sees the old file or the new one, never a torn one. A process killed
//!   mid-write leaves only its temporary file, which the next `--resume` removes.
//! * **Finishing.** [`RunDir::finish`] releases the lock; [`RunDir::discard`] removes a fresh
//!   folder whose run failed before it wrote anything worth keeping.

use serde::Serialize;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use whetstone_train::{Result, TrainError, CHECKPOINT_FILE};

/// The lock file inside every run folder. It stays (empty) after the run; only the lock on it
/// matters, and the operating system drops that when the process ends.
pub const LOCK_FILE: &str = "run.lock";

/// The longest run name.
const MAX_NAME: usize = 128;

/// Where a run's folder is, or will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFolder {
    /// A fresh folder `<runs_dir>/<name>`, or `<name>-2`, `<name>-3`, … when that is taken.
    /// `name` is checked and sanitised by [`run_name`].
    Named {
        /// The folder that holds runs.
        runs_dir: PathBuf,
        /// The run's name.
        name: String,
    },
    /// Exactly this folder, which must not exist yet.
    At(PathBuf),
    /// The existing run in this folder, to continue from its checkpoint.
    Resume(PathBuf),
}

impl RunFolder {
    /// A fresh run called `name` under `runs_dir`.
    pub fn named(runs_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        RunFolder::Named { runs_dir: runs_dir.into(), name: name.into() }
    }

    /// Whether this continues an existing run.
    pub fn is_resume(&self) -> bool {
        matches!(self, RunFolder::Resume(_))
    }

    /// The folder as far as it is known before it is created (for `Named`, the runs folder
    /// joined with the sanitised name; the run may end up in `<name>-2`).
    pub fn display_path(&self) -> PathBuf {
        match self {
            RunFolder::Named { runs_dir, name } => runs_dir.join(run_name(name).unwrap_or_else(|_| name.clone())),
            RunFolder::At(p) | RunFolder::Resume(p) => p.clone(),
        }
    }
}

/// The folder name a run called `name` gets: `name` itself when it is made of `[A-Za-z0-9._-]`,
/// else `name` with every other character replaced by `-`. A name that could leave the runs
/// folder or hide the run is an error (the message says why): an empty name, `.` or `..` or
/// any leading dot, a path separator (`/`, `\`), an absolute path, or more than 128 bytes.
///
/// ```
/// use whetstone_run::run_name;
/// assert_eq!(run_name("rt-textcnn").unwrap(), "rt-textcnn");
/// assert_eq!(run_name("teacher:0,2 (v2)").unwrap(), "teacher-0-2--v2-");
/// for bad in ["../x", "/abs", "a/b", "..", ".hidden", "", "a\\b"] {
///     assert!(run_name(bad).is_err(), "{bad}");
/// }
/// ```
pub fn run_name(name: &str) -> std::result::Result<String, String> {
    if name.is_empty() {
        return Err("the run name is empty".into());
    }
    if Path::new(name).is_absolute() {
        return Err(format!("run name `{name}` is an absolute path; give a plain name (--runs-dir chooses the folder that holds runs)"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("run name `{name}` contains a path separator; give a plain name (--runs-dir chooses the folder that holds runs)"));
    }
    if name.starts_with('.') {
        return Err(format!("run name `{name}` starts with a dot (`.`, `..` and hidden names are refused)"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("run name `{}…` is longer than {MAX_NAME} bytes", name.chars().take(32).collect::<String>()));
    }
    Ok(name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect())
}

/// The folder of the run `run` names for resuming: `run` itself when it is a folder, else the
/// run of that name under `runs_dir`.
pub fn resume_dir(runs_dir: &Path, run: &str) -> PathBuf {
    // A folder that exists, or anything written as a path (`runs/x`, `./x`), is taken as is;
    // a bare name is a run under `runs_dir`.
    if Path::new(run).is_dir() || run.contains(std::path::MAIN_SEPARATOR) || run.contains('/') {
        PathBuf::from(run)
    } else {
        runs_dir.join(run)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Whether `name` is the temporary file of an atomic write ([`whetstone_eval::write_atomic`]:
/// `.NAME.PID-N.tmp`).
fn is_atomic_temporary(name: &str) -> bool {
    let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let Some((_, tag)) = stem.rsplit_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    tag.split_once('-').is_some_and(|(pid, n)| digits(pid) && digits(n))
}

/// Remove what atomic writes of a process that died mid-write (a SIGKILL, a crash) left in
/// `dir` and its subfolders: their temporary files. Called with the run's lock held, so no
/// other process is writing there. Best effort: a file that cannot be removed stays.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else {
            continue;
        };
        if kind.is_dir() {
            remove_stale_temporaries(&e.path());
        } else if kind.is_file() && is_atomic_temporary(&e.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A run's folder, created or opened for the run and locked for its lifetime. Every file the
/// run writes goes through it (see the module docs).
///
/// ```
/// use whetstone_run::{RunDir, RunFolder};
/// let runs = std::env::temp_dir().join(format!("whetstone-rundir-doc-{}", std::process::id()));
/// let a = RunDir::open(&RunFolder::named(&runs, "demo"))?;
/// let b = RunDir::open(&RunFolder::named(&runs, "demo"))?; // never the same folder
/// assert_eq!((a.path(), b.path()), (runs.join("demo").as_path(), runs.join("demo-2").as_path()));
/// a.write("notes.txt", b"hello")?;
/// assert!(RunDir::open(&RunFolder::named(&runs, "../escape")).is_err());
/// // A run in use cannot be resumed by anyone else.
/// std::fs::write(a.file(whetstone_run::CHECKPOINT_FILE), b"")?;
/// let e = RunDir::open(&RunFolder::Resume(a.path().to_path_buf())).unwrap_err().to_string();
/// assert!(e.contains("in use"), "{e}");
/// let dir = a.finish();
/// b.discard()?;
/// assert!(dir.join("notes.txt").is_file() && !runs.join("demo-2").exists());
/// # std::fs::remove_dir_all(&runs).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// `None` for a replica that follows rank 0 (which holds the lock and writes).
    lock: Option<File>,
    fresh: bool,
}

impl RunDir {
    /// Create (`Named`, `At`) or open (`Resume`) the folder, and lock it.
    pub fn open(folder: &RunFolder) -> Result<Self> {
        match folder {
            RunFolder::Named { runs_dir, name } => Self::create(runs_dir, name),
            RunFolder::At(path) => Self::create_at(path),
            RunFolder::Resume(path) => Self::resume(path),
        }
    }

    /// A fresh folder for the run `name` under `runs_dir` (created if needed): `<name>`, or
    /// `<name>-2`, `<name>-3`, … when taken, each tried with one atomic `create_dir`.
    pub fn create(runs_dir: &Path, name: &str) -> Result<Self> {
        let name = run_name(name).map_err(TrainError::Config)?;
        std::fs::create_dir_all(runs_dir).map_err(io(runs_dir))?;
        for i in 1..=10_000u32 {
            let path = if i == 1 { runs_dir.join(&name) } else { runs_dir.join(format!("{name}-{i}")) };
            match std::fs::create_dir(&path) {
                Ok(()) => return Self::locked(path, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(TrainError::Run { run: runs_dir.join(&name), msg: "every name up to -10000 is taken".into() })
    }

    /// Exactly the folder `path`, which must not exist yet (its parent is created if needed).
    pub fn create_at(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::create_dir(path) {
            Ok(()) => Self::locked(path.to_path_buf(), true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(TrainError::Run {
                run: path.to_path_buf(),
                msg: "already exists; a new run never writes into an existing folder (continue a run with --resume)".into(),
            }),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// The existing run in `path`, to continue: it must be a folder with a checkpoint, and no
    /// other process may be running in it.
    pub fn resume(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(TrainError::Run { run: path.to_path_buf(), msg: "no such run folder".into() });
        }
        if !path.join(CHECKPOINT_FILE).is_file() {
            return Err(TrainError::Resume {
                run: path.to_path_buf(),
                msg: format!("there is no {CHECKPOINT_FILE} to continue from (the run stopped before its first checkpoint, or this is not a run folder)"),
            });
        }
        let run = Self::locked(path.to_path_buf(), false)?;
        remove_stale_temporaries(path);
        Ok(run)
    }

    /// The folder `path` as a data-parallel replica other than rank 0 sees it: rank 0 creates,
    /// locks and writes it; this handle creates, locks and writes nothing (it may not exist on
    /// this machine), and is never fresh, so nothing is written through it.
    pub fn follow(path: &Path) -> Self {
        Self { path: path.to_path_buf(), lock: None, fresh: false }
    }

    /// Whether this handle follows another process's run ([`RunDir::follow`]).
    pub fn is_follower(&self) -> bool {
        self.lock.is_none()
    }

    /// Lock `path`'s [`LOCK_FILE`]; a fresh folder that cannot be locked is removed again.
    fn locked(path: PathBuf, fresh: bool) -> Result<Self> {
        let lock_path = path.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
        let result = match lock {
            Err(e) => Err(io(&lock_path)(e)),
            Ok(file) => match file.try_lock() {
                Ok(()) => Ok(file),
                Err(TryLockError::WouldBlock) => Err(TrainError::Run {
                    run: path.clone(),
                    msg: format!("is in use by another whetstone process (it holds {LOCK_FILE}); wait for that run to end, or start a new run"),
                }),
                Err(TryLockError::Error(e)) => Err(io(&lock_path)(e)),
            },
        };
        match result {
            Ok(lock) => Ok(Self { path, lock: Some(lock), fresh }),
            Err(e) => {
                if fresh {
                    let _ = std::fs::remove_dir_all(&path);
                }
                Err(e)
            }
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the file `name` in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether this process created the folder (a fresh run) rather than resuming it.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Write `bytes` to the file `name` (a plain name, or a path inside the folder whose
    /// parents exist) atomically ([`whetstone_eval::write_atomic`]).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.file(name);
        whetstone_eval::write_atomic(&path, bytes).map_err(io(&path))
    }

    /// [`RunDir::write`] of pretty-printed JSON.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Config(format!("cannot write {name}: {e}")))?;
        self.write(name, text.as_bytes())
    }

    /// [`RunDir::write`] of TOML.
    pub fn write_toml(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text = toml::to_string(value).map_err(|e| TrainError::Config(format!("cannot write {name}: {e}")))?;
        self.write(name, text.as_bytes())
    }

    /// Copy the file `from` into the folder as `name`, atomically.
    pub fn copy_in(&self, from: &Path, name: &str) -> Result<()> {
        let bytes = std::fs::read(from).map_err(io(from))?;
        self.write(name, &bytes)
    }

    /// The run is over: release the lock and return the folder.
    pub fn finish(self) -> PathBuf {
        if let Some(lock) = &self.lock {
            let _ = lock.unlock();
        }
        self.path
    }

    /// Remove a fresh folder (a run that failed before it wrote anything worth keeping). A
    /// resumed run's folder is never removed: this only releases its lock.
    pub fn discard(self) -> Result<()> {
        let (path, fresh) = (self.path.clone(), self.fresh);
        drop(self);
        if fresh {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// The run failed: a fresh folder that holds nothing worth keeping (no checkpoint to
    /// resume, no model) is removed, anything else stays for `--resume` or a look; the lock is
    /// released either way.
    pub fn fail(self) {
        let worth_keeping = [CHECKPOINT_FILE, whetstone_train::BEST_MODEL_FILE].iter().any(|f| self.file(f).exists());
        if self.fresh && !worth_keeping {
            let _ = self.discard();
        }
    }

    /// Finish the run with `result`: [`RunDir::finish`] on success, [`RunDir::fail`] on error.
    pub fn end<T, E>(self, result: std::result::Result<T, E>) -> std::result::Result<T, E> {
        match result {
            Ok(v) => {
                self.finish();
                Ok(v)
            }
            Err(e) => {
                self.fail();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temporaries_of_atomic_writes_are_stale() {
        for name in [".checkpoint.safetensors.4242-0.tmp", ".model.safetensors.1-17.tmp", ".metrics.json.99-3.tmp"] {
            assert!(is_atomic_temporary(name), "{name}");
        }
        for name in ["checkpoint.safetensors", ".checkpoint.safetensors.tmp", "checkpoint.safetensors.1-2.tmp", ".notes.tmp", ".x.1-.tmp", ".x.a-2.tmp", ".x.12.tmp", "run.lock"] {
            assert!(!is_atomic_temporary(name), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("encoder")).unwrap();
        let files = ["checkpoint.safetensors", ".checkpoint.safetensors.7-1.tmp", "encoder/.model.safetensors.7-2.tmp", "encoder/model.safetensors", "user.tmp"];
        for f in files {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let run = RunDir::resume(dir.path()).unwrap();
        let left: Vec<bool> = files.iter().map(|f| dir.path().join(f).exists()).collect();
        assert_eq!(left, [true, false, false, true, true]);
        run.finish();
    }
}
