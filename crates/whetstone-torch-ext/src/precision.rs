//! The numeric precision a model runs in: what a recipe's `precision = "fp32" | "bf16" | "fp16"`
//! means, and the autocast region that implements it.
//!
//! Reduced precision is mixed precision: parameters, gradients and optimiser state stay
//! float32 ("master weights"); inside the region libtorch's autocast runs matmuls, linears
//! and convolutions in bf16/fp16 and keeps the ops on its float32 list (losses, softmax
//! where libtorch lists it, reductions) in float32.

use crate::autocast::{autocast, AutocastGuard};
use crate::error::{ExtError, Result};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind};

/// Numeric precision of the forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Full float32 (the default).
    #[default]
    Fp32,
    /// bfloat16 autocast (CPU and CUDA); needs no loss scaling.
    Bf16,
    /// float16 autocast, CUDA only, with dynamic loss scaling during training.
    Fp16,
}

impl Precision {
    /// Every precision, for help texts and sweeps.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    /// The autocast dtype, `None` for fp32.
    pub fn dtype(self) -> Option<Kind> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
            Precision::Fp16 => Some(Kind::Half),
        }
    }

    /// The recipe spelling (`fp32`, `bf16`, `fp16`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Whether training needs dynamic loss scaling (fp16's narrow exponent range).
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::Fp16
    }

    /// Refuse combinations that cannot run: fp16 on anything but CUDA, reduced precision on a
    /// device without autocast.
    pub fn check_device(self, device: Device) -> Result<()> {
        match (self, device) {
            (Precision::Fp32, _) => Ok(()),
            (Precision::Fp16, Device::Cuda(_)) => Ok(()),
            (Precision::Fp16, d) => Err(ExtError::Invalid(format!("precision = \"fp16\" needs a CUDA device (this run is on {d:?}); use \"bf16\" on CPU"))),
            (Precision::Bf16, Device::Cpu | Device::Cuda(_)) => Ok(()),
            (p, d) => Err(ExtError::Invalid(format!("precision = \"{p}\" needs a CPU or CUDA device (this run is on {d:?})"))),
        }
    }

    /// A one-line warning when bf16 is asked for on a CPU without native bf16 arithmetic
    /// (`avx512_bf16` or `amx_bf16`): it still runs, through conversions, maybe slower than fp32.
    pub fn slow_cpu_warning(self, device: Device) -> Option<String> {
        if self == Precision::Bf16 && device == Device::Cpu && !cpu_has_native_bf16() {
            Some("warning: this CPU has neither avx512_bf16 nor amx_bf16; precision = \"bf16\" runs through conversions and may be slower than fp32".into())
        } else {
            None
        }
    }

    /// The autocast region of this precision on `device` (`None` for fp32): hold it on the
    /// thread that runs the forward pass.
    pub fn region(self, device: Device) -> Result<Option<AutocastGuard>> {
        match self.dtype() {
            None => Ok(None),
            Some(kind) => {
                self.check_device(device)?;
                autocast(device, Some(kind)).map(Some)
            }
        }
    }
}

/// Whether the CPU does bf16 arithmetic natively (x86: `avx512_bf16` or `amx_bf16`; aarch64:
/// the `bf16` extension).
pub fn cpu_has_native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // AMX detection is not stable in std; Linux lists it in /proc/cpuinfo.
        std::arch::is_x86_feature_detected!("avx512bf16") || std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "amx_bf16")))
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("bf16")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = ExtError;
    fn from_str(s: &str) -> Result<Self> {
        Precision::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| ExtError::Invalid(format!("unknown precision `{s}`: expected fp32, bf16 or fp16")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_devices() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert!("half".parse::<Precision>().unwrap_err().to_string().contains("fp32, bf16 or fp16"));
        assert!(Precision::Fp16.check_device(Device::Cpu).unwrap_err().to_string().contains("CUDA"));
        assert!(Precision::Fp16.check_device(Device::Cuda(0)).is_ok());
        assert!(Precision::Bf16.check_device(Device::Mps).is_err());
        assert!(Precision::Fp32.region(Device::Cpu).unwrap().is_none());
        let a = tch::Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        let g = Precision::Bf16.region(Device::Cpu).unwrap();
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
        drop(g);
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        assert!(Precision::Fp16.region(Device::Cpu).is_err());
        assert_eq!(Precision::Fp32.slow_cpu_warning(Device::Cpu), None);
        assert_eq!(Precision::Bf16.slow_cpu_warning(Device::Cpu).is_some(), !cpu_has_native_bf16());
    }
}
