//! Shared helpers of kd-data's integration tests: where the real data lives, and unpacking it
//! once per build directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/datasets` beside the repository, or `$KD_SHARED_DATASETS`; `None` (and a message
/// saying why) when absent, so the caller can skip.
pub fn shared_datasets() -> Option<PathBuf> {
    let dir = std::env::var_os("KD_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: {} not found (set KD_SHARED_DATASETS to the shared datasets folder)",
            dir.display()
        );
        None
    }
}

/// The archive `name` from the shared datasets, unpacked once into the test scratch directory.
/// Returns the directory it was unpacked into, or `None` (with a message) when it is absent.
pub fn unpacked(name: &str) -> Option<PathBuf> {
    let archive = shared_datasets()?.join(name);
    if !archive.is_file() {
        eprintln!("skipping: {} not found", archive.display());
        return None;
    }
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shared-data")
        .join(name.trim_end_matches(".tar.gz"));
    if dest.is_dir() {
        return Some(dest);
    }
    // Unpack beside the destination, then rename: test binaries and threads running at the same
    // time either see the whole tree or none of it.
    let parent = dest.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let tmp = tempfile_dir(parent);
    let file = std::fs::File::open(&archive).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&tmp)
        .unwrap();
    if std::fs::rename(&tmp, &dest).is_err() {
        // Somebody else won the race; theirs is complete.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Some(dest)
}

fn tempfile_dir(parent: &Path) -> PathBuf {
    let unique = format!(
        ".unpack-{}-{:?}-{}",
        std::process::id(),
        std::thread::current().id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let p = parent.join(unique);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Fashion-MNIST from Debian's `dataset-fashion-mnist`, or `None` with a message.
pub fn fashion_mnist() -> Option<PathBuf> {
    let dir = PathBuf::from("/usr/share/datasets/fashion-mnist");
    if dir.join("train-images-idx3-ubyte.gz").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)"
        );
        None
    }
}
