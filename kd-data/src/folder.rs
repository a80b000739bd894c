//! ImageFolder trees and Tiny-ImageNet, decoded once into memory and cached on disk.
//!
//! * ImageFolder (torchvision's layout): `root/<class>/**/<image>`. Classes are the sorted
//!   subdirectory names and images are listed in torchvision's order (sorted by directory, then
//!   by file name), so label `i` and sample `j` mean the same thing here and in the reference
//!   code. When `root` has `train/` and `test/` (or `val/`) subfolders they are the two
//!   [`Split`]s; otherwise `root` itself is the one split and is returned for either.
//! * Tiny-ImageNet: `wnids.txt`, `train/<wnid>/images/*.JPEG`, and the labelled
//!   `val/images/*.JPEG` with `val/val_annotations.txt`, which is the [`Split::Test`] split.
//!   Labels index the sorted wnids (what an ImageFolder over `train/` gives); class names come
//!   from `words.txt` when it is there.
//!
//! Every image is decoded once, in parallel, into one contiguous CHW buffer. Decoding tens of
//! thousands of JPEGs takes far longer than reading back a flat file, so the result is written to
//! a cache file (see [`CachePolicy`]) that later loads read instead, as long as the file list,
//! sizes, modification times and options still match.
//!
//! Two deliberate departures from torchvision: names starting with `.` are skipped (so the cache
//! directory, `.ipynb_checkpoints` and macOS `._*` files are never taken for data), and only
//! PNG and JPEG can be decoded: a file with another image extension torchvision accepts (`.bmp`,
//! `.webp`, ...) is listed and then fails with [`DataError::Decode`] rather than being silently
//! dropped.

use crate::dataset::{Dataset, ImageShape, Split};
use crate::error::{DataError, Result};
use image::imageops::FilterType;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The file extensions torchvision's ImageFolder accepts, compared case-insensitively.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// The largest target side accepted: far beyond any dataset, small enough that sizes never overflow.
const MAX_SIDE: usize = 1 << 16;

/// Whether to read and write the decoded-image cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// Read a valid cache file; otherwise decode and write one.
    #[default]
    Use,
    /// Ignore any cache file, decode, and write a fresh one.
    Refresh,
    /// Neither read nor write a cache file.
    Off,
}

/// How to turn image files into a [`Dataset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Resize every image to `(height, width)`; `None` requires all images to have one size.
    ///
    /// Resizing is exact (no aspect-preserving shorter-side rule) with the `image` crate's
    /// triangle (bilinear) filter, whose kernel widens when shrinking, so downscaling is
    /// antialiased like torchvision's `Resize` (bilinear, `antialias=True`) on PIL images. The
    /// pixels are close to PIL's but not bit-identical.
    pub size: Option<(usize, usize)>,
    /// 3 for RGB, or 1 for grayscale with PIL's `convert("L")` weights
    /// (L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16, ITU-R 601-2).
    pub channels: usize,
    /// Whether to use the disk cache.
    pub cache: CachePolicy,
    /// Where cache files go; `None` means a `.kd-cache` directory inside the dataset root.
    /// Either way a cache that cannot be written is skipped (see [`CacheOutcome::Skipped`]).
    pub cache_dir: Option<PathBuf>,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            size: None,
            channels: 3,
            cache: CachePolicy::Use,
            cache_dir: None,
        }
    }
}

impl FolderOptions {
    fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::invalid(
                "channels",
                self.channels,
                "must be 1 (grayscale) or 3 (RGB)",
            ));
        }
        match self.size {
            Some((h, w)) if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE => {
                Err(DataError::invalid(
                    "size",
                    format!("{h}×{w}"),
                    format!("height and width must be in 1..={MAX_SIDE}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What happened with the cache during one load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The images were read from this cache file; nothing was decoded.
    Hit(PathBuf),
    /// The images were decoded and this cache file written (there was none, or the policy was
    /// [`CachePolicy::Refresh`]).
    Written(PathBuf),
    /// The cache file was unusable (stale, truncated, corrupt: `reason` says which); the images
    /// were decoded and the file rewritten.
    Rebuilt {
        /// The cache file.
        path: PathBuf,
        /// Why the old file was rejected.
        reason: String,
    },
    /// The images were decoded but no cache file could be written (read-only tree, full disk);
    /// this is not an error.
    Skipped {
        /// The cache file that was attempted.
        path: PathBuf,
        /// Why it could not be written.
        reason: String,
    },
    /// The policy was [`CachePolicy::Off`].
    Off,
}

/// A report of one load, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadStats {
    /// How many image files were decoded (0 when the cache was used).
    pub decoded: usize,
    /// What happened with the cache.
    pub cache: CacheOutcome,
}

impl LoadStats {
    /// Whether the images came from the cache file.
    pub fn from_cache(&self) -> bool {
        matches!(self.cache, CacheOutcome::Hit(_))
    }
}

/// Whether `root` looks like an ImageFolder tree: its training split (`root/train`, or `root`
/// itself when unsplit; `test/` or `val/` when only a test split exists) has a class
/// subdirectory holding an image file directly. Tiny-ImageNet is not one: its `train/<wnid>/`
/// folders hold `images/` rather than images.
pub fn is_image_folder(root: &Path) -> bool {
    let Ok(dir) = split_dir(root, Split::Train).or_else(|_| split_dir(root, Split::Test)) else {
        return false;
    };
    visible_subdirs(&dir).is_ok_and(|classes| classes.iter().any(|c| holds_image(&dir.join(c))))
}

/// Whether `root` looks like Tiny-ImageNet: a `wnids.txt` beside `train/` or
/// `val/val_annotations.txt`.
pub fn is_tiny_imagenet(root: &Path) -> bool {
    root.join("wnids.txt").is_file()
        && (root.join("train").is_dir() || root.join("val").join("val_annotations.txt").is_file())
}

/// Loads one split of an ImageFolder tree (see the module documentation for the layout).
pub fn load_image_folder(root: &Path, split: Split, opts: &FolderOptions) -> Result<Dataset> {
    load_image_folder_with_stats(root, split, opts).map(|(ds, _)| ds)
}

/// [`load_image_folder`], also saying how many images were decoded and what the cache did.
pub fn load_image_folder_with_stats(
    root: &Path,
    split: Split,
    opts: &FolderOptions,
) -> Result<(Dataset, LoadStats)> {
    opts.validate()?;
    let listing = image_folder_listing(root, split)?;
    load_listing(&listing, split, opts)
}

/// Loads Tiny-ImageNet's `train` split, or its labelled `val` set as [`Split::Test`].
///
/// The val images are ordered by label, then file name: the order of an ImageFolder over the
/// val set sorted into class folders, which is how the reference code bases read it.
pub fn load_tiny_imagenet(root: &Path, split: Split, opts: &FolderOptions) -> Result<Dataset> {
    load_tiny_imagenet_with_stats(root, split, opts).map(|(ds, _)| ds)
}

/// [`load_tiny_imagenet`], also saying how many images were decoded and what the cache did.
pub fn load_tiny_imagenet_with_stats(
    root: &Path,
    split: Split,
    opts: &FolderOptions,
) -> Result<(Dataset, LoadStats)> {
    opts.validate()?;
    let listing = tiny_imagenet_listing(root, split)?;
    load_listing(&listing, split, opts)
}

/// Tiny-ImageNet's classes in label order: `(wnid, name)`, the name from `words.txt` or the
/// wnid itself when `words.txt` is absent or lacks it.
pub fn tiny_imagenet_classes(root: &Path) -> Result<Vec<(String, String)>> {
    check_root(root, "Tiny-ImageNet: wnids.txt, train/<wnid>/images/, val/")?;
    let wnids = read_wnids(root)?;
    let names = class_names(root, &wnids)?;
    Ok(wnids.into_iter().zip(names).collect())
}

// ---------------------------------------------------------------------------------------------
// Listing the files

/// One image file with the facts the cache fingerprint relies on.
struct FileEntry {
    path: PathBuf,
    /// Relative to the dataset root, `/`-separated: stable when the tree moves.
    rel: String,
    size: u64,
    mtime_ns: u128,
    label: u32,
}

/// Everything known about a split before decoding.
struct Listing {
    name: String,
    /// `"imagefolder"` or `"tinyimagenet"`: part of the cache key.
    kind: &'static str,
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<FileEntry>,
}

fn check_root(root: &Path, layout: &str) -> Result<()> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(DataError::format(
            root,
            format!("not a directory (expected {layout})"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::NotFound {
            path: root.to_path_buf(),
            hint: format!("expected {layout}"),
        }),
        Err(e) => Err(DataError::io(root, e)),
    }
}

fn dataset_name(root: &Path, split: Split) -> String {
    let base = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    format!("{base}/{split}")
}

/// The directory holding the classes of `split`: `root/train`, `root/test` or `root/val` when
/// the tree is split, else `root`.
fn split_dir(root: &Path, split: Split) -> Result<PathBuf> {
    let split_names: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["test", "val"],
    };
    let is_split = ["train", "test", "val"]
        .iter()
        .any(|d| root.join(d).is_dir());
    if !is_split {
        return Ok(root.to_path_buf());
    }
    split_names
        .iter()
        .map(|d| root.join(d))
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::NotFound {
            path: root.join(split_names[0]),
            hint: format!(
                "the tree has split subfolders but none for the {split} split (looked for {})",
                split_names.join("/, ") + "/"
            ),
        })
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The visible entries of `dir`, with metadata that follows symbolic links (torchvision follows
/// them too).
fn visible_entries(dir: &Path) -> Result<Vec<(String, fs::Metadata)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| DataError::io(&path, e))?;
        out.push((name, meta));
    }
    Ok(out)
}

fn visible_subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut dirs: Vec<String> = visible_entries(dir)?
        .into_iter()
        .filter(|(_, m)| m.is_dir())
        .map(|(name, _)| name)
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn holds_image(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !is_hidden(&name) && has_image_extension(&name) && e.path().is_file()
        })
    })
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    // A file system without modification times still gets a cache keyed on paths and sizes.
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The image files under `dir` (`rel_dir` relative to the dataset root), recursively when
/// `recursive`, in torchvision's order: by directory path, then by file name.
fn image_files(dir: &Path, rel_dir: &str, label: u32, recursive: bool) -> Result<Vec<FileEntry>> {
    let mut found: Vec<(String, String, PathBuf, fs::Metadata)> = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), rel_dir.to_string())];
    while let Some((d, rel)) = pending.pop() {
        for (name, meta) in visible_entries(&d)? {
            if meta.is_dir() {
                if recursive {
                    pending.push((d.join(&name), format!("{rel}/{name}")));
                }
            } else if has_image_extension(&name) {
                found.push((rel.clone(), name.clone(), d.join(&name), meta));
            }
        }
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(found
        .into_iter()
        .map(|(rel, name, path, meta)| FileEntry {
            path,
            rel: format!("{rel}/{name}"),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            label,
        })
        .collect())
}

fn no_images_error(dir: &Path, class: &str) -> DataError {
    DataError::format(
        dir,
        format!(
            "class `{class}` has no image files (looked for extensions {})",
            IMAGE_EXTENSIONS.join(", ")
        ),
    )
}

fn image_folder_listing(root: &Path, split: Split) -> Result<Listing> {
    check_root(
        root,
        "an ImageFolder tree <root>/[train|test/]<class>/<image>",
    )?;
    let dir = split_dir(root, split)?;
    let rel_base = dir
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let classes = visible_subdirs(&dir)?;
    if classes.is_empty() {
        return Err(DataError::format(
            &dir,
            "no class subdirectories (expected <dir>/<class>/<image files>)",
        ));
    }
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        let rel = if rel_base.is_empty() {
            class.clone()
        } else {
            format!("{rel_base}/{class}")
        };
        let found = image_files(&class_dir, &rel, label as u32, true)?;
        if found.is_empty() {
            return Err(no_images_error(&class_dir, class));
        }
        files.extend(found);
    }
    Ok(Listing {
        name: dataset_name(root, split),
        kind: "imagefolder",
        root: root.to_path_buf(),
        classes,
        files,
    })
}

/// The wnids of `wnids.txt`, sorted (label order).
fn read_wnids(root: &Path) -> Result<Vec<String>> {
    let path = root.join("wnids.txt");
    let text = fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let wnid = line.trim();
        if wnid.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(wnid, i + 1) {
            return Err(DataError::format(
                &path,
                format!(
                    "line {}: wnid `{wnid}` already listed at line {first}",
                    i + 1
                ),
            ));
        }
    }
    if seen.is_empty() {
        return Err(DataError::format(&path, "no wnids"));
    }
    let mut wnids: Vec<String> = seen.into_keys().map(str::to_string).collect();
    wnids.sort();
    Ok(wnids)
}

/// The `words.txt` name of each wnid, or the wnid itself.
fn class_names(root: &Path, wnids: &[String]) -> Result<Vec<String>> {
    let path = root.join("words.txt");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(wnids.to_vec()),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    let mut words: HashMap<&str, &str> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (wnid, name) = line.split_once('\t').ok_or_else(|| {
            DataError::format(
                &path,
                format!("line {}: expected `<wnid>\\t<words>`, found no tab", i + 1),
            )
        })?;
        words.insert(wnid.trim(), name.trim());
    }
    Ok(wnids
        .iter()
        .map(|w| {
            words
                .get(w.as_str())
                .filter(|n| !n.is_empty())
                .map_or_else(|| w.clone(), |n| n.to_string())
        })
        .collect())
}

fn tiny_imagenet_listing(root: &Path, split: Split) -> Result<Listing> {
    check_root(root, "Tiny-ImageNet: wnids.txt, train/<wnid>/images/, val/")?;
    let wnids = read_wnids(root)?;
    let classes = class_names(root, &wnids)?;
    let files = match split {
        Split::Train => tiny_train_files(root, &wnids)?,
        Split::Test => tiny_val_files(root, &wnids)?,
    };
    Ok(Listing {
        name: dataset_name(root, split),
        kind: "tinyimagenet",
        root: root.to_path_buf(),
        classes,
        files,
    })
}

fn tiny_train_files(root: &Path, wnids: &[String]) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    for (label, wnid) in wnids.iter().enumerate() {
        let dir = root.join("train").join(wnid).join("images");
        if !dir.is_dir() {
            return Err(DataError::NotFound {
                path: dir,
                hint: format!(
                    "wnids.txt lists `{wnid}`; Tiny-ImageNet keeps its images in train/<wnid>/images/"
                ),
            });
        }
        let found = image_files(&dir, &format!("train/{wnid}/images"), label as u32, false)?;
        if found.is_empty() {
            return Err(no_images_error(&dir, wnid));
        }
        files.extend(found);
    }
    Ok(files)
}

/// One parsed line of `val_annotations.txt`.
struct Annotation<'a> {
    line: usize,
    file: &'a str,
    label: u32,
}

fn parse_annotation<'a>(
    path: &Path,
    line_no: usize,
    line: &'a str,
    labels: &HashMap<&str, u32>,
) -> Result<Annotation<'a>> {
    let fields: Vec<&str> = line.split('\t').collect();
    let bad = |what: String| DataError::format(path, format!("line {line_no}: {what}"));
    if fields.len() != 6 {
        return Err(bad(format!(
            "expected 6 tab-separated fields (file, wnid, x0, y0, x1, y1), found {}",
            fields.len()
        )));
    }
    if let Some(f) = fields[2..]
        .iter()
        .find(|f| f.trim().parse::<i64>().is_err())
    {
        return Err(bad(format!("box coordinate `{f}` is not an integer")));
    }
    let file = fields[0].trim();
    if file.is_empty() || file.contains(['/', '\\']) || is_hidden(file) {
        return Err(bad(format!("`{file}` is not a plain file name")));
    }
    let wnid = fields[1].trim();
    let label = *labels
        .get(wnid)
        .ok_or_else(|| bad(format!("wnid `{wnid}` is not in wnids.txt")))?;
    Ok(Annotation {
        line: line_no,
        file,
        label,
    })
}

fn tiny_val_files(root: &Path, wnids: &[String]) -> Result<Vec<FileEntry>> {
    let ann_path = root.join("val").join("val_annotations.txt");
    let text = fs::read_to_string(&ann_path).map_err(|e| DataError::io(&ann_path, e))?;
    let labels: HashMap<&str, u32> = wnids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as u32))
        .collect();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    let mut files = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ann = parse_annotation(&ann_path, i + 1, line, &labels)?;
        if let Some(first) = first_line.insert(ann.file, ann.line) {
            return Err(DataError::format(
                &ann_path,
                format!(
                    "line {}: `{}` already listed at line {first}",
                    ann.line, ann.file
                ),
            ));
        }
        files.push(val_entry(root, &ann_path, &ann)?);
    }
    if files.is_empty() {
        return Err(DataError::format(&ann_path, "no annotations"));
    }
    files.sort_by(|a, b| (a.label, &a.rel).cmp(&(b.label, &b.rel)));
    Ok(files)
}

fn val_entry(root: &Path, ann_path: &Path, ann: &Annotation) -> Result<FileEntry> {
    let path = root.join("val").join("images").join(ann.file);
    let meta = match fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Err(DataError::format(&path, "not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::NotFound {
                path,
                hint: format!("listed in {} line {}", ann_path.display(), ann.line),
            });
        }
        Err(e) => return Err(DataError::io(&path, e)),
    };
    Ok(FileEntry {
        rel: format!("val/images/{}", ann.file),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        label: ann.label,
        path,
    })
}

// ---------------------------------------------------------------------------------------------
// Loading: cache or decode

fn load_listing(
    listing: &Listing,
    split: Split,
    opts: &FolderOptions,
) -> Result<(Dataset, LoadStats)> {
    let labels: Vec<u32> = listing.files.iter().map(|f| f.label).collect();
    let fingerprint = cache::fingerprint(listing, split, opts);
    let cache_path = cache::path(listing, split, opts);
    let mut rejected = None;
    if opts.cache == CachePolicy::Use {
        match cache::read(&cache_path, &fingerprint, listing, opts) {
            cache::Cached::Valid(shape, images) => {
                let ds = Dataset::new(
                    listing.name.clone(),
                    shape,
                    images,
                    labels,
                    listing.classes.clone(),
                )?;
                return Ok((
                    ds,
                    LoadStats {
                        decoded: 0,
                        cache: CacheOutcome::Hit(cache_path),
                    },
                ));
            }
            cache::Cached::Invalid(reason) => rejected = Some(reason),
            cache::Cached::Absent => {}
        }
    }
    let (shape, images) = decode_all(&listing.files, opts)?;
    let outcome = match opts.cache {
        CachePolicy::Off => CacheOutcome::Off,
        _ => match cache::write(&cache_path, &fingerprint, listing, shape, &images) {
            Err(reason) => CacheOutcome::Skipped {
                path: cache_path,
                reason,
            },
            Ok(()) => match rejected {
                Some(reason) => CacheOutcome::Rebuilt {
                    path: cache_path,
                    reason,
                },
                None => CacheOutcome::Written(cache_path),
            },
        },
    };
    let decoded = listing.files.len();
    let ds = Dataset::new(
        listing.name.clone(),
        shape,
        images,
        labels,
        listing.classes.clone(),
    )?;
    Ok((
        ds,
        LoadStats {
            decoded,
            cache: outcome,
        },
    ))
}

/// Decodes every file into one buffer. All images must end up the same size; the error names
/// the first file (in dataset order) that fails.
fn decode_all(files: &[FileEntry], opts: &FolderOptions) -> Result<(ImageShape, Vec<u8>)> {
    let Some(first_file) = files.first() else {
        return Err(DataError::invalid("image files", 0, "nothing to decode"));
    };
    let first = decode_rgb(&first_file.path, opts)?;
    let shape = ImageShape::new(
        opts.channels,
        first.height() as usize,
        first.width() as usize,
    );
    let len = shape.len();
    let mut images = vec![0u8; files.len() * len];
    write_chw(&first, opts.channels, &mut images[..len]);
    let first_error = images[len..]
        .par_chunks_mut(len)
        .zip(files[1..].par_iter())
        .enumerate()
        .filter_map(|(i, (out, file))| {
            decode_into(file, first_file, shape, opts, out)
                .err()
                .map(|e| (i, e))
        })
        .min_by_key(|(i, _)| *i);
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok((shape, images)),
    }
}

fn decode_into(
    file: &FileEntry,
    first: &FileEntry,
    shape: ImageShape,
    opts: &FolderOptions,
    out: &mut [u8],
) -> Result<()> {
    let rgb = decode_rgb(&file.path, opts)?;
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);
    if (h, w) != (shape.height, shape.width) {
        return Err(DataError::format(
            &file.path,
            format!(
                "image is {h}×{w} (height×width) but the first image, {}, is {}×{}; give a target size to resize them",
                first.path.display(),
                shape.height,
                shape.width
            ),
        ));
    }
    write_chw(&rgb, opts.channels, out);
    Ok(())
}

/// Decodes by content (not extension), to 8-bit RGB, resized when the options say so.
fn decode_rgb(path: &Path, opts: &FolderOptions) -> Result<image::RgbImage> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    let decoded = image::load_from_memory(&bytes).map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let rgb = decoded.into_rgb8();
    Ok(match opts.size {
        Some((h, w)) if (h as u32, w as u32) != (rgb.height(), rgb.width()) => {
            image::imageops::resize(&rgb, w as u32, h as u32, FilterType::Triangle)
        }
        _ => rgb,
    })
}

/// Writes an interleaved RGB image as CHW planes: three, or one of PIL's luma.
fn write_chw(rgb: &image::RgbImage, channels: usize, out: &mut [u8]) {
    let plane = (rgb.width() * rgb.height()) as usize;
    for (i, px) in rgb.pixels().enumerate() {
        let [r, g, b] = px.0;
        if channels == 1 {
            out[i] = ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8;
        } else {
            out[i] = r;
            out[plane + i] = g;
            out[2 * plane + i] = b;
        }
    }
}

/// The cache file: a header, the labels and the pixels.
///
/// Layout, little-endian: magic `KDCACHE\0`, version `u32`, fingerprint (16 bytes, md5), channels,
/// height, width (`u32` each), sample count `u64`, class count `u32`, then each class name as a
/// `u32` byte length and UTF-8 bytes; then one `u32` label per sample; then the images, CHW,
/// back to back. A file whose size, magic, version, fingerprint, header or labels disagree with
/// the current listing is rejected and rebuilt, never trusted.
mod cache {
    use super::{FolderOptions, Listing};
    use crate::dataset::{ImageShape, Split};
    use md5::{Digest, Md5};
    use std::fs;
    use std::io::{BufReader, BufWriter, Read, Write};
    use std::path::{Path, PathBuf};

    const MAGIC: &[u8; 8] = b"KDCACHE\0";
    const VERSION: u32 = 1;
    /// Sanity bounds so a corrupt header cannot ask for absurd allocations.
    const MAX_CLASSES: usize = 1 << 20;
    const MAX_NAME: usize = 1 << 16;

    /// The outcome of reading a cache file.
    pub(super) enum Cached {
        Absent,
        Invalid(String),
        Valid(ImageShape, Vec<u8>),
    }

    fn hash_str(h: &mut Md5, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }

    fn hash_options(h: &mut Md5, listing: &Listing, split: Split, opts: &FolderOptions) {
        h.update(VERSION.to_le_bytes());
        hash_str(h, listing.kind);
        hash_str(h, split.as_str());
        let (sh, sw) = opts.size.unwrap_or((0, 0));
        for v in [opts.channels, sh, sw] {
            h.update((v as u64).to_le_bytes());
        }
    }

    /// Changes whenever the output could: options, classes, and each file's path, size,
    /// modification time and label. Paths are relative so a moved tree keeps its cache.
    pub(super) fn fingerprint(listing: &Listing, split: Split, opts: &FolderOptions) -> [u8; 16] {
        let mut h = Md5::new();
        hash_options(&mut h, listing, split, opts);
        h.update((listing.classes.len() as u64).to_le_bytes());
        for c in &listing.classes {
            hash_str(&mut h, c);
        }
        for f in &listing.files {
            hash_str(&mut h, &f.rel);
            h.update(f.size.to_le_bytes());
            h.update(f.mtime_ns.to_le_bytes());
            h.update(f.label.to_le_bytes());
        }
        h.finalize().into()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One file per (layout, split, options): a changed tree overwrites its old cache instead
    /// of piling up new ones. A caller-given cache directory may be shared by several datasets,
    /// so there the root's absolute path is part of the name too.
    pub(super) fn path(listing: &Listing, split: Split, opts: &FolderOptions) -> PathBuf {
        let mut h = Md5::new();
        hash_options(&mut h, listing, split, opts);
        let dir = match &opts.cache_dir {
            Some(dir) => {
                let root = fs::canonicalize(&listing.root).unwrap_or_else(|_| listing.root.clone());
                hash_str(&mut h, &root.to_string_lossy());
                dir.clone()
            }
            None => listing.root.join(".kd-cache"),
        };
        let digest: [u8; 16] = h.finalize().into();
        dir.join(format!(
            "{}-{}-{}.kdc",
            listing.kind,
            split,
            hex(&digest[..8])
        ))
    }

    fn header(fingerprint: &[u8; 16], listing: &Listing, shape: ImageShape) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(fingerprint);
        for v in [shape.channels, shape.height, shape.width] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.extend_from_slice(&(listing.files.len() as u64).to_le_bytes());
        out.extend_from_slice(&(listing.classes.len() as u32).to_le_bytes());
        for c in &listing.classes {
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// Writes to a temporary file in the same directory, then renames it into place, so a
    /// reader never sees a half-written cache under the real name.
    pub(super) fn write(
        path: &Path,
        fingerprint: &[u8; 16],
        listing: &Listing,
        shape: ImageShape,
        images: &[u8],
    ) -> Result<(), String> {
        let dir = path.parent().expect("cache path has a directory");
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = dir.join(format!(
            ".tmp-{}-{nanos}-{}",
            std::process::id(),
            path.file_name().unwrap().to_string_lossy()
        ));
        let result = write_file(&tmp, fingerprint, listing, shape, images)
            .and_then(|()| fs::rename(&tmp, path));
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
    }

    fn write_file(
        tmp: &Path,
        fingerprint: &[u8; 16],
        listing: &Listing,
        shape: ImageShape,
        images: &[u8],
    ) -> std::io::Result<()> {
        let mut w = BufWriter::new(fs::File::create(tmp)?);
        w.write_all(&header(fingerprint, listing, shape))?;
        let labels: Vec<u8> = listing
            .files
            .iter()
            .flat_map(|f| f.label.to_le_bytes())
            .collect();
        w.write_all(&labels)?;
        w.write_all(images)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    /// A cursor over the header that turns running out of bytes into a rejection reason.
    struct Fields<R: std::io::Read> {
        r: R,
    }

    impl<R: std::io::Read> Fields<R> {
        fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
            let mut b = [0u8; N];
            self.r
                .read_exact(&mut b)
                .map_err(|e| format!("header cut short: {e}"))?;
            Ok(b)
        }
        fn u32(&mut self) -> Result<u32, String> {
            self.bytes::<4>().map(u32::from_le_bytes)
        }
        fn u64(&mut self) -> Result<u64, String> {
            self.bytes::<8>().map(u64::from_le_bytes)
        }
        fn string(&mut self) -> Result<String, String> {
            let len = self.u32()? as usize;
            if len > MAX_NAME {
                return Err(format!("class name of {len} bytes"));
            }
            let mut b = vec![0u8; len];
            self.r
                .read_exact(&mut b)
                .map_err(|e| format!("header cut short: {e}"))?;
            String::from_utf8(b).map_err(|_| "class name is not UTF-8".to_string())
        }
    }

    pub(super) fn read(
        path: &Path,
        fingerprint: &[u8; 16],
        listing: &Listing,
        opts: &FolderOptions,
    ) -> Cached {
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Absent,
            Err(e) => return Cached::Invalid(format!("cannot open: {e}")),
        };
        match read_valid(file, fingerprint, listing, opts) {
            Ok((shape, images)) => Cached::Valid(shape, images),
            Err(reason) => Cached::Invalid(reason),
        }
    }

    fn read_valid(
        file: fs::File,
        fingerprint: &[u8; 16],
        listing: &Listing,
        opts: &FolderOptions,
    ) -> Result<(ImageShape, Vec<u8>), String> {
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut f = Fields {
            r: BufReader::new(file),
        };
        if &f.bytes::<8>()? != MAGIC {
            return Err("bad magic: not a kd cache file".into());
        }
        let version = f.u32()?;
        if version != VERSION {
            return Err(format!("format version {version}, expected {VERSION}"));
        }
        if &f.bytes::<16>()? != fingerprint {
            return Err("stale: the file list, file sizes or times, or the options changed".into());
        }
        let (c, h, w) = (f.u32()? as usize, f.u32()? as usize, f.u32()? as usize);
        let shape = ImageShape::new(c, h, w);
        let n = f.u64()?;
        let num_classes = f.u32()? as usize;
        if num_classes > MAX_CLASSES {
            return Err(format!("header claims {num_classes} classes"));
        }
        let classes = (0..num_classes)
            .map(|_| f.string())
            .collect::<Result<Vec<_>, _>>()?;
        check_header(shape, n, &classes, listing, opts)?;
        // In u128: a corrupt header's dimensions must not overflow before they are rejected.
        let header_len = header(fingerprint, listing, shape).len() as u128;
        let expected = header_len + 4 * n as u128 + n as u128 * c as u128 * h as u128 * w as u128;
        if file_len as u128 != expected {
            return Err(format!(
                "{file_len} bytes, expected {expected} for {n} images of {shape}"
            ));
        }
        let mut labels = vec![0u8; 4 * n as usize];
        f.r.read_exact(&mut labels)
            .map_err(|e| format!("labels cut short: {e}"))?;
        let labels_match = labels
            .chunks_exact(4)
            .zip(&listing.files)
            .all(|(b, file)| b == file.label.to_le_bytes());
        if !labels_match {
            return Err("labels differ from the file list".into());
        }
        let mut images = vec![0u8; n as usize * shape.len()];
        f.r.read_exact(&mut images)
            .map_err(|e| format!("pixels cut short: {e}"))?;
        Ok((shape, images))
    }

    fn check_header(
        shape: ImageShape,
        n: u64,
        classes: &[String],
        listing: &Listing,
        opts: &FolderOptions,
    ) -> Result<(), String> {
        let size_ok = opts.size.is_none_or(|s| s == (shape.height, shape.width));
        if shape.channels != opts.channels || !size_ok || shape.height == 0 || shape.width == 0 {
            return Err(format!("header shape {shape} does not match the options"));
        }
        if n != listing.files.len() as u64 || classes != listing.classes {
            return Err(format!(
                "header has {n} images in {} classes, the tree {} in {}",
                classes.len(),
                listing.files.len(),
                listing.classes.len()
            ));
        }
        Ok(())
    }
}
