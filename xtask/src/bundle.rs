//! `cargo xtask install`: a relocatable bundle of the `whetstone` binary and the libtorch it
//! runs on, for a Linux x86-64 machine with no Python and no libtorch.
//!
//! Layout (the wheel's own, so that libtorch's RPATH `$ORIGIN/../../nvidia/<pkg>/lib` finds the
//! CUDA libraries inside the bundle):
//!
//! ```text
//! DEST/whetstone                 the binary; its RUNPATH starts with $ORIGIN/lib/torch/lib
//! DEST/lib/torch/lib/*.so*       libtorch (CPU and CUDA), libc10, libgomp, …
//! DEST/lib/nvidia/<pkg>/lib/*    the CUDA runtime, cuBLAS, cuDNN, NCCL, … that libtorch_cuda needs
//! ```
//!
//! The binary needs `libtorch_cuda.so` (tch links it whenever libtorch has CUDA), so the CUDA
//! libraries come along even for CPU use; no GPU or driver is needed to run on the CPU.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Libraries of the torch wheel a bundle leaves out: Python bindings and their shared-memory
/// manager need libpython.
const SKIP: [&str; 2] = ["libtorch_python.so", "libshm.so"];

pub struct Options {
    pub dest: PathBuf,
    pub hardlink: bool,
}

pub fn parse(args: &[String], root: &Path) -> Result<Options> {
    let mut opts = Options { dest: root.join("dist/whetstone"), hardlink: false };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dest" => opts.dest = PathBuf::from(it.next().context("--dest needs a folder")?),
            "--hardlink" => opts.hardlink = true,
            other => bail!("unknown option `{other}` for install (options: --dest DIR, --hardlink)"),
        }
    }
    Ok(opts)
}

fn place(from: &Path, to: &Path, hardlink: bool) -> Result<u64> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    if hardlink && std::fs::hard_link(from, to).is_ok() {
        return Ok(std::fs::metadata(to)?.len());
    }
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn shared_libs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if p.is_file() && name.contains(".so") && !SKIP.contains(&name.as_str()) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Build the bundle from `binary` (built against `libtorch`, a wheel's `site-packages/torch`
/// or an unpacked libtorch).
pub fn install(binary: &Path, libtorch: &Path, opts: &Options) -> Result<()> {
    if opts.dest.exists() && std::fs::read_dir(&opts.dest).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty; remove it or choose another --dest", opts.dest.display());
    }
    let lib = libtorch.join("lib");
    if !lib.join("libtorch_cpu.so").is_file() {
        bail!("{} has no libtorch_cpu.so; is LIBTORCH a libtorch folder?", lib.display());
    }
    let staging = opts.dest.with_file_name(format!(".{}.partial-{}", opts.dest.file_name().and_then(|n| n.to_str()).unwrap_or("bundle"), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let build = || -> Result<u64> {
        let mut bytes = place(binary, &staging.join("whetstone"), false)?;
        for f in shared_libs(&lib)? {
            bytes += place(&f, &staging.join("lib/torch/lib").join(f.file_name().context("file name")?), opts.hardlink)?;
        }
        // The wheel's CUDA packages sit next to torch/ (site-packages/nvidia/<pkg>/lib).
        let nvidia = libtorch.parent().map(|p| p.join("nvidia")).filter(|p| p.is_dir());
        if let Some(nvidia) = nvidia {
            for pkg in std::fs::read_dir(&nvidia)? {
                let pkg = pkg?.path();
                let pkg_lib = pkg.join("lib");
                if !pkg_lib.is_dir() {
                    continue;
                }
                let name = pkg.file_name().context("package name")?.to_owned();
                for f in shared_libs(&pkg_lib)? {
                    bytes += place(&f, &staging.join("lib/nvidia").join(&name).join("lib").join(f.file_name().context("file name")?), opts.hardlink)?;
                }
            }
        }
        std::fs::write(
            staging.join("README.txt"),
            "whetstone, relocatable: run ./whetstone from anywhere (no Python, no libtorch, no LD_LIBRARY_PATH needed).\n\
             lib/torch/lib holds libtorch 2.11.0; lib/nvidia the CUDA libraries it links (needed to load, not to run on the CPU).\n",
        )?;
        Ok(bytes)
    };
    let bytes = match build() {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if let Some(p) = opts.dest.parent() {
        std::fs::create_dir_all(p)?;
    }
    let _ = std::fs::remove_dir(&opts.dest);
    std::fs::rename(&staging, &opts.dest).with_context(|| format!("moving the bundle to {}", opts.dest.display()))?;
    println!("bundle written to {} ({:.2} GB): run {}/whetstone", opts.dest.display(), bytes as f64 / 1e9, opts.dest.display());
    Ok(())
}
