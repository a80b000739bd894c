//! The run configuration: one TOML file, `--set section.key=value` overrides and named presets.
//!
//! Layers, later ones winning: the built-in defaults (RepDistiller's recipe), the preset
//! (`run.preset`, or `--preset`), the config file, then each `--set`. Unknown sections and keys
//! are errors that name them and suggest the nearest valid one; a value of the wrong type is an
//! error that shows the offending line. The resolved config is what a run directory stores.
//!
//! `loss.distiller` selects one of RepDistiller's feature distillers ([`crate::distill`]); with
//! one, γ, α and β default to the reference's run script for the method (see [`LossSection`]).
//!
//! | preset | recipe |
//! |---|---|
//! | `repdistiller` (default) | SGD lr 0.05 (0.01 for MobileNetV2/ShuffleV1/ShuffleV2 students unless `optim.lr` is set), momentum 0.9, wd 5e-4 on every parameter, batch 64, 240 epochs, ×0.1 at 150/180/210; loss 0.1·CE + 0.9·KL(T = 4) |
//! | `kd-data` | Nesterov SGD lr 0.1, momentum 0.9, wd 5e-4 on parameters of 2+ dimensions only, batch 128, 200 epochs, ×0.1 at 100/150; loss (1−α)·CE + α·KL with kd_data's defaults α = 0.1, τ = 1 (`loss.ce = "1-kd"`) |

use crate::distill::ab::AbParams;
use crate::distill::cc::CcParams;
use crate::distill::crd::CrdParams;
use crate::distill::fitnet::FitnetParams;
use crate::distill::rkd::RkdParams;
use crate::distill::{self, Method};
use kd_augment::pipeline::closest;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use toml::{Table, Value};

/// Errors reading a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type (the message shows the line).
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or "the merged config" after overrides.
        origin: String,
        /// toml's message.
        message: String,
    },
    /// A section or key the config does not have.
    #[error("{origin}: unknown {what} '{key}'{hint} (valid: {valid})")]
    UnknownKey {
        /// Where it was written.
        origin: String,
        /// "section" or "key".
        what: &'static str,
        /// The full key, e.g. `optim.lrr`.
        key: String,
        /// "; did you mean …?" or empty.
        hint: String,
        /// The valid names at that level.
        valid: String,
    },
    /// A `--set` that is not `section.key=value`.
    #[error("--set '{0}': expected section.key=value, e.g. optim.lr=0.1")]
    BadOverride(String),
    /// A value that parses but is not allowed.
    #[error("{key} = {value}: {why}")]
    Invalid {
        /// The full key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A preset name nobody knows.
    #[error("unknown preset '{name}'{hint} (known: {known})")]
    UnknownPreset {
        /// The name.
        name: String,
        /// "; did you mean …?" or empty.
        hint: String,
        /// The presets.
        known: String,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, ConfigError>;

/// `[run]`: what the run is called, where it goes, how long, on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// The run directory's name under `out_dir`.
    pub name: String,
    /// The recipe the defaults come from: `repdistiller` or `kd-data`.
    pub preset: String,
    /// The one seed of initialisation, data order and augmentation.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Where run directories are made.
    pub out_dir: PathBuf,
    /// Training epochs.
    pub epochs: usize,
    /// fp16 autocast with a dynamic loss scaler (CUDA only; ignored on the CPU).
    pub amp: bool,
    /// libtorch intra-op threads; 0 keeps libtorch's default.
    pub threads: usize,
    /// Layout of image batches and convolution weights: `auto` (channels-last on the CPU,
    /// contiguous on CUDA), `channels_last` or `contiguous` (PyTorch's default, as the reference
    /// code runs). The values agree to float rounding; channels-last is faster on the CPU.
    pub memory_format: String,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            name: "run".into(),
            preset: "repdistiller".into(),
            seed: 0,
            device: "auto".into(),
            out_dir: "runs".into(),
            epochs: 240,
            amp: false,
            threads: 0,
            memory_format: "auto".into(),
        }
    }
}

/// `[data.synthetic]`: the built-in dataset's size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSection {
    /// The dataset's own seed (the same for every run seed, so runs compare on the same data).
    pub seed: u64,
    /// Training images per class.
    pub train_per_class: usize,
    /// Test images per class.
    pub test_per_class: usize,
    /// Image side.
    pub size: usize,
    /// Classes.
    pub classes: usize,
}

impl Default for SyntheticSection {
    fn default() -> Self {
        let d = kd_data::synthetic::SyntheticConfig::default();
        SyntheticSection {
            seed: d.seed,
            train_per_class: d.train_per_class,
            test_per_class: d.test_per_class,
            size: d.size,
            classes: d.classes,
        }
    }
}

/// `[data]`: the dataset and its loader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// A dataset folder (CIFAR, MNIST, ImageFolder, …) or `synthetic`.
    pub dataset: String,
    /// Normalisation preset (`cifar100`, `cifar100-kd_data`, …) or `auto` (by dataset and preset).
    pub norm: String,
    /// Training batch size.
    pub batch_size: usize,
    /// Test batch size (speed only; 0: 256).
    pub test_batch_size: usize,
    /// Loader threads; 0: one per core.
    pub workers: usize,
    /// The per-sample standard DA, a kd-augment pipeline; `auto` is `crop:size/8,flip`.
    pub standard: String,
    /// A saved subset (kd-data's JSON) of the training set to train on.
    pub subset: Option<PathBuf>,
    /// The built-in dataset's size, when `dataset = "synthetic"`.
    pub synthetic: SyntheticSection,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            dataset: "synthetic".into(),
            norm: "auto".into(),
            batch_size: 64,
            test_batch_size: 0,
            workers: 0,
            standard: "auto".into(),
            subset: None,
            synthetic: SyntheticSection::default(),
        }
    }
}

/// `[augment]`: the stronger DA that makes x′ (Good-DA-in-KD).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// A scheme (`identity`, `flip`, `crop+flip`, `cutout`, `autoaugment`, `mixup`, `cutmix`,
    /// `cutmix_pick:teacher_entropy`, `cutmix_pick:student_entropy`), optionally `@sample`
    /// for per-sample randomness; absent: no augmented view.
    pub strong: Option<String>,
    /// CutMixPick: rows kept from the pool; 0: the batch size (the reference's `n_pick` 64).
    pub pick_n: usize,
    /// CutMixPick by student entropy: score the pool with the student in `train` mode (the
    /// reference: batch statistics, and BatchNorm's running statistics updated as a side
    /// effect) or in `eval` mode (running statistics, no side effect).
    pub student_pick_mode: String,
}

impl Default for AugmentSection {
    fn default() -> Self {
        AugmentSection {
            strong: None,
            pick_n: 0,
            student_pick_mode: "train".into(),
        }
    }
}

/// `[model]`: the networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// The student (or the model `kd train` trains), a zoo name.
    pub student: String,
    /// The teacher, a zoo name (`kd distill`).
    pub teacher: Option<String>,
    /// The teacher's weights: safetensors or a PyTorch checkpoint.
    pub teacher_weights: Option<PathBuf>,
    /// Start the student from these weights instead of the reference initialisation.
    pub student_weights: Option<PathBuf>,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            student: "resnet8x4".into(),
            teacher: None,
            teacher_weights: None,
            student_weights: None,
        }
    }
}

/// The cross-entropy weight γ: a number, or kd_data's convex combination `"1-kd"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CeWeight {
    /// γ itself.
    Fixed(f64),
    /// kd_data's rule: γ = 1 − α for the KL loss, and no CE at all (α ignored, weight 1) for
    /// the MSE and SmoothL1 logit losses.
    OneMinusKd,
}

impl Serialize for CeWeight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CeWeight::Fixed(v) => s.serialize_f64(*v),
            CeWeight::OneMinusKd => s.serialize_str("1-kd"),
        }
    }
}

impl<'de> Deserialize<'de> for CeWeight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(CeWeight::Fixed(v)),
            Raw::Int(v) => Ok(CeWeight::Fixed(v as f64)),
            Raw::Text(t) if t.replace(' ', "") == "1-kd" => Ok(CeWeight::OneMinusKd),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "ce = \"{t}\": expected a number or \"1-kd\""
            ))),
        }
    }
}

/// The logit loss between student and teacher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// KL divergence at temperature T, × T² (T = inf: the closed-form limit).
    Kl,
    /// Mean squared error on logits, mean over batch × classes.
    Mse,
    /// SmoothL1 (β = 1) on logits, mean over batch × classes.
    SmoothL1,
}

/// `[loss]`: γ·CE(S(x), y) + α·(w₀·KD(S(x), T(x)) + w₁·CE(S(x′), y′) + w₂·KD(S(x′), T(x′)))
/// + β·distiller(S(x), T(x)).
///
/// With a distiller (`distiller` other than `none`), γ, α and β default to the reference's run
/// script for the method: γ = 1, α = 0 and β = [`Method::default_beta`], unless the file or a
/// `--set` gives them (a preset's γ and α do not count: `kd distill --set loss.distiller=fitnet`
/// is RepDistiller's FitNet line whatever the preset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSection {
    /// γ, the cross-entropy weight on the original samples.
    pub ce: CeWeight,
    /// α, the KD weight.
    pub kd: f64,
    /// Good-DA-in-KD's `lw_mix` [w₀, w₁, w₂]: the KD term on x, the label (mixed) CE on x′, the
    /// KD term on x′ (used only with `augment.strong`).
    pub aug: [f64; 3],
    /// The KD temperature T; `inf` is the τ → ∞ limit.
    pub temperature: f64,
    /// `kl`, `mse` or `smooth_l1`.
    pub kind: LossKind,
    /// RepDistiller's feature distiller: `none`, `fitnet`, `at`, `sp`, `cc`, `vid`, `rkd`, `pkt`,
    /// `ab`, `ft`, `fsp`, `nst` or `crd` (the reference's names `hint`, `attention`, … too).
    pub distiller: Method,
    /// β, the distiller's weight (absent: the reference's for the method).
    pub beta: Option<f64>,
    /// Epochs of the init stage of AB, FT and FSP (the reference's `--init_epochs`).
    pub init_epochs: usize,
    /// The init stage's constant learning rate (absent: the reference's, 0.01 for FT with a
    /// `resnet*`/`wrn_*` student, else `optim.lr`).
    pub init_lr: Option<f64>,
    /// `[loss.fitnet]`.
    pub fitnet: FitnetParams,
    /// `[loss.cc]`.
    pub cc: CcParams,
    /// `[loss.rkd]`.
    pub rkd: RkdParams,
    /// `[loss.ab]`.
    pub ab: AbParams,
    /// `[loss.crd]`.
    pub crd: CrdParams,
}

impl LossSection {
    /// Every method's parameters, as the distillers take them.
    pub fn params(&self) -> distill::Params {
        distill::Params {
            fitnet: self.fitnet,
            cc: self.cc,
            rkd: self.rkd,
            ab: self.ab,
            crd: self.crd,
        }
    }

    /// The init stage's learning rate for `student` at base rate `lr`.
    pub fn init_lr(&self, student: &str, lr: f64) -> f64 {
        self.init_lr.unwrap_or(
            if self.distiller == Method::Ft
                && (student.starts_with("resnet") || student.starts_with("wrn_"))
            {
                0.01
            } else {
                lr
            },
        )
    }
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            ce: CeWeight::Fixed(0.1),
            kd: 0.9,
            aug: [1.0, 0.0, 1.0],
            temperature: 4.0,
            kind: LossKind::Kl,
            distiller: Method::None,
            beta: None,
            init_epochs: 30,
            init_lr: None,
            fitnet: FitnetParams::default(),
            cc: CcParams::default(),
            rkd: RkdParams::default(),
            ab: AbParams::default(),
            crd: CrdParams::default(),
        }
    }
}

/// `[optim]`: SGD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// The base learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Dampening.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// No weight decay on parameters of one dimension (BatchNorm and biases), as kd_data.
    pub no_decay_1d: bool,
}

impl Default for OptimSection {
    fn default() -> Self {
        OptimSection {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 5e-4,
            no_decay_1d: false,
        }
    }
}

/// `[schedule]`: the learning rate over epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// `multistep`, `cosine` or `constant`.
    pub kind: String,
    /// Multistep: the epochs (1-based) after which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// Multistep: the factor.
    pub gamma: f64,
    /// Linear warm-up epochs.
    pub warmup_epochs: usize,
    /// Cosine: the final rate.
    pub min_lr: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            kind: "multistep".into(),
            milestones: vec![150, 180, 210],
            gamma: 0.1,
            warmup_epochs: 0,
            min_lr: 0.0,
        }
    }
}

/// A whole run's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// `[run]`.
    pub run: RunSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[augment]`.
    pub augment: AugmentSection,
    /// `[model]`.
    pub model: ModelSection,
    /// `[loss]`.
    pub loss: LossSection,
    /// `[optim]`.
    pub optim: OptimSection,
    /// `[schedule]`.
    pub schedule: ScheduleSection,
}

/// The presets by name, as TOML overlays on the defaults (which are RepDistiller's recipe).
pub const PRESETS: &[(&str, &str)] = &[
    ("repdistiller", ""),
    (
        "kd-data",
        r#"
[run]
epochs = 200
[data]
batch_size = 128
[loss]
ce = "1-kd"
kd = 0.1
temperature = 1.0
[optim]
lr = 0.1
momentum = 0.9
nesterov = true
weight_decay = 5e-4
no_decay_1d = true
[schedule]
kind = "multistep"
milestones = [100, 150]
gamma = 0.1
"#,
    ),
];

/// Students whose learning rate RepDistiller forces to 0.01.
pub const REPDISTILLER_SMALL_LR_MODELS: &[&str] = &["MobileNetV2", "ShuffleV1", "ShuffleV2"];

/// Where a config came from, and what it says.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file's text and name, if any.
    pub file: Option<(String, String)>,
    /// A preset that overrides `run.preset` (the CLI's `--preset`).
    pub preset: Option<String>,
    /// `section.key=value` overrides, in order.
    pub overrides: Vec<String>,
}

impl ConfigSource {
    /// Reads `path` as the config file.
    pub fn with_file(mut self, path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.file = Some((path.display().to_string(), text));
        Ok(self)
    }

    /// Merges the layers into a checked [`RunConfig`].
    pub fn resolve(&self) -> Result<RunConfig> {
        let mut explicit = Table::new();
        if let Some((name, text)) = &self.file {
            let table: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: name.clone(),
                    message: e.to_string(),
                })?;
            check_keys(&table, name)?;
            // Type errors in the file are reported against the file, with its line.
            toml::from_str::<RunConfig>(text).map_err(|e| ConfigError::Parse {
                origin: name.clone(),
                message: e.to_string(),
            })?;
            explicit = table;
        }
        let defaults = Table::try_from(schema_config()).expect("the config serialises");
        for o in &self.overrides {
            let (key, value) = parse_override(o, &defaults)?;
            let mut one = Table::new();
            insert_path(&mut one, &key, value).map_err(|_| ConfigError::BadOverride(o.clone()))?;
            check_keys(&one, &format!("--set {o}"))?;
            merge(&mut explicit, one);
        }
        let preset_name = self
            .preset
            .clone()
            .or_else(|| {
                explicit
                    .get("run")
                    .and_then(|r| r.get("preset"))
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| RunSection::default().preset);
        let overlay = preset(&preset_name)?;
        let mut merged: Table = overlay.parse().expect("built-in presets are valid TOML");
        merge(&mut merged, explicit.clone());
        let run = merged
            .entry("run")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(run) = run {
            run.insert("preset".into(), Value::String(preset_name.clone()));
        }
        // Re-parse the merged text so a type error from an override still shows its line.
        let text = toml::to_string(&merged).expect("a table serialises");
        let mut cfg: RunConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: "the merged config (file, preset and --set)".into(),
            message: e.to_string(),
        })?;
        let lr_explicit = explicit.get("optim").and_then(|o| o.get("lr")).is_some();
        if preset_name == "repdistiller"
            && !lr_explicit
            && REPDISTILLER_SMALL_LR_MODELS.contains(&cfg.model.student.as_str())
        {
            cfg.optim.lr = 0.01;
        }
        apply_distiller_defaults(&mut cfg, &explicit);
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A distiller's weights from the reference's run script, where the file and `--set` leave
/// them: γ = 1, α = 0, β = the method's (see [`LossSection`]).
fn apply_distiller_defaults(cfg: &mut RunConfig, explicit: &Table) {
    let l = &mut cfg.loss;
    if l.distiller == Method::None {
        return;
    }
    let given = |key: &str| explicit.get("loss").and_then(|t| t.get(key)).is_some();
    if !given("ce") {
        l.ce = CeWeight::Fixed(1.0);
    }
    if !given("kd") {
        l.kd = 0.0;
    }
    l.beta.get_or_insert(l.distiller.default_beta());
}

/// The overlay of preset `name`.
pub fn preset(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            ConfigError::UnknownPreset {
                name: name.into(),
                hint: hint(name, &names),
                known: names.join(", "),
            }
        })
}

fn hint(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}

/// The defaults with every optional key present (as an empty text), which gives the key set
/// and which keys hold text.
fn schema_config() -> RunConfig {
    RunConfig {
        data: DataSection {
            subset: Some(PathBuf::new()),
            ..DataSection::default()
        },
        augment: AugmentSection {
            strong: Some(String::new()),
            ..AugmentSection::default()
        },
        loss: LossSection {
            beta: Some(0.0),
            init_lr: Some(0.0),
            ..LossSection::default()
        },
        model: ModelSection {
            teacher: Some(String::new()),
            teacher_weights: Some(PathBuf::new()),
            student_weights: Some(PathBuf::new()),
            ..ModelSection::default()
        },
        ..RunConfig::default()
    }
}

/// The sections and their keys, from the defaults' own serialisation plus the optional keys.
fn schema() -> Vec<(String, Vec<String>)> {
    let table = Table::try_from(schema_config()).expect("the config serialises");
    let mut out = Vec::new();
    for (section, value) in &table {
        if let Value::Table(t) = value {
            out.push((section.clone(), t.keys().cloned().collect()));
            for (k, v) in t {
                if let Value::Table(sub) = v {
                    out.push((format!("{section}.{k}"), sub.keys().cloned().collect()));
                }
            }
        }
    }
    out
}

/// Rejects sections and keys the config does not have, naming them with a suggestion.
fn check_keys(table: &Table, origin: &str) -> Result<()> {
    let schema = schema();
    let sections: Vec<&str> = schema
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|s| !s.contains('.'))
        .collect();
    fn walk(
        table: &Table,
        prefix: &str,
        schema: &[(String, Vec<String>)],
        sections: &[&str],
        origin: &str,
    ) -> Result<()> {
        for (k, v) in table {
            let full = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if prefix.is_empty() {
                if !sections.contains(&k.as_str()) {
                    return Err(ConfigError::UnknownKey {
                        origin: origin.into(),
                        what: "section",
                        key: full,
                        hint: hint(k, sections),
                        valid: sections.join(", "),
                    });
                }
                if let Value::Table(t) = v {
                    walk(t, &full, schema, sections, origin)?;
                }
                continue;
            }
            let keys = &schema.iter().find(|(s, _)| s == prefix).expect("known").1;
            let names: Vec<&str> = keys.iter().map(String::as_str).collect();
            if !names.contains(&k.as_str()) {
                return Err(ConfigError::UnknownKey {
                    origin: origin.into(),
                    what: "key",
                    key: full,
                    hint: hint(k, &names),
                    valid: names.join(", "),
                });
            }
            if let Value::Table(t) = v
                && schema.iter().any(|(s, _)| *s == full)
            {
                walk(t, &full, schema, sections, origin)?;
            }
        }
        Ok(())
    }
    walk(table, "", &schema, &sections, origin)
}

/// `section.key=value` → (["section", "key"], value). The value is TOML (`0.1`, `true`,
/// `[100, 150]`, `"x"`, `inf`); anything that is not TOML is taken as a bare string, so
/// `model.student=resnet20` needs no quotes.
fn parse_override(text: &str, defaults: &Table) -> Result<(Vec<String>, Value)> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| ConfigError::BadOverride(text.into()))?;
    let key: Vec<String> = key
        .trim()
        .split('.')
        .map(|s| s.trim().to_string())
        .collect();
    if key.len() < 2 || key.iter().any(String::is_empty) {
        return Err(ConfigError::BadOverride(text.into()));
    }
    let value = value.trim();
    let parsed = format!("v = {value}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    // A key that holds text takes the value as text, so `run.name=nan` or `run.name=2024` is
    // a name, not a number.
    let (last, path) = key.split_last().expect("two parts or more");
    let leaf = path
        .iter()
        .try_fold(defaults, |t, k| t.get(k).and_then(Value::as_table))
        .and_then(|t| t.get(last));
    let wants_text = matches!(leaf, Some(Value::String(_)));
    let parsed = match parsed {
        Some(Value::String(s)) => Value::String(s),
        Some(_) if wants_text => Value::String(value.to_string()),
        Some(v) => v,
        None => Value::String(value.to_string()),
    };
    Ok((key, parsed))
}

fn insert_path(table: &mut Table, key: &[String], value: Value) -> std::result::Result<(), ()> {
    match key {
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            match entry {
                Value::Table(t) => insert_path(t, rest, value),
                _ => Err(()),
            }
        }
        [] => Err(()),
    }
}

/// Merges `top` into `base`, sub-tables key by key, other values replaced.
fn merge(base: &mut Table, top: Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl RunConfig {
    /// The values that parse but cannot run, each named.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &str, value: &dyn fmt::Display, why: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                value: value.to_string(),
                why: why.into(),
            })
        };
        if self.run.epochs == 0 {
            return invalid("run.epochs", &0, "must be at least 1");
        }
        if self.run.name.is_empty() || self.run.name.contains(['/', '\\']) {
            return invalid(
                "run.name",
                &format!("{:?}", self.run.name),
                "must be a non-empty folder name",
            );
        }
        if self.data.batch_size == 0 {
            return invalid("data.batch_size", &0, "must be at least 1");
        }
        let l = &self.loss;
        if l.temperature.is_nan() || l.temperature <= 0.0 {
            return invalid(
                "loss.temperature",
                &l.temperature,
                "must be positive (inf for the τ → ∞ limit)",
            );
        }
        if !l.kd.is_finite() || l.kd < 0.0 {
            return invalid("loss.kd", &l.kd, "must be a finite number ≥ 0");
        }
        if let CeWeight::Fixed(g) = l.ce
            && (!g.is_finite() || g < 0.0)
        {
            return invalid("loss.ce", &g, "must be a finite number ≥ 0 or \"1-kd\"");
        }
        if l.aug.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return invalid("loss.aug", &format!("{:?}", l.aug), "weights must be ≥ 0");
        }
        self.validate_distiller()?;
        let o = &self.optim;
        for (key, v) in [
            ("optim.lr", o.lr),
            ("optim.momentum", o.momentum),
            ("optim.dampening", o.dampening),
            ("optim.weight_decay", o.weight_decay),
        ] {
            if !v.is_finite() || v < 0.0 {
                return invalid(key, &v, "must be a finite number ≥ 0");
            }
        }
        if o.nesterov && (o.momentum == 0.0 || o.dampening != 0.0) {
            return invalid(
                "optim.nesterov",
                &true,
                "needs momentum > 0 and dampening 0 (as PyTorch)",
            );
        }
        let s = &self.schedule;
        match s.kind.as_str() {
            "multistep" => {
                if s.milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return invalid(
                        "schedule.milestones",
                        &format!("{:?}", s.milestones),
                        "must increase",
                    );
                }
                if s.gamma.is_nan() || s.gamma <= 0.0 {
                    return invalid("schedule.gamma", &s.gamma, "must be positive");
                }
            }
            "cosine" | "constant" => {}
            other => {
                let kinds = ["multistep", "cosine", "constant"];
                return invalid(
                    "schedule.kind",
                    &format!("\"{other}\""),
                    &format!(
                        "expected one of {}{}",
                        kinds.join(", "),
                        hint(other, &kinds)
                    ),
                );
            }
        }
        if s.warmup_epochs >= self.run.epochs && s.warmup_epochs > 0 {
            return invalid(
                "schedule.warmup_epochs",
                &s.warmup_epochs,
                "must be shorter than run.epochs",
            );
        }
        if !["train", "eval"].contains(&self.augment.student_pick_mode.as_str()) {
            return invalid(
                "augment.student_pick_mode",
                &format!("\"{}\"", self.augment.student_pick_mode),
                "expected \"train\" or \"eval\"",
            );
        }
        if self.model.teacher.is_some() != self.model.teacher_weights.is_some() {
            return invalid(
                if self.model.teacher.is_some() {
                    "model.teacher_weights"
                } else {
                    "model.teacher"
                },
                &"(missing)",
                "a teacher needs both model.teacher and model.teacher_weights",
            );
        }
        Ok(())
    }

    /// The distiller's weight and parameters.
    fn validate_distiller(&self) -> Result<()> {
        let invalid = |key: &str, value: &dyn fmt::Display, why: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                value: value.to_string(),
                why: why.into(),
            })
        };
        let l = &self.loss;
        match l.beta {
            Some(b) if l.distiller == Method::None => {
                return invalid(
                    "loss.beta",
                    &b,
                    "weighs the distiller, but loss.distiller is \"none\"",
                );
            }
            Some(b) if !b.is_finite() || b < 0.0 => {
                return invalid("loss.beta", &b, "must be a finite number ≥ 0");
            }
            _ => {}
        }
        if let Some(lr) = l.init_lr
            && (!lr.is_finite() || lr <= 0.0)
        {
            return invalid("loss.init_lr", &lr, "must be a finite number > 0");
        }
        let c = &l.crd;
        for (key, v) in [
            ("loss.crd.feat_dim", c.feat_dim),
            ("loss.cc.feat_dim", l.cc.feat_dim),
        ] {
            if v < 1 {
                return invalid(key, &v, "must be at least 1");
            }
        }
        if c.nce_k == 0 {
            return invalid("loss.crd.nce_k", &0, "must be at least 1");
        }
        if !c.nce_t.is_finite() || c.nce_t <= 0.0 {
            return invalid("loss.crd.nce_t", &c.nce_t, "must be a finite number > 0");
        }
        if !(0.0..=1.0).contains(&c.nce_m) {
            return invalid("loss.crd.nce_m", &c.nce_m, "must be in [0, 1]");
        }
        for (key, v) in [
            ("loss.rkd.w_d", l.rkd.w_d),
            ("loss.rkd.w_a", l.rkd.w_a),
            ("loss.ab.margin", l.ab.margin),
        ] {
            if !v.is_finite() || v < 0.0 {
                return invalid(key, &v, "must be a finite number ≥ 0");
            }
        }
        Ok(())
    }

    /// The resolved config as TOML, what a run directory stores.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(file: &str, sets: &[&str]) -> Result<RunConfig> {
        ConfigSource {
            file: Some(("test.toml".into(), file.into())),
            preset: None,
            overrides: sets.iter().map(|s| s.to_string()).collect(),
        }
        .resolve()
    }

    #[test]
    fn defaults_are_repdistillers_recipe() {
        let c = resolve("", &[]).unwrap();
        assert_eq!(c.optim.lr, 0.05);
        assert_eq!(c.schedule.milestones, vec![150, 180, 210]);
        assert_eq!(c.loss.ce, CeWeight::Fixed(0.1));
        assert_eq!(c.loss.kd, 0.9);
        assert_eq!(c.loss.temperature, 4.0);
        assert_eq!(c.run.epochs, 240);
        assert_eq!(c.data.batch_size, 64);
        assert!(!c.optim.no_decay_1d && !c.optim.nesterov);
    }

    #[test]
    fn kd_data_preset_and_layers() {
        let c = resolve(
            "[run]\npreset = \"kd-data\"\n[optim]\nmomentum = 0.8\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 0.1);
        assert!(c.optim.nesterov && c.optim.no_decay_1d);
        assert_eq!(c.optim.momentum, 0.8);
        assert_eq!(c.loss.ce, CeWeight::OneMinusKd);
        assert_eq!(c.schedule.milestones, vec![100, 150]);
        let c = resolve(
            "[run]\npreset = \"kd-data\"\n",
            &["optim.lr=0.2", "loss.temperature=inf"],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 0.2);
        assert!(c.loss.temperature.is_infinite());
    }

    #[test]
    fn repdistiller_small_model_lr() {
        let c = resolve("[model]\nstudent = \"ShuffleV2\"\n", &[]).unwrap();
        assert_eq!(c.optim.lr, 0.01);
        let c = resolve("[model]\nstudent = \"ShuffleV2\"\n", &["optim.lr=0.05"]).unwrap();
        assert_eq!(c.optim.lr, 0.05);
    }

    #[test]
    fn unknown_keys_are_named_with_a_hint() {
        let e = resolve("[optim]\nlrr = 0.1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("optim.lrr") && e.contains("did you mean 'lr'"),
            "{e}"
        );
        let e = resolve("[optimm]\nlr = 0.1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("section 'optimm'") && e.contains("'optim'"),
            "{e}"
        );
        let e = resolve("", &["loss.temprature=2"]).unwrap_err().to_string();
        assert!(
            e.contains("loss.temprature") && e.contains("temperature"),
            "{e}"
        );
        let e = resolve("[data.synthetic]\nsize2 = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.synthetic.size2"), "{e}");
    }

    #[test]
    fn wrong_types_show_the_line() {
        let e = resolve("[optim]\nlr = \"fast\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lr = \"fast\"") && e.contains("test.toml"),
            "{e}"
        );
        let c = resolve("", &["run.name=nan", "run.device=cpu"]).unwrap();
        assert_eq!(c.run.name, "nan");
        let e = resolve("", &["run.epochs=many"]).unwrap_err().to_string();
        assert!(e.contains("epochs = \"many\""), "{e}");
        let e = resolve("", &["optim"]).unwrap_err().to_string();
        assert!(e.contains("section.key=value"), "{e}");
    }

    #[test]
    fn invalid_values_are_named() {
        let e = resolve("", &["loss.temperature=0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.temperature"), "{e}");
        let e = resolve("", &["schedule.milestones=[5, 3]"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.milestones"), "{e}");
        let e = resolve("", &["model.teacher=resnet56"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.teacher_weights"), "{e}");
        let e = resolve("", &["run.preset=kd_data"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean 'kd-data'"), "{e}");
    }

    #[test]
    fn every_shipped_config_resolves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            if !sub.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "toml") {
                    // A study file is a run config plus a [study] section (kd-cli reads that).
                    let mut table: Table = std::fs::read_to_string(&f).unwrap().parse().unwrap();
                    table.remove("study");
                    ConfigSource {
                        file: Some((f.display().to_string(), toml::to_string(&table).unwrap())),
                        ..ConfigSource::default()
                    }
                    .resolve()
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    n += 1;
                }
            }
        }
        assert!(n >= 11, "found {n} configs in {}", dir.display());
    }

    #[test]
    fn a_distiller_takes_the_reference_scripts_weights() {
        let c = resolve("", &["loss.distiller=fitnet"]).unwrap();
        assert_eq!(c.loss.distiller, Method::Fitnet);
        assert_eq!(
            (c.loss.ce, c.loss.kd, c.loss.beta),
            (CeWeight::Fixed(1.0), 0.0, Some(100.0))
        );
        // The reference's names, and CRD+KD's `-a 1 -b 0.8`.
        let c = resolve("[loss]\ndistiller = \"correlation\"\n", &[]).unwrap();
        assert_eq!((c.loss.distiller, c.loss.beta), (Method::Cc, Some(0.02)));
        let c = resolve("", &["loss.distiller=crd", "loss.kd=1"]).unwrap();
        assert_eq!(
            (c.loss.ce, c.loss.kd, c.loss.beta),
            (CeWeight::Fixed(1.0), 1.0, Some(0.8))
        );
        // A preset's weights give way; the file's do not.
        let c = resolve("[run]\npreset = \"kd-data\"\n", &["loss.distiller=pkt"]).unwrap();
        assert_eq!((c.loss.ce, c.loss.kd), (CeWeight::Fixed(1.0), 0.0));
        let c = resolve("[loss]\nce = 0.5\nbeta = 7\n", &["loss.distiller=at"]).unwrap();
        assert_eq!(
            (c.loss.ce, c.loss.kd, c.loss.beta),
            (CeWeight::Fixed(0.5), 0.0, Some(7.0))
        );
        // Without a distiller nothing changes.
        let c = resolve("", &[]).unwrap();
        assert_eq!((c.loss.distiller, c.loss.beta), (Method::None, None));
        // Method parameters, and the resolved config round-trips.
        let c = resolve(
            "[loss.crd]\nnce_k = 256\nmode = \"relax\"\n",
            &["loss.distiller=crd", "loss.fitnet.hint_layer=3"],
        )
        .unwrap();
        assert_eq!(c.loss.crd.nce_k, 256);
        assert_eq!(c.loss.crd.mode, crate::distill::crd::CrdMode::Relax);
        assert_eq!(c.loss.fitnet.hint_layer, 3);
        let again: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_distiller_settings_are_named() {
        let e = resolve("", &["loss.distiller=fitnett"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("fitnett") && e.contains("fitnet"), "{e}");
        let e = resolve("", &["loss.beta=3"]).unwrap_err().to_string();
        assert!(e.contains("loss.beta") && e.contains("\"none\""), "{e}");
        let e = resolve("", &["loss.distiller=at", "loss.beta=-1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.beta = -1"), "{e}");
        let e = resolve("", &["loss.crd.nce_t=0"]).unwrap_err().to_string();
        assert!(e.contains("loss.crd.nce_t"), "{e}");
        let e = resolve("", &["loss.crd.nce_m=1.5"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.crd.nce_m"), "{e}");
        let e = resolve("", &["loss.crd.mode=loose"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loose") && e.contains("relax"), "{e}");
        let e = resolve("", &["loss.crd.nce_kk=3"]).unwrap_err().to_string();
        assert!(e.contains("loss.crd.nce_kk") && e.contains("nce_k"), "{e}");
        let e = resolve("", &["loss.init_lr=0"]).unwrap_err().to_string();
        assert!(e.contains("loss.init_lr"), "{e}");
    }

    #[test]
    fn the_init_stage_rate_is_the_references() {
        let c = resolve("", &["loss.distiller=ft"]).unwrap();
        assert_eq!(c.loss.init_lr("resnet8x4", c.optim.lr), 0.01);
        assert_eq!(c.loss.init_lr("wrn_16_2", c.optim.lr), 0.01);
        assert_eq!(c.loss.init_lr("vgg8", c.optim.lr), 0.05);
        let c = resolve("", &["loss.distiller=ab"]).unwrap();
        assert_eq!(c.loss.init_lr("resnet8x4", c.optim.lr), 0.05);
        let c = resolve("", &["loss.distiller=ft", "loss.init_lr=0.2"]).unwrap();
        assert_eq!(c.loss.init_lr("resnet8x4", c.optim.lr), 0.2);
        assert_eq!(c.loss.init_epochs, 30);
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = resolve(
            "[augment]\nstrong = \"cutmix\"\n[loss]\ntemperature = inf\n",
            &["model.student=resnet20"],
        )
        .unwrap();
        let again: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again.model.student, "resnet20");
        assert_eq!(again.augment.strong.as_deref(), Some("cutmix"));
        assert!(again.loss.temperature.is_infinite());
        assert_eq!(again, c);
    }
}
