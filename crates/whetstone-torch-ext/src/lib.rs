//! libtorch entry points that tch 0.24 does not bind, compiled with `cc` against the headers of
//! the same libtorch that tch links (found through torch-sys, as torch-sys finds them).
//!
//! - [`autocast`]: CPU and CUDA automatic mixed precision (bf16 / fp16) with an RAII guard
//!   ([`autocast::AutocastGuard`]) that restores the previous state.
//! - [`Precision`]: what a recipe's `precision = "fp32" | "bf16" | "fp16"` means, as an
//!   autocast region.
//! - [`fused`]: libtorch's fused Adam / AdamW / SGD kernels over tensor lists (CPU and CUDA).
//! - `c10d` (feature `c10d`): libtorch's distributed engine: the TCPStore rendezvous and the
//!   Gloo (CPU) and NCCL (CUDA) process groups PyTorch DDP runs on.
//!
//! The C++ side (`csrc/ext.cpp`, one translation unit) exposes a plain C ABI; every call catches
//! C++ exceptions and returns their message, which becomes an [`ExtError`]. Tensors cross as
//! tch's own handles.

pub mod autocast;
#[cfg(feature = "c10d")]
pub mod c10d;
mod error;
mod ffi;
pub mod fused;
pub mod precision;

pub use autocast::{autocast, with_autocast, AutocastGuard, AutocastState, DeviceType};
pub use error::{ExtError, Result};
pub use precision::{cpu_has_native_bf16, Precision};
