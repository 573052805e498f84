//! Compiles `csrc/ext.cpp` (one translation unit) against the headers of the libtorch that
//! torch-sys links: torch-sys publishes its library folder as `DEP_TCH_LIBTORCH_LIB`, and the
//! headers sit next to it (`<libtorch>/include`, `<libtorch>/include/torch/csrc/api/include`),
//! exactly as torch-sys itself compiles its C++ wrapper.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: whetstone-torch-ext: {msg}\n");
    std::process::exit(1);
}

fn libtorch_root() -> PathBuf {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        if let Some(root) = Path::new(&lib).parent() {
            return root.to_path_buf();
        }
    }
    match std::env::var("LIBTORCH") {
        Ok(p) => PathBuf::from(p),
        Err(_) => fail("cannot find libtorch: torch-sys did not report its folder and LIBTORCH is not set. Build through `cargo xtask setup` / `eval \"$(cargo xtask env)\"`, or set LIBTORCH to the torch/ folder of torch 2.11"),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/ext.cpp");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=CXX");
    let root = libtorch_root();
    let include = root.join("include");
    if !include.join("ATen/autocast_mode.h").is_file() {
        fail(&format!("no libtorch headers at {} (expected ATen/autocast_mode.h there); LIBTORCH must be the torch/ folder of the torch 2.11 wheel or an unpacked libtorch", include.display()));
    }
    let mut build = cc::Build::new();
    build.cpp(true).pic(true).warnings(false);
    // A missing C++ compiler is the most likely failure on a fresh machine: say what to install
    // instead of cc's generic "failed to find tool".
    let compiler = build.try_get_compiler().unwrap_or_else(|e| fail(&format!("no C++ compiler found ({e}). Install one: `apt-get install g++` (Debian/Ubuntu), `dnf install gcc-c++` (Fedora), `xcode-select --install` (macOS), or set CXX")));
    let ok = Command::new(compiler.path()).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        fail(&format!("the C++ compiler `{}` does not run. Install one: `apt-get install g++` (Debian/Ubuntu), `dnf install gcc-c++` (Fedora), `xcode-select --install` (macOS), or set CXX to a C++17 compiler", compiler.path().display()));
    }
    build
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/ext.cpp");
    if let Err(e) = build.try_compile("whetstone_torch_ext") {
        fail(&format!("compiling csrc/ext.cpp against {} failed: {e}", include.display()));
    }
    if std::env::var_os("CARGO_FEATURE_C10D").is_some() {
        build_c10d(&root, &include);
    }
}

/// Gloo's headers: `$WHETSTONE_GLOO_INCLUDE` (what `cargo xtask env` exports), else the folder
/// `cargo xtask setup` unpacks Debian's libgloo-dev into, else a system install.
fn gloo_include() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("WHETSTONE_GLOO_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/whetstone").join(GLOO_DIR).join("usr/include")))
        .chain([PathBuf::from("/usr/include"), PathBuf::from("/usr/local/include")])
        .collect();
    match candidates.iter().find(|c| c.join("gloo/algorithm.h").is_file()) {
        Some(c) => c.clone(),
        None => fail(&format!(
            "the c10d feature needs Gloo's headers (gloo/algorithm.h), which the torch wheel does not ship; looked in {}. Run `cargo xtask setup` (it fetches Debian's libgloo-dev headers without root), or set WHETSTONE_GLOO_INCLUDE to a folder holding gloo/",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The folder (under `~/.cache/whetstone`) that `cargo xtask setup` unpacks libgloo-dev into.
const GLOO_DIR: &str = "gloo-0.0~git20220518.5b14351-3";

/// Include folders for NCCL, when this libtorch has CUDA and the headers its NCCL process
/// group needs are present: nccl.h (pip `nvidia-nccl-cu13`, a torch dependency), the CUDA
/// runtime headers (`nvidia-cuda-runtime`), `crt/` (`nvidia-cuda-crt`) and `nv/target`
/// (`nvidia-cuda-cccl`), all in the wheel's site-packages; `$WHETSTONE_CUDA_INCLUDE`
/// (colon-separated) adds folders of a system CUDA. `Err` says what is missing.
fn nccl_includes(root: &Path) -> Result<Vec<PathBuf>, String> {
    if !root.join("lib/libtorch_cuda.so").is_file() {
        return Err("this libtorch has no CUDA (no lib/libtorch_cuda.so)".into());
    }
    let site = root.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::var("WHETSTONE_CUDA_INCLUDE").map(|v| v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect()).unwrap_or_default();
    dirs.push(site.join("nvidia/nccl/include"));
    dirs.push(site.join("nvidia/cu13/include"));
    dirs.push(PathBuf::from("/usr/local/cuda/include"));
    let need = ["nccl.h", "cuda_runtime_api.h", "crt/host_config.h", "nv/target"];
    let missing: Vec<&str> = need.iter().copied().filter(|h| !dirs.iter().any(|d| d.join(h).is_file())).collect();
    if missing.is_empty() {
        Ok(dirs.into_iter().filter(|d| d.is_dir()).collect())
    } else {
        Err(format!("missing {} (looked in {})", missing.join(", "), dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")))
    }
}

/// `csrc/dist.cpp`: c10d's TCPStore and Gloo process group, and NCCL's when possible.
fn build_c10d(root: &Path, include: &Path) {
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-env-changed=WHETSTONE_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=WHETSTONE_CUDA_INCLUDE");
    let gloo = gloo_include();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-DUSE_C10D_GLOO")
        .flag_if_supported("-Wno-interference-size")
        .file("csrc/dist.cpp");
    match nccl_includes(root) {
        Ok(dirs) => {
            for d in dirs {
                build.include(d);
            }
            build.flag("-DUSE_C10D_NCCL").flag("-DWT_WITH_NCCL");
        }
        Err(why) => println!("cargo:warning=whetstone-torch-ext: NCCL not compiled in ({why}); CUDA process groups are unavailable, Gloo works"),
    }
    if let Err(e) = build.try_compile("whetstone_torch_ext_dist") {
        fail(&format!("compiling csrc/dist.cpp (c10d) against {} and Gloo headers in {} failed: {e}", include.display(), gloo.display()));
    }
}
