//! `kd study data-amount`: "When does Knowledge Distillation Help?" on less training data
//! (kd-codebases.md A.5, A.10 Table 4).
//!
//! The training set is cut down by δ, the fraction of classes kept, or by ζ, the fraction of
//! samples kept per class (δ = 0.1 on CIFAR-100 keeps 10 classes; ζ = 0.1 keeps 50 of each
//! class's 500), at random or by the teacher's per-sample entropy or TLD (its lowest or highest
//! quantile, per class or over the whole set), with kd-data's [`Subset`]. One run per kind,
//! column and seed, for the kinds of Table 4:
//!
//! | kind | teacher |
//! |---|---|
//! | `vanilla` | none: the student trained with cross-entropy |
//! | `over` (OD) | `model.teacher`, a bigger model |
//! | `self` (SD) | the student's own architecture: `self_teacher_weights`, or else the study's vanilla run on the full data (first seed) |
//! | `under` (UD) | `under_teacher`, a smaller model |
//!
//! Every teacher was trained on the full data; only the student sees the subset. After a run
//! finishes, the same job measures its final student on the held-out training samples (the
//! classes left out and the samples held out of kept classes, kd_data's "valid" split). The
//! report gives the test accuracy (always the full test set, all classes, as kd_data) and the
//! held-out accuracy, laid out as the paper's Table 4, with a plot of each against the fraction.
//!
//! ```toml
//! [study]
//! kind = "data-amount"
//! name = "data-amount_wrn_16_2"
//! out_dir = "studies"
//! seeds = [0]
//! kinds = ["vanilla", "over", "self", "under"]
//! zetas = [0.1, 0.2, 0.3, 0.4, 0.5]
//! deltas = [0.1, 0.2, 0.3, 0.4, 0.5]
//! pick = "random"          # or "entropy" / "tld": by the teacher's (model.teacher's) scores
//! keep = "lowest"          # with entropy/tld: the lowest or the highest quantile
//! scope = "per_class"      # ζ per class, or "global" (one quantile over all samples)
//! subset_seed = 2020
//! under_teacher = "wrn_16_2"
//! under_teacher_weights = "teachers/wrn_16_2.safetensors"
//! ```
//!
//! Where we differ from the reference, on purpose:
//! - One subset per column for every kind: score-based picks use `model.teacher`'s scores for
//!   all kinds, and the vanilla runs train on that subset too. In kd_data each KD run picks by
//!   its own teacher's scores and a run without a teacher always picks at random (its
//!   acquisition flags are ignored), so the kinds would not compare on the same samples.
//! - The scores are the teacher's on clean training images with the trainer's normalisation, not
//!   on one augmented pass with CIFAR-10's constants (A.12, item 4); random picks use kd-data's
//!   generator with kd_data's seed 2020, not Python's (the same seed, another subset).
//! - δ always selects whole classes (per class); `scope = "global"` applies to the ζ columns
//!   (kd_data ignores its class quantiles without `--per_class`).
//! - The table shows the mean (± std) over seeds; the paper reports the best of three runs
//!   (`results.csv` has every seed).

use super::{Job, StudyFile, TrainJob, check_study_keys, name_number, read_history, study_key};
use crate::torch::analyze;
use anyhow::{Context, Result, bail};
use kd_core::config::RunConfig;
use kd_core::train::Mode;
use kd_data::subset::{ClassSelection, Pick, Quantiles, REFERENCE_SEED, Scope, Subset, SubsetSpec};
use kd_data::{Dataset, Normalization};
use serde::Deserialize;
use std::cell::OnceCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// The kinds of Table 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The student alone, cross-entropy.
    Vanilla,
    /// Over-distillation: a bigger teacher.
    Over,
    /// Self-distillation: the student's own architecture as the teacher.
    #[serde(rename = "self")]
    SelfDistill,
    /// Under-distillation: a smaller teacher.
    Under,
}

impl Kind {
    /// Every kind, in the paper's order (which is also the order the runs are laid out in).
    pub const ALL: [Kind; 4] = [Kind::Vanilla, Kind::Over, Kind::SelfDistill, Kind::Under];

    /// Its name in configs and run names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vanilla => "vanilla",
            Kind::Over => "over",
            Kind::SelfDistill => "self",
            Kind::Under => "under",
        }
    }

    /// Its name in the paper's table.
    pub fn paper_name(self) -> &'static str {
        match self {
            Kind::Vanilla => "Vanilla",
            Kind::Over => "OD",
            Kind::SelfDistill => "SD",
            Kind::Under => "UD",
        }
    }
}

/// What the subsets are picked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickBy {
    /// At random (seed `subset_seed`).
    Random,
    /// By the teacher's softmax entropy.
    Entropy,
    /// By the teacher's top logit difference.
    Tld,
}

/// Which end of the ascending score order a score-based pick keeps (kd_data's original
/// `--sample_order` / `--cls_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The lowest scores: least entropy (most confident), or least TLD (least confident).
    Lowest,
    /// The highest scores.
    Highest,
}

/// A column of Table 4.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Column {
    /// All the data (δ = ζ = 1).
    Full,
    /// The fraction ζ of the samples of each class.
    Zeta(f64),
    /// The fraction δ of the classes.
    Delta(f64),
}

impl Column {
    /// Its name in run and file names: `full`, `zeta0.1`, `delta0.1`.
    pub fn name(self) -> String {
        match self {
            Column::Full => "full".into(),
            Column::Zeta(z) => format!("zeta{}", name_number(z)),
            Column::Delta(d) => format!("delta{}", name_number(d)),
        }
    }

    /// Its header in the paper's table: `ζ,δ=1.0`, `ζ=0.1`, `δ=0.1`.
    pub fn header(self) -> String {
        match self {
            Column::Full => "ζ,δ=1.0".into(),
            Column::Zeta(z) => format!("ζ={}", name_number(z)),
            Column::Delta(d) => format!("δ={}", name_number(d)),
        }
    }

    /// (δ, ζ) of the column.
    pub fn delta_zeta(self) -> (f64, f64) {
        match self {
            Column::Full => (1.0, 1.0),
            Column::Zeta(z) => (1.0, z),
            Column::Delta(d) => (d, 1.0),
        }
    }
}

/// How the study picks its subsets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Picking {
    /// Random, by entropy or by TLD.
    pub by: PickBy,
    /// The end of the score order kept.
    pub keep: Keep,
    /// ζ per class or over all samples.
    pub scope: Scope,
    /// The seed of random picks.
    pub seed: u64,
}

impl Picking {
    /// The quantile range that keeps the fraction `f`.
    fn range(&self, f: f64) -> Quantiles {
        match (self.by, self.keep) {
            (PickBy::Random, _) | (_, Keep::Lowest) => Quantiles::fraction(f),
            (_, Keep::Highest) => Quantiles::range(1.0 - f, 1.0),
        }
    }

    /// The subset of a column (`None`: all the data).
    pub fn spec(&self, column: Column) -> Option<SubsetSpec> {
        let pick = match self.by {
            PickBy::Random => Pick::Random { seed: self.seed },
            _ => Pick::ByScore,
        };
        let (classes, samples, scope) = match column {
            Column::Full => return None,
            Column::Zeta(z) => (Quantiles::ALL, self.range(z), self.scope),
            Column::Delta(d) => (self.range(d), Quantiles::ALL, Scope::PerClass),
        };
        Some(SubsetSpec {
            classes: ClassSelection::Quantiles(classes),
            samples,
            pick,
            scope,
        })
    }
}

const KEYS: &[&str] = &[
    "kind",
    "name",
    "out_dir",
    "seeds",
    "kinds",
    "zetas",
    "deltas",
    "pick",
    "keep",
    "scope",
    "subset_seed",
    "under_teacher",
    "under_teacher_weights",
    "self_teacher_weights",
];

/// The paper's fractions (Table 4's columns).
pub const PAPER_FRACTIONS: [f64; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];

/// The file in a run's directory that holds its held-out measurement.
pub const MEASURE_FILE: &str = "data_amount.json";

/// A data-amount study, laid out.
pub struct DataAmount {
    /// The study's directory.
    pub dir: PathBuf,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// The kinds, in the paper's order.
    pub kinds: Vec<Kind>,
    /// The columns: full, then ζ, then δ.
    pub columns: Vec<Column>,
    /// How subsets are picked.
    pub picking: Picking,
    /// Every run, in the order shards split.
    pub runs: Vec<AmountRun>,
    file: StudyFile,
    shared: OnceCell<TrainSet>,
}

/// One run of the study.
#[derive(Debug)]
pub struct AmountRun {
    /// Its kind.
    pub kind: Kind,
    /// Its column.
    pub column: Column,
    /// The seed.
    pub seed: u64,
    /// The training run (its `data.subset` is the column's subset file).
    pub run: TrainJob,
    /// The run it needs first (the vanilla full-data run, for a self-distillation from it).
    pub needs: Option<usize>,
}

impl AmountRun {
    /// Where its measurement goes.
    pub fn measure_path(&self) -> PathBuf {
        self.run.dir().join(MEASURE_FILE)
    }
}

/// The held-out measurement of a finished run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measure {
    /// Training samples the student saw.
    pub train_samples: usize,
    /// Training samples held out.
    pub heldout_samples: usize,
    /// The final student's top-1 (%) on them (clean, eval mode); `None` when nothing is held out.
    pub heldout_top1: Option<f64>,
}

/// The training set, loaded once per process, with the scoring teacher's scores when needed.
struct TrainSet {
    ds: Arc<Dataset>,
    norm: Normalization,
    scores: Option<Vec<f32>>,
}

impl DataAmount {
    /// Lays out the study `file` describes.
    pub fn new(file: StudyFile) -> Result<DataAmount> {
        let s = &file.study;
        let origin = file.origin.clone();
        check_study_keys(s, KEYS, &origin)?;
        let kind: String = study_key(s, "kind", "data-amount".to_string())?;
        if kind != "data-amount" {
            bail!("{origin}: study.kind = \"{kind}\", expected \"data-amount\"");
        }
        let name: String = study_key(s, "name", "data-amount".to_string())?;
        let out_dir: PathBuf = study_key(s, "out_dir", PathBuf::from("studies"))?;
        let seeds: Vec<u64> = study_key(s, "seeds", vec![0])?;
        let listed: Vec<Kind> = study_key(s, "kinds", Kind::ALL.to_vec())?;
        let zetas: Vec<f64> = study_key(s, "zetas", PAPER_FRACTIONS.to_vec())?;
        let deltas: Vec<f64> = study_key(s, "deltas", PAPER_FRACTIONS.to_vec())?;
        let picking = Picking {
            by: study_key(s, "pick", PickBy::Random)?,
            keep: study_key(s, "keep", Keep::Lowest)?,
            scope: study_key(s, "scope", Scope::PerClass)?,
            seed: study_key(s, "subset_seed", REFERENCE_SEED)?,
        };
        if seeds.is_empty() || listed.is_empty() {
            bail!("{origin}: study.seeds and study.kinds must not be empty");
        }
        check_fractions(&origin, "zetas", &zetas)?;
        check_fractions(&origin, "deltas", &deltas)?;
        let kinds: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| listed.contains(k))
            .collect();
        if kinds.len() != listed.len() {
            bail!("{origin}: study.kinds lists a kind twice");
        }
        if picking.by != PickBy::Random && file.base.model.teacher.is_none() {
            bail!(
                "{origin}: study.pick = \"{}\" picks by the teacher's scores: set model.teacher and model.teacher_weights",
                if picking.by == PickBy::Entropy {
                    "entropy"
                } else {
                    "tld"
                }
            );
        }
        let dir = out_dir.join(&name);
        let teachers = Teachers::new(&file, &kinds, &dir, seeds[0])?;
        let mut columns = vec![Column::Full];
        columns.extend(zetas.iter().map(|&z| Column::Zeta(z)));
        columns.extend(deltas.iter().map(|&d| Column::Delta(d)));
        let mut runs: Vec<AmountRun> = Vec::new();
        for &kind in &kinds {
            for &column in &columns {
                for &seed in &seeds {
                    let subset = picking
                        .spec(column)
                        .map(|_| dir.join("subsets").join(format!("{}.json", column.name())));
                    let name = format!("{}_{}_seed{seed}", kind.name(), column.name());
                    let config = run_config(&file, &dir, &name, seed, subset, teachers.of(kind))
                        .with_context(|| format!("run {name}"))?;
                    let needs = (kind == Kind::SelfDistill && teachers.self_from_vanilla)
                        .then(|| {
                            runs.iter().position(|r| {
                                r.kind == Kind::Vanilla
                                    && r.column == Column::Full
                                    && r.seed == seeds[0]
                            })
                        })
                        .flatten();
                    runs.push(AmountRun {
                        kind,
                        column,
                        seed,
                        run: TrainJob {
                            name,
                            mode: if kind == Kind::Vanilla {
                                Mode::Train
                            } else {
                                Mode::Distill
                            },
                            config,
                        },
                        needs,
                    });
                }
            }
        }
        Ok(DataAmount {
            dir,
            seeds,
            kinds,
            columns,
            picking,
            runs,
            file,
            shared: OnceCell::new(),
        })
    }

    /// The study's base config.
    pub fn base(&self) -> &RunConfig {
        &self.file.base
    }

    /// The teacher's architecture of a kind's runs (`None` for vanilla).
    pub fn teacher_of(&self, kind: Kind) -> Option<&str> {
        self.runs
            .iter()
            .find(|r| r.kind == kind)
            .and_then(|r| r.run.config.model.teacher.as_deref())
    }

    /// Every job, in the fixed order shards split.
    pub fn jobs(self: &Rc<Self>) -> Vec<Box<dyn Job>> {
        (0..self.runs.len())
            .map(|i| Box::new(RunRef(self.clone(), i)) as Box<dyn Job>)
            .collect()
    }

    /// The training set (and the teacher's scores, for score-based picks), loaded on first use.
    fn train_set(&self) -> Result<&TrainSet> {
        if let Some(t) = self.shared.get() {
            return Ok(t);
        }
        let cfg = &self.file.base;
        let (ds, norm) = analyze::open_split(cfg, kd_data::Split::Train)?;
        let scores = match self.picking.by {
            PickBy::Random => None,
            by => Some(self.scores(cfg, &ds, &norm, by)?),
        };
        Ok(self.shared.get_or_init(|| TrainSet { ds, norm, scores }))
    }

    /// The scoring teacher's entropy or TLD per training sample; writes all of them to
    /// `scores.csv` beside the cached logits.
    fn scores(
        &self,
        cfg: &RunConfig,
        ds: &Arc<Dataset>,
        norm: &Normalization,
        by: PickBy,
    ) -> Result<Vec<f32>> {
        let (Some(teacher), Some(weights)) = (&cfg.model.teacher, &cfg.model.teacher_weights)
        else {
            bail!("score-based picks need model.teacher");
        };
        let device = kd_core::runtime::parse_device(&cfg.run.device).map_err(anyhow::Error::msg)?;
        let z = analyze::cached_logits(
            &self.dir.join("teacher_train_logits.npy"),
            teacher,
            weights,
            ds,
            norm,
            device,
        )
        .context("the teacher's logits on the training set")?;
        let classes = ds.num_classes();
        let labels: Vec<usize> = ds.labels().iter().map(|&l| l as usize).collect();
        let entropy = kd_metrics::entropy(&z, classes)?;
        let tld = kd_metrics::tld(&z, &labels, classes)?;
        let mut csv = String::from("index,label,entropy,tld\n");
        for (i, y) in labels.iter().enumerate() {
            let _ = writeln!(csv, "{i},{y},{},{}", entropy[i], tld[i]);
        }
        kd_core::train::state::write_atomic(&self.dir.join("scores.csv"), csv.as_bytes())?;
        let chosen = if by == PickBy::Entropy { entropy } else { tld };
        Ok(chosen.into_iter().map(|v| v as f32).collect())
    }

    /// Writes the subset file of `column` unless it exists.
    fn ensure_subset(&self, run: &AmountRun) -> Result<()> {
        let (Some(path), Some(spec)) = (&run.run.config.data.subset, self.picking.spec(run.column))
        else {
            return Ok(());
        };
        if path.exists() {
            return Ok(());
        }
        let t = self.train_set()?;
        let subset = Subset::select(&t.ds, &spec, t.scores.as_deref())
            .with_context(|| format!("the subset of column {}", run.column.header()))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        subset.save(path)?;
        Ok(())
    }

    /// Measures the finished run `i` on its held-out training samples.
    fn measure(&self, i: usize) -> Result<Measure> {
        let run = &self.runs[i];
        let t = self.train_set()?;
        let cfg = &run.run.config;
        let (train, heldout) = match &cfg.data.subset {
            Some(path) => {
                let s = Subset::load(path, &t.ds)?;
                (s.len(), s.complement())
            }
            None => (t.ds.len(), Vec::new()),
        };
        let heldout_top1 = if heldout.is_empty() {
            None
        } else {
            let device =
                kd_core::runtime::parse_device(&cfg.run.device).map_err(anyhow::Error::msg)?;
            let labels: Vec<usize> = heldout.iter().map(|&i| t.ds.label(i) as usize).collect();
            let z = analyze::logits(
                &cfg.model.student,
                &run.run.dir().join("checkpoints/last.safetensors"),
                &t.ds,
                &t.norm,
                Some(heldout.clone()),
                device,
                256,
            )?;
            let right = analyze::correct(&z, &labels, t.ds.num_classes())
                .into_iter()
                .filter(|&c| c)
                .count();
            Some(100.0 * right as f64 / heldout.len() as f64)
        };
        let m = Measure {
            train_samples: train,
            heldout_samples: heldout.len(),
            heldout_top1,
        };
        kd_core::train::state::write_atomic(&run.measure_path(), &serde_json::to_vec_pretty(&m)?)?;
        Ok(m)
    }
}

fn check_fractions(origin: &str, key: &str, values: &[f64]) -> Result<()> {
    if let Some(v) = values.iter().find(|v| !(**v > 0.0 && **v < 1.0)) {
        bail!(
            "{origin}: study.{key} has {v}: a fraction must be in (0, 1) (1.0 is the full-data column, always run)"
        );
    }
    if (1..values.len()).any(|i| values[..i].contains(&values[i])) {
        bail!("{origin}: study.{key} repeats a value");
    }
    Ok(())
}

/// The teacher (architecture, weights) of each kind.
struct Teachers {
    over: Option<(String, PathBuf)>,
    self_: Option<(String, PathBuf)>,
    under: Option<(String, PathBuf)>,
    /// The self-distillation teacher is the study's own vanilla full-data run.
    self_from_vanilla: bool,
}

impl Teachers {
    fn new(file: &StudyFile, kinds: &[Kind], dir: &Path, first_seed: u64) -> Result<Teachers> {
        let s = &file.study;
        let origin = &file.origin;
        let base = &file.base.model;
        let over = match (&base.teacher, &base.teacher_weights) {
            (Some(t), Some(w)) => Some((t.clone(), w.clone())),
            _ if kinds.contains(&Kind::Over) => bail!(
                "{origin}: kind \"over\" distils from model.teacher: set model.teacher and model.teacher_weights"
            ),
            _ => None,
        };
        let under_teacher: Option<String> = study_key(s, "under_teacher", None)?;
        let under_weights: Option<PathBuf> = study_key(s, "under_teacher_weights", None)?;
        let under = match (under_teacher, under_weights) {
            (Some(t), Some(w)) => Some((t, w)),
            (None, None) if !kinds.contains(&Kind::Under) => None,
            _ => bail!(
                "{origin}: kind \"under\" needs study.under_teacher and study.under_teacher_weights (a smaller model trained on the full data)"
            ),
        };
        let self_weights: Option<PathBuf> = study_key(s, "self_teacher_weights", None)?;
        let self_from_vanilla = kinds.contains(&Kind::SelfDistill) && self_weights.is_none();
        if self_from_vanilla && !kinds.contains(&Kind::Vanilla) {
            bail!(
                "{origin}: kind \"self\" distils from the study's vanilla full-data run: add \"vanilla\" to study.kinds, or set study.self_teacher_weights"
            );
        }
        let self_ = kinds.contains(&Kind::SelfDistill).then(|| {
            let weights = self_weights.unwrap_or_else(|| {
                dir.join("runs")
                    .join(format!("vanilla_full_seed{first_seed}"))
                    .join("checkpoints/last.safetensors")
            });
            (base.student.clone(), weights)
        });
        Ok(Teachers {
            over,
            self_,
            under,
            self_from_vanilla,
        })
    }

    fn of(&self, kind: Kind) -> Option<&(String, PathBuf)> {
        match kind {
            Kind::Vanilla => None,
            Kind::Over => self.over.as_ref(),
            Kind::SelfDistill => self.self_.as_ref(),
            Kind::Under => self.under.as_ref(),
        }
    }
}

/// The config of one run: the base, with its name, seed, subset and teacher.
///
/// The full-data column (`subset` = `None`) keeps the base config's `data.subset` if it sets one,
/// so a study can run its 1.0 column on a smaller pool; the ζ/δ columns are still picked from the
/// whole training split.
fn run_config(
    file: &StudyFile,
    dir: &Path,
    name: &str,
    seed: u64,
    subset: Option<PathBuf>,
    teacher: Option<&(String, PathBuf)>,
) -> Result<RunConfig> {
    let mut cfg = file.job_config(vec![
        format!("run.out_dir=\"{}\"", dir.join("runs").display()),
        format!("run.name=\"{name}\""),
        format!("run.seed={seed}"),
    ])?;
    if subset.is_some() {
        cfg.data.subset = subset;
    }
    cfg.model.teacher = teacher.map(|t| t.0.clone());
    cfg.model.teacher_weights = teacher.map(|t| t.1.clone());
    cfg.validate()?;
    Ok(cfg)
}

struct RunRef(Rc<DataAmount>, usize);

impl Job for RunRef {
    fn name(&self) -> &str {
        &self.0.runs[self.1].run.name
    }
    fn is_done(&self) -> bool {
        let r = &self.0.runs[self.1];
        r.run.is_done() && r.measure_path().exists()
    }
    fn waits_for(&self) -> Option<String> {
        let need = &self.0.runs[self.0.runs[self.1].needs?];
        (!need.run.is_done()).then(|| need.run.name.clone())
    }
    fn run(&self, quiet: bool) -> Result<()> {
        let r = &self.0.runs[self.1];
        self.0.ensure_subset(r)?;
        if !r.run.is_done() {
            r.run.run(quiet)?;
        }
        let m = self.0.measure(self.1)?;
        if !quiet {
            println!(
                "{}: {} training samples; held-out top-1 {}",
                r.run.name,
                m.train_samples,
                m.heldout_top1
                    .map_or("– (nothing held out)".into(), |v| format!(
                        "{v:.2}% on {} samples",
                        m.heldout_samples
                    ))
            );
        }
        Ok(())
    }
}

/// What the report reads back from one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Its kind.
    pub kind: Kind,
    /// Its column.
    pub column: Column,
    /// The seed.
    pub seed: u64,
    /// The run's name.
    pub name: String,
    /// Last-epoch test top-1 (%), once finished.
    pub test_top1: Option<f64>,
    /// Best test top-1 (%) over epochs, once finished.
    pub best_test_top1: Option<f64>,
    /// The held-out measurement, once made.
    pub measure: Option<Measure>,
}

impl DataAmount {
    /// What has finished, per run, in the runs' order.
    pub fn results(&self) -> Result<Vec<RunResult>> {
        let mut out = Vec::new();
        for r in &self.runs {
            let (mut test_top1, mut best_test_top1, mut measure) = (None, None, None);
            if r.run.is_done() {
                let history = read_history(&r.run.dir())?;
                test_top1 = history.last().map(|e| e.test_top1);
                best_test_top1 = history.iter().map(|e| e.test_top1).reduce(f64::max);
                let path = r.measure_path();
                if path.exists() {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    measure = Some(serde_json::from_slice(&bytes).with_context(|| {
                        format!("{}: not a data-amount measurement", path.display())
                    })?);
                }
            }
            out.push(RunResult {
                kind: r.kind,
                column: r.column,
                seed: r.seed,
                name: r.run.name.clone(),
                test_top1,
                best_test_top1,
                measure,
            });
        }
        Ok(out)
    }
}

impl super::Study for DataAmount {
    fn layout(file: StudyFile) -> Result<Self> {
        DataAmount::new(file)
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn file(&self) -> &StudyFile {
        &self.file
    }
    fn job_list(study: &Rc<Self>) -> Vec<Box<dyn Job>> {
        study.jobs()
    }
    fn write_report(&self) -> Result<()> {
        report::write(self)
    }
}

pub mod report;

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\nstudent = \"resnet8\"\nteacher = \"resnet20\"\nteacher_weights = \"t.safetensors\"\n";

    fn study(keys: &str) -> Result<DataAmount> {
        let text = format!("[study]\nkind = \"data-amount\"\n{keys}\n{BASE}");
        DataAmount::new(StudyFile::parse(&text, "s.toml", &[])?)
    }

    #[test]
    fn runs_cross_kinds_columns_and_seeds_with_their_teachers() {
        let s = study(
            "kinds = [\"under\", \"vanilla\", \"self\", \"over\"]\nzetas = [0.5]\ndeltas = [0.1]\nunder_teacher = \"resnet8\"\nunder_teacher_weights = \"u.safetensors\"",
        )
        .unwrap();
        let names: Vec<&str> = s.runs.iter().map(|r| r.run.name.as_str()).collect();
        assert_eq!(names.len(), 4 * 3);
        assert_eq!(
            &names[..3],
            &[
                "vanilla_full_seed0",
                "vanilla_zeta0.5_seed0",
                "vanilla_delta0.1_seed0"
            ]
        );
        let v = &s.runs[0];
        assert_eq!(v.run.mode, Mode::Train);
        assert!(v.run.config.model.teacher.is_none() && v.run.config.data.subset.is_none());
        let od = s
            .runs
            .iter()
            .find(|r| r.run.name == "over_zeta0.5_seed0")
            .unwrap();
        assert_eq!(od.run.config.model.teacher.as_deref(), Some("resnet20"));
        assert!(
            od.run
                .config
                .data
                .subset
                .as_ref()
                .unwrap()
                .ends_with("subsets/zeta0.5.json")
        );
        let sd = s.runs.iter().find(|r| r.kind == Kind::SelfDistill).unwrap();
        assert_eq!(sd.run.config.model.teacher.as_deref(), Some("resnet8"));
        assert!(
            sd.run
                .config
                .model
                .teacher_weights
                .as_ref()
                .unwrap()
                .ends_with("vanilla_full_seed0/checkpoints/last.safetensors")
        );
        assert_eq!(sd.needs, Some(0));
        let ud = s.runs.iter().find(|r| r.kind == Kind::Under).unwrap();
        assert_eq!(
            ud.run.config.model.teacher_weights.as_deref(),
            Some(Path::new("u.safetensors"))
        );
        assert_eq!(s.teacher_of(Kind::Vanilla), None);
    }

    #[test]
    fn columns_become_the_papers_subsets() {
        let p = Picking {
            by: PickBy::Entropy,
            keep: Keep::Highest,
            scope: Scope::Global,
            seed: 1,
        };
        assert_eq!(p.spec(Column::Full), None);
        let z = p.spec(Column::Zeta(0.1)).unwrap();
        assert_eq!(
            (z.samples, z.scope, z.pick),
            (Quantiles::range(0.9, 1.0), Scope::Global, Pick::ByScore)
        );
        let d = p.spec(Column::Delta(0.3)).unwrap();
        assert_eq!(
            d.classes,
            ClassSelection::Quantiles(Quantiles::range(0.7, 1.0))
        );
        assert_eq!(d.scope, Scope::PerClass);
        let r = Picking {
            by: PickBy::Random,
            ..p
        }
        .spec(Column::Zeta(0.2))
        .unwrap();
        assert_eq!(
            (r.samples, r.pick),
            (Quantiles::fraction(0.2), Pick::Random { seed: 1 })
        );
        assert_eq!(Column::Full.header(), "ζ,δ=1.0");
        assert_eq!(Column::Delta(0.1).delta_zeta(), (0.1, 1.0));
    }

    #[test]
    fn bad_studies_are_named() {
        let e = study("zetas = [1.0]").err().unwrap().to_string();
        assert!(e.contains("study.zetas"), "{e}");
        let e = study("kinds = [\"under\"]").err().unwrap().to_string();
        assert!(e.contains("under_teacher"), "{e}");
        let e = study("kinds = [\"self\"]").err().unwrap().to_string();
        assert!(e.contains("vanilla"), "{e}");
        let e = format!("{:#}", study("pick = \"margin\"").err().unwrap());
        assert!(e.contains("study.pick"), "{e}");
        let text = "[study]\nkind = \"data-amount\"\nkinds = [\"vanilla\"]\npick = \"tld\"\n[model]\nstudent = \"resnet8\"\n";
        let e = DataAmount::new(StudyFile::parse(text, "s.toml", &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("model.teacher"), "{e}");
    }
}
