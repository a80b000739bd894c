//! Finding and starting `kd-engine`, the binary that links libtorch.
//!
//! `kd` links no libtorch so that it always starts: the data commands work before the 4 GB
//! libtorch is installed, and a libtorch that does not load is reported by us, with what to do,
//! rather than by the dynamic loader. Commands that need libtorch run in `kd-engine`, which sits
//! next to `kd` (both come out of `cargo build -p kd-cli`).

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The environment variable that overrides where `kd-engine` is.
pub const ENGINE_ENV: &str = "KD_ENGINE";

/// The path of `kd-engine`: `$KD_ENGINE`, else next to the running executable.
pub fn engine_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENGINE_ENV) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("cannot find the path of the running kd")?;
    Ok(me.with_file_name(format!("kd-engine{}", std::env::consts::EXE_SUFFIX)))
}

/// Why libtorch did not load, in words a user can act on, if `stderr` is the dynamic loader's.
pub fn explain_load_failure(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("error while loading shared libraries"))?;
    Some(format!(
        "libtorch could not be loaded: {}\n\
         kd needs PyTorch 2.11.0's libtorch. Run `scripts/setup.sh` from the kd checkout to install it \
         into .venv/ and rebuild (`cargo build --release -p kd-cli`), or set LD_LIBRARY_PATH to the \
         `torch/lib` folder of a torch 2.11.0 installation.",
        line.trim()
    ))
}

/// Runs `kd-engine` with `args`, capturing its output; a missing engine or a libtorch that does
/// not load becomes an error that says what to do.
pub fn run_captured(args: &[&str]) -> Result<Output> {
    let path = engine_path()?;
    let out = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| missing_engine(&path, e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(msg) = explain_load_failure(&stderr) {
            bail!(msg);
        }
        bail!(
            "{} {} failed ({}): {}",
            path.display(),
            args.join(" "),
            out.status,
            stderr.trim()
        );
    }
    Ok(out)
}

/// Replaces this process by `kd-engine` with the same arguments (Unix), or runs it and exits with
/// its status elsewhere. Returns only on failure to start it.
pub fn hand_over(args: Vec<OsString>) -> anyhow::Error {
    let path = match engine_path() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut cmd = Command::new(&path);
    cmd.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        missing_engine(&path, e)
    }
    #[cfg(not(unix))]
    {
        match cmd.status() {
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(e) => missing_engine(&path, e),
        }
    }
}

fn missing_engine(path: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "{} not found: kd runs its libtorch commands there. Build both binaries with \
             `cargo build --release -p kd-cli`, or point {ENGINE_ENV} at kd-engine.",
            path.display()
        )
    } else {
        anyhow::anyhow!("cannot start {}: {e}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_loader_message() {
        let stderr = "kd-engine: error while loading shared libraries: libtorch_cpu.so: cannot open shared object file: No such file or directory\n";
        let msg = explain_load_failure(stderr).unwrap();
        assert!(msg.contains("libtorch_cpu.so"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
        assert!(explain_load_failure("some other failure").is_none());
    }
}
