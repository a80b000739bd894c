//! A run directory's files: the resolved config, the per-epoch metrics, and the checkpoints.
//!
//! ```text
//! <run>/config.toml                  the resolved config, with kd's and libtorch's versions
//! <run>/metrics.csv, metrics.jsonl   one row per finished epoch, rewritten from the checkpoint
//! <run>/checkpoints/last.safetensors       the student's weights, PyTorch state_dict names
//! <run>/checkpoints/last.state.safetensors everything resume needs, in one file
//! <run>/checkpoints/best.*                 the same at the best test top-1
//! ```
//!
//! The state file holds the student's variables (`model.<name>`, BatchNorm statistics
//! included), the distiller's (`distill.<name>`: its modules, BatchNorm statistics, CRD's memory
//! and normalisation constants), the optimizer's buffers (`optim.<name>`: the main stage's, or
//! the init stage's while a two-stage method is in it), the loss scaler's (`scaler.<name>`) and a
//! `meta` tensor of JSON bytes ([`Meta`]: epoch, init-stage epoch, best, the metrics history, the
//! seed). One file
//! written atomically (temporary file, then rename) is a consistent snapshot whatever instant a
//! run is killed at. The data order and every augmentation draw derive from (seed, epoch,
//! step), so the epoch *is* the loader's and the RNGs' state.

use crate::checkpoint::{self, CheckpointError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The format tag in [`Meta`].
pub const FORMAT: &str = "kd-checkpoint/1";

/// One epoch's metrics: a row of `metrics.csv` and a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch's first step.
    pub lr: f64,
    /// Mean total training loss.
    pub train_loss: f64,
    /// Training top-1 (%) of the student's train-mode outputs on x.
    pub train_top1: f64,
    /// Mean CE(S(x), y) over the epoch.
    pub train_ce: f64,
    /// Mean KD(S(x), T(x)) (0 without a teacher).
    pub train_kd: f64,
    /// Mean CE on x′ (0 when unused).
    pub train_ce_aug: f64,
    /// Mean KD(S(x′), T(x′)) (0 without a view).
    pub train_kd_aug: f64,
    /// Mean distiller loss, unweighted (0 without a distiller).
    #[serde(default)]
    pub train_distill: f64,
    /// Test mean cross-entropy.
    pub test_loss: f64,
    /// Test top-1 (%).
    pub test_top1: f64,
    /// Test top-5 (%).
    pub test_top5: f64,
    /// Training images per second (training steps only).
    pub images_per_s: f64,
    /// Seconds of the epoch, evaluation included.
    pub seconds: f64,
    /// Optimizer steps skipped by the loss scaler (fp16 overflow).
    pub skipped_steps: usize,
}

/// The column names of `metrics.csv`, in [`EpochRow`]'s order.
pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_top1,train_ce,train_kd,train_ce_aug,train_kd_aug,train_distill,test_loss,test_top1,test_top5,images_per_s,seconds,skipped_steps";

impl EpochRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.3},{}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.train_ce,
            self.train_kd,
            self.train_ce_aug,
            self.train_kd_aug,
            self.train_distill,
            self.test_loss,
            self.test_top1,
            self.test_top5,
            self.images_per_s,
            self.seconds,
            self.skipped_steps
        )
    }
}

/// One init-stage epoch of a two-stage distiller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitRow {
    /// 1-based init epoch.
    pub epoch: usize,
    /// Its constant learning rate.
    pub lr: f64,
    /// Mean init loss.
    pub loss: f64,
    /// Seconds.
    pub seconds: f64,
}

/// What a checkpoint says besides its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`FORMAT`].
    pub format: String,
    /// Epochs finished (of the main stage).
    pub epoch: usize,
    /// Init-stage epochs finished (AB, FT, FSP).
    #[serde(default)]
    pub init_epoch: usize,
    /// The init stage's epochs.
    #[serde(default)]
    pub init_history: Vec<InitRow>,
    /// Epochs the run was configured for.
    pub epochs: usize,
    /// The run seed.
    pub seed: u64,
    /// Best test top-1 so far and its epoch (−∞ before the first epoch, written as `null`).
    #[serde(deserialize_with = "null_as_neg_infinity")]
    pub best_top1: f64,
    /// The epoch of `best_top1`.
    pub best_epoch: usize,
    /// Every finished epoch's metrics.
    pub history: Vec<EpochRow>,
}

/// Reads a number, `null` (JSON's spelling of a non-finite one) as −∞: the best top-1 of a
/// run checkpointed in a distiller's init stage, before any main epoch.
fn null_as_neg_infinity<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
}

/// Errors of the run directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A checkpoint that cannot be read or applied.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A state file without what resume needs.
    #[error("{path}: not a kd training state: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

type Result<T> = std::result::Result<T, StateError>;

/// The paths of a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

impl RunDir {
    /// `root` as a run directory (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `checkpoints/<tag>.safetensors`: the weights.
    pub fn weights(&self, tag: &str) -> PathBuf {
        self.checkpoints().join(format!("{tag}.safetensors"))
    }

    /// `checkpoints/<tag>.state.safetensors`: what resume needs.
    pub fn state(&self, tag: &str) -> PathBuf {
        self.checkpoints().join(format!("{tag}.state.safetensors"))
    }

    /// Creates the directory and `checkpoints/`.
    pub fn create(&self) -> Result<()> {
        let dir = self.checkpoints();
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io { path: dir, source })
    }

    /// Writes `text` to `name` in the run directory atomically.
    pub fn write_atomic(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.root.join(name), text.as_bytes())
    }

    /// Rewrites `metrics.csv` and `metrics.jsonl` from `history`.
    pub fn write_metrics(&self, history: &[EpochRow]) -> Result<()> {
        let mut csv = String::from(CSV_HEADER);
        csv.push('\n');
        let mut jsonl = String::new();
        for row in history {
            csv.push_str(&row.csv());
            csv.push('\n');
            jsonl.push_str(&serde_json::to_string(row).expect("a row serialises"));
            jsonl.push('\n');
        }
        self.write_atomic("metrics.csv", &csv)?;
        self.write_atomic("metrics.jsonl", &jsonl)
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The tensors of a training state, grouped.
#[derive(Debug)]
pub struct TrainState {
    /// What the run has done.
    pub meta: Meta,
    /// The student's variables by name.
    pub model: Vec<(String, Tensor)>,
    /// The distiller's variables by name (empty without one).
    pub distill: Vec<(String, Tensor)>,
    /// The optimizer's buffers by name.
    pub optim: Vec<(String, Tensor)>,
    /// The loss scaler's state by name.
    pub scaler: Vec<(String, Tensor)>,
}

impl TrainState {
    /// Writes the state as one safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = serde_json::to_vec(&self.meta).expect("meta serialises");
        let mut all: Vec<(String, Tensor)> = Vec::new();
        all.push(("meta".into(), Tensor::from_slice(&meta)));
        for (prefix, group) in [
            ("model.", &self.model),
            ("distill.", &self.distill),
            ("optim.", &self.optim),
            ("scaler.", &self.scaler),
        ] {
            for (k, t) in group {
                all.push((format!("{prefix}{k}"), t.shallow_clone()));
            }
        }
        checkpoint::write_safetensors(&all, path)?;
        Ok(())
    }

    /// Reads a state file written by [`TrainState::save`].
    pub fn load(path: &Path) -> Result<TrainState> {
        let tensors = Tensor::read_safetensors(path).map_err(|e| StateError::Format {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        let format = |why: String| StateError::Format {
            path: path.to_owned(),
            why,
        };
        let mut meta = None;
        let (mut model, mut distill) = (Vec::new(), Vec::new());
        let (mut optim, mut scaler) = (Vec::new(), Vec::new());
        for (k, t) in tensors {
            if k == "meta" {
                if t.kind() != Kind::Uint8 {
                    return Err(format("'meta' is not a byte tensor".into()));
                }
                let bytes: Vec<u8> =
                    Vec::try_from(&t).map_err(|e: tch::TchError| format(e.to_string()))?;
                meta = Some(
                    serde_json::from_slice::<Meta>(&bytes)
                        .map_err(|e| format(format!("'meta': {e}")))?,
                );
            } else if let Some(name) = k.strip_prefix("model.") {
                model.push((name.to_string(), t));
            } else if let Some(name) = k.strip_prefix("distill.") {
                distill.push((name.to_string(), t));
            } else if let Some(name) = k.strip_prefix("optim.") {
                optim.push((name.to_string(), t));
            } else if let Some(name) = k.strip_prefix("scaler.") {
                scaler.push((name.to_string(), t));
            } else {
                return Err(format(format!("unexpected tensor '{k}'")));
            }
        }
        let meta = meta.ok_or_else(|| format("no 'meta' entry".into()))?;
        if meta.format != FORMAT {
            return Err(format(format!(
                "format '{}', this kd reads '{FORMAT}'",
                meta.format
            )));
        }
        Ok(TrainState {
            meta,
            model,
            distill,
            optim,
            scaler,
        })
    }
}
