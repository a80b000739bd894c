//! Weights in and out: PyTorch checkpoints written by `torch.save` (`.pth`, `.pt`, `.bin`) and
//! safetensors files, moved into and out of an [`nn::VarStore`] by name.
//!
//! * [`read_torch_checkpoint`] reads a `torch.save` file without Python and without running any
//!   of its pickle: the zip archive's `data.pkl` is read by kd-data's description-only pickle
//!   reader ([`kd_data::pickle`]), and each tensor is rebuilt from its `_rebuild_tensor_v2`
//!   description (storage, offset, size, stride) over the raw little-endian bytes of
//!   `data/<key>`. The state dict may be the whole file or sit under a wrapper key (`model` as
//!   RepDistiller saves it, `state_dict`, `net`, `model_state_dict`); a DataParallel `module.`
//!   prefix is stripped.
//! * [`load_into`] copies a [`StateDict`] into a model's variables, checking every name, shape
//!   and dtype first and reporting every problem at once.
//! * [`save_safetensors`], [`load_safetensors`] and [`load_weights`] (by extension) do the same
//!   for safetensors; [`save_safetensors_for_pytorch`] adds the `num_batches_tracked` buffers
//!   PyTorch's strict `load_state_dict` wants and tch does not keep.
//!
//! Dtypes: a floating-point tensor loads into a floating-point variable of any width (a float64
//! checkpoint into a float32 model, say), and an integer one into an integer variable, each
//! converted and listed in [`LoadReport::converted`]; a float into an integer variable, an
//! integer into a float one, or a bool into anything but a bool is a [`Problem::Dtype`], since
//! such a checkpoint is almost surely not for this model.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use kd_data::pickle::{self, PickleError, Value};
use tch::{Device, Kind, TchError, Tensor, nn};

/// Keys under which training scripts keep the state dict, tried in this order when the file's
/// top level is not itself a dict of tensors.
pub const WRAPPER_KEYS: [&str; 4] = ["model", "state_dict", "net", "model_state_dict"];

/// The prefix `torch.nn.DataParallel` (and DistributedDataParallel) puts on every key.
pub const DATA_PARALLEL_PREFIX: &str = "module.";

/// How `torch.save` of PyTorch < 1.6 began: pickle protocol 2, then the magic number
/// 0x1950a86a20f9469cfc6c as a `LONG1`.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// The protocol version a legacy `torch.save` file gives after its magic number.
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// The largest `data.pkl` read: a state dict's pickle takes ~150 bytes a tensor.
const MAX_PICKLE_BYTES: u64 = 1 << 30;

/// The most bytes allocated for an entry before any is read.
const PREALLOCATE: u64 = 256 << 20;

/// A zip archive's local file header signature.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// What a checkpoint could not be read or loaded for. Every variant names the file (or the
/// state dict's origin) and, where one is at fault, the key.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a `torch.save` checkpoint: not a zip archive (or a truncated one), no `data.pkl`,
    /// a TorchScript archive...
    #[error("{}: not a PyTorch checkpoint: {what}", .path.display())]
    NotCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The checkpoint's `data.pkl` is not a pickle this reader can read.
    #[error("{}: {source}", .path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// The pickle reader's error, with the offset and opcode.
        source: PickleError,
    },
    /// The checkpoint is readable but holds something unsupported or inconsistent (no state
    /// dict, an unknown dtype, a storage too short for its tensor, big-endian data...).
    #[error("{}: {what}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        what: String,
    },
    /// The state dict does not fit the model: every missing or unexpected key, shape and dtype
    /// mismatch, at once. Nothing was copied.
    #[error("{origin}: {} loading into the model: {}", problem_count(.problems), problem_list(.problems))]
    Mismatch {
        /// Where the state dict came from (its file).
        origin: String,
        /// The problems, missing keys first, then unexpected keys, then shapes and dtypes.
        problems: Vec<Problem>,
    },
    /// A safetensors file could not be read or written.
    #[error("{}: safetensors: {what}", .path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// libtorch refused to build or copy a tensor.
    #[error("{origin}: {source}")]
    Torch {
        /// The file, or the state dict's origin.
        origin: String,
        /// libtorch's error.
        source: TchError,
    },
    /// [`load_weights`] could not tell the file's format from its extension or first bytes.
    #[error(
        "{}: unknown weights format: expected .safetensors, or a torch.save file (.pth, .pt, .bin)",
        .path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
}

fn problem_count(problems: &[Problem]) -> String {
    match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    }
}

fn problem_list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Results of this module.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// One way a state dict does not fit a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The model has a variable the state dict lacks.
    Missing {
        /// The variable's name.
        key: String,
    },
    /// The state dict has an entry the model lacks.
    Unexpected {
        /// The entry's name.
        key: String,
    },
    /// The shapes differ.
    Shape {
        /// The name.
        key: String,
        /// The model variable's shape.
        model: Vec<i64>,
        /// The state dict tensor's shape.
        checkpoint: Vec<i64>,
    },
    /// The dtypes are of different families (float, integer, bool); see the module docs.
    Dtype {
        /// The name.
        key: String,
        /// The model variable's dtype.
        model: Kind,
        /// The state dict tensor's dtype.
        checkpoint: Kind,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key } => {
                write!(
                    f,
                    "missing key `{key}` (in the model, not in the checkpoint)"
                )
            }
            Problem::Unexpected { key } => write!(
                f,
                "unexpected key `{key}` (in the checkpoint, not in the model)"
            ),
            Problem::Shape {
                key,
                model,
                checkpoint,
            } => write!(
                f,
                "shape mismatch for `{key}`: model {model:?}, checkpoint {checkpoint:?}"
            ),
            Problem::Dtype {
                key,
                model,
                checkpoint,
            } => write!(
                f,
                "dtype mismatch for `{key}`: model {model:?}, checkpoint {checkpoint:?} \
                 (floats and integers are not converted into each other)"
            ),
        }
    }
}

/// Named tensors in file order, as read from a checkpoint, with what was done to find them.
#[derive(Debug)]
pub struct StateDict {
    /// Where the tensors came from (the file), for messages.
    pub origin: String,
    /// The entries, in the file's order; names are unique.
    pub tensors: Vec<(String, Tensor)>,
    /// The wrapper key the state dict was found under (`model`, `state_dict`...), if any.
    pub wrapper: Option<String>,
    /// Whether a DataParallel `module.` prefix was stripped from every key.
    pub stripped_prefix: bool,
    /// The wrapper's other top-level entries, ignored (`epoch`, `optimizer`...).
    pub ignored: Vec<String>,
}

impl StateDict {
    /// A state dict of `tensors` from `origin`, nothing unwrapped or stripped.
    pub fn new(origin: impl Into<String>, tensors: Vec<(String, Tensor)>) -> Self {
        StateDict {
            origin: origin.into(),
            tensors,
            wrapper: None,
            stripped_prefix: false,
            ignored: Vec::new(),
        }
    }

    /// The tensor named `key`.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(k, _)| k.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// How strictly [`load_into`] matches names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// As PyTorch's `load_state_dict(strict=...)`: when false, missing and unexpected keys are
    /// listed in the [`LoadReport`] instead of failing; shape and dtype mismatches always fail.
    pub strict: bool,
}

impl Default for LoadOptions {
    /// Strict.
    fn default() -> Self {
        LoadOptions { strict: true }
    }
}

/// What [`load_into`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Where the state dict came from.
    pub origin: String,
    /// Variables copied.
    pub loaded: usize,
    /// Entries converted to the variable's dtype: (name, checkpoint dtype, model dtype).
    pub converted: Vec<(String, Kind, Kind)>,
    /// BatchNorm `num_batches_tracked` entries skipped: tch's BatchNorm keeps no such buffer
    /// (it only matters to PyTorch when `momentum=None`).
    pub skipped_num_batches_tracked: Vec<String>,
    /// Model variables left as they were (only with `strict: false`).
    pub missing: Vec<String>,
    /// State dict entries not used (only with `strict: false`).
    pub unexpected: Vec<String>,
    /// The wrapper key the state dict was found under, if any.
    pub wrapper: Option<String>,
    /// Whether a `module.` prefix was stripped.
    pub stripped_prefix: bool,
    /// The wrapper's other entries, ignored.
    pub ignored: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loaded {} tensors from {}", self.loaded, self.origin)?;
        if let Some(w) = &self.wrapper {
            write!(f, " (state dict under '{w}'")?;
            if !self.ignored.is_empty() {
                write!(f, "; ignored {}", self.ignored.join(", "))?;
            }
            write!(f, ")")?;
        }
        if self.stripped_prefix {
            write!(f, ", `{DATA_PARALLEL_PREFIX}` prefix stripped")?;
        }
        if !self.converted.is_empty() {
            write!(
                f,
                ", {} converted to the model's dtype",
                self.converted.len()
            )?;
        }
        if !self.skipped_num_batches_tracked.is_empty() {
            write!(
                f,
                ", {} num_batches_tracked skipped (tch keeps none)",
                self.skipped_num_batches_tracked.len()
            )?;
        }
        if !self.missing.is_empty() {
            write!(f, ", missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, ", unexpected: {}", self.unexpected.join(", "))?;
        }
        Ok(())
    }
}

// ----- reading torch.save files -----

/// Reads the state dict of a checkpoint written by `torch.save` (PyTorch ≥ 1.6, zip format):
/// the file's top-level dict of tensors, or the one under the first of [`WRAPPER_KEYS`] that
/// holds one (its other entries listed in [`StateDict::ignored`]), with a `module.` prefix
/// stripped when every key has it. Tensors come back contiguous, on the CPU, in their saved
/// dtype (float32/64, float16, bfloat16, int8/16/32/64, uint8, bool).
///
/// Legacy files (PyTorch < 1.6, `_use_new_zipfile_serialization=False`) are read too.
///
/// Nothing in the file is executed. Fails, naming the file, on a file that is not a zip
/// archive or is truncated, an archive without `data.pkl`, big-endian
/// data, an unsupported tensor type, or storages too short for their tensors.
pub fn read_torch_checkpoint(path: impl AsRef<Path>) -> Result<StateDict> {
    let path = path.as_ref();
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut head = Vec::with_capacity(LEGACY_MAGIC.len());
    (&mut file)
        .take(LEGACY_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    file.rewind().map_err(io)?;
    if head == LEGACY_MAGIC {
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        return read_legacy(path, &data);
    }
    let mut archive = Archive::open(path, BufReader::new(file))?;
    archive.state_dict()
}

/// Reads a legacy (PyTorch < 1.6) `torch.save` file: pickles of the magic number, the
/// protocol version, the system's description and the object (its storages persistent ids),
/// then one of the storage keys, then each storage in that order: its item count as 8
/// little-endian bytes, then its items.
fn read_legacy(path: &Path, data: &[u8]) -> Result<StateDict> {
    let format_err = |what: String| CheckpointError::Format {
        path: path.to_owned(),
        what,
    };
    let pickle_err = |source| CheckpointError::Pickle {
        path: path.to_owned(),
        source,
    };
    if cfg!(target_endian = "big") {
        return Err(format_err(
            "reading checkpoints needs a little-endian machine".to_owned(),
        ));
    }
    // The magic number is an int wider than 64 bits: matched as bytes, then its STOP.
    let mut pos = LEGACY_MAGIC.len();
    if data.get(pos) != Some(&b'.') {
        return Err(format_err(
            "legacy torch.save file: the magic number is not followed by STOP".to_owned(),
        ));
    }
    pos += 1;
    fn next<'d>(data: &'d [u8], pos: &mut usize) -> Result<Value<'d>, PickleError> {
        let (value, n) = pickle::load_prefix(&data[*pos..])?;
        *pos += n;
        Ok(value)
    }
    let version = next(data, &mut pos).map_err(pickle_err)?;
    if version.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(format_err(format!(
            "legacy torch.save file of protocol version {version:?}, expected {LEGACY_PROTOCOL_VERSION}"
        )));
    }
    let sys_info = next(data, &mut pos).map_err(pickle_err)?;
    let little = sys_info.as_dict().and_then(|pairs| {
        pairs
            .iter()
            .find(|(k, _)| k.as_text() == Some("little_endian"))
            .map(|(_, v)| v)
    });
    if matches!(little, Some(Value::Bool(false))) {
        return Err(format_err(
            "written on a big-endian machine: only little-endian checkpoints are supported"
                .to_owned(),
        ));
    }
    let top = next(data, &mut pos).map_err(pickle_err)?;
    let keys = next(data, &mut pos).map_err(pickle_err)?;
    let keys = keys.as_items().ok_or_else(|| {
        format_err(format!(
            "the storage keys are a {}, not a list",
            keys.kind()
        ))
    })?;

    // Each storage's item size, from the persistent ids anywhere in the object.
    let mut kinds = HashMap::new();
    persistent_storages(&top, &mut kinds).map_err(format_err)?;
    let mut storages = HashMap::new();
    for key in keys {
        let key = key
            .as_text()
            .ok_or_else(|| format_err(format!("a storage key is a {}", key.kind())))?;
        // Past a storage of unknown item size the others cannot be found; a tensor of one of
        // them then fails as missing its storage.
        let Some(kind) = kinds.get(key) else { break };
        let count = data
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                format_err(format!(
                    "the file ends at byte {} inside storage {key}'s header (truncated?)",
                    data.len()
                ))
            })?;
        pos += 8;
        let len = count
            .checked_mul(kind.elt_size_in_bytes() as u64)
            .filter(|&n| n <= (data.len() - pos) as u64)
            .ok_or_else(|| {
                format_err(format!(
                    "storage {key} of {count} {kind:?} items runs past the end of the file \
                     ({} bytes; truncated?)",
                    data.len()
                ))
            })? as usize;
        storages.insert(key.to_owned(), &data[pos..pos + len]);
        pos += len;
    }
    let mut archive: Archive<'_, '_, std::io::Cursor<&[u8]>> = Archive {
        path,
        source: Source::Legacy { storages },
        storages: HashMap::new(),
    };
    archive.build(&top)
}

/// The storages named by the persistent ids in `v`, with their dtypes (those of a supported
/// type).
/// An error for a storage view (`view_metadata`, written by PyTorch < 0.4), unsupported.
fn persistent_storages(v: &Value<'_>, out: &mut HashMap<String, Kind>) -> Result<(), String> {
    match v {
        Value::PersId(id) => {
            let items = id.as_items().unwrap_or(&[]);
            if items.get(5).is_some_and(|view| *view != Value::None) {
                return Err(format!(
                    "storage {:?} is a view of another storage (PyTorch < 0.4): not supported",
                    items.get(2)
                ));
            }
            if let Ok(r) = storage_ref(v) {
                out.entry(r.key).or_insert(r.kind);
            }
            Ok(())
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.iter().try_for_each(|v| persistent_storages(v, out))
        }
        Value::Dict(pairs) => pairs.iter().try_for_each(|(k, v)| {
            persistent_storages(k, out)?;
            persistent_storages(v, out)
        }),
        Value::Reduce {
            callable: a,
            args: b,
        }
        | Value::Build {
            object: a,
            state: b,
        } => {
            persistent_storages(a, out)?;
            persistent_storages(b, out)
        }
        _ => Ok(()),
    }
}

/// A `torch.save` file being read.
struct Archive<'p, 'd, R> {
    path: &'p Path,
    source: Source<'d, R>,
    /// Storages read so far, by key: their dtype and their items as a flat tensor.
    storages: HashMap<String, (Kind, Tensor)>,
}

/// Where the storages' bytes are.
enum Source<'d, R> {
    /// A zip archive, the storage `key` in entry `{prefix}data/{key}`.
    Zip {
        zip: zip::ZipArchive<R>,
        /// The folder holding `data.pkl`, with its slash (`archive/`), or empty.
        prefix: String,
    },
    /// A legacy file, already split into its storages' bytes, by key.
    Legacy { storages: HashMap<String, &'d [u8]> },
}

/// Where a tensor's items are: storage `key` of `kind` with `numel` items.
struct StorageRef {
    key: String,
    kind: Kind,
    numel: i64,
}

/// A tensor as `_rebuild_tensor_v2` describes it.
struct TensorSpec {
    storage: StorageRef,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

impl<'p, R: Read + Seek> Archive<'p, '_, R> {
    fn open(path: &'p Path, reader: R) -> Result<Self> {
        let zip = zip::ZipArchive::new(reader).map_err(|e| match e {
            zip::result::ZipError::Io(source)
                if source.kind() != std::io::ErrorKind::UnexpectedEof =>
            {
                CheckpointError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
            e => CheckpointError::NotCheckpoint {
                path: path.to_owned(),
                what: format!(
                    "not a zip archive, or a truncated one ({e}); torch.save writes zip archives"
                ),
            },
        })?;
        // torch.save puts everything in one folder named after the file; accept any name.
        let pkl = zip
            .file_names()
            .filter(|n| {
                *n == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            })
            .min()
            .map(str::to_owned);
        let Some(pkl) = pkl else {
            let mut names: Vec<&str> = zip.file_names().take(6).collect();
            names.sort_unstable();
            return Err(CheckpointError::NotCheckpoint {
                path: path.to_owned(),
                what: format!("the zip archive has no data.pkl (entries: {names:?}...)"),
            });
        };
        let prefix = pkl.strip_suffix("data.pkl").unwrap_or_default().to_owned();
        if zip
            .file_names()
            .any(|n| n == format!("{prefix}constants.pkl"))
        {
            return Err(CheckpointError::NotCheckpoint {
                path: path.to_owned(),
                what: "a TorchScript archive (torch.jit.save), not a torch.save state dict"
                    .to_owned(),
            });
        }
        Ok(Archive {
            path,
            source: Source::Zip { zip, prefix },
            storages: HashMap::new(),
        })
    }

    fn format_err(&self, what: impl Into<String>) -> CheckpointError {
        CheckpointError::Format {
            path: self.path.to_owned(),
            what: what.into(),
        }
    }

    fn torch_err(&self, source: TchError) -> CheckpointError {
        CheckpointError::Torch {
            origin: self.path.display().to_string(),
            source,
        }
    }

    /// The bytes of entry `name` (under the prefix); `None` if absent; an error if it holds
    /// more than `limit` bytes.
    fn read_entry(&mut self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Source::Zip { zip, prefix } = &mut self.source else {
            return Ok(None);
        };
        let full = format!("{prefix}{name}");
        let entry = match zip.by_name(&full) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => {
                return Err(CheckpointError::NotCheckpoint {
                    path: self.path.to_owned(),
                    what: format!("cannot read {full} from the zip archive: {e}"),
                });
            }
        };
        // The declared size may lie (and a compressed entry may expand without bound): allocate
        // within reason up front, and never read past the limit.
        let mut bytes = Vec::with_capacity(entry.size().min(limit).min(PREALLOCATE) as usize);
        entry
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| CheckpointError::NotCheckpoint {
                path: self.path.to_owned(),
                what: format!("cannot read {full} (truncated or corrupt archive?): {e}"),
            })?;
        if bytes.len() as u64 > limit {
            return Err(self.format_err(format!("{full} holds more than {limit} bytes")));
        }
        Ok(Some(bytes))
    }

    fn state_dict(&mut self) -> Result<StateDict> {
        if cfg!(target_endian = "big") {
            return Err(self.format_err("reading checkpoints needs a little-endian machine"));
        }
        if let Some(order) = self.read_entry("byteorder", 16)? {
            let order = String::from_utf8_lossy(&order);
            if order.trim() != "little" {
                return Err(self.format_err(format!(
                    "byteorder is {:?}: only little-endian checkpoints are supported",
                    order.trim()
                )));
            }
        }
        let pkl = self
            .read_entry("data.pkl", MAX_PICKLE_BYTES)?
            .ok_or_else(|| self.format_err("data.pkl vanished from the archive"))?;
        let top = pickle::load(&pkl).map_err(|source| CheckpointError::Pickle {
            path: self.path.to_owned(),
            source,
        })?;
        self.build(&top)
    }

    /// The state dict in `top`, the file's object, its tensors read from their storages.
    fn build(&mut self, top: &Value<'_>) -> Result<StateDict> {
        let found = find_state_dict(top).map_err(|what| self.format_err(what))?;

        let mut specs: Vec<(String, TensorSpec)> = Vec::with_capacity(found.pairs.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        for (k, v) in found.pairs {
            let key = k.as_text().ok_or_else(|| {
                self.format_err(format!(
                    "the state dict has a {} key, not a string",
                    k.kind()
                ))
            })?;
            let spec =
                tensor_spec(v).map_err(|what| self.format_err(format!("`{key}`: {what}")))?;
            // A dict pickled with a key twice keeps the last value, as Python does.
            match index.get(key) {
                Some(&i) => specs[i].1 = spec,
                None => {
                    index.insert(key.to_owned(), specs.len());
                    specs.push((key.to_owned(), spec));
                }
            }
        }
        let stripped_prefix = !specs.is_empty()
            && specs
                .iter()
                .all(|(k, _)| k.starts_with(DATA_PARALLEL_PREFIX));
        let mut tensors = Vec::with_capacity(specs.len());
        for (key, spec) in specs {
            let tensor = self.tensor(&key, &spec)?;
            let key = match stripped_prefix {
                true => key[DATA_PARALLEL_PREFIX.len()..].to_owned(),
                false => key,
            };
            tensors.push((key, tensor));
        }
        Ok(StateDict {
            origin: self.path.display().to_string(),
            tensors,
            wrapper: found.wrapper.map(str::to_owned),
            stripped_prefix,
            ignored: found.ignored,
        })
    }

    /// The storage `r` as a flat tensor, read once.
    fn storage(&mut self, key: &str, r: &StorageRef) -> Result<Tensor> {
        if let Some((kind, t)) = self.storages.get(&r.key) {
            if *kind != r.kind {
                return Err(self.format_err(format!(
                    "`{key}`: storage {} is read as {:?} and as {kind:?}",
                    r.key, r.kind
                )));
            }
            return Ok(t.shallow_clone());
        }
        let item = r.kind.elt_size_in_bytes() as u64;
        let needed = (r.numel as u64)
            .checked_mul(item)
            .ok_or_else(|| self.format_err(format!("`{key}`: storage {} is too large", r.key)))?;
        let (name, bytes) = match &self.source {
            Source::Zip { prefix, .. } => {
                let name = format!("{prefix}data/{}", r.key);
                let entry = format!("data/{}", r.key);
                let bytes = self.read_entry(&entry, needed)?.ok_or_else(|| {
                    self.format_err(format!("`{key}`: the archive has no {name} (its storage)"))
                })?;
                (name, Cow::Owned(bytes))
            }
            Source::Legacy { storages } => {
                let bytes = storages.get(&r.key).copied().ok_or_else(|| {
                    self.format_err(format!(
                        "`{key}`: storage {} is not in the file (truncated?)",
                        r.key
                    ))
                })?;
                (r.key.clone(), Cow::Borrowed(bytes))
            }
        };
        if bytes.len() as u64 != needed {
            return Err(self.format_err(format!(
                "`{key}`: storage {name} holds {} bytes, its {} {:?} items need {needed} (truncated?)",
                bytes.len(),
                r.numel,
                r.kind
            )));
        }
        // libtorch reads a bool byte other than 0 or 1 as undefined behaviour.
        if r.kind == Kind::Bool && bytes.iter().any(|&b| b > 1) {
            return Err(self.format_err(format!(
                "`{key}`: bool storage {name} holds bytes other than 0 and 1"
            )));
        }
        let t =
            Tensor::f_from_data_size(&bytes, &[r.numel], r.kind).map_err(|e| self.torch_err(e))?;
        self.storages
            .insert(r.key.clone(), (r.kind, t.shallow_clone()));
        Ok(t)
    }

    /// Tensor `key`: a contiguous copy of its view of its storage, bounds checked first.
    fn tensor(&mut self, key: &str, spec: &TensorSpec) -> Result<Tensor> {
        let flat = self.storage(key, &spec.storage)?;
        let numel = spec.storage.numel;
        let count = spec
            .size
            .iter()
            .try_fold(1i64, |acc, &d| acc.checked_mul(d));
        // The last item the view reaches, if it has any.
        let last = spec
            .size
            .iter()
            .zip(&spec.stride)
            .try_fold(spec.offset, |acc, (&d, &s)| {
                acc.checked_add((d - 1).max(0).checked_mul(s)?)
            });
        let fits = match (count, last) {
            (Some(0), _) => spec.offset <= numel,
            (Some(_), Some(last)) => last < numel,
            _ => false,
        };
        if !fits {
            return Err(self.format_err(format!(
                "`{key}`: size {:?}, stride {:?} and offset {} reach past the {numel} items of storage {}",
                spec.size, spec.stride, spec.offset, spec.storage.key
            )));
        }
        let dense =
            spec.offset == 0 && count == Some(numel) && is_contiguous(&spec.size, &spec.stride);
        let t = if dense {
            // The whole storage in order: a view of it, no copy.
            flat.f_view(spec.size.as_slice())
        } else {
            // A copy, so that a small view does not keep a large storage alive.
            flat.f_as_strided(spec.size.as_slice(), spec.stride.as_slice(), spec.offset)
                .and_then(|view| {
                    let mut out =
                        Tensor::f_empty(spec.size.as_slice(), (spec.storage.kind, Device::Cpu))?;
                    out.f_copy_(&view)?;
                    Ok(out)
                })
        };
        t.map_err(|e| self.torch_err(e))
    }
}

/// Whether `stride` is the row-major stride of `size` (axes of length 1 may have any).
fn is_contiguous(size: &[i64], stride: &[i64]) -> bool {
    let mut expected = 1;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

/// The state dict found in a checkpoint's top-level value.
struct Found<'v, 'a> {
    pairs: &'v [(Value<'a>, Value<'a>)],
    wrapper: Option<&'static str>,
    ignored: Vec<String>,
}

/// The name of the `torch._utils._rebuild_*` function that rebuilds `v`, if `v` is a tensor.
fn rebuild_fn<'v>(v: &'v Value<'_>) -> Option<&'v str> {
    let Value::Reduce { callable, .. } = v else {
        return None;
    };
    match callable.as_global()? {
        ("torch._utils", name) if name.starts_with("_rebuild_") => Some(name),
        _ => None,
    }
}

fn all_tensors(pairs: &[(Value<'_>, Value<'_>)]) -> bool {
    pairs.iter().all(|(_, v)| rebuild_fn(v).is_some())
}

/// `torch.nn.Module`'s class as pickled (`torch.save(model)`), for the error message.
fn pickled_class(v: &Value<'_>) -> Option<String> {
    let object = match v {
        Value::Build { object, .. } => object,
        other => other,
    };
    let Value::Reduce { callable, args } = object else {
        return None;
    };
    // `copyreg._reconstructor(cls, base, state)` or `cls.__new__(cls)` (NEWOBJ).
    let class = match callable.as_global()? {
        ("copy_reg" | "copyreg", "_reconstructor") => args.as_items()?.first()?.as_global()?,
        g => g,
    };
    Some(format!("{}.{}", class.0, class.1))
}

fn find_state_dict<'v, 'a>(top: &'v Value<'a>) -> Result<Found<'v, 'a>, String> {
    let Some(pairs) = top.as_dict() else {
        return Err(match pickled_class(top) {
            Some(class) => format!(
                "holds a pickled {class} object (torch.save(model)?), not a state dict: \
                 save model.state_dict() instead"
            ),
            None => format!("holds a {}, not a state dict", top.kind()),
        });
    };
    if all_tensors(pairs) {
        return Ok(Found {
            pairs,
            wrapper: None,
            ignored: Vec::new(),
        });
    }
    for wrapper in WRAPPER_KEYS {
        let inner = pairs
            .iter()
            .find(|(k, _)| k.as_text() == Some(wrapper))
            .and_then(|(_, v)| v.as_dict());
        if let Some(inner) = inner.filter(|p| all_tensors(p)) {
            let ignored = pairs
                .iter()
                .filter_map(|(k, _)| k.as_text())
                .filter(|k| *k != wrapper)
                .map(str::to_owned)
                .collect();
            return Ok(Found {
                pairs: inner,
                wrapper: Some(wrapper),
                ignored,
            });
        }
    }
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let what = match (rebuild_fn(v), v.as_dict(), pickled_class(v)) {
                (Some(_), ..) => "tensor".to_owned(),
                (None, Some(p), _) if all_tensors(p) => "dict of tensors".to_owned(),
                (None, Some(_), _) => "dict with non-tensor values".to_owned(),
                (None, None, Some(class)) => format!("{class} object"),
                _ => v.kind().to_owned(),
            };
            format!("{}: {what}", k.as_text().unwrap_or("?"))
        })
        .collect();
    Err(format!(
        "no state dict found: the top level is not a dict of tensors and none of {WRAPPER_KEYS:?} \
         holds one (top-level entries: {})",
        keys.join(", ")
    ))
}

fn int_of(v: &Value<'_>, what: &str) -> Result<i64, String> {
    v.as_int()
        .ok_or_else(|| format!("its {what} is a {}, not an integer", v.kind()))
}

fn ints_of(v: &Value<'_>, what: &str) -> Result<Vec<i64>, String> {
    let items = v
        .as_items()
        .ok_or_else(|| format!("its {what} is a {}, not a tuple", v.kind()))?;
    items
        .iter()
        .map(|d| match d.as_int() {
            Some(i) if i >= 0 => Ok(i),
            _ => Err(format!(
                "its {what} holds something other than non-negative integers"
            )),
        })
        .collect()
}

/// The tensor a `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[,
/// metadata])` call (or a `_rebuild_parameter` around one) describes.
fn tensor_spec(v: &Value<'_>) -> Result<TensorSpec, String> {
    let name = rebuild_fn(v).ok_or_else(|| format!("a {}, not a tensor", v.kind()))?;
    let Value::Reduce { args, .. } = v else {
        return Err(format!("a {}, not a tensor", v.kind()));
    };
    let args = args
        .as_items()
        .ok_or_else(|| format!("torch._utils.{name} without an argument tuple"))?;
    match name {
        // An nn.Parameter: (tensor, requires_grad, hooks[, state]).
        "_rebuild_parameter" | "_rebuild_parameter_with_state" => {
            let data = args
                .first()
                .ok_or_else(|| format!("torch._utils.{name} without arguments"))?;
            tensor_spec(data)
        }
        "_rebuild_tensor_v2" | "_rebuild_tensor" => {
            let [storage, offset, size, stride, ..] = args else {
                return Err(format!("torch._utils.{name} with {} arguments", args.len()));
            };
            let size = ints_of(size, "size")?;
            let stride = ints_of(stride, "stride")?;
            if size.len() != stride.len() {
                return Err(format!(
                    "size {size:?} and stride {stride:?} have different lengths"
                ));
            }
            let offset = int_of(offset, "storage offset")?;
            if offset < 0 {
                return Err(format!("negative storage offset {offset}"));
            }
            Ok(TensorSpec {
                storage: storage_ref(storage)?,
                offset,
                size,
                stride,
            })
        }
        other => Err(format!(
            "tensors rebuilt by torch._utils.{other} (quantized, sparse, nested or subclassed) \
             are not supported"
        )),
    }
}

/// The dtype of a legacy typed-storage class (what torch.save names in a persistent id).
fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" | "UntypedStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// `('storage', torch.<Type>Storage, key, location, numel)`, torch.save's persistent id.
fn storage_ref(v: &Value<'_>) -> Result<StorageRef, String> {
    let Value::PersId(id) = v else {
        return Err(format!(
            "its storage is a {}, not a persistent id",
            v.kind()
        ));
    };
    let items = id.as_items().unwrap_or(&[]);
    let [tag, class, key, _location, numel, ..] = items else {
        return Err(format!(
            "storage id {id:?} is not ('storage', type, key, location, numel)"
        ));
    };
    if tag.as_text() != Some("storage") {
        return Err(format!("persistent id of kind {tag:?}, expected 'storage'"));
    }
    let class = match class.as_global() {
        Some(("torch", name)) => name,
        _ => {
            return Err(format!(
                "storage type {class:?} is not a torch storage class"
            ));
        }
    };
    let kind = storage_kind(class)
        .ok_or_else(|| format!("storage type torch.{class} is not supported"))?;
    let key = key
        .as_text()
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| format!("storage key {key:?} is not a plain name"))?
        .to_owned();
    let numel = int_of(numel, "storage size")?;
    if numel < 0 {
        return Err(format!("storage {key} has a negative size {numel}"));
    }
    Ok(StorageRef { key, kind, numel })
}

// ----- loading into a VarStore -----

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
    )
}

fn is_int(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
    )
}

/// Whether a `from` tensor may be converted into a `to` variable (see the module docs).
fn convertible(from: Kind, to: Kind) -> bool {
    from == to || (is_float(from) && is_float(to)) || (is_int(from) && is_int(to))
}

/// Whether `key` is a BatchNorm step counter.
fn is_num_batches_tracked(key: &str) -> bool {
    key == "num_batches_tracked" || key.ends_with(".num_batches_tracked")
}

/// Copies `state` into the variables of `vs` by name, without recording gradients.
///
/// Every entry is checked before anything is copied: a missing key, an unexpected key (both
/// only with [`LoadOptions::strict`]), a shape mismatch or a dtype of another family is a
/// [`CheckpointError::Mismatch`] listing all of them. A `num_batches_tracked` entry the model
/// lacks is skipped (tch's BatchNorm keeps no such buffer) and listed in the report.
pub fn load_into(vs: &nn::VarStore, state: &StateDict, opts: LoadOptions) -> Result<LoadReport> {
    let vars = vs.variables();
    let mut report = LoadReport {
        origin: state.origin.clone(),
        wrapper: state.wrapper.clone(),
        stripped_prefix: state.stripped_prefix,
        ignored: state.ignored.clone(),
        ..LoadReport::default()
    };
    let mut problems = Vec::new();
    let provided: HashSet<&str> = state.keys().collect();
    let mut missing: Vec<&String> = vars
        .keys()
        .filter(|k| !provided.contains(k.as_str()))
        .collect();
    missing.sort();
    let mut unexpected = Vec::new();
    let mut copies = Vec::new();
    for (key, src) in &state.tensors {
        let Some(var) = vars.get(key) else {
            if is_num_batches_tracked(key) {
                report.skipped_num_batches_tracked.push(key.clone());
            } else {
                unexpected.push(key.clone());
            }
            continue;
        };
        let (ours, theirs) = (var.size(), src.size());
        if ours != theirs {
            problems.push(Problem::Shape {
                key: key.clone(),
                model: ours,
                checkpoint: theirs,
            });
            continue;
        }
        let (to, from) = (var.kind(), src.kind());
        if !convertible(from, to) {
            problems.push(Problem::Dtype {
                key: key.clone(),
                model: to,
                checkpoint: from,
            });
            continue;
        }
        if from != to {
            report.converted.push((key.clone(), from, to));
        }
        copies.push((var.shallow_clone(), src));
    }
    unexpected.sort();
    if opts.strict {
        let names = missing
            .iter()
            .map(|k| Problem::Missing { key: (*k).clone() })
            .chain(
                unexpected
                    .iter()
                    .map(|k| Problem::Unexpected { key: k.clone() }),
            );
        problems.splice(0..0, names);
    } else {
        report.missing = missing.into_iter().cloned().collect();
        report.unexpected = unexpected;
    }
    if !problems.is_empty() {
        return Err(CheckpointError::Mismatch {
            origin: state.origin.clone(),
            problems,
        });
    }
    tch::no_grad(|| {
        for (mut var, src) in copies {
            // copy_ converts the dtype and moves across devices as it copies.
            var.f_copy_(src).map_err(|source| CheckpointError::Torch {
                origin: state.origin.clone(),
                source,
            })?;
            report.loaded += 1;
        }
        Ok(())
    })?;
    Ok(report)
}

// ----- safetensors -----

fn safetensors_err(path: &Path, e: TchError) -> CheckpointError {
    let what = match e {
        // tch's message repeats the path: keep only the reason.
        TchError::SafeTensorError { err, .. } => err.to_string(),
        e => e.to_string(),
    };
    CheckpointError::Safetensors {
        path: path.to_owned(),
        what,
    }
}

/// Writes `tensors` to `path` as safetensors (contiguous CPU copies), atomically: into a
/// temporary file next to it, synced, then renamed over it, so that a crash never leaves a
/// half-written file under the final name.
pub fn write_safetensors(tensors: &[(String, Tensor)], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let mut named = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        let t = t
            .f_to_device(Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| safetensors_err(path, e))?;
        named.push((k.as_str(), t));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("not a file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = Tensor::write_safetensors(&named, &tmp)
        .map_err(|e| safetensors_err(path, e))
        .and_then(|()| File::open(&tmp).and_then(|f| f.sync_all()).map_err(io))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The variables of `vs`, sorted by name.
fn sorted_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Saves every variable of `vs` under its name (the PyTorch `state_dict` key) as safetensors,
/// atomically (see [`write_safetensors`]).
pub fn save_safetensors(vs: &nn::VarStore, path: impl AsRef<Path>) -> Result<()> {
    write_safetensors(&sorted_variables(vs), path)
}

/// As [`save_safetensors`], plus a `<bn>.num_batches_tracked` int64 zero scalar for every
/// BatchNorm (a variable ending in `.running_mean`) so that PyTorch's strict
/// `model.load_state_dict(safetensors.torch.load_file(path))` accepts the file. The zero
/// only matters to a PyTorch BatchNorm built with `momentum=None` (a cumulative average).
pub fn save_safetensors_for_pytorch(vs: &nn::VarStore, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let mut vars = sorted_variables(vs);
    let have: HashSet<String> = vars.iter().map(|(k, _)| k.clone()).collect();
    let counters: Vec<String> = have
        .iter()
        .filter_map(|k| k.strip_suffix("running_mean"))
        .filter(|bn| bn.is_empty() || bn.ends_with('.'))
        .map(|bn| format!("{bn}num_batches_tracked"))
        .filter(|k| !have.contains(k))
        .collect();
    for key in counters {
        let zero = Tensor::f_zeros(Vec::<i64>::new(), (Kind::Int64, Device::Cpu))
            .map_err(|e| safetensors_err(path, e))?;
        vars.push((key, zero));
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&vars, path)
}

/// Reads a safetensors file as a [`StateDict`] (CPU tensors, in the file's dtypes).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<StateDict> {
    let path = path.as_ref();
    let mut tensors = Tensor::read_safetensors(path).map_err(|e| safetensors_err(path, e))?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(StateDict::new(path.display().to_string(), tensors))
}

/// Loads a safetensors file into `vs` with the checks of [`load_into`].
pub fn load_safetensors(
    vs: &nn::VarStore,
    path: impl AsRef<Path>,
    opts: LoadOptions,
) -> Result<LoadReport> {
    load_into(vs, &read_safetensors(path)?, opts)
}

/// Which reader a weights file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightsFormat {
    Safetensors,
    Torch,
}

/// The format of `path`: by extension (`.safetensors`; `.pth`, `.pt`, `.bin`, `.tar`,
/// `.ckpt`), else by its first bytes.
fn weights_format(path: &Path) -> Result<WeightsFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("safetensors") => return Ok(WeightsFormat::Safetensors),
        Some("pth" | "pt" | "bin" | "tar" | "ckpt") => return Ok(WeightsFormat::Torch),
        _ => {}
    }
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        })?;
    if head.starts_with(ZIP_MAGIC) || head.starts_with(LEGACY_MAGIC) {
        return Ok(WeightsFormat::Torch);
    }
    // safetensors: an 8-byte little-endian header length, then the JSON header.
    if head.len() > 8 && head[8] == b'{' {
        return Ok(WeightsFormat::Safetensors);
    }
    Err(CheckpointError::UnknownFormat {
        path: path.to_owned(),
    })
}

/// Reads a weights file of either format as a [`StateDict`] ([`read_safetensors`] or
/// [`read_torch_checkpoint`], chosen as [`load_weights`] does).
pub fn read_weights(path: impl AsRef<Path>) -> Result<StateDict> {
    let path = path.as_ref();
    match weights_format(path)? {
        WeightsFormat::Safetensors => read_safetensors(path),
        WeightsFormat::Torch => read_torch_checkpoint(path),
    }
}

/// Loads weights into `vs` from a safetensors file or a `torch.save` checkpoint, chosen by
/// extension (`.safetensors`; `.pth`, `.pt`, `.bin`, `.tar`, `.ckpt`) or, for any other, by
/// the file's first bytes; checks as [`load_into`].
pub fn load_weights(
    vs: &nn::VarStore,
    path: impl AsRef<Path>,
    opts: LoadOptions,
) -> Result<LoadReport> {
    load_into(vs, &read_weights(path)?, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity_ignores_unit_axes() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(is_contiguous(&[], &[]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
        assert!(!is_contiguous(&[4], &[2]));
    }

    #[test]
    fn dtype_families() {
        assert!(convertible(Kind::Double, Kind::Float));
        assert!(convertible(Kind::BFloat16, Kind::Half));
        assert!(convertible(Kind::Int, Kind::Int64));
        assert!(!convertible(Kind::Int64, Kind::Float));
        assert!(!convertible(Kind::Float, Kind::Int64));
        assert!(!convertible(Kind::Bool, Kind::Uint8));
        assert!(convertible(Kind::Bool, Kind::Bool));
    }

    #[test]
    fn problems_name_the_key_and_both_shapes() {
        let p = Problem::Shape {
            key: "fc.weight".into(),
            model: vec![10, 64],
            checkpoint: vec![100, 64],
        };
        assert_eq!(
            p.to_string(),
            "shape mismatch for `fc.weight`: model [10, 64], checkpoint [100, 64]"
        );
        let e = CheckpointError::Mismatch {
            origin: "x.pth".into(),
            problems: vec![Problem::Missing { key: "a".into() }, p],
        };
        assert!(
            e.to_string()
                .starts_with("x.pth: 2 problems loading into the model: missing key `a`")
        );
    }
}
