//! libtorch provisioning.
//!
//! tch 0.24 binds libtorch 2.11.0. The simplest portable source of that exact build is the
//! PyPI wheel `torch==2.11.0`, which ships the headers and shared libraries under
//! `site-packages/torch`. We pip-install it into a private virtualenv outside the repository
//! (`$WHETSTONE_HOME`, default `~/.cache/whetstone/torch-2.11.0`) and point `LIBTORCH` at it.
//! The same virtualenv is the Python reference for exactness tests and the peer in benches.
//!
//! A user who already has libtorch sets `LIBTORCH` (or `LIBTORCH_USE_PYTORCH=1`) and the
//! install is skipped.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TORCH_VERSION: &str = "2.11.0";
/// Python packages next to torch: numpy for the reference scripts, Hugging Face
/// `transformers` (and its `safetensors` / `tokenizers`) as the oracle for checkpoint loading
/// and export.
/// `nvidia-cuda-crt` and `nvidia-cuda-cccl` are the CUDA headers (`crt/`, `nv/target`) that
/// libtorch's NCCL process-group header needs and the wheel's own CUDA packages leave out: with
/// them whetstone-torch-ext compiles its NCCL path (versions match torch's CUDA 13.0 runtime).
/// `tensorboard`: its event reader checks the event files every training run writes.
const EXTRAS: [&str; 5] = ["numpy", "transformers==5.23.0", "nvidia-cuda-crt==13.0.88", "nvidia-cuda-cccl==13.0.85", "tensorboard==2.20.0"];
/// Free space needed for the install: the CUDA-enabled wheel and its dependencies unpack to ~5 GB.
const NEEDED_GB: u64 = 7;
const MARKER: &str = ".whetstone-install-complete";

pub struct Env {
    /// Directory with `include/` and `lib/` (what `LIBTORCH` names), when known.
    libtorch: Option<PathBuf>,
    /// A Python interpreter with torch importable, when known.
    python: Option<PathBuf>,
    /// Whether the user selected `LIBTORCH_USE_PYTORCH`.
    use_pytorch: bool,
    /// Gloo's headers, for whetstone-torch-ext's c10d feature.
    gloo: Option<PathBuf>,
}

impl Env {
    pub fn describe(&self) -> String {
        match (&self.libtorch, &self.python) {
            (Some(l), Some(p)) => format!("LIBTORCH={} (python: {})", l.display(), p.display()),
            (Some(l), None) => format!("LIBTORCH={} (no Python torch reference found)", l.display()),
            (None, Some(p)) => format!("LIBTORCH_USE_PYTORCH with {}", p.display()),
            (None, None) => "LIBTORCH_USE_PYTORCH".into(),
        }
    }

    /// The libtorch folder (with include/ and lib/), when known.
    pub fn libtorch_dir(&self) -> Option<PathBuf> {
        self.libtorch.clone()
    }

    pub fn python(&self) -> PathBuf {
        self.python.clone().unwrap_or_else(|| PathBuf::from("python3"))
    }

    /// The environment cargo and the binaries it runs need.
    pub fn vars(&self, root: &Path) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(l) = &self.libtorch {
            if !self.use_pytorch {
                v.push(("LIBTORCH".into(), l.display().to_string()));
            }
            let lib = l.join("lib");
            let old = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
            let path = if old.is_empty() { lib.display().to_string() } else { format!("{}:{old}", lib.display()) };
            v.push(("LD_LIBRARY_PATH".into(), path));
        }
        v.push(("WHETSTONE_PYTHON".into(), self.python().display().to_string()));
        if let Some(g) = &self.gloo {
            v.push(("WHETSTONE_GLOO_INCLUDE".into(), g.display().to_string()));
        }
        if std::env::var_os("WHETSTONE_DATA").is_none() {
            v.push(("WHETSTONE_DATA".into(), root.join("data/cache").display().to_string()));
        }
        v
    }
}

/// `~/.cache/whetstone` (or the folder above `$WHETSTONE_HOME`): where fetched build inputs live.
fn cache_root() -> Result<PathBuf> {
    let h = home()?;
    Ok(h.parent().map(Path::to_path_buf).unwrap_or(h))
}

/// Make sure a libtorch and Gloo's headers are available and return how to use them.
pub fn ensure() -> Result<Env> {
    let mut env = ensure_libtorch()?;
    env.gloo = Some(crate::gloo::ensure(&cache_root()?)?);
    Ok(env)
}

fn home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("WHETSTONE_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither WHETSTONE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/whetstone").join(format!("torch-{TORCH_VERSION}")))
}

/// A C++ compiler: tch's torch-sys and whetstone-torch-ext compile C++ against libtorch. `$CXX`
/// when set (it must run), else `c++`, `g++` or `clang++` on PATH.
fn check_cxx() -> Result<()> {
    const INSTALL: &str = "Install one: `apt-get install g++` (Debian/Ubuntu), `dnf install gcc-c++` (Fedora), `xcode-select --install` (macOS), or set CXX to a C++17 compiler";
    if let Some(cxx) = std::env::var_os("CXX") {
        let cxx = cxx.to_string_lossy().to_string();
        let prog = cxx.split_whitespace().next().unwrap_or("").to_string();
        let ok = Command::new(&prog).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            bail!("CXX={cxx} does not run; whetstone compiles C++ against libtorch (torch-sys, whetstone-torch-ext). {INSTALL}");
        }
        return Ok(());
    }
    if ["c++", "g++", "clang++"].iter().any(|c| which(c).is_some()) {
        return Ok(());
    }
    bail!("no C++ compiler found (c++, g++ or clang++ on PATH, or $CXX); whetstone compiles C++ against libtorch (torch-sys, whetstone-torch-ext). {INSTALL}")
}

/// Make sure a libtorch is available and return how to use it. Quick (no subprocess) once installed.
fn ensure_libtorch() -> Result<Env> {
    check_cxx()?;
    if let Some(l) = std::env::var_os("LIBTORCH") {
        let l = PathBuf::from(l);
        if !l.join("lib").is_dir() {
            bail!("LIBTORCH={} has no lib/ folder; point it at an unpacked libtorch (or a site-packages/torch)", l.display());
        }
        let python = std::env::var_os("WHETSTONE_PYTHON").map(PathBuf::from).or_else(|| venv_python_if_installed().ok().flatten());
        return Ok(Env { libtorch: Some(l), python, use_pytorch: false, gloo: None });
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        // tch's build script asks the interpreter it finds itself: `python` in an activated
        // virtualenv, else `python3` on PATH. Check that one, so that a missing torch is an
        // error here and not a backtrace from torch-sys.
        let tch_python = PathBuf::from(if std::env::var_os("VIRTUAL_ENV").is_some() { "python" } else { "python3" });
        let dir = python_torch_dir(&tch_python).with_context(|| {
            format!("LIBTORCH_USE_PYTORCH is set, and tch's build uses `{}` from PATH: install torch=={TORCH_VERSION} into it (or activate a virtualenv that has it), or unset LIBTORCH_USE_PYTORCH to let setup install its own", tch_python.display())
        })?;
        let python = std::env::var_os("WHETSTONE_PYTHON").map(PathBuf::from).unwrap_or(tch_python);
        return Ok(Env { libtorch: Some(dir), python: Some(python), use_pytorch: true, gloo: None });
    }
    let venv = home()?;
    if !installed_current(&venv) {
        // Two xtask commands started together (say `cargo xtask env` while CI's `cargo xtask
        // test` runs) must not both install: the second would delete the first's half-built
        // virtualenv. Hold a lock beside the venv and look again once we have it.
        let _lock = install_lock(&venv)?;
        if !venv.join(MARKER).exists() {
            install(&venv)?;
        } else if !installed_current(&venv) {
            install_extras(&venv)?;
        }
    }
    let python = venv.join("bin/python");
    let torch = site_packages_torch(&venv)?;
    Ok(Env { libtorch: Some(torch), python: Some(python), use_pytorch: false, gloo: None })
}

/// Whether `venv` holds a finished install with the current extras.
fn installed_current(venv: &Path) -> bool {
    std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|m| m.trim() == marker_text())
}

/// An exclusive lock on `<venv>.lock`, held until the returned file is dropped. Blocks (saying
/// so) while another xtask installs.
fn install_lock(venv: &Path) -> Result<std::fs::File> {
    let parent = venv.parent().unwrap_or(venv);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Not `with_extension`: "torch-2.11.0" would become "torch-2.11.lock".
    let mut name = venv.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = parent.join(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("xtask: another xtask is installing torch into {}; waiting for it ({})", venv.display(), path.display());
            f.lock().with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    Ok(f)
}

fn venv_python_if_installed() -> Result<Option<PathBuf>> {
    let venv = home()?;
    Ok(venv.join(MARKER).exists().then(|| venv.join("bin/python")))
}

fn site_packages_torch(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    for e in entries.flatten() {
        let cand = e.path().join("site-packages/torch");
        if cand.join("lib").is_dir() {
            return Ok(cand);
        }
    }
    bail!("no site-packages/torch under {}; delete {} and run `cargo xtask setup` again", lib.display(), venv.display())
}

fn python_torch_dir(python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import torch, os; print(os.path.dirname(torch.__file__))"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{} cannot import torch", python.display());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn install(venv: &Path) -> Result<()> {
    eprintln!("xtask: installing torch=={TORCH_VERSION} into {} (one time, ~5 GB, a few minutes)", venv.display());
    let py = which("python3").context(
        "python3 was not found on PATH. Install Python 3 with pip and venv (Debian/Ubuntu: `apt-get install python3 python3-venv python3-pip`), \
         or set LIBTORCH to an existing libtorch 2.11.0",
    )?;
    let parent = venv.parent().unwrap_or(venv);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    check_disk(parent)?;
    if venv.exists() {
        // A previous install was interrupted: start over.
        std::fs::remove_dir_all(venv).with_context(|| format!("removing incomplete {}", venv.display()))?;
    }
    let st = Command::new(&py).args(["-m", "venv"]).arg(venv).stdout(std::io::stderr()).status().context("running python3 -m venv")?;
    if !st.success() {
        bail!("`python3 -m venv {}` failed: install the venv module (Debian/Ubuntu: `apt-get install python3-venv`)", venv.display());
    }
    let vpy = venv.join("bin/python");
    let st = Command::new(&vpy).args(["-m", "pip", "--version"]).stdout(std::io::stderr()).status().context("running pip")?;
    if !st.success() {
        bail!("pip is not available in the new virtualenv: install pip (Debian/Ubuntu: `apt-get install python3-pip`)");
    }
    let st = Command::new(&vpy)
        .args(["-m", "pip", "install", "--progress-bar", "off", &format!("torch=={TORCH_VERSION}")])
        .args(EXTRAS)
        // pip's report goes to stderr: `eval "$(cargo xtask env)"` must see only the exports.
        .stdout(std::io::stderr())
        .status()
        .context("running pip install")?;
    if !st.success() {
        bail!("`pip install torch=={TORCH_VERSION} {}` failed (see pip's output above); check network access to PyPI and free disk space", EXTRAS.join(" "));
    }
    std::fs::write(venv.join(MARKER), marker_text())?;
    eprintln!("xtask: torch {TORCH_VERSION} installed");
    Ok(())
}

/// What the marker of a complete install holds: torch's version and the extras.
fn marker_text() -> String {
    format!("{TORCH_VERSION} {}", EXTRAS.join(" "))
}

/// Brings an install made before an extra was added up to date (a small pip install; torch
/// itself is kept).
fn install_extras(venv: &Path) -> Result<()> {
    eprintln!("xtask: adding {} to {}", EXTRAS.join(", "), venv.display());
    // pip's report goes to stderr: `eval "$(cargo xtask env)"` must see only the exports.
    let st = Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--progress-bar", "off"])
        .args(EXTRAS)
        .stdout(std::io::stderr())
        .status()
        .context("running pip install")?;
    if !st.success() {
        bail!("`pip install {}` into {} failed (see pip's output above); check network access to PyPI", EXTRAS.join(" "), venv.display());
    }
    std::fs::write(venv.join(MARKER), marker_text())?;
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn check_disk(dir: &Path) -> Result<()> {
    let Ok(out) = Command::new("df").args(["-Pk"]).arg(dir).output() else { return Ok(()) };
    let text = String::from_utf8_lossy(&out.stdout);
    let avail_kb = text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|s| s.parse::<u64>().ok());
    if let Some(kb) = avail_kb {
        let gb = kb / (1024 * 1024);
        if gb < NEEDED_GB {
            bail!(
                "only {gb} GB free at {}; the torch install needs about {NEEDED_GB} GB. Free some space, set WHETSTONE_HOME to a roomier disk, \
                 or set LIBTORCH to an existing libtorch 2.11.0",
                dir.display()
            );
        }
    }
    Ok(())
}
