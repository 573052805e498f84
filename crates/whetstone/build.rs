//! Link settings of the `whetstone` binary.
//!
//! 1. Keep libtorch's CUDA library linked. Nothing in the binary references a `torch_cuda`
//!    symbol directly, so the linker's default `--as-needed` would drop the library and
//!    `--device cuda` would then find no CUDA backend. When the libtorch we build against ships
//!    `libtorch_cuda.so`, link it unconditionally.
//! 2. Bake the library search path into the binary, so that it runs from a plain shell (no
//!    `LD_LIBRARY_PATH`): first `$ORIGIN/lib/torch/lib`, the libtorch of a relocatable bundle
//!    (`cargo xtask install`, which keeps the wheel's layout so that libtorch's own
//!    `$ORIGIN/../../nvidia/…` paths to the CUDA libraries resolve inside the bundle), then the
//!    libtorch this binary was built against (torch-sys reports its folder as
//!    `DEP_TCH_LIBTORCH_LIB`). The linker writes them as RUNPATH; `LD_LIBRARY_PATH`, when set,
//!    still comes first.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let lib: Option<PathBuf> = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from).or_else(|| std::env::var_os("LIBTORCH").map(|r| PathBuf::from(r).join("lib")));
    if let Some(lib) = &lib {
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-search=native={}", lib.display());
            println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
    let mut paths = vec!["$ORIGIN/lib/torch/lib".to_string()];
    if let Some(lib) = lib {
        paths.push(lib.display().to_string());
    }
    let arg = format!("-Wl,-rpath,{}", paths.join(":"));
    println!("cargo:rustc-link-arg-bins={arg}");
    println!("cargo:rustc-link-arg-tests={arg}");
}
