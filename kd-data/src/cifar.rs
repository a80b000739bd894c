//! CIFAR-10 and CIFAR-100, in both official formats.
//!
//! * The binary version (`cifar-10-batches-bin/`, `cifar-100-binary/`): fixed-size records of
//!   one label byte (CIFAR-10) or two (CIFAR-100: coarse, then fine) and 3072 pixel bytes.
//! * The python version (`cifar-10-batches-py/`, `cifar-100-python/`): Python 2 pickles of a
//!   dict holding a numpy `uint8` array `data` (N×3072) and label lists, read by the crate's
//!   own pickle reader, which never executes anything; files re-pickled by Python 3 under any
//!   protocol read too.
//!
//! Either way an image is the 1024 red pixels row by row, then green, then blue: already the
//! CHW layout of [`Dataset`], so pixels are copied as they are.
//!
//! A file holding fewer records than the official one is read as it is (prefixes of the
//! official files are legal); a size that is not a whole number of records, a label outside
//! the classes or a label count that differs from the image count is an error naming the file.

use crate::dataset::{Dataset, ImageShape, Split};
use crate::error::{DataError, Result};
use crate::pickle::{self, Value, shape_str};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The shape of every CIFAR image.
pub const IMAGE_SHAPE: ImageShape = ImageShape::new(3, 32, 32);

/// Bytes of one image.
const PIXELS: usize = IMAGE_SHAPE.len();

/// Which dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CifarKind {
    /// CIFAR-10: 10 classes, 50,000 training and 10,000 test images.
    Cifar10,
    /// CIFAR-100: 100 fine classes grouped in 20 coarse ones, 50,000 + 10,000 images.
    Cifar100,
}

impl CifarKind {
    /// `cifar10` or `cifar100`.
    pub fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar10",
            CifarKind::Cifar100 => "cifar100",
        }
    }

    /// The number of classes under the given label set (CIFAR-10 has only one).
    pub fn num_classes(self, labels: Cifar100Labels) -> usize {
        official_classes(self, labels).len()
    }

    /// Bytes of one record of the binary version: the label bytes, then the pixels.
    pub fn record_len(self) -> usize {
        self.label_bytes() + PIXELS
    }

    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }
}

impl std::fmt::Display for CifarKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which labels of CIFAR-100 to use; CIFAR-10 ignores the choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cifar100Labels {
    /// The 100 fine classes (what papers mean by "CIFAR-100").
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Which of the official formats a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CifarFormat {
    /// `cifar-10-binary.tar.gz` / `cifar-100-binary.tar.gz`: `.bin` record files.
    Binary,
    /// `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`: pickled dicts.
    Python,
}

/// A folder holding one official CIFAR release, as [`find`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CifarDir {
    /// Which dataset.
    pub kind: CifarKind,
    /// Which format.
    pub format: CifarFormat,
    /// The folder itself (e.g. `…/cifar-10-batches-bin`).
    pub dir: PathBuf,
}

/// The folder names of the official archives, in the order [`find`] prefers them.
const LAYOUTS: [(&str, CifarKind, CifarFormat); 4] = [
    (
        "cifar-10-batches-bin",
        CifarKind::Cifar10,
        CifarFormat::Binary,
    ),
    (
        "cifar-10-batches-py",
        CifarKind::Cifar10,
        CifarFormat::Python,
    ),
    ("cifar-100-binary", CifarKind::Cifar100, CifarFormat::Binary),
    ("cifar-100-python", CifarKind::Cifar100, CifarFormat::Python),
];

impl CifarDir {
    /// A description of `dir` as holding `kind` in `format`, without looking at it.
    pub fn new(kind: CifarKind, format: CifarFormat, dir: impl Into<PathBuf>) -> Self {
        CifarDir {
            kind,
            format,
            dir: dir.into(),
        }
    }

    /// The data files of `split`, in the official order (CIFAR-10's train split is five files).
    pub fn data_files(&self, split: Split) -> Vec<PathBuf> {
        let ext = match self.format {
            CifarFormat::Binary => ".bin",
            CifarFormat::Python => "",
        };
        let stems: Vec<String> = match (self.kind, split) {
            (CifarKind::Cifar10, Split::Train) => {
                (1..=5).map(|i| format!("data_batch_{i}")).collect()
            }
            (CifarKind::Cifar10, Split::Test) => vec!["test_batch".into()],
            (CifarKind::Cifar100, split) => vec![split.as_str().into()],
        };
        stems.into_iter().map(|s| self.dir.join(s + ext)).collect()
    }

    /// The file naming the classes of `labels`.
    pub fn meta_file(&self, labels: Cifar100Labels) -> PathBuf {
        let name = match (self.kind, self.format, labels) {
            (CifarKind::Cifar10, CifarFormat::Binary, _) => "batches.meta.txt",
            (CifarKind::Cifar10, CifarFormat::Python, _) => "batches.meta",
            (CifarKind::Cifar100, CifarFormat::Binary, Cifar100Labels::Fine) => {
                "fine_label_names.txt"
            }
            (CifarKind::Cifar100, CifarFormat::Binary, Cifar100Labels::Coarse) => {
                "coarse_label_names.txt"
            }
            (CifarKind::Cifar100, CifarFormat::Python, _) => "meta",
        };
        self.dir.join(name)
    }

    /// The class names from the meta file, or the official list when the folder has none.
    pub fn class_names(&self, labels: Cifar100Labels) -> Result<Vec<String>> {
        let meta = self.meta_file(labels);
        if meta.is_file() {
            read_class_names(&meta, self.kind, labels)
        } else {
            Ok(official_classes(self.kind, labels)
                .iter()
                .map(|&s| s.to_owned())
                .collect())
        }
    }

    /// Reads `split`: every data file of it, in order, named e.g. `cifar10/train`
    /// (`cifar100-coarse/train` for the coarse labels).
    pub fn load(&self, split: Split, labels: Cifar100Labels) -> Result<Dataset> {
        let mut records = Records::default();
        for path in self.data_files(split) {
            records.append(read_records(&path, self.kind, self.format, labels)?);
        }
        records.into_dataset(
            format!("{}/{split}", dataset_name(self.kind, labels)),
            self.class_names(labels)?,
        )
    }

    /// Whether `dir` holds a data or meta file of this layout.
    fn looks_present(&self) -> bool {
        let mut files = self.data_files(Split::Train);
        files.extend(self.data_files(Split::Test));
        files.push(self.meta_file(Cifar100Labels::Fine));
        files.iter().any(|f| f.is_file())
    }
}

/// The first CIFAR folder [`find_all`] finds.
pub fn find(root: &Path) -> Option<CifarDir> {
    find_all(root).into_iter().next()
}

/// Every CIFAR folder at `root` or in it: `root` itself when it holds the files of an official
/// release, then `root/cifar-10-batches-bin`, `root/cifar-10-batches-py`, `root/cifar-100-binary`
/// and `root/cifar-100-python` when they do. A folder counts when it has at least one data or
/// meta file of the release; missing files are reported when it is loaded.
pub fn find_all(root: &Path) -> Vec<CifarDir> {
    let at_root = LAYOUTS
        .iter()
        .map(|&(_, kind, format)| CifarDir::new(kind, format, root));
    let inside = LAYOUTS
        .iter()
        .map(|&(name, kind, format)| CifarDir::new(kind, format, root.join(name)));
    at_root
        .chain(inside)
        .filter(CifarDir::looks_present)
        .collect()
}

/// Reads `split` of `kind` from the first folder of that kind [`find_all`] finds under `root`
/// (the binary version when both are there).
pub fn load(root: &Path, kind: CifarKind, split: Split, labels: Cifar100Labels) -> Result<Dataset> {
    let Some(dir) = find_all(root).into_iter().find(|d| d.kind == kind) else {
        let names: Vec<&str> = LAYOUTS
            .iter()
            .filter(|l| l.1 == kind)
            .map(|l| l.0)
            .collect();
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
            hint: format!(
                "no {kind} files in it, nor a {} folder: unpack the official archive here",
                names.join(" or ")
            ),
        });
    };
    dir.load(split, labels)
}

/// Reads one file of the binary version (`data_batch_1.bin`, `train.bin`, or a prefix of
/// one), named `<kind>/<file stem>`. Class names come from the meta file beside it, or are the
/// official ones.
pub fn load_binary_file(path: &Path, kind: CifarKind, labels: Cifar100Labels) -> Result<Dataset> {
    load_file(path, kind, CifarFormat::Binary, labels)
}

/// Reads one file of the python version (`data_batch_1`, `train`...), named
/// `<kind>/<file stem>`. Class names come from the meta file beside it, or are the official ones.
pub fn load_python_file(path: &Path, kind: CifarKind, labels: Cifar100Labels) -> Result<Dataset> {
    load_file(path, kind, CifarFormat::Python, labels)
}

fn load_file(
    path: &Path,
    kind: CifarKind,
    format: CifarFormat,
    labels: Cifar100Labels,
) -> Result<Dataset> {
    let records = read_records(path, kind, format, labels)?;
    let dir = CifarDir::new(kind, format, path.parent().unwrap_or(Path::new("")));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    records.into_dataset(
        format!("{}/{stem}", dataset_name(kind, labels)),
        dir.class_names(labels)?,
    )
}

/// Reads class names from a meta file: a text file of one name a line (`batches.meta.txt`,
/// `fine_label_names.txt`, `coarse_label_names.txt`: told by the `.txt` extension) or a
/// pickled dict (`batches.meta`, `meta`). There must be one name per class.
pub fn read_class_names(
    path: &Path,
    kind: CifarKind,
    labels: Cifar100Labels,
) -> Result<Vec<String>> {
    let names = if path.extension().is_some_and(|e| e == "txt") {
        text_class_names(path)?
    } else {
        pickled_class_names(path, kind, labels)?
    };
    let expected = kind.num_classes(labels);
    if names.len() != expected {
        return Err(DataError::format(
            path,
            format!("{} class names, expected {expected}", names.len()),
        ));
    }
    Ok(names)
}

/// The official class names, in label order.
pub fn official_classes(kind: CifarKind, labels: Cifar100Labels) -> &'static [&'static str] {
    match (kind, labels) {
        (CifarKind::Cifar10, _) => &CIFAR10_CLASSES,
        (CifarKind::Cifar100, Cifar100Labels::Fine) => &CIFAR100_FINE_CLASSES,
        (CifarKind::Cifar100, Cifar100Labels::Coarse) => &CIFAR100_COARSE_CLASSES,
    }
}

fn dataset_name(kind: CifarKind, labels: Cifar100Labels) -> &'static str {
    match (kind, labels) {
        (CifarKind::Cifar100, Cifar100Labels::Coarse) => "cifar100-coarse",
        _ => kind.name(),
    }
}

/// Decoded images and labels of one or more files.
#[derive(Default)]
struct Records {
    images: Vec<u8>,
    labels: Vec<u32>,
}

impl Records {
    fn append(&mut self, mut more: Records) {
        if self.labels.is_empty() {
            *self = more;
        } else {
            self.images.append(&mut more.images);
            self.labels.append(&mut more.labels);
        }
    }

    fn into_dataset(self, name: String, classes: Vec<String>) -> Result<Dataset> {
        Dataset::new(name, IMAGE_SHAPE, self.images, self.labels, classes)
    }
}

fn read_records(
    path: &Path,
    kind: CifarKind,
    format: CifarFormat,
    labels: Cifar100Labels,
) -> Result<Records> {
    match format {
        CifarFormat::Binary => read_binary(path, kind, labels),
        CifarFormat::Python => read_python(path, kind, labels),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// A label checked against the number of classes; `index` is the record's index in the file.
fn check_label(path: &Path, index: usize, label: i64, num_classes: usize) -> Result<u32> {
    if label < 0 {
        return Err(DataError::format(
            path,
            format!("record {index} has label {label}, outside 0..{num_classes}"),
        ));
    }
    if label as u64 >= num_classes as u64 {
        return Err(DataError::LabelOutOfRange {
            path: path.into(),
            index,
            label: label as u64,
            num_classes,
        });
    }
    Ok(label as u32)
}

fn read_binary(path: &Path, kind: CifarKind, labels: Cifar100Labels) -> Result<Records> {
    let mut data = read_file(path)?;
    let record = kind.record_len();
    if data.is_empty() {
        return Err(DataError::format(
            path,
            format!("empty file: expected {record}-byte {kind} records"),
        ));
    }
    if data.len() % record != 0 {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records",
                data.len()
            ),
        ));
    }
    let n = data.len() / record;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = i * record;
        out.push(binary_label(
            path,
            i,
            &data[start..start + kind.label_bytes()],
            kind,
            labels,
        )?);
        // Dropping the label bytes in place: each image moves down over bytes already read.
        data.copy_within(start + kind.label_bytes()..start + record, i * PIXELS);
    }
    data.truncate(n * PIXELS);
    Ok(Records {
        images: data,
        labels: out,
    })
}

/// The chosen label of a binary record; CIFAR-100's other label is checked too, as a sign of a
/// corrupt file.
fn binary_label(
    path: &Path,
    index: usize,
    bytes: &[u8],
    kind: CifarKind,
    labels: Cifar100Labels,
) -> Result<u32> {
    let check = |byte: u8, which: Cifar100Labels| {
        check_label(path, index, byte.into(), kind.num_classes(which))
    };
    match kind {
        CifarKind::Cifar10 => check(bytes[0], labels),
        CifarKind::Cifar100 => {
            let coarse = check(bytes[0], Cifar100Labels::Coarse)?;
            let fine = check(bytes[1], Cifar100Labels::Fine)?;
            Ok(match labels {
                Cifar100Labels::Fine => fine,
                Cifar100Labels::Coarse => coarse,
            })
        }
    }
}

/// The dict a python-version file pickles.
fn load_pickled_dict<'a>(path: &Path, bytes: &'a [u8]) -> Result<Value<'a>> {
    if bytes.is_empty() {
        return Err(DataError::format(
            path,
            "empty file: expected a pickled dict",
        ));
    }
    let value = pickle::load(bytes).map_err(|e| DataError::format(path, e.to_string()))?;
    match value {
        Value::Dict(_) => Ok(value),
        other => Err(DataError::format(
            path,
            format!("the pickle holds a {}, expected a dict", other.kind()),
        )),
    }
}

fn take_entry<'a>(path: &Path, dict: &mut Value<'a>, key: &str) -> Result<Value<'a>> {
    dict.take_entry(key).ok_or_else(|| {
        DataError::format(
            path,
            format!(
                "no '{key}' in the pickled dict (its keys: {})",
                dict.text_keys().join(", ")
            ),
        )
    })
}

fn read_python(path: &Path, kind: CifarKind, labels: Cifar100Labels) -> Result<Records> {
    let bytes = read_file(path)?;
    let mut dict = load_pickled_dict(path, &bytes)?;
    let images = python_images(path, take_entry(path, &mut dict, "data")?)?;
    let key = match (kind, labels) {
        (CifarKind::Cifar10, _) => "labels",
        (CifarKind::Cifar100, Cifar100Labels::Fine) => "fine_labels",
        (CifarKind::Cifar100, Cifar100Labels::Coarse) => "coarse_labels",
    };
    let raw = python_labels(path, take_entry(path, &mut dict, key)?, key)?;
    let n = images.len() / PIXELS;
    if raw.len() != n {
        return Err(DataError::format(
            path,
            format!("'data' has {n} images but '{key}' has {} labels", raw.len()),
        ));
    }
    let num_classes = kind.num_classes(labels);
    let labels = raw
        .iter()
        .enumerate()
        .map(|(i, &l)| check_label(path, i, l, num_classes))
        .collect::<Result<_>>()?;
    Ok(Records { images, labels })
}

/// The pixels of `data`: a `uint8` array of N×3072 (or N×3×32×32, the same bytes).
fn python_images(path: &Path, data: Value<'_>) -> Result<Vec<u8>> {
    let Value::NdArray(array) = data else {
        return Err(DataError::format(
            path,
            format!("'data' is a {}, expected a numpy array", data.kind()),
        ));
    };
    if !array.dtype.is_u8() {
        return Err(DataError::format(
            path,
            format!("'data' has dtype {}, expected uint8 (|u1)", array.dtype),
        ));
    }
    if !matches!(array.shape.as_slice(), [_, PIXELS] | [_, 3, 32, 32]) {
        return Err(DataError::format(
            path,
            format!(
                "'data' has shape {}, expected (N, {PIXELS})",
                shape_str(&array.shape)
            ),
        ));
    }
    Ok(array.into_c_order().into_owned())
}

/// The labels under `key`: a list of ints, as the official files have, or a 1-D integer array.
fn python_labels(path: &Path, value: Value<'_>, key: &str) -> Result<Vec<i64>> {
    let not_ints = |what: String| {
        DataError::format(path, format!("'{key}' {what}, expected a list of integers"))
    };
    match value {
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_int()
                    .ok_or_else(|| not_ints(format!("[{i}] is a {}", v.kind())))
            })
            .collect(),
        Value::NdArray(a) if a.shape.len() == 1 => a
            .to_ints()
            .ok_or_else(|| not_ints(format!("is an array of dtype {}", a.dtype))),
        other => Err(not_ints(format!("is a {}", other.kind()))),
    }
}

fn text_class_names(path: &Path) -> Result<Vec<String>> {
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        DataError::format(path, format!("not UTF-8 text (byte {})", e.valid_up_to()))
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn pickled_class_names(
    path: &Path,
    kind: CifarKind,
    labels: Cifar100Labels,
) -> Result<Vec<String>> {
    let bytes = read_file(path)?;
    let mut dict = load_pickled_dict(path, &bytes)?;
    let key = match (kind, labels) {
        (CifarKind::Cifar10, _) => "label_names",
        (CifarKind::Cifar100, Cifar100Labels::Fine) => "fine_label_names",
        (CifarKind::Cifar100, Cifar100Labels::Coarse) => "coarse_label_names",
    };
    let names = take_entry(path, &mut dict, key)?;
    let items = names.as_items().ok_or_else(|| {
        DataError::format(
            path,
            format!("'{key}' is a {}, expected a list of names", names.kind()),
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_text().map(str::to_owned).ok_or_else(|| {
                DataError::format(path, format!("'{key}'[{i}] is a {}, not text", v.kind()))
            })
        })
        .collect()
}

/// CIFAR-10's classes, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100's fine classes, in label order (alphabetical).
pub const CIFAR100_FINE_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// CIFAR-100's coarse classes (superclasses), in label order.
pub const CIFAR100_COARSE_CLASSES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];
