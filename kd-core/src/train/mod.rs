//! The trainer: `kd train` (cross-entropy) and `kd distill` (a student from a frozen teacher),
//! from one [`RunConfig`], into a run directory ([`state`]), resumable and observable.
//!
//! [`Session::prepare`] does every check that can fail before training: the config, the data,
//! the models, the teacher's weights and class count, the run directory. [`Session::run`] then
//! trains epoch by epoch: a thread prepares the next batch (the loader's per-sample standard DA on
//! its workers, then the stronger DA of the batch) while the current one trains; each epoch ends
//! with an evaluation on the test set, the metrics files and the checkpoints. A non-finite loss
//! stops the run naming the epoch and step; the last checkpoint, from the last finished epoch,
//! stays as it was.
//!
//! With a feature distiller (`loss.distiller`), its modules are trained by the same SGD and saved
//! in the checkpoints, CRD's positives and negatives are drawn on the batch thread, and a
//! two-stage method (AB, FT, FSP) runs its init stage first, checkpointed after each init epoch
//! ([`distiller`]).
//!
//! Randomness: `tch::manual_seed(seed)` before the student is built (initialisation of the
//! student, then of the distiller's modules); the loader's order and standard DA from (seed,
//! epoch, index); the stronger DA and CRD's draws from (seed, epoch, step). Nothing else draws,
//! so a run resumed from the end of epoch e (or init epoch e) continues exactly as the
//! uninterrupted run.

mod distiller;
pub mod objective;
pub mod state;

use crate::amp::{GradScaler, GradScalerConfig};
use crate::checkpoint::{self, CheckpointError, LoadOptions};
use crate::config::{CeWeight, ConfigError, LossKind, RunConfig};
use crate::distill::{self, DistillError, Method};
use crate::loss::{KdKind, KdLoss};
use crate::models::{self, Model, ModelConfig, ModelError};
use crate::optim::Sgd;
use crate::runtime::MemoryFormat;
use crate::schedule::{LrSchedule, Schedule};
use distiller::{DistillState, InitEpoch};
use kd_augment::Rng;
use kd_augment::normalize::Normalize;
use kd_augment::rng::domain;
use kd_augment::scheme::{Scheme, SchemeParams, StrongOutput, StrongSpec, StrongerDa};
use kd_augment::{ImageShape, Pipeline, Transform};
use kd_data::loader::{Batch, BatchImages, Loader, LoaderConfig, OutputFormat};
use kd_data::subset::Subset;
use kd_data::synthetic::{self, SyntheticConfig};
use kd_data::{Dataset, Normalization, Split};
use objective::{AugBatch, DistillStep, Objective};
use state::{EpochRow, Meta, RunDir, StateError, TrainState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

/// `kd train` or `kd distill`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cross-entropy training, no teacher.
    Train,
    /// Distillation from `model.teacher`.
    Distill,
}

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting that does not fit the data or the mode.
    #[error("{key}: {why}")]
    Setting {
        /// The config key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// Reading the data.
    #[error(transparent)]
    Data(#[from] kd_data::DataError),
    /// Building an augmentation.
    #[error("augmentation: {0}")]
    Augment(#[from] kd_augment::AugmentError),
    /// Building a model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The teacher's weights.
    #[error("model.teacher_weights {path}: {why}")]
    Teacher {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Student weights to start from.
    #[error("model.student_weights {path}: {source}")]
    StudentWeights {
        /// The weights file.
        path: PathBuf,
        /// Why.
        source: CheckpointError,
    },
    /// The run directory or a checkpoint.
    #[error(transparent)]
    State(#[from] StateError),
    /// A run directory that already holds a run, without `--resume`.
    #[error(
        "{dir} already holds a run ({epoch} of {epochs} epochs done): pass --resume to continue it, or choose another run.name"
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
        /// Epochs it finished.
        epoch: usize,
        /// Epochs it was configured for.
        epochs: usize,
    },
    /// `--resume` with a config that differs from the run's own.
    #[error("{dir}: cannot resume with a different config ({diffs}); start a new run.name")]
    ConfigChanged {
        /// The run directory.
        dir: PathBuf,
        /// The keys that differ, with both values.
        diffs: String,
    },
    /// A NaN or infinite loss.
    #[error(
        "the loss is {value} at epoch {epoch}, step {step}: training stopped; {checkpoint} is left as it was"
    )]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based step within it.
        step: usize,
        /// The value.
        value: f64,
        /// What the last good checkpoint is.
        checkpoint: String,
    },
    /// A NaN or infinite loss in a two-stage distiller's init stage.
    #[error(
        "the init-stage loss is {value} at init epoch {epoch}, step {step}: training stopped; the last checkpoint is left as it was"
    )]
    InitNonFinite {
        /// 1-based init epoch.
        epoch: usize,
        /// 0-based step within it.
        step: usize,
        /// The value.
        value: f64,
    },
    /// A distiller that does not apply to the pair or the data.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// An optimizer or loss-scaler state that does not fit.
    #[error("{0}")]
    Optim(String),
    /// libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Result alias of the trainer.
pub type Result<T> = std::result::Result<T, TrainError>;

/// What a run is about to do, for the observer's header.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The run directory.
    pub dir: PathBuf,
    /// The device.
    pub device: Device,
    /// Training samples per epoch.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// The first epoch this process runs (1-based; > 1 when resuming).
    pub first_epoch: usize,
    /// The last epoch.
    pub epochs: usize,
    /// The student's trainable parameters.
    pub student_parameters: i64,
    /// The teacher's test (top-1 %, top-5 %, mean CE), measured before training.
    pub teacher_test: Option<(f64, f64, f64)>,
    /// Whether fp16 autocast is on.
    pub amp: bool,
}

/// Receives a run's progress (the CLI draws a progress bar from it).
pub trait Observer {
    /// Before the first epoch.
    fn started(&mut self, _info: &RunInfo) {}
    /// At an epoch's start.
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    /// After each optimizer step: step index, images in the batch, its loss.
    fn step(&mut self, _step: usize, _images: usize, _loss: f64) {}
    /// When the test set is being evaluated.
    fn evaluating(&mut self) {}
    /// After each epoch, with its metrics.
    fn epoch_finished(&mut self, _row: &EpochRow) {}
    /// A remark worth showing (a setting ignored, a resume).
    fn note(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The run directory.
    pub dir: PathBuf,
    /// Every epoch's metrics (the earlier processes' included).
    pub history: Vec<EpochRow>,
    /// Best test top-1 and its epoch.
    pub best: (f64, usize),
}

/// The stronger DA of a run, bound to its batches.
struct Strong {
    da: StrongerDa,
    pick: Option<(kd_augment::scheme::PickBy, usize)>,
}

/// Everything a run needs, checked.
pub struct Session {
    cfg: RunConfig,
    mode: Mode,
    dir: RunDir,
    device: Device,
    amp: bool,
    /// The layout of image batches and 4-D weights (`run.memory_format`).
    format: MemoryFormat,
    train: Loader,
    test: Loader,
    strong: Option<Strong>,
    student_vs: nn::VarStore,
    student: Box<dyn Model>,
    teacher: Option<(nn::VarStore, Box<dyn Model>)>,
    distill: Option<DistillState>,
    objective: Objective,
    sgd: Sgd,
    schedule: LrSchedule,
    scaler: Option<GradScaler>,
    meta: Meta,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.dir.root.display())
    }
}

/// A tag mixed into the stronger DA's per-batch generator, apart from the loader's.
const STRONG_TAG: u64 = 0x5354_524f_4e47;

impl Session {
    /// Checks and builds everything before any training: data, models, teacher, run directory.
    /// With `resume`, an existing run continues from its last checkpoint; without it, an
    /// existing run is an error (nothing is overwritten).
    pub fn prepare(cfg: &RunConfig, mode: Mode, resume: bool) -> Result<Session> {
        let cfg = cfg.clone();
        let setting = |key: &str, why: String| TrainError::Setting {
            key: key.into(),
            why,
        };
        match mode {
            Mode::Distill if cfg.model.teacher.is_none() => {
                return Err(setting(
                    "model.teacher",
                    "kd distill needs a teacher (model.teacher and model.teacher_weights)".into(),
                ));
            }
            Mode::Train if cfg.model.teacher.is_some() => {
                return Err(setting(
                    "model.teacher",
                    "kd train trains without a teacher; use kd distill".into(),
                ));
            }
            _ => {}
        }
        let Placement {
            device,
            amp,
            format,
        } = placement(&cfg)?;

        // Data.
        let (train_ds, test_ds) = open_data(&cfg)?;
        let shape = train_ds.shape();
        if shape.height != shape.width {
            return Err(setting(
                "data.dataset",
                format!("images are {shape}; the zoo takes square images"),
            ));
        }
        if test_ds.shape() != shape || test_ds.num_classes() != train_ds.num_classes() {
            return Err(setting(
                "data.dataset",
                format!(
                    "train ({shape}, {} classes) and test ({}, {} classes) differ",
                    train_ds.num_classes(),
                    test_ds.shape(),
                    test_ds.num_classes()
                ),
            ));
        }
        let norm = normalization(&cfg, &train_ds)?;
        let workers = loader_workers(&cfg);
        let train = train_loader(&cfg, &train_ds, &norm)?;
        let test = Loader::new(
            Arc::clone(&test_ds),
            LoaderConfig {
                batch_size: if cfg.data.test_batch_size == 0 {
                    256
                } else {
                    cfg.data.test_batch_size
                },
                shuffle: false,
                drop_last: false,
                seed: 0,
                workers,
                prefetch: 2,
                output: OutputFormat::F32(norm.clone()),
            },
        )?;

        // The stronger DA.
        let strong = match &cfg.augment.strong {
            None => None,
            Some(text) => {
                let spec: StrongSpec = text.parse().map_err(|e: kd_augment::AugmentError| {
                    setting("augment.strong", e.to_string())
                })?;
                if mode == Mode::Train && cfg.loss.aug[1] == 0.0 {
                    return Err(setting(
                        "augment.strong",
                        "without a teacher x′ has no KD target; set loss.aug[1] > 0 for a cross-entropy term on x′".into(),
                    ));
                }
                if mode == Mode::Train
                    && spec.scheme == Scheme::CutMixPick(kd_augment::scheme::PickBy::TeacherEntropy)
                {
                    return Err(setting(
                        "augment.strong",
                        "CutMixPick by teacher entropy needs a teacher; kd train has none (use cutmix_pick:student_entropy)".into(),
                    ));
                }
                let scheme = spec.scheme;
                let da = stronger_da(spec, shape, &norm)?;
                let pick = match scheme {
                    Scheme::CutMixPick(by) => Some((
                        by,
                        if cfg.augment.pick_n == 0 {
                            cfg.data.batch_size
                        } else {
                            cfg.augment.pick_n
                        },
                    )),
                    _ => None,
                };
                Some(Strong { da, pick })
            }
        };

        // Models: the seed fixes the student's initialisation.
        let model_cfg = ModelConfig {
            num_classes: train_ds.num_classes() as i64,
            input_size: shape.height as i64,
        };
        tch::manual_seed(cfg.run.seed as i64);
        let student_vs = nn::VarStore::new(device);
        let student = models::build(&cfg.model.student, &student_vs.root(), &model_cfg)?;
        if let Some(path) = &cfg.model.student_weights {
            checkpoint::load_weights(&student_vs, path, LoadOptions::default()).map_err(
                |source| TrainError::StudentWeights {
                    path: path.clone(),
                    source,
                },
            )?;
        }
        // Before the optimizer records the variables' storage.
        format.apply_to(&student_vs);
        let teacher = match (&cfg.model.teacher, &cfg.model.teacher_weights) {
            (Some(name), Some(path)) if mode == Mode::Distill => {
                let (vs, model) = load_teacher(name, path, &model_cfg, device)?;
                format.apply_to(&vs);
                Some((vs, model))
            }
            _ => None,
        };

        let objective = objective(&cfg, mode)?;
        let o = &cfg.optim;
        let mut sgd = Sgd::from_var_store(&student_vs, distiller::sgd_config(&cfg))
            .map_err(|e| setting("optim", e.to_string()))?;
        let distill = match (cfg.loss.distiller, &teacher) {
            (Method::None, _) => None,
            (m, None) => {
                return Err(setting(
                    "loss.distiller",
                    format!(
                        "\"{m}\" distils a teacher's features; kd train has no teacher (use kd distill)"
                    ),
                ));
            }
            (_, Some((_, t))) => Some(DistillState::build(
                &cfg,
                student.as_ref(),
                &student_vs,
                t.as_ref(),
                model_cfg.input_size,
                device,
                &train,
                &mut sgd,
                format,
            )?),
        };
        let s = &cfg.schedule;
        let schedule = LrSchedule::new(
            o.lr,
            match s.kind.as_str() {
                "multistep" => Schedule::MultiStep {
                    milestones: s.milestones.clone(),
                    gamma: s.gamma,
                },
                "cosine" => Schedule::Cosine { min_lr: s.min_lr },
                _ => Schedule::Constant,
            },
            s.warmup_epochs,
            cfg.run.epochs,
        )
        .map_err(|e| setting("schedule", e.to_string()))?;
        let scaler = if amp {
            Some(
                GradScaler::new(GradScalerConfig::default(), device)
                    .map_err(|e| TrainError::Optim(e.to_string()))?,
            )
        } else {
            None
        };

        // The run directory: a new run, or a resumed one.
        let dir = RunDir::new(cfg.run.out_dir.join(&cfg.run.name));
        let mut session = Session {
            meta: Meta {
                format: state::FORMAT.into(),
                epoch: 0,
                init_epoch: 0,
                init_history: Vec::new(),
                epochs: cfg.run.epochs,
                seed: cfg.run.seed,
                best_top1: f64::NEG_INFINITY,
                best_epoch: 0,
                history: Vec::new(),
            },
            cfg,
            mode,
            dir,
            device,
            amp,
            format,
            train,
            test,
            strong,
            student_vs,
            student,
            teacher,
            distill,
            objective,
            sgd,
            schedule,
            scaler,
        };
        session.open_run_dir(resume)?;
        Ok(session)
    }

    /// Creates the run directory, or restores the last checkpoint when resuming.
    fn open_run_dir(&mut self, resume: bool) -> Result<()> {
        let last = self.dir.state("last");
        if last.exists() {
            let saved = TrainState::load(&last)?;
            if !resume {
                return Err(TrainError::RunExists {
                    dir: self.dir.root.clone(),
                    epoch: saved.meta.epoch,
                    epochs: saved.meta.epochs,
                });
            }
            self.check_same_config()?;
            self.restore(saved, &last)?;
        }
        self.dir.create()?;
        self.dir.write_atomic("config.toml", &self.config_text())?;
        Ok(())
    }

    /// The resolved config with the versions that ran it.
    fn config_text(&self) -> String {
        format!(
            "# kd {} ({}), libtorch {}\n{}",
            env!("CARGO_PKG_VERSION"),
            match self.mode {
                Mode::Train => "kd train",
                Mode::Distill => "kd distill",
            },
            crate::runtime::RuntimeInfo::query()
                .libtorch_version
                .unwrap_or_else(|| "(unknown)".into()),
            self.cfg.to_toml()
        )
    }

    /// Resuming demands the same config, apart from where and how long it runs.
    fn check_same_config(&self) -> Result<()> {
        let path = self.dir.config();
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        let old: RunConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        let free = |c: &RunConfig| {
            let mut c = c.clone();
            c.run.epochs = 0;
            c.run.device.clear();
            c.run.threads = 0;
            c.data.workers = 0;
            c.data.test_batch_size = 0;
            toml::Table::try_from(&c).expect("config serialises")
        };
        let (a, b) = (free(&old), free(&self.cfg));
        let mut diffs = Vec::new();
        for (section, old_v) in &a {
            let (Some(toml::Value::Table(new_t)), toml::Value::Table(old_t)) =
                (b.get(section), old_v)
            else {
                continue;
            };
            for (k, v) in old_t {
                if new_t.get(k) != Some(v) {
                    let now = new_t.get(k).map_or("(unset)".into(), |n| n.to_string());
                    diffs.push(format!("{section}.{k}: {v} then, {now} now"));
                }
            }
            for (k, v) in new_t {
                if !old_t.contains_key(k) {
                    diffs.push(format!("{section}.{k}: (unset) then, {v} now"));
                }
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(TrainError::ConfigChanged {
                dir: self.dir.root.clone(),
                diffs: diffs.join("; "),
            })
        }
    }

    /// Puts a saved state into the session. Its optimizer buffers are the init stage's while
    /// the run is in it, the main stage's once a main epoch is done; a run between the stages
    /// starts the main stage's SGD afresh, as the reference builds it after the init stage.
    fn restore(&mut self, saved: TrainState, path: &std::path::Path) -> Result<()> {
        let origin = path.display().to_string();
        let state = checkpoint::StateDict::new(origin.clone(), saved.model);
        checkpoint::load_into(&self.student_vs, &state, LoadOptions::default())
            .map_err(StateError::from)?;
        let distill_vs = self.distill.as_ref().map(|d| &d.vs);
        if let Some(vs) = distill_vs {
            let state = checkpoint::StateDict::new(origin, saved.distill);
            checkpoint::load_into(vs, &state, LoadOptions::default()).map_err(StateError::from)?;
        } else if !saved.distill.is_empty() {
            return Err(TrainError::Optim(format!(
                "{}: the checkpoint has a distiller's state, the config none",
                path.display()
            )));
        }
        let optim_err =
            |e: crate::optim::OptimError| TrainError::Optim(format!("{}: {e}", path.display()));
        let init = self.distill.as_mut().and_then(|d| d.init.as_mut());
        match init {
            Some(init) if saved.meta.epoch == 0 && saved.meta.init_epoch < init.epochs => {
                init.sgd.load_state(&saved.optim).map_err(optim_err)?;
            }
            _ if saved.meta.epoch == 0 => {}
            _ => self.sgd.load_state(&saved.optim).map_err(optim_err)?,
        }
        if let Some(scaler) = &mut self.scaler {
            if !saved.scaler.is_empty() {
                scaler
                    .load_state(&saved.scaler)
                    .map_err(|e| TrainError::Optim(format!("{}: {e}", path.display())))?;
            }
        }
        self.meta = saved.meta;
        self.meta.epochs = self.cfg.run.epochs;
        Ok(())
    }

    /// The student's variables (e.g. to compare runs).
    pub fn student_vars(&self) -> &nn::VarStore {
        &self.student_vs
    }

    /// Epochs already done (from a resumed checkpoint).
    pub fn epochs_done(&self) -> usize {
        self.meta.epoch
    }

    /// The run directory.
    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// Trains the remaining epochs.
    pub fn run(&mut self, observer: &mut dyn Observer) -> Result<Summary> {
        if self.cfg.run.amp && !self.amp {
            observer.note("run.amp is on, but fp16 autocast needs CUDA: training in fp32");
        }
        let first = self.meta.epoch + 1;
        if self.meta.epoch > 0 {
            observer.note(&format!(
                "resuming {} after epoch {} of {}",
                self.dir.root.display(),
                self.meta.epoch,
                self.cfg.run.epochs
            ));
        }
        let teacher_test = match &self.teacher {
            Some((_, t)) if first <= self.cfg.run.epochs => Some(evaluate(
                t.as_ref(),
                &self.test,
                self.device,
                self.amp,
                self.format,
            )?),
            _ => None,
        };
        observer.started(&RunInfo {
            dir: self.dir.root.clone(),
            device: self.device,
            train_samples: self.train.num_samples(),
            test_samples: self.test.num_samples(),
            steps_per_epoch: self.train.len(),
            first_epoch: first,
            epochs: self.cfg.run.epochs,
            student_parameters: self
                .student_vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum(),
            teacher_test,
            amp: self.amp,
        });
        if let Some(d) = &self.distill {
            observer.note(&format!(
                "distiller {} (the reference's --distill {}): β = {}, {} trainable parameters",
                d.distiller.method(),
                d.distiller.method().reference_name(),
                d.beta,
                d.parameters()
            ));
        }
        self.run_init_stage(observer)?;
        for epoch in first..=self.cfg.run.epochs {
            let row = self.run_epoch(epoch, observer)?;
            self.finish_epoch(row.clone())?;
            observer.epoch_finished(&row);
        }
        self.dir.write_metrics(&self.meta.history)?;
        Ok(Summary {
            dir: self.dir.root.clone(),
            history: self.meta.history.clone(),
            best: (self.meta.best_top1, self.meta.best_epoch),
        })
    }

    /// The init stage of a two-stage distiller, from where the run left it; nothing once the
    /// main stage has started. A checkpoint follows every init epoch.
    fn run_init_stage(&mut self, observer: &mut dyn Observer) -> Result<()> {
        let Some((method, lr, epochs)) = self.distill.as_ref().and_then(|d| {
            d.init
                .as_ref()
                .map(|i| (d.distiller.method(), i.lr, i.epochs))
        }) else {
            return Ok(());
        };
        if self.meta.epoch > 0 || self.meta.init_epoch >= epochs {
            return Ok(());
        }
        observer.note(&format!(
            "init stage of {method}: epochs {}..={epochs} at lr {lr}",
            self.meta.init_epoch + 1
        ));
        let (_, teacher) = self.teacher.as_ref().expect("a distiller has a teacher");
        let run = InitEpoch {
            student: self.student.as_ref(),
            teacher: teacher.as_ref(),
            train: &self.train,
            device: self.device,
            format: self.format,
        };
        let d = self.distill.as_mut().expect("checked above");
        for epoch in self.meta.init_epoch + 1..=epochs {
            let row = run.run(d, epoch)?;
            let note = format!(
                "init epoch {epoch}/{epochs}: loss {:.4}, {:.1} s",
                row.loss, row.seconds
            );
            self.meta.init_epoch = epoch;
            self.meta.init_history.push(row);
            let optim = d.init.as_ref().expect("an init stage").sgd.state();
            let state = Self::train_state(&self.meta, &self.student_vs, Some(d), optim, Vec::new());
            state.save(&self.dir.state("last"))?;
            checkpoint::save_safetensors_for_pytorch(&self.student_vs, self.dir.weights("last"))
                .map_err(StateError::from)?;
            observer.note(&note);
        }
        Ok(())
    }

    /// The checkpoint of the session's present state with the optimizer and scaler buffers
    /// given.
    fn train_state(
        meta: &Meta,
        student_vs: &nn::VarStore,
        distill: Option<&DistillState>,
        optim: Vec<(String, Tensor)>,
        scaler: Vec<(String, Tensor)>,
    ) -> TrainState {
        let mut model: Vec<(String, Tensor)> = student_vs.variables().into_iter().collect();
        model.sort_by(|a, b| a.0.cmp(&b.0));
        TrainState {
            meta: meta.clone(),
            model,
            distill: distill.map(DistillState::variables).unwrap_or_default(),
            optim,
            scaler,
        }
    }

    /// The distiller's variables, if the run has one (e.g. to compare runs).
    pub fn distiller_vars(&self) -> Option<&nn::VarStore> {
        self.distill.as_ref().map(|d| &d.vs)
    }

    /// One epoch of training, then the test evaluation.
    fn run_epoch(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<EpochRow> {
        let started = Instant::now();
        let mut row = self.train_epoch(epoch, observer)?;
        observer.evaluating();
        let (top1, top5, loss) = evaluate(
            self.student.as_ref(),
            &self.test,
            self.device,
            self.amp,
            self.format,
        )?;
        row.test_top1 = top1;
        row.test_top5 = top5;
        row.test_loss = loss;
        row.seconds = started.elapsed().as_secs_f64();
        Ok(row)
    }

    /// Trains one epoch (1-based `epoch`, whose data order and augmentation it fixes) without
    /// evaluating: the row's test fields are NaN and `seconds` is the training time. This is
    /// what the end-to-end epoch bench times; [`Session::run`] is the way to train a run.
    pub fn train_epoch(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<EpochRow> {
        let steps = self.train.len();
        observer.epoch_started(epoch, steps);
        let seed = self.cfg.run.seed;
        let device = self.device;
        let format = self.format;
        let (mut images, mut loss_sum) = (0usize, 0f64);
        let mut correct = Tensor::zeros([], (Kind::Int64, device));
        let mut terms = Tensor::zeros([5], (Kind::Float, device));
        let mut skipped = 0usize;
        let lr0 = self.schedule.lr(epoch, 0, steps);
        let train_time;
        {
            let strong = self.strong.as_ref();
            let train = &self.train;
            let sampler = self.distill.as_ref().and_then(|d| d.sampler.clone());
            let (tx, rx) = crossbeam_channel::bounded::<PreparedBatch>(2);
            let t0 = Instant::now();
            let result = std::thread::scope(|scope| -> Result<()> {
                let producer = scope.spawn(move || -> Result<()> {
                    for batch in train.epoch(epoch as u64) {
                        let aug = match strong {
                            None => None,
                            Some(s) => {
                                let mut rng = strong_rng(seed, epoch, batch.step);
                                let pixels = f32_pixels(&batch);
                                Some(s.da.apply(pixels, &mut rng)?)
                            }
                        };
                        let contrast = distiller::draw(
                            sampler.as_deref(),
                            &batch.indices,
                            seed,
                            epoch,
                            batch.step,
                        );
                        if tx
                            .send(PreparedBatch {
                                batch,
                                aug,
                                contrast,
                            })
                            .is_err()
                        {
                            break; // the trainer stopped
                        }
                    }
                    Ok(())
                });
                let trained = (|| -> Result<()> {
                    for prepared in rx.iter() {
                        let step = prepared.batch.step;
                        let n = prepared.batch.len();
                        let lr = self.schedule.lr(epoch, step, steps);
                        let (x, y) = to_tensors(&prepared.batch, device, format);
                        let aug = prepared
                            .aug
                            .map(|o| aug_batch(o, &prepared.batch, strong, device, format));
                        let distill = self.distill.as_mut().map(|d| DistillStep {
                            distiller: d.distiller.as_mut(),
                            beta: d.beta,
                            contrast: prepared.contrast.as_ref().map(|c| c.to_device(device)),
                        });
                        let out = self.objective.forward(
                            self.student.as_ref(),
                            self.teacher.as_ref().map(|(_, t)| t.as_ref()),
                            &x,
                            &y,
                            aug,
                            self.amp,
                            distill,
                        );
                        let value = f64::try_from(&out.loss)?;
                        if !value.is_finite() {
                            return Err(TrainError::NonFinite {
                                epoch,
                                step,
                                value,
                                checkpoint: if self.meta.epoch > 0 {
                                    format!(
                                        "the checkpoint of epoch {} ({})",
                                        self.meta.epoch,
                                        self.dir.state("last").display()
                                    )
                                } else {
                                    "no checkpoint was written yet, and the run directory".into()
                                },
                            });
                        }
                        self.sgd.zero_grad();
                        match &mut self.scaler {
                            None => {
                                out.loss.backward();
                                self.sgd.step(lr);
                            }
                            Some(scaler) => {
                                let amp_err =
                                    |e: crate::amp::AmpError| TrainError::Optim(e.to_string());
                                scaler.scale(&out.loss).backward();
                                if !scaler.step(&mut self.sgd, lr).map_err(amp_err)? {
                                    skipped += 1;
                                }
                                scaler.update().map_err(amp_err)?;
                            }
                        }
                        correct += out.logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64);
                        terms += out.terms * n as f64;
                        loss_sum += value * n as f64;
                        images += n;
                        observer.step(step, n, value);
                    }
                    Ok(())
                })();
                drop(rx);
                let produced = producer.join().expect("the batch producer does not panic");
                trained.and(produced)
            });
            result?;
            if let Device::Cuda(index) = device {
                tch::Cuda::synchronize(index as i64);
            }
            train_time = t0.elapsed().as_secs_f64();
        }
        let terms: Vec<f64> = Vec::try_from(terms.to_kind(Kind::Double).to_device(Device::Cpu))?;
        let mean = |v: f64| v / images.max(1) as f64;
        Ok(EpochRow {
            epoch,
            lr: lr0,
            train_loss: mean(loss_sum),
            train_top1: 100.0 * mean(i64::try_from(&correct)? as f64),
            train_ce: mean(terms[0]),
            train_kd: mean(terms[1]),
            train_ce_aug: mean(terms[2]),
            train_kd_aug: mean(terms[3]),
            train_distill: mean(terms[4]),
            test_loss: f64::NAN,
            test_top1: f64::NAN,
            test_top5: f64::NAN,
            images_per_s: images as f64 / train_time.max(1e-9),
            seconds: train_time,
            skipped_steps: skipped,
        })
    }

    /// Records an epoch: history, checkpoints (last, and best on a new best), metrics files.
    fn finish_epoch(&mut self, row: EpochRow) -> Result<()> {
        self.meta.epoch = row.epoch;
        let best = row.test_top1 > self.meta.best_top1;
        if best {
            self.meta.best_top1 = row.test_top1;
            self.meta.best_epoch = row.epoch;
        }
        self.meta.history.push(row);
        let state = Self::train_state(
            &self.meta,
            &self.student_vs,
            self.distill.as_ref(),
            self.sgd.state(),
            self.scaler.as_ref().map(|s| s.state()).unwrap_or_default(),
        );
        // The state first: it is what resume trusts; the weights and metrics follow from it.
        state.save(&self.dir.state("last"))?;
        checkpoint::save_safetensors_for_pytorch(&self.student_vs, self.dir.weights("last"))
            .map_err(StateError::from)?;
        if best {
            state.save(&self.dir.state("best"))?;
            checkpoint::save_safetensors_for_pytorch(&self.student_vs, self.dir.weights("best"))
                .map_err(StateError::from)?;
        }
        self.dir.write_metrics(&self.meta.history)?;
        Ok(())
    }
}

/// A loader batch with its stronger-DA view and CRD's draw, made on the producer thread.
struct PreparedBatch {
    batch: Batch,
    aug: Option<StrongOutput>,
    contrast: Option<distill::contrast::ContrastDraw>,
}

/// The pixels of a batch from a loader with f32 output (every loader here).
pub(crate) fn f32_pixels(batch: &Batch) -> &[f32] {
    match &batch.images {
        BatchImages::F32(p) => p,
        BatchImages::U8(_) => unreachable!("the trainer's loaders output f32"),
    }
}

/// Normalised images of `shape` (row-major, whole images) as a CPU tensor `[rows, 3, h, w]`,
/// grey images repeated to three channels.
pub(crate) fn images_tensor(pixels: &[f32], shape: ImageShape) -> Tensor {
    let rows = (pixels.len() / shape.len().max(1)) as i64;
    let x = Tensor::from_slice(pixels).view([
        rows,
        shape.channels as i64,
        shape.height as i64,
        shape.width as i64,
    ]);
    if shape.channels == 1 {
        x.repeat([1, 3, 1, 1])
    } else {
        x
    }
}

/// Where a run computes, from `[run]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    /// `run.device`.
    pub device: Device,
    /// `run.amp`, on CUDA only.
    pub amp: bool,
    /// `run.memory_format`, resolved for the device.
    pub format: MemoryFormat,
}

/// `cfg.run`'s device, AMP and layout, with libtorch set up for them: its intra-op threads
/// (`run.threads`) and, on CUDA, cuDNN benchmark mode. A bad value names its key.
pub(crate) fn placement(cfg: &RunConfig) -> Result<Placement> {
    let setting = |key: &str, why: String| TrainError::Setting {
        key: key.into(),
        why,
    };
    let run = &cfg.run;
    let device =
        crate::runtime::parse_device(&run.device).map_err(|why| setting("run.device", why))?;
    if run.threads > 0 {
        tch::set_num_threads(run.threads as i32);
    }
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let format = MemoryFormat::parse(&run.memory_format, device)
        .map_err(|why| setting("run.memory_format", why))?;
    Ok(Placement {
        device,
        amp: run.amp && device.is_cuda(),
        format,
    })
}

/// The batch as `[n, 3, h, w]` images (grey images repeated to three channels) in `format`,
/// and labels.
fn to_tensors(batch: &Batch, device: Device, format: MemoryFormat) -> (Tensor, Tensor) {
    let x = images_tensor(f32_pixels(batch), batch.shape);
    let y = Tensor::from_slice(&batch.labels);
    (format.tensor(&x.to_device(device)), y.to_device(device))
}

/// The stronger DA's output as an [`AugBatch`] on the device.
fn aug_batch(
    out: StrongOutput,
    batch: &Batch,
    strong: Option<&Strong>,
    device: Device,
    format: MemoryFormat,
) -> AugBatch {
    let s = batch.shape;
    let n = batch.len() as i64;
    let images = |v: &[f32]| format.tensor(&images_tensor(v, s).to_device(device));
    let identity: Vec<i64> = (0..n).collect();
    match out {
        StrongOutput::Images(v) => AugBatch {
            images: images(&v),
            source: identity.clone(),
            partner: identity,
            lambda: vec![1.0; n as usize],
            pick: None,
        },
        StrongOutput::Mixed(m) => AugBatch {
            images: images(&m.images),
            source: identity,
            partner: m.partner.iter().map(|&p| p as i64).collect(),
            lambda: m.lambdas.iter().map(|&l| l as f32).collect(),
            pick: None,
        },
        StrongOutput::Pool(p) => AugBatch {
            images: images(&p.images),
            source: p.rows.iter().map(|r| r.source as i64).collect(),
            partner: p.rows.iter().map(|r| r.partner as i64).collect(),
            lambda: p.rows.iter().map(|r| r.lambda as f32).collect(),
            pick: strong.and_then(|s| s.pick),
        },
    }
}

/// Rows per eval-mode forward on the CPU: the test loader's batches (256 by default) are cut into
/// passes of this many rows, which run faster there than one pass (measured with PyTorch on 2
/// threads, channels-last: resnet20 2,250 img/s at 64 rows against 1,265 at 256, resnet8x4 599
/// against 406). The values are those of one pass.
const CPU_EVAL_ROWS: i64 = 64;

/// Top-1 %, top-5 % and mean cross-entropy of `model` (eval mode) over `loader`, the images
/// in `format`.
pub fn evaluate(
    model: &dyn Model,
    loader: &Loader,
    device: Device,
    amp: bool,
    format: MemoryFormat,
) -> Result<(f64, f64, f64)> {
    let _guard = tch::no_grad_guard();
    let mut top1 = Tensor::zeros([], (Kind::Int64, device));
    let mut top5 = Tensor::zeros([], (Kind::Int64, device));
    let mut nll = Tensor::zeros([], (Kind::Double, device));
    let mut n = 0usize;
    for batch in loader.epoch(0) {
        let (x, y) = to_tensors(&batch, device, format);
        let logits = objective::eval_logits(model, &x, CPU_EVAL_ROWS, amp);
        let k = logits.size()[1].min(5);
        let (_, idx) = logits.topk(k, 1, true, true);
        let hit = idx.eq_tensor(&y.unsqueeze(1));
        top1 += hit.narrow(1, 0, 1).sum(Kind::Int64);
        top5 += hit.sum(Kind::Int64);
        nll += logits
            .cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Sum, -100, 0.0)
            .to_kind(Kind::Double);
        n += batch.len();
    }
    let n = n.max(1) as f64;
    Ok((
        100.0 * i64::try_from(&top1)? as f64 / n,
        100.0 * i64::try_from(&top5)? as f64 / n,
        f64::try_from(&nll)? / n,
    ))
}

/// Loader threads: `data.workers`, or one per core when it is 0.
fn loader_workers(cfg: &RunConfig) -> usize {
    if cfg.data.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.data.workers
    }
}

/// The trainer's training loader over `train_ds`: shuffled by `run.seed`, `data.batch_size`,
/// the short last batch kept, the per-sample standard DA `data.standard` (`auto`:
/// `crop:size/8,flip`), normalised by `norm`, restricted to `data.subset` if set.
pub fn train_loader(
    cfg: &RunConfig,
    train_ds: &Arc<Dataset>,
    norm: &Normalization,
) -> Result<Loader> {
    let setting = |key: &str, why: String| TrainError::Setting {
        key: key.into(),
        why,
    };
    let shape = train_ds.shape();
    let standard = if cfg.data.standard == "auto" {
        format!("crop:{},flip", shape.height / 8)
    } else {
        cfg.data.standard.clone()
    };
    let pipeline = Pipeline::parse(&standard, shape, Some(&norm.mean))
        .map_err(|e| setting("data.standard", e.to_string()))?;
    if pipeline.output_shape(shape) != shape {
        return Err(setting(
            "data.standard",
            format!("'{standard}' changes the image size; train and test must match"),
        ));
    }
    let mut train = Loader::new(
        Arc::clone(train_ds),
        LoaderConfig {
            batch_size: cfg.data.batch_size,
            shuffle: true,
            drop_last: false,
            seed: cfg.run.seed,
            workers: loader_workers(cfg),
            prefetch: 4,
            output: OutputFormat::F32(norm.clone()),
        },
    )?
    .with_transform(pipeline)?;
    if let Some(path) = &cfg.data.subset {
        let subset = Subset::load(path, train_ds)?;
        train = train.with_subset(&subset)?;
    }
    if train.is_empty() {
        return Err(setting("data.subset", "no training samples".into()));
    }
    Ok(train)
}

/// The stronger DA `spec` with the reference's parameters for `shape`'s size, for batches
/// normalised by `norm`.
pub fn stronger_da(
    spec: StrongSpec,
    shape: ImageShape,
    norm: &Normalization,
) -> Result<StrongerDa> {
    let normalize =
        Normalize::new(norm.mean.clone(), norm.std.clone()).map_err(|e| TrainError::Setting {
            key: "data.norm".into(),
            why: e.to_string(),
        })?;
    let params = SchemeParams::for_image_size(shape.height);
    Ok(StrongerDa::from_spec(spec, params, shape, normalize)?)
}

/// The generator of the stronger DA on the batch at 0-based `step` of 1-based `epoch` (apart
/// from the loader's own draws), so x′ depends on (seed, epoch, step) only.
pub fn strong_rng(seed: u64, epoch: usize, step: usize) -> Rng {
    Rng::from_keys(&[seed, domain::BATCH, epoch as u64, step as u64, STRONG_TAG])
}

/// The training and test sets the config names.
pub fn open_data(cfg: &RunConfig) -> Result<(Arc<Dataset>, Arc<Dataset>)> {
    if cfg.data.dataset == "synthetic" {
        let s = &cfg.data.synthetic;
        let sc = SyntheticConfig {
            seed: s.seed,
            train_per_class: s.train_per_class,
            test_per_class: s.test_per_class,
            size: s.size,
            classes: s.classes,
        };
        return Ok((
            Arc::new(synthetic::generate(&sc, Split::Train)?),
            Arc::new(synthetic::generate(&sc, Split::Test)?),
        ));
    }
    let root = std::path::Path::new(&cfg.data.dataset);
    Ok((
        Arc::new(kd_data::detect::open(root, Split::Train)?),
        Arc::new(kd_data::detect::open(root, Split::Test)?),
    ))
}

/// `data.norm`: a preset, or `auto` (kd_data's CIFAR-100 constants under the kd-data preset,
/// else the dataset's preset, else the training set's own statistics).
pub fn normalization(cfg: &RunConfig, ds: &Dataset) -> Result<Normalization> {
    let name = cfg.data.norm.as_str();
    if name != "auto" {
        return Normalization::preset(name).ok_or_else(|| {
            let known: Vec<&str> = kd_data::norm::PRESETS.iter().map(|p| p.0).collect();
            TrainError::Setting {
                key: "data.norm".into(),
                why: format!(
                    "unknown preset '{name}' (known: auto, {})",
                    known.join(", ")
                ),
            }
        });
    }
    let base = ds.name().split('/').next().unwrap_or("");
    if cfg.run.preset == "kd-data"
        && base == "cifar100"
        && let Some(n) = Normalization::preset("cifar100-kd_data")
    {
        return Ok(n);
    }
    if let Some(n) = Normalization::for_dataset(base) {
        return Ok(n);
    }
    let (mean, std) = ds.channel_stats();
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    Ok(Normalization {
        mean: f(mean),
        std: f(std),
    })
}

/// Builds the teacher, checks its weights fit (the class count first, by name), loads them and
/// freezes it. Errors name the weights file.
pub fn load_teacher(
    name: &str,
    path: &std::path::Path,
    model_cfg: &ModelConfig,
    device: Device,
) -> Result<(nn::VarStore, Box<dyn Model>)> {
    let teacher_err = |why: String| TrainError::Teacher {
        path: path.to_owned(),
        why,
    };
    if !path.exists() {
        return Err(teacher_err("no such file".into()));
    }
    let state = checkpoint::read_weights(path).map_err(|e| teacher_err(e.to_string()))?;
    let mut vs = nn::VarStore::new(device);
    let model = models::build(name, &vs.root(), model_cfg)?;
    // A classifier whose row count differs from the dataset's classes: say so plainly.
    for (key, var) in vs.variables() {
        let want = var.size();
        let stripped = key.as_str();
        let got = state
            .get(stripped)
            .or_else(|| state.get(&format!("module.{stripped}")))
            .map(|t| t.size());
        if let Some(got) = got
            && got != want
            && want.len() == 2
            && want[0] == model_cfg.num_classes
            && got.len() == 2
            && got[1] == want[1]
        {
            return Err(teacher_err(format!(
                "a {name} with {} classes ({key} is {got:?}), but the dataset has {} classes",
                got[0], model_cfg.num_classes
            )));
        }
    }
    checkpoint::load_into(&vs, &state, LoadOptions::default())
        .map_err(|e| teacher_err(format!("does not fit {name}: {e}")))?;
    vs.freeze();
    Ok((vs, model))
}

/// The objective the config describes.
fn objective(cfg: &RunConfig, mode: Mode) -> Result<Objective> {
    let l = &cfg.loss;
    let kind = match l.kind {
        LossKind::Kl => KdKind::Kl,
        LossKind::Mse => KdKind::Mse,
        LossKind::SmoothL1 => KdKind::SmoothL1,
    };
    let loss = KdLoss::new(kind, l.temperature).map_err(|e| TrainError::Setting {
        key: "loss.temperature".into(),
        why: e.to_string(),
    })?;
    if mode == Mode::Train {
        return Ok(Objective::plain(l.aug, loss));
    }
    // kd_data's rule: (1−α)·CE + α·KL, or the logit loss alone for MSE and SmoothL1.
    let (ce, kd) = match (l.ce, l.kind) {
        (CeWeight::Fixed(g), _) => (g, l.kd),
        (CeWeight::OneMinusKd, LossKind::Kl) => (1.0 - l.kd, l.kd),
        (CeWeight::OneMinusKd, _) => (0.0, 1.0),
    };
    Ok(Objective {
        ce,
        kd,
        aug: l.aug,
        loss,
        student_pick_train: cfg.augment.student_pick_mode == "train",
    })
}
