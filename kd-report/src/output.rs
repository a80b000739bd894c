//! Writing files whole: to a temporary file beside the target, synced, then renamed over it.

use crate::error::{ReportError, Result};
use image::RgbImage;
use image::codecs::png::PngEncoder;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `stem` with `.<extension>` appended (not replacing anything after a dot already in the
/// name, so `fig.1b` becomes `fig.1b.svg`).
pub fn with_suffix(stem: &Path, extension: &str) -> PathBuf {
    let mut name = OsString::from(stem.as_os_str());
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// `image` as PNG bytes; `path` only names the file in an error.
pub(crate) fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_with_encoder(PngEncoder::new(&mut bytes))
        .map_err(|source| ReportError::Png {
            path: path.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory (created if
/// missing), synced to disk, then renamed over `path`, readable by all (0644 on Unix). On failure the temporary file is removed
/// and `path` is left as it was.
///
/// # Errors
/// The file system's, naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| ReportError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kd-report-").suffix(".tmp");
    // A temporary file is private (0600) by default; a report is for everyone to read.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder.tempfile_in(dir).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
