//! What libtorch this process runs on: versions, devices, threads.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The libtorch release this build of tch targets.
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// A snapshot of the libtorch runtime, as `kd doctor` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The libtorch version kd was built against (tch's pinned release).
    pub built_against: String,
    /// The libtorch shared library this process loaded, when it can be found.
    pub libtorch_path: Option<PathBuf>,
    /// The version string of the loaded library's Python package (`2.11.0+cu130`), if any.
    pub libtorch_version: Option<String>,
    /// Whether the libtorch folder has `libtorch_cuda.so` (a CUDA build).
    pub cuda_build: bool,
    /// Whether `libtorch_cuda.so` is loaded in this process. A CUDA build whose CUDA library was
    /// dropped at link time (`--as-needed`) has CUDA silently off; this tells that case apart.
    pub cuda_library_loaded: bool,
    /// Whether CUDA can be used now (a driver and a device).
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// The CUDA runtime version as libtorch reports it (e.g. 13000), when CUDA is available.
    pub cuda_runtime: Option<i64>,
    /// Whether cuDNN can be used.
    pub cudnn_available: bool,
    /// The cuDNN version (e.g. 91900), when cuDNN is available.
    pub cudnn_version: Option<i64>,
    /// Whether libtorch has MKL and OpenMP (its CPU back ends).
    pub mkl: bool,
    /// Whether libtorch has OpenMP.
    pub openmp: bool,
    /// libtorch's intra-op thread count.
    pub intra_op_threads: i32,
    /// libtorch's inter-op thread count.
    pub inter_op_threads: i32,
    /// Logical CPUs the process may use.
    pub cpus: usize,
}

impl RuntimeInfo {
    /// Queries the loaded libtorch.
    pub fn query() -> Self {
        let cuda_available = tch::Cuda::is_available();
        let cudnn_available = cuda_available && tch::Cuda::cudnn_is_available();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let libtorch_path = mapped_library(&maps, "libtorch_cpu.so");
        let cuda_build = libtorch_path
            .as_deref()
            .and_then(|p| p.parent())
            .is_some_and(|dir| dir.join("libtorch_cuda.so").exists());
        RuntimeInfo {
            built_against: LIBTORCH_VERSION.to_string(),
            libtorch_version: libtorch_path.as_deref().and_then(package_version),
            libtorch_path,
            cuda_build,
            cuda_library_loaded: mapped_library(&maps, "libtorch_cuda.so").is_some(),
            cuda_available,
            cuda_devices: if cuda_available {
                tch::Cuda::device_count()
            } else {
                0
            },
            cuda_runtime: cuda_available.then(tch::utils::version_cudart),
            cudnn_available,
            cudnn_version: cudnn_available.then(tch::utils::version_cudnn),
            mkl: tch::utils::has_mkl(),
            openmp: tch::utils::has_openmp(),
            intra_op_threads: tch::get_num_threads(),
            inter_op_threads: tch::get_num_interop_threads(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// The path of the shared library `name` mapped into this process, from /proc/self/maps (Linux).
fn mapped_library(maps: &str, name: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.rsplit('/').next() == Some(name))
        .map(PathBuf::from)
}

/// A pip-installed libtorch sits in `torch/lib/`, beside `torch/version.py`, which names the
/// exact build (`__version__ = '2.11.0+cu130'`).
fn package_version(lib: &std::path::Path) -> Option<String> {
    let version_py = lib.parent()?.parent()?.join("version.py");
    let text = std::fs::read_to_string(version_py).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// Parses a device as users write it: `auto` (the first GPU if there is one, else the CPU),
/// `cpu`, `cuda` (GPU 0) or `cuda:N`. A GPU that is not there is an error naming it.
pub fn parse_device(text: &str) -> Result<tch::Device, String> {
    let t = text.trim().to_ascii_lowercase();
    let device = match t.as_str() {
        "auto" => return Ok(tch::Device::cuda_if_available()),
        "cpu" => return Ok(tch::Device::Cpu),
        "cuda" | "gpu" => 0,
        _ => match t.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(format!(
                    "device '{text}': expected auto, cpu, cuda or cuda:N"
                ));
            }
        },
    };
    let available = if tch::Cuda::is_available() {
        tch::Cuda::device_count() as usize
    } else {
        0
    };
    if device >= available {
        return Err(format!(
            "device '{text}': this machine has {available} CUDA device(s)"
        ));
    }
    Ok(tch::Device::Cuda(device))
}

/// Keeps memory that libtorch frees inside the process (glibc only).
///
/// By default glibc serves allocations of a few MB — every activation of a batch — with fresh
/// `mmap`s and returns them to the OS on `free`, so each forward pass page-faults its whole
/// working set again. Measured here: resnet8's eval forward at batch 64 on 2 threads ran at
/// 3,700 images/s without this and 5,900 with it, against PyTorch's 5,300 from Python.
/// Returns whether glibc accepted the settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // 32 MB is the largest mmap threshold glibc accepts on 64-bit targets.
        // SAFETY: mallopt only changes allocator parameters; it is called before any tensor.
        let (a, b) = unsafe {
            (
                mallopt(M_MMAP_THRESHOLD, 32 << 20),
                mallopt(M_TRIM_THRESHOLD, 1 << 30),
            )
        };
        a == 1 && b == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_missing_gpus_are_named() {
        assert_eq!(parse_device("cpu").unwrap(), tch::Device::Cpu);
        assert!(parse_device("tpu").unwrap_err().contains("'tpu'"));
        assert!(parse_device("cuda:x").unwrap_err().contains("cuda:N"));
        if !tch::Cuda::is_available() {
            assert_eq!(parse_device("auto").unwrap(), tch::Device::Cpu);
            assert!(
                parse_device("cuda:1")
                    .unwrap_err()
                    .contains("0 CUDA device")
            );
        }
    }
}

/// How 4-D tensors (image batches and convolution weights) are laid out in memory.
///
/// The shape is NCHW either way; only the strides differ, so every op gives the same values up
/// to the rounding of the convolution kernels libtorch picks. On the CPU, oneDNN runs its
/// convolutions in NHWC: with NCHW tensors (PyTorch's default, which the reference code uses) it
/// reorders every input and output, with channels-last it does not. Measured on this project's
/// 2-core machine with PyTorch 2.11.0 from Python: resnet32x4's eval forward 1.47× faster,
/// resnet8x4's training step 1.33×, resnet56's forward 1.16×, resnet20's step 1.23×.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryFormat {
    /// Row-major NCHW, PyTorch's default (`torch.contiguous_format`).
    Contiguous,
    /// NHWC strides under the NCHW shape (`torch.channels_last`).
    ChannelsLast,
}

/// The name `run.memory_format` takes: `channels_last` or `contiguous`.
impl std::fmt::Display for MemoryFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemoryFormat::Contiguous => "contiguous",
            MemoryFormat::ChannelsLast => "channels_last",
        })
    }
}

impl MemoryFormat {
    /// Parses `run.memory_format`: `auto` (channels-last on the CPU, contiguous on CUDA, where
    /// it has not been measured here), `channels_last` or `contiguous`.
    pub fn parse(text: &str, device: tch::Device) -> Result<MemoryFormat, String> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "auto" if device.is_cuda() => Ok(MemoryFormat::Contiguous),
            "auto" | "channels_last" => Ok(MemoryFormat::ChannelsLast),
            "contiguous" => Ok(MemoryFormat::Contiguous),
            _ => Err(format!(
                "memory format '{text}': expected auto, channels_last or contiguous"
            )),
        }
    }

    /// `t` in this layout: 4-D tensors are copied into it when they are not in it already;
    /// other tensors come back as they are (shallow clones).
    pub fn tensor(self, t: &tch::Tensor) -> tch::Tensor {
        if t.dim() != 4 || self.holds(t) {
            return t.shallow_clone();
        }
        match self {
            MemoryFormat::Contiguous => t.contiguous(),
            MemoryFormat::ChannelsLast => {
                t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
            }
        }
    }

    /// Whether `t` (4-D) is laid out this way.
    pub fn holds(self, t: &tch::Tensor) -> bool {
        let size = t.size();
        if size.len() != 4 {
            return false;
        }
        let want = match self {
            MemoryFormat::Contiguous => {
                [size[1] * size[2] * size[3], size[2] * size[3], size[3], 1]
            }
            MemoryFormat::ChannelsLast => {
                [size[1] * size[2] * size[3], 1, size[3] * size[1], size[1]]
            }
        };
        // Strides of dimensions of size 1 do not matter.
        t.stride()
            .iter()
            .zip(want)
            .zip(&size)
            .all(|((&s, w), &n)| n == 1 || s == w)
    }

    /// Lays every 4-D variable of `vs` out this way, in place: the variables keep their
    /// identity (modules holding them see the change), values and `requires_grad`. Call it
    /// before an optimizer records the variables' storage.
    pub fn apply_to(self, vs: &tch::nn::VarStore) {
        tch::no_grad(|| {
            for (_, var) in vs.variables() {
                if var.dim() == 4 && !self.holds(&var) {
                    let laid_out = self.tensor(&var);
                    let mut handle = var.shallow_clone();
                    handle.set_data(&laid_out);
                }
            }
        });
    }
}
