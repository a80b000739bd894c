//! MNIST and Fashion-MNIST from their idx files, raw or gzip-compressed.
//!
//! An idx file is a big-endian header (a magic number naming the item type and the number of
//! dimensions, then each dimension) followed by the items: `0x00000803` for `u8` images
//! N×rows×cols, `0x00000801` for `u8` labels. Compression is told by gzip's magic bytes, not by
//! the file name, and the header bounds how much is decompressed, so a file that is truncated,
//! oversized or a decompression bomb is reported without reading it all.

use crate::dataset::{Dataset, ImageShape, Split};
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Which of the two datasets (they share the file format, names and sizes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MnistVariant {
    /// Handwritten digits.
    Mnist,
    /// Zalando's clothing images.
    FashionMnist,
}

impl MnistVariant {
    /// `mnist` or `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            MnistVariant::Mnist => "mnist",
            MnistVariant::FashionMnist => "fashion-mnist",
        }
    }

    /// The class names, in label order.
    pub fn classes(self) -> &'static [&'static str; 10] {
        match self {
            MnistVariant::Mnist => &MNIST_CLASSES,
            MnistVariant::FashionMnist => &FASHION_MNIST_CLASSES,
        }
    }

    /// The folder torchvision keeps the raw files in, below its root (`<root>/<this>/raw`).
    pub fn torchvision_dir(self) -> &'static str {
        match self {
            MnistVariant::Mnist => "MNIST",
            MnistVariant::FashionMnist => "FashionMNIST",
        }
    }
}

/// MNIST's classes: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The magic number of an idx file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an idx file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The images of an idx3 file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// `count × rows × cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// The stems of the image and label files of `split`; each may also end in `.gz`.
pub fn file_stems(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// The folder holding the idx files: `root`, `root/raw` or torchvision's `root/MNIST/raw`
/// (`root/FashionMNIST/raw`), the first with an image file of either split.
pub fn find(root: &Path, variant: MnistVariant) -> Option<PathBuf> {
    let candidates = [
        root.to_path_buf(),
        root.join("raw"),
        root.join(variant.torchvision_dir()).join("raw"),
    ];
    candidates.into_iter().find(|dir| {
        [Split::Train, Split::Test]
            .iter()
            .any(|&split| locate(dir, file_stems(split).0).is_some())
    })
}

/// Reads `split` of `variant` from the folder [`find`] finds under `root`, named e.g.
/// `fashion-mnist/train`: 1×rows×cols images (1×28×28 for the official files).
pub fn load(root: &Path, split: Split, variant: MnistVariant) -> Result<Dataset> {
    let dir = find(root, variant).ok_or_else(|| DataError::NotFound {
        path: root.to_path_buf(),
        hint: format!(
            "no {}[.gz] in it, in raw/ or in {}/raw/",
            file_stems(Split::Train).0,
            variant.torchvision_dir()
        ),
    })?;
    let (images, labels) = file_stems(split);
    let images = required(&dir, images)?;
    let labels = required(&dir, labels)?;
    Ok(load_files(&images, &labels, variant)?.with_name(format!("{}/{split}", variant.name())))
}

/// Reads an image file and its label file, named `<variant>/<image file name>`. There must be
/// as many labels as images, each below 10.
pub fn load_files(images: &Path, labels: &Path, variant: MnistVariant) -> Result<Dataset> {
    let idx = read_idx_images(images)?;
    let label_bytes = read_idx_labels(labels)?;
    if label_bytes.len() != idx.count {
        return Err(DataError::format(
            labels,
            format!(
                "{} labels but {} has {} images",
                label_bytes.len(),
                images.display(),
                idx.count
            ),
        ));
    }
    let classes = variant.classes();
    if let Some((index, &label)) = label_bytes
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes.len())
    {
        return Err(DataError::LabelOutOfRange {
            path: labels.into(),
            index,
            label: label.into(),
            num_classes: classes.len(),
        });
    }
    let name = images
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    Dataset::new(
        format!("{}/{name}", variant.name()),
        ImageShape::new(1, idx.rows, idx.cols),
        idx.pixels,
        label_bytes.into_iter().map(u32::from).collect(),
        classes.iter().map(|&c| c.to_owned()).collect(),
    )
}

/// Reads an idx3 file of `u8` images, raw or gzip-compressed.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_idx(path, IMAGES_MAGIC, "images")?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    if rows == 0 || cols == 0 {
        return Err(DataError::format(
            path,
            format!("header says images of {rows}×{cols} pixels"),
        ));
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an idx1 file of `u8` labels, raw or gzip-compressed.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_idx(path, LABELS_MAGIC, "labels")?.1)
}

/// The file `stem` or `stem.gz` in `dir`.
fn locate(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

fn required(dir: &Path, stem: &str) -> Result<PathBuf> {
    locate(dir, stem).ok_or_else(|| DataError::NotFound {
        path: dir.join(stem),
        hint: format!("nor {stem}.gz"),
    })
}

/// An idx file's reader: the file itself, or its decompressed content.
struct IdxReader {
    inner: Box<dyn Read>,
    gzip: bool,
}

impl IdxReader {
    fn open(path: &Path) -> Result<Self> {
        let mut file = BufReader::new(File::open(path).map_err(|e| DataError::io(path, e))?);
        let gzip = file
            .fill_buf()
            .map_err(|e| DataError::io(path, e))?
            .starts_with(&GZIP_MAGIC);
        let inner: Box<dyn Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        Ok(IdxReader { inner, gzip })
    }

    /// Reads up to `limit` bytes, or to the end.
    fn read_up_to(&mut self, path: &Path, limit: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.inner)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| self.error(path, e))?;
        Ok(out)
    }

    fn error(&self, path: &Path, e: std::io::Error) -> DataError {
        if self.gzip {
            DataError::format(path, format!("cannot decompress: {e}"))
        } else {
            DataError::io(path, e)
        }
    }

    /// `the file` or `the decompressed data`, for messages.
    fn what(&self) -> &'static str {
        if self.gzip {
            "the decompressed data"
        } else {
            "the file"
        }
    }
}

/// Reads an idx file of `u8` items with the given magic number: its dimensions and items.
fn read_idx(path: &Path, magic: u32, noun: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    let mut reader = IdxReader::open(path)?;
    // The magic number first: a file of another kind has a header of another length.
    let mut header = reader.read_up_to(path, 4)?;
    if header.len() == 4 {
        let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if found != magic {
            return Err(DataError::format(
                path,
                format!("magic number 0x{found:08x}, expected 0x{magic:08x} (u8 {noun})"),
            ));
        }
        header.extend(reader.read_up_to(path, header_len as u64 - 4)?);
    }
    if header.len() < header_len {
        return Err(DataError::format(
            path,
            format!(
                "{} has {} bytes, too few for the {header_len}-byte idx header",
                reader.what(),
                header.len()
            ),
        ));
    }
    let dims: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let described = describe(&dims, noun);
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            DataError::format(path, format!("header says {described}: too many bytes"))
        })?;
    // One byte past the expected size tells an oversized file without reading all of it.
    let data = reader.read_up_to(path, (expected as u64).saturating_add(1))?;
    if data.len() != expected {
        let found = if data.len() < expected {
            format!("only {} follow (truncated?)", data.len())
        } else {
            "more follow".into()
        };
        return Err(DataError::format(
            path,
            format!(
                "header says {described} ({expected} bytes after the {header_len}-byte header) but {found} in {}",
                reader.what()
            ),
        ));
    }
    Ok((dims, data))
}

/// `60000 images of 28×28` or `60000 labels`.
fn describe(dims: &[usize], noun: &str) -> String {
    match dims {
        [n, rows, cols] => format!("{n} {noun} of {rows}×{cols}"),
        _ => format!(
            "{} {noun}",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×")
        ),
    }
}
