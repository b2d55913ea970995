//! The one place that decides where tensors live: CUDA when asked for or available, else the CPU.

use std::fmt;

/// What the user asked for with `--device`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when a GPU is usable, otherwise the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device cuda was requested but libtorch sees no usable CUDA GPU (driver missing, or no GPU); use --device cpu or auto"
    )]
    CudaUnavailable,
}

impl DeviceChoice {
    /// Resolves the choice to a concrete libtorch device.
    pub fn resolve(self) -> Result<tch::Device, DeviceError> {
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => Err(DeviceError::CudaUnavailable),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        })
    }
}

/// A short human name for a device: "CPU" or "CUDA:0 (NVIDIA H200)" where the name is known.
pub fn describe(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "CPU".to_string(),
        tch::Device::Cuda(i) => match gpu_name(i) {
            Some(name) => format!("CUDA:{i} ({name})"),
            None => format!("CUDA:{i}"),
        },
        other => format!("{other:?}"),
    }
}

/// The GPU's marketing name, read from the NVIDIA driver's /proc entry (libtorch's C API that tch
/// wraps does not expose device properties).
pub fn gpu_name(index: usize) -> Option<String> {
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?;
    let mut entries: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let info = std::fs::read_to_string(entries.get(index)?.join("information")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Model:"))
        .map(|s| s.trim().to_string())
}
