//! Keep libtorch's CUDA library linked into the `whetstone` binary.
//!
//! Nothing in the binary references a `torch_cuda` symbol directly, so the linker's default
//! `--as-needed` drops the library and `--device cuda` would then find no CUDA backend. When the
//! libtorch we build against ships `libtorch_cuda.so`, link it unconditionally.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH") else { return };
    let lib = std::path::Path::new(&root).join("lib");
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
