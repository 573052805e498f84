//! Automatic mixed precision ("autocast") for CPU and CUDA, as `torch.autocast` does it.
//!
//! Inside an autocast region libtorch runs the ops on its lower-precision list (matmul, linear,
//! convolutions, …) in the region's dtype and keeps the numerically sensitive ones (softmax,
//! layer norm, losses, reductions) in float32; parameters stay float32 and casts of them are
//! cached for the region. The switch is per thread and per device type: set it on the thread
//! that runs the forward pass. Backward needs no region (it follows the recorded graph).
//!
//! ```
//! use whetstone_torch_ext::autocast::{autocast, DeviceType};
//! use tch::{Device, Kind, Tensor};
//!
//! let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
//! {
//!     let _amp = autocast(Device::Cpu, Some(Kind::BFloat16))?;
//!     assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
//! } // the previous state (off) is restored here and the cast cache cleared
//! assert_eq!(a.matmul(&a).kind(), Kind::Float);
//! assert!(!whetstone_torch_ext::autocast::state(DeviceType::Cpu)?.enabled);
//! # Ok::<(), whetstone_torch_ext::ExtError>(())
//! ```

use crate::error::{ExtError, Result};
use crate::ffi;
use std::ffi::c_int;
use std::marker::PhantomData;
use tch::{Device, Kind};

/// The device types libtorch's autocast knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// CPU autocast (bf16; fp16 where libtorch supports it).
    Cpu,
    /// CUDA autocast (fp16 or bf16).
    Cuda,
}

impl DeviceType {
    /// The device type of `device`; an error for devices without autocast here (MPS, Vulkan).
    pub fn of(device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(DeviceType::Cpu),
            Device::Cuda(_) => Ok(DeviceType::Cuda),
            other => Err(ExtError::Invalid(format!("autocast is not available for device {other:?} (CPU and CUDA only)"))),
        }
    }

    fn code(self) -> c_int {
        match self {
            DeviceType::Cpu => 0,
            DeviceType::Cuda => 1,
        }
    }
}

fn kind_code(kind: Kind) -> Result<c_int> {
    match kind {
        Kind::Half => Ok(5),
        Kind::Float => Ok(6),
        Kind::BFloat16 => Ok(15),
        other => Err(ExtError::Invalid(format!("autocast dtype must be Half, BFloat16 or Float, not {other:?}"))),
    }
}

fn code_kind(code: c_int) -> Result<Kind> {
    match code {
        5 => Ok(Kind::Half),
        6 => Ok(Kind::Float),
        15 => Ok(Kind::BFloat16),
        other => Err(ExtError::Invalid(format!("libtorch reported an unexpected autocast dtype (scalar type {other})"))),
    }
}

/// The autocast switch of one device type on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutocastState {
    /// Whether autocast is on.
    pub enabled: bool,
    /// The dtype it casts to (libtorch's defaults: BFloat16 on CPU, Half on CUDA).
    pub dtype: Kind,
}

/// The calling thread's autocast state for `device`.
pub fn state(device: DeviceType) -> Result<AutocastState> {
    let (mut enabled, mut dtype) = (0, 0);
    // SAFETY: both out-pointers are valid for the call.
    ffi::check("autocast_get", unsafe { ffi::wt_autocast_get(device.code(), &mut enabled, &mut dtype) })?;
    Ok(AutocastState { enabled: enabled != 0, dtype: code_kind(dtype)? })
}

fn set(device: DeviceType, s: AutocastState) -> Result<()> {
    // SAFETY: plain values.
    ffi::check("autocast_set", unsafe { ffi::wt_autocast_set(device.code(), c_int::from(s.enabled), kind_code(s.dtype)?) })
}

/// An autocast region: while it lives, the calling thread runs `device`'s ops in the chosen
/// dtype (or in full precision for a region that turns autocast off). Dropping it restores the
/// previous state; when the outermost region ends, libtorch's cache of cast weights is cleared.
/// Not `Send`: the state belongs to the thread that made it.
#[derive(Debug)]
#[must_use = "autocast is on only while the guard lives"]
pub struct AutocastGuard {
    device: DeviceType,
    previous: AutocastState,
    _thread_bound: PhantomData<*const ()>,
}

/// Start an autocast region on the calling thread: `Some(dtype)` casts to `dtype`
/// (`BFloat16` or `Half`), `None` turns autocast off inside (a full-precision island in an
/// autocast region). Regions nest.
pub fn autocast(device: Device, dtype: Option<Kind>) -> Result<AutocastGuard> {
    let device = DeviceType::of(device)?;
    if let Some(k) = dtype {
        if !matches!(k, Kind::BFloat16 | Kind::Half) {
            return Err(ExtError::Invalid(format!("autocast casts to BFloat16 or Half, not {k:?}")));
        }
    }
    let previous = state(device)?;
    let next = AutocastState { enabled: dtype.is_some(), dtype: dtype.unwrap_or(previous.dtype) };
    set(device, next)?;
    let mut depth = 0;
    // SAFETY: valid out-pointer.
    if let Err(e) = ffi::check("autocast_enter", unsafe { ffi::wt_autocast_enter(&mut depth) }) {
        let _ = set(device, previous);
        return Err(e);
    }
    Ok(AutocastGuard { device, previous, _thread_bound: PhantomData })
}

/// Run `f` in an autocast region (see [`autocast`]); `dtype = None` runs it in full precision.
pub fn with_autocast<T>(device: Device, dtype: Option<Kind>, f: impl FnOnce() -> T) -> Result<T> {
    let _guard = autocast(device, dtype)?;
    Ok(f())
}

impl AutocastGuard {
    /// The state that is restored when the region ends.
    pub fn previous(&self) -> AutocastState {
        self.previous
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // Neither call can fail for the values a guard holds (a known device type and a dtype
        // libtorch reported); errors are ignored because a destructor cannot return them.
        let mut depth = 0;
        // SAFETY: valid out-pointer.
        let _ = ffi::check("autocast_exit", unsafe { ffi::wt_autocast_exit(&mut depth) });
        let _ = set(self.device, self.previous);
    }
}
