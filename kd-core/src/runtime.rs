//! What libtorch this process runs on: versions, devices, threads.

use serde::Serialize;

/// A snapshot of the libtorch runtime, as `kd doctor` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeInfo {
    /// The libtorch version kd was built against (tch's pinned release).
    pub libtorch_version: String,
    /// Whether CUDA can be used.
    pub cuda_available: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// Whether cuDNN can be used.
    pub cudnn_available: bool,
    /// libtorch's intra-op thread count.
    pub intra_op_threads: i32,
    /// Logical CPUs the process may use.
    pub cpus: usize,
}

/// The libtorch release this build of tch targets.
pub const LIBTORCH_VERSION: &str = "2.11.0";

impl RuntimeInfo {
    /// Queries libtorch. This is the first call into libtorch in most commands, so a missing
    /// shared library shows up before it (at process start) and not here.
    pub fn query() -> Self {
        RuntimeInfo {
            libtorch_version: LIBTORCH_VERSION.to_string(),
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count(),
            cudnn_available: tch::Cuda::cudnn_is_available(),
            intra_op_threads: tch::get_num_threads(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}
