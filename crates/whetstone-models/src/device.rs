//! Parse `--device cpu|cuda|cuda:N|auto` into a [`tch::Device`].

use crate::error::{ModelError, Result};
use tch::Device;

/// Parse a device name. `auto` picks the first CUDA device when one is usable, else the CPU.
///
/// ```
/// use whetstone_models::parse_device;
/// assert_eq!(parse_device("cpu").unwrap(), tch::Device::Cpu);
/// assert!(parse_device("tpu").is_err());
/// ```
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    let dev = match name.as_str() {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" | "gpu" => Device::Cuda(0),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => return Err(ModelError::Device(name)),
        },
    };
    if let Device::Cuda(n) = dev {
        let count = tch::Cuda::device_count();
        if (n as i64) >= count {
            return Err(ModelError::Device(format!("{name} (this machine has {count} CUDA device(s))")));
        }
    }
    Ok(dev)
}

/// The device as a user writes it: `cpu`, `cuda:0`, `mps`, … (what [`parse_device`] reads),
/// never Rust's `Cpu` / `Cuda(0)`.
///
/// ```
/// use whetstone_models::device_name;
/// assert_eq!(device_name(tch::Device::Cpu), "cpu");
/// assert_eq!(device_name(tch::Device::Cuda(1)), "cuda:1");
/// ```
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}
