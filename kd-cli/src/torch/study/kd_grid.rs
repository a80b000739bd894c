//! `kd study kd-grid`: "When does Knowledge Distillation Help?"'s sweep of the KD weight α and
//! temperature τ for one teacher–student pair (kd-codebases.md A.9–A.10, Tables 2, 3, 11–13).
//!
//! One distillation per cell and seed: for the KL loss every α × τ (τ = inf is the closed-form
//! limit of kd-core's loss), for the logit losses (MSE, SmoothL1) one run, since under kd_data's
//! rule (`loss.ce = "1-kd"`) they have no CE term and ignore α and τ (with a fixed `loss.ce` they
//! are swept over α). After a run finishes, the same job measures its final student on the
//! training set: the training accuracy, and with the teacher (its logits computed once per study
//! and cached) the four right/wrong cases of Table 2 and the teacher's mean entropy on the
//! samples the student gets right (Table 13). The report: `results.csv`, the α × τ grids of
//! train accuracy, test accuracy and that entropy as CSV and heatmaps (the `grid_plot`
//! notebook's figure, PNG and SVG), the correlations of Table 3, and `report.md`.
//!
//! ```toml
//! [study]
//! kind = "kd-grid"
//! name = "kd-grid_wrn_28_4_wrn_16_2"
//! out_dir = "studies"
//! seeds = [0]
//! alphas = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
//! temperatures = [1.0, 3.0, 5.0, 20.0, inf]
//! losses = ["kl", "mse", "smooth_l1"]
//!
//! [run]              # and every other section of a `kd distill` config
//! preset = "kd-data"
//! …
//! ```
//!
//! Where we differ from the reference, on purpose:
//! - Training accuracy and the entropy table are measured once, on the final student, with clean
//!   training images in eval mode. kd_data's notebook takes the best `train_accuracy` over
//!   epochs, measured on the augmented training loader (eval mode), and the entropy table on one
//!   cached augmented pass with CIFAR-10's normalisation (A.12, items 4 and 7).
//! - Test accuracy is the last epoch's (the best epoch's is in `results.csv` too).
//! - The teacher's outputs use the trainer's normalisation of the dataset, the one the teacher
//!   was trained with, not CIFAR-10's constants.

use super::{
    Job, StudyFile, TrainJob, check_study_keys, name_number, read_history, study_key, toml_number,
};
use crate::torch::analyze::{self, Cases};
use anyhow::{Context, Result, bail};
use kd_core::config::{CeWeight, LossKind};
use kd_core::train::Mode;
use kd_data::subset::Subset;
use kd_data::{Dataset, Normalization};
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// The paper's α columns (Tables 11–13).
pub const PAPER_ALPHAS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// The paper's τ rows (Tables 11–13), ∞ last.
pub const PAPER_TEMPERATURES: [f64; 5] = [1.0, 3.0, 5.0, 20.0, f64::INFINITY];

const KEYS: &[&str] = &[
    "kind",
    "name",
    "out_dir",
    "seeds",
    "alphas",
    "temperatures",
    "losses",
];

/// The file in a run's directory that holds its measurement.
pub const MEASURE_FILE: &str = "kd_grid.json";

/// A kd-grid study, laid out.
pub struct KdGrid {
    /// The study's directory.
    pub dir: PathBuf,
    /// The α columns of the KL grid.
    pub alphas: Vec<f64>,
    /// The τ rows of the KL grid.
    pub temperatures: Vec<f64>,
    /// The losses.
    pub losses: Vec<LossKind>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Every run, in the order shards split.
    pub cells: Vec<Cell>,
    /// Where the teacher's training-set logits are cached.
    pub teacher_cache: PathBuf,
    file: StudyFile,
    shared: OnceCell<TrainSet>,
}

/// One run of the grid.
#[derive(Debug)]
pub struct Cell {
    /// The loss.
    pub loss: LossKind,
    /// α, when the loss uses it.
    pub alpha: Option<f64>,
    /// τ, when the loss uses it.
    pub temperature: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// The distillation.
    pub run: TrainJob,
}

impl Cell {
    /// Where its measurement goes.
    pub fn measure_path(&self) -> PathBuf {
        self.run.dir().join(MEASURE_FILE)
    }
}

/// What the measurement of a finished run found, on the training set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measure {
    /// Samples measured.
    pub train_samples: usize,
    /// The final student's top-1 (%) on them, clean images, eval mode.
    pub train_top1: f64,
    /// The teacher's mean entropy over the samples the student gets right (Table 13).
    pub teacher_entropy_correct: Option<f64>,
    /// Teacher/student right/wrong with the teacher's entropy per case (Table 2).
    pub cases: Cases,
}

/// The training samples a measurement reads, with the teacher's outputs on them; loaded once
/// per process.
struct TrainSet {
    ds: Arc<Dataset>,
    norm: Normalization,
    /// The samples measured: the run's subset, or all.
    indices: Vec<usize>,
    labels: Vec<usize>,
    teacher_correct: Vec<bool>,
    teacher_entropy: Vec<f64>,
}

/// The loss's name in configs and run names.
pub fn loss_name(kind: LossKind) -> &'static str {
    match kind {
        LossKind::Kl => "kl",
        LossKind::Mse => "mse",
        LossKind::SmoothL1 => "smooth_l1",
    }
}

/// The name of a τ row: `∞` for inf.
pub fn temperature_label(t: f64) -> String {
    if t.is_infinite() {
        "∞".into()
    } else {
        name_number(t)
    }
}

impl KdGrid {
    /// Lays out the study `file` describes.
    pub fn new(file: StudyFile) -> Result<KdGrid> {
        let s = &file.study;
        let origin = &file.origin;
        check_study_keys(s, KEYS, origin)?;
        let kind: String = study_key(s, "kind", "kd-grid".to_string())?;
        if kind != "kd-grid" {
            bail!("{origin}: study.kind = \"{kind}\", expected \"kd-grid\"");
        }
        let name: String = study_key(s, "name", "kd-grid".to_string())?;
        let out_dir: PathBuf = study_key(s, "out_dir", PathBuf::from("studies"))?;
        let seeds: Vec<u64> = study_key(s, "seeds", vec![0])?;
        let alphas: Vec<f64> = study_key(s, "alphas", PAPER_ALPHAS.to_vec())?;
        let temperatures: Vec<f64> = study_key(s, "temperatures", PAPER_TEMPERATURES.to_vec())?;
        let losses: Vec<LossKind> = study_key(
            s,
            "losses",
            vec![LossKind::Kl, LossKind::Mse, LossKind::SmoothL1],
        )?;
        check_values(origin, &seeds, &alphas, &temperatures, &losses)?;
        if file.base.model.teacher.is_none() {
            bail!("{origin}: a kd-grid study distils: set model.teacher and model.teacher_weights");
        }
        let dir = out_dir.join(&name);
        let alpha_matters_without_kl = matches!(file.base.loss.ce, CeWeight::Fixed(_));
        let mut cells = Vec::new();
        for &loss in &losses {
            let (alpha_list, temperature_list): (Vec<Option<f64>>, Vec<Option<f64>>) = match loss {
                LossKind::Kl => (
                    alphas.iter().copied().map(Some).collect(),
                    temperatures.iter().copied().map(Some).collect(),
                ),
                _ if alpha_matters_without_kl => {
                    (alphas.iter().copied().map(Some).collect(), vec![None])
                }
                _ => (vec![None], vec![None]),
            };
            for &temperature in &temperature_list {
                for &alpha in &alpha_list {
                    for &seed in &seeds {
                        cells.push(cell(&file, &dir, loss, alpha, temperature, seed)?);
                    }
                }
            }
        }
        Ok(KdGrid {
            teacher_cache: dir.join("teacher_train_logits.npy"),
            dir,
            alphas,
            temperatures,
            losses,
            seeds,
            cells,
            file,
            shared: OnceCell::new(),
        })
    }

    /// The study's base config (what every run starts from).
    pub fn base(&self) -> &kd_core::config::RunConfig {
        &self.file.base
    }

    /// Every job, in the fixed order shards split.
    pub fn jobs(self: &Rc<Self>) -> Vec<Box<dyn Job>> {
        (0..self.cells.len())
            .map(|i| Box::new(CellRef(self.clone(), i)) as Box<dyn Job>)
            .collect()
    }

    /// The training samples and the teacher's outputs on them, loaded on first use.
    fn train_set(&self) -> Result<&TrainSet> {
        if let Some(t) = self.shared.get() {
            return Ok(t);
        }
        let cfg = &self.file.base;
        let (ds, norm) = analyze::open_split(cfg, kd_data::Split::Train)?;
        let device = kd_core::runtime::parse_device(&cfg.run.device).map_err(anyhow::Error::msg)?;
        let (teacher, weights) = match (&cfg.model.teacher, &cfg.model.teacher_weights) {
            (Some(t), Some(w)) => (t, w),
            _ => bail!("the study has no teacher"),
        };
        let z = analyze::cached_logits(&self.teacher_cache, teacher, weights, &ds, &norm, device)
            .context("the teacher's logits on the training set")?;
        let indices: Vec<usize> = match &cfg.data.subset {
            Some(path) => Subset::load(path, &ds)?.indices().to_vec(),
            None => (0..ds.len()).collect(),
        };
        let classes = ds.num_classes();
        let z: Vec<f32> = indices
            .iter()
            .flat_map(|&i| z[i * classes..(i + 1) * classes].iter().copied())
            .collect();
        let labels: Vec<usize> = indices.iter().map(|&i| ds.label(i) as usize).collect();
        let t = TrainSet {
            teacher_correct: analyze::correct(&z, &labels, classes),
            teacher_entropy: kd_metrics::entropy(&z, classes)?,
            ds,
            norm,
            indices,
            labels,
        };
        Ok(self.shared.get_or_init(|| t))
    }

    /// Measures the finished run of cell `i` and writes [`Measure`] into its directory.
    fn measure(&self, i: usize) -> Result<Measure> {
        let cell = &self.cells[i];
        let t = self.train_set()?;
        let cfg = &cell.run.config;
        let device = kd_core::runtime::parse_device(&cfg.run.device).map_err(anyhow::Error::msg)?;
        let z = analyze::logits(
            &cfg.model.student,
            &cell.run.dir().join("checkpoints/last.safetensors"),
            &t.ds,
            &t.norm,
            Some(t.indices.clone()),
            device,
            256,
        )?;
        let student_correct = analyze::correct(&z, &t.labels, t.ds.num_classes());
        let cases = Cases::new(&t.teacher_correct, &student_correct, &t.teacher_entropy);
        let right = student_correct.iter().filter(|&&c| c).count();
        let m = Measure {
            train_samples: t.labels.len(),
            train_top1: 100.0 * right as f64 / t.labels.len().max(1) as f64,
            teacher_entropy_correct: cases.entropy_student_correct(),
            cases,
        };
        kd_core::train::state::write_atomic(&cell.measure_path(), &serde_json::to_vec_pretty(&m)?)?;
        Ok(m)
    }
}

fn check_values(
    origin: &str,
    seeds: &[u64],
    alphas: &[f64],
    temperatures: &[f64],
    losses: &[LossKind],
) -> Result<()> {
    if seeds.is_empty() || alphas.is_empty() || temperatures.is_empty() || losses.is_empty() {
        bail!("{origin}: study.seeds, alphas, temperatures and losses must not be empty");
    }
    if let Some(a) = alphas.iter().find(|a| !a.is_finite() || **a < 0.0) {
        bail!("{origin}: study.alphas has {a}: α must be a finite number ≥ 0");
    }
    if let Some(t) = temperatures.iter().find(|t| t.is_nan() || **t <= 0.0) {
        bail!("{origin}: study.temperatures has {t}: τ must be positive (inf for the τ → ∞ limit)");
    }
    let dup = |v: &[f64]| (1..v.len()).any(|i| v[..i].contains(&v[i]));
    if dup(alphas) || dup(temperatures) {
        bail!("{origin}: study.alphas and study.temperatures must not repeat a value");
    }
    if (1..losses.len()).any(|i| losses[..i].contains(&losses[i])) {
        bail!("{origin}: study.losses must not repeat a loss");
    }
    Ok(())
}

/// The run of one cell.
fn cell(
    file: &StudyFile,
    dir: &Path,
    loss: LossKind,
    alpha: Option<f64>,
    temperature: Option<f64>,
    seed: u64,
) -> Result<Cell> {
    let mut name = loss_name(loss).to_string();
    let mut sets = vec![
        format!("run.out_dir=\"{}\"", dir.join("runs").display()),
        format!("run.seed={seed}"),
        format!("loss.kind=\"{}\"", loss_name(loss)),
    ];
    if let Some(a) = alpha {
        name.push_str(&format!("_a{}", name_number(a)));
        sets.push(format!("loss.kd={}", toml_number(a)));
    }
    if let Some(t) = temperature {
        name.push_str(&format!("_t{}", name_number(t)));
        sets.push(format!("loss.temperature={}", toml_number(t)));
    }
    name.push_str(&format!("_seed{seed}"));
    sets.push(format!("run.name=\"{name}\""));
    let config = file
        .job_config(sets)
        .with_context(|| format!("run {name}"))?;
    Ok(Cell {
        loss,
        alpha,
        temperature,
        seed,
        run: TrainJob {
            name,
            mode: Mode::Distill,
            config,
        },
    })
}

struct CellRef(Rc<KdGrid>, usize);

impl Job for CellRef {
    fn name(&self) -> &str {
        &self.0.cells[self.1].run.name
    }
    fn is_done(&self) -> bool {
        let cell = &self.0.cells[self.1];
        cell.run.is_done() && cell.measure_path().exists()
    }
    fn run(&self, quiet: bool) -> Result<()> {
        let cell = &self.0.cells[self.1];
        if !cell.run.is_done() {
            cell.run.run(quiet)?;
        }
        let m = self.0.measure(self.1)?;
        if !quiet {
            println!(
                "{}: train top-1 {:.2}% (clean, eval mode); teacher's mean entropy on the samples the student gets right {}",
                cell.run.name,
                m.train_top1,
                m.teacher_entropy_correct
                    .map_or("– (none right)".into(), |v| format!("{v:.4}"))
            );
        }
        Ok(())
    }
}

/// What the report reads back from one cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// The loss.
    pub loss: LossKind,
    /// α, when the loss uses it.
    pub alpha: Option<f64>,
    /// τ, when the loss uses it.
    pub temperature: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// The run's name.
    pub name: String,
    /// Last-epoch test top-1 (%), once the run finished.
    pub test_top1: Option<f64>,
    /// Best test top-1 (%) over epochs, once the run finished.
    pub best_test_top1: Option<f64>,
    /// The measurement, once made.
    pub measure: Option<Measure>,
}

impl KdGrid {
    /// What has finished, per cell, in the cells' order.
    pub fn results(&self) -> Result<Vec<CellResult>> {
        let mut out = Vec::new();
        for cell in &self.cells {
            let (mut test_top1, mut best_test_top1) = (None, None);
            if cell.run.is_done() {
                let history = read_history(&cell.run.dir())?;
                test_top1 = history.last().map(|r| r.test_top1);
                best_test_top1 = history.iter().map(|r| r.test_top1).reduce(f64::max);
            }
            let path = cell.measure_path();
            let measure =
                if cell.run.is_done() && path.exists() {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(serde_json::from_slice(&bytes).with_context(|| {
                        format!("{}: not a kd-grid measurement", path.display())
                    })?)
                } else {
                    None
                };
            out.push(CellResult {
                loss: cell.loss,
                alpha: cell.alpha,
                temperature: cell.temperature,
                seed: cell.seed,
                name: cell.run.name.clone(),
                test_top1,
                best_test_top1,
                measure,
            });
        }
        Ok(out)
    }
}

impl super::Study for KdGrid {
    fn layout(file: StudyFile) -> Result<Self> {
        KdGrid::new(file)
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

    const BASE: &str = "[model]\nstudent = \"resnet8\"\nteacher = \"resnet8\"\nteacher_weights = \"t.safetensors\"\n";

    fn grid(study: &str, extra: &str) -> Result<KdGrid> {
        let text = format!("[study]\nkind = \"kd-grid\"\n{study}\n{BASE}{extra}");
        KdGrid::new(StudyFile::parse(&text, "s.toml", &[])?)
    }

    #[test]
    fn the_kl_grid_crosses_alpha_and_tau_and_logit_losses_run_once() {
        let g = grid(
            "alphas = [0.5, 1]\ntemperatures = [4, inf]\nlosses = [\"kl\", \"mse\"]\nseeds = [0, 1]",
            "[run]\npreset = \"kd-data\"\n",
        )
        .unwrap();
        let names: Vec<&str> = g.cells.iter().map(|c| c.run.name.as_str()).collect();
        assert_eq!(names.len(), 2 * 2 * 2 + 2);
        assert_eq!(names[0], "kl_a0.5_t4_seed0");
        assert!(names.contains(&"kl_a1_tinf_seed1"), "{names:?}");
        assert_eq!(&names[8..], &["mse_seed0", "mse_seed1"]);
        let inf = g
            .cells
            .iter()
            .find(|c| c.run.name == "kl_a1_tinf_seed1")
            .unwrap();
        assert!(inf.run.config.loss.temperature.is_infinite());
        assert_eq!((inf.run.config.loss.kd, inf.run.config.run.seed), (1.0, 1));
        let mse = &g.cells[8];
        assert_eq!(mse.run.config.loss.kind, LossKind::Mse);
        assert_eq!((mse.alpha, mse.temperature), (None, None));
    }

    #[test]
    fn a_fixed_ce_weight_sweeps_alpha_for_the_logit_losses() {
        let g = grid(
            "alphas = [0.5, 1.0]\ntemperatures = [4.0]\nlosses = [\"smooth_l1\"]",
            "[loss]\nce = 1.0\n",
        )
        .unwrap();
        let names: Vec<&str> = g.cells.iter().map(|c| c.run.name.as_str()).collect();
        assert_eq!(names, vec!["smooth_l1_a0.5_seed0", "smooth_l1_a1_seed0"]);
    }

    #[test]
    fn bad_grids_are_named() {
        let e = grid("alphas = [-1.0]", "").err().unwrap().to_string();
        assert!(e.contains("study.alphas"), "{e}");
        let e = grid("temperatures = [0.0]", "").err().unwrap().to_string();
        assert!(e.contains("study.temperatures"), "{e}");
        let e = format!("{:#}", grid("losses = [\"l2\"]", "").err().unwrap());
        assert!(e.contains("study.losses"), "{e}");
        let e = grid("alphs = [1.0]", "").err().unwrap().to_string();
        assert!(e.contains("did you mean 'alphas'"), "{e}");
        let text = "[study]\nkind = \"kd-grid\"\n[model]\nstudent = \"resnet8\"\n";
        let e = KdGrid::new(StudyFile::parse(text, "s.toml", &[]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("model.teacher"), "{e}");
    }
}
