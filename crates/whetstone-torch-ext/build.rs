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
}
