//! `kd doctor`: what kd runs on.

use crate::cli::DoctorArgs;
use crate::engine;
use anyhow::{Context, Result};
use kd_core_info::RuntimeReport;

/// The part of the report that `kd-engine` produces (the same fields as kd-core's RuntimeInfo,
/// read as JSON so that `kd` need not link libtorch).
mod kd_core_info {
    use serde::{Deserialize, Serialize};
    use std::path::PathBuf;

    /// libtorch's side of the report.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct RuntimeReport {
        pub built_against: String,
        pub libtorch_path: Option<PathBuf>,
        pub libtorch_version: Option<String>,
        pub cuda_build: bool,
        pub cuda_library_loaded: bool,
        pub cuda_available: bool,
        pub cuda_devices: i64,
        pub cuda_runtime: Option<i64>,
        pub cudnn_available: bool,
        pub cudnn_version: Option<i64>,
        pub mkl: bool,
        pub openmp: bool,
        pub intra_op_threads: i32,
        pub inter_op_threads: i32,
        pub cpus: usize,
    }
}

/// Runs `kd doctor`.
pub fn run(args: &DoctorArgs) -> Result<()> {
    let out = engine::run_captured(&["engine-probe"])?;
    let report: RuntimeReport = serde_json::from_slice(&out.stdout)
        .context("kd-engine printed an unreadable runtime report")?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["kd_version"] = env!("CARGO_PKG_VERSION").into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&report));
    Ok(())
}

/// CUDA's runtime version as libtorch reports it: major·1000 + minor·10.
fn cuda_version(v: i64) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// cuDNN's version (9 and later): major·10000 + minor·100 + patch.
fn cudnn_version(v: i64) -> String {
    format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
}

fn render(r: &RuntimeReport) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut s = String::new();
    s += &format!("kd          {}\n", env!("CARGO_PKG_VERSION"));
    let lib = r
        .libtorch_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".into());
    let found = r
        .libtorch_version
        .clone()
        .unwrap_or_else(|| "unknown version".into());
    s += &format!(
        "libtorch    {found} (kd is built against {})\n            {lib}\n",
        r.built_against
    );
    if r.cuda_available {
        let rt = r
            .cuda_runtime
            .map(cuda_version)
            .unwrap_or_else(|| "?".into());
        s += &format!(
            "CUDA        available: {} device(s), CUDA runtime {rt}\n",
            r.cuda_devices
        );
    } else if r.cuda_build && !r.cuda_library_loaded {
        s += "CUDA        OFF: libtorch_cuda.so exists but is not loaded; kd-engine was linked \
               without --no-as-needed (see build/link_torch.rs)\n";
    } else if r.cuda_build {
        s += "CUDA        not available (CUDA build of libtorch, loaded, but no driver or device is visible)\n";
    } else {
        s += "CUDA        not available (this libtorch is a CPU build)\n";
    }
    match (r.cudnn_available, r.cudnn_version) {
        (true, Some(v)) => s += &format!("cuDNN       {}\n", cudnn_version(v)),
        _ => s += "cuDNN       not available\n",
    }
    s += &format!(
        "threads     {} logical CPUs; libtorch {} intra-op, {} inter-op; MKL {}, OpenMP {}\n",
        r.cpus,
        r.intra_op_threads,
        r.inter_op_threads,
        yes(r.mkl),
        yes(r.openmp)
    );
    s += &format!("data        {} loader worker threads by default\n", r.cpus);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dotted_as_libtorch_encodes_them() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cudnn_version(91900), "9.19.0");
    }
}
