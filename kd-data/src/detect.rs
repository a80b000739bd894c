//! Finding what dataset a folder holds, opening it, and describing it (`kd data info`).

use crate::cifar::{self, Cifar100Labels, CifarDir, CifarFormat};
use crate::dataset::{Dataset, ImageShape, Split};
use crate::error::{DataError, Result};
use crate::folder::{self, FolderOptions};
use crate::mnist::{self, MnistVariant};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// A dataset found on disk: which reader opens it, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// CIFAR-10 or CIFAR-100, binary or python.
    Cifar(CifarDir),
    /// MNIST or Fashion-MNIST idx files in `dir`.
    Mnist {
        /// Which of the two.
        variant: MnistVariant,
        /// The folder holding the idx files.
        dir: PathBuf,
    },
    /// Tiny-ImageNet's layout.
    TinyImageNet(PathBuf),
    /// An ImageFolder tree.
    ImageFolder(PathBuf),
}

impl Found {
    /// A name for the format, such as `cifar100 (python)` or `image folder`.
    pub fn format_name(&self) -> String {
        match self {
            Found::Cifar(c) => {
                let format = match c.format {
                    CifarFormat::Binary => "binary",
                    CifarFormat::Python => "python",
                };
                format!("{} ({format})", c.kind.name())
            }
            Found::Mnist { variant, .. } => format!("{} (idx)", variant.name()),
            Found::TinyImageNet(_) => "tiny-imagenet".to_string(),
            Found::ImageFolder(_) => "image folder".to_string(),
        }
    }

    /// The folder the reader reads.
    pub fn dir(&self) -> &Path {
        match self {
            Found::Cifar(c) => &c.dir,
            Found::Mnist { dir, .. } | Found::TinyImageNet(dir) | Found::ImageFolder(dir) => dir,
        }
    }

    /// Reads one split with the default options (CIFAR-100 fine labels, images at their size).
    pub fn open(&self, split: Split) -> Result<Dataset> {
        match self {
            Found::Cifar(c) => c.load(split, Cifar100Labels::Fine),
            Found::Mnist { variant, dir } => mnist::load(dir, split, *variant),
            Found::TinyImageNet(dir) => {
                folder::load_tiny_imagenet(dir, split, &FolderOptions::default())
            }
            Found::ImageFolder(dir) => {
                folder::load_image_folder(dir, split, &FolderOptions::default())
            }
        }
    }
}

/// Looks for a dataset in `root`: CIFAR (either format, in `root` or one of its official
/// sub-folders), MNIST/Fashion-MNIST idx files, Tiny-ImageNet, then an ImageFolder tree.
///
/// MNIST and Fashion-MNIST use the same file names; a path that mentions "fashion" (or
/// torchvision's `FashionMNIST/raw` folder) is read as Fashion-MNIST, anything else as MNIST.
/// Only the class names depend on this.
pub fn find(root: &Path) -> Result<Found> {
    if !root.exists() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
            hint: "download a dataset with `kd data download`".to_string(),
        });
    }
    if let Some(c) = cifar::find(root) {
        return Ok(Found::Cifar(c));
    }
    if let Some(found) = find_mnist(root) {
        return Ok(found);
    }
    if folder::is_tiny_imagenet(root) {
        return Ok(Found::TinyImageNet(root.to_path_buf()));
    }
    if folder::is_image_folder(root) {
        return Ok(Found::ImageFolder(root.to_path_buf()));
    }
    Err(DataError::format(
        root,
        "no dataset found: expected CIFAR (cifar-10-batches-bin/, cifar-10-batches-py/, cifar-100-binary/, \
         cifar-100-python/), MNIST idx files, Tiny-ImageNet (train/, val/, wnids.txt) or an ImageFolder \
         tree (<class>/<image>)",
    ))
}

fn find_mnist(root: &Path) -> Option<Found> {
    // torchvision's layouts name the variant.
    for variant in [MnistVariant::FashionMnist, MnistVariant::Mnist] {
        let named = root.join(variant.torchvision_dir()).join("raw");
        if mnist::find(&named, variant).is_some() {
            return Some(Found::Mnist {
                variant,
                dir: named,
            });
        }
    }
    let dir = mnist::find(root, MnistVariant::Mnist)?;
    let full = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    let variant = if full.to_string_lossy().to_lowercase().contains("fashion") {
        MnistVariant::FashionMnist
    } else {
        MnistVariant::Mnist
    };
    Some(Found::Mnist { variant, dir })
}

/// Finds the dataset in `root` and reads `split` of it.
pub fn open(root: &Path, split: Split) -> Result<Dataset> {
    find(root)?.open(split)
}

/// One split of a dataset, as `kd data info` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SplitInfo {
    /// `train` or `test`.
    pub split: Split,
    /// Number of samples.
    pub samples: usize,
    /// Samples per class, indexed by label.
    pub class_counts: Vec<usize>,
    /// Per-channel pixel mean, in [0, 1].
    pub mean: Vec<f64>,
    /// Per-channel pixel standard deviation, in [0, 1].
    pub std: Vec<f64>,
}

/// What a dataset folder holds.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetInfo {
    /// The format found.
    pub format: String,
    /// The folder read.
    pub path: PathBuf,
    /// The image shape (channels × height × width).
    pub image_shape: ImageShape,
    /// The class names, indexed by label.
    pub classes: Vec<String>,
    /// The splits present.
    pub splits: Vec<SplitInfo>,
    /// Splits that are absent, with why.
    pub missing: Vec<String>,
}

/// Reads every split of the dataset in `root` and summarises it.
pub fn describe(root: &Path) -> Result<DatasetInfo> {
    let found = find(root)?;
    let mut splits = Vec::new();
    let mut missing = Vec::new();
    let mut first: Option<Dataset> = None;
    for split in [Split::Train, Split::Test] {
        match found.open(split) {
            Ok(ds) => {
                let (mean, std) = ds.channel_stats();
                splits.push(SplitInfo {
                    split,
                    samples: ds.len(),
                    class_counts: ds.class_counts(),
                    mean,
                    std,
                });
                first.get_or_insert(ds);
            }
            Err(e @ DataError::NotFound { .. }) => missing.push(format!("{split}: {e}")),
            Err(e) => return Err(e),
        }
    }
    let ds = first.ok_or_else(|| {
        DataError::format(
            found.dir(),
            format!("no split could be read: {}", missing.join("; ")),
        )
    })?;
    Ok(DatasetInfo {
        format: found.format_name(),
        path: found.dir().to_path_buf(),
        image_shape: ds.shape(),
        classes: ds.classes().to_vec(),
        splits,
        missing,
    })
}

impl fmt::Display for DatasetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "format   {}", self.format)?;
        writeln!(f, "path     {}", self.path.display())?;
        writeln!(
            f,
            "images   {} (channels × height × width), u8",
            self.image_shape
        )?;
        writeln!(f, "classes  {}", self.classes.len())?;
        for s in &self.splits {
            let (lo, hi) = min_max(&s.class_counts);
            let per_class = if lo == hi {
                format!("{lo} per class")
            } else {
                format!("{lo}..{hi} per class")
            };
            let stats: Vec<String> = s
                .mean
                .iter()
                .zip(&s.std)
                .map(|(m, d)| format!("{m:.4}±{d:.4}"))
                .collect();
            writeln!(
                f,
                "{:<8} {} samples, {per_class}; pixel mean±std {}",
                s.split.as_str(),
                s.samples,
                stats.join(" ")
            )?;
        }
        for m in &self.missing {
            writeln!(f, "missing  {m}")?;
        }
        writeln!(
            f,
            "\n{:>5}  {:<24} {}",
            "label",
            "class",
            self.splits
                .iter()
                .map(|s| format!("{:>7}", s.split.as_str()))
                .collect::<String>()
        )?;
        for (label, name) in self.classes.iter().enumerate() {
            let counts: String = self
                .splits
                .iter()
                .map(|s| format!("{:>7}", s.class_counts[label]))
                .collect();
            writeln!(f, "{label:>5}  {name:<24} {counts}")?;
        }
        Ok(())
    }
}

fn min_max(v: &[usize]) -> (usize, usize) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::CifarKind;

    #[test]
    fn a_missing_root_and_an_unknown_folder_are_clear_errors() {
        let e = find(Path::new("/definitely/not/here")).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let e = find(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no dataset found"), "{e}");
    }

    #[test]
    fn cifar_kind_names_the_format() {
        let c = CifarDir::new(CifarKind::Cifar100, CifarFormat::Python, "/x");
        assert_eq!(Found::Cifar(c).format_name(), "cifar100 (python)");
    }
}
