//! `kd study good-da`: Good-DA-in-KD's experiment for one teacher–student pair.
//!
//! For each stronger-DA scheme: the teacher's T. stddev and mean entropy (`kd goodness`, the
//! teacher alone; CutMixPick by student entropy scores with the study's own KD student, the
//! `identity` run of the first seed, as the reference scores with a trained KD student), and one
//! distillation per seed with KD on that scheme's x′. The analysis: the student's last-epoch test
//! loss and top-1 per scheme (mean ± std over seeds), the Pearson, Spearman and Kendall
//! correlations of T. stddev with the test loss, and the scatter plot of the paper's Fig. 1b.
//!
//! ```toml
//! [study]
//! kind = "good-da"
//! name = "good-da_wrn_40_2_wrn_16_2"
//! out_dir = "studies"
//! seeds = [0, 1, 2]
//! schemes = ["identity", "flip", "crop+flip", "cutout", "autoaugment", "mixup", "cutmix",
//!            "cutmix_pick:student_entropy", "cutmix_pick:teacher_entropy"]
//! goodness_passes = 10
//!
//! [model]            # and every other section of a `kd distill` config
//! teacher = "wrn_40_2"
//! …
//! ```

use super::{Job, StudyFile, TrainJob, check_study_keys, read_last_row, study_key};
use anyhow::{Context, Result, bail};
use kd_core::goodness::{Goodness, GoodnessConfig, Quiet};
use kd_core::train::Mode;
use kd_core::train::state::EpochRow;
use std::path::{Path, PathBuf};

/// The paper's nine schemes, in its order (Identity … CutMixPick T. ent.).
pub const PAPER_SCHEMES: &[&str] = &[
    "identity",
    "flip",
    "crop+flip",
    "cutout",
    "autoaugment",
    "mixup",
    "cutmix",
    "cutmix_pick:student_entropy",
    "cutmix_pick:teacher_entropy",
];

const KEYS: &[&str] = &[
    "kind",
    "name",
    "out_dir",
    "seeds",
    "schemes",
    "goodness_passes",
];

/// A good-DA study, laid out.
pub struct GoodDa {
    /// The study's directory.
    pub dir: PathBuf,
    /// The schemes, in order.
    pub schemes: Vec<String>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// The distillation jobs, `[scheme][seed]`.
    pub runs: Vec<Vec<TrainJob>>,
    /// The measurement of each scheme.
    pub goodness: Vec<GoodnessJob>,
    file: StudyFile,
}

/// A filesystem-safe name for a scheme: `cutmix_pick:teacher_entropy` → `cutmix_pick-teacher_entropy`.
pub fn slug(scheme: &str) -> String {
    scheme
        .chars()
        .map(|c| match c {
            ':' => '-',
            '+' => '_',
            '@' => '-',
            c => c,
        })
        .collect()
}

impl GoodDa {
    /// Lays out the study `file` describes.
    pub fn new(file: StudyFile) -> Result<GoodDa> {
        let s = &file.study;
        check_study_keys(s, KEYS, &file.origin)?;
        let kind: String = study_key(s, "kind", "good-da".to_string())?;
        if kind != "good-da" {
            bail!(
                "{}: study.kind = \"{kind}\", expected \"good-da\"",
                file.origin
            );
        }
        let name: String = study_key(s, "name", "good-da".to_string())?;
        let out_dir: PathBuf = study_key(s, "out_dir", PathBuf::from("studies"))?;
        let seeds: Vec<u64> = study_key(s, "seeds", vec![0])?;
        let schemes: Vec<String> = study_key(
            s,
            "schemes",
            PAPER_SCHEMES.iter().map(|s| s.to_string()).collect(),
        )?;
        let passes: usize = study_key(s, "goodness_passes", 10)?;
        if seeds.is_empty() || schemes.is_empty() {
            bail!(
                "{}: study.seeds and study.schemes must not be empty",
                file.origin
            );
        }
        if file.base.model.teacher.is_none() {
            bail!(
                "{}: a good-DA study distils: set model.teacher and model.teacher_weights",
                file.origin
            );
        }
        let dir = out_dir.join(&name);
        let mut runs = Vec::new();
        for scheme in &schemes {
            let mut per_seed = Vec::new();
            for &seed in &seeds {
                let run_name = format!("{}_seed{seed}", slug(scheme));
                let config = file
                    .job_config(vec![
                        format!("run.out_dir=\"{}\"", dir.join("runs").display()),
                        format!("run.name=\"{run_name}\""),
                        format!("run.seed={seed}"),
                        format!("augment.strong=\"{scheme}\""),
                    ])
                    .with_context(|| format!("scheme '{scheme}'"))?;
                per_seed.push(TrainJob {
                    name: run_name,
                    mode: Mode::Distill,
                    config,
                });
            }
            runs.push(per_seed);
        }
        // CutMixPick by student entropy scores with a trained KD student: the identity run.
        let identity = schemes
            .iter()
            .position(|s| s == "identity")
            .map(|i| runs[i][0].dir().join("checkpoints/last.safetensors"));
        let mut goodness = Vec::new();
        for scheme in &schemes {
            let student = if scheme.contains("student_entropy") {
                Some(identity.clone().with_context(|| {
                    format!(
                        "{}: '{scheme}' scores with the study's KD student, the 'identity' run: add \"identity\" to study.schemes",
                        file.origin
                    )
                })?)
            } else {
                None
            };
            goodness.push(GoodnessJob {
                name: format!("goodness_{}", slug(scheme)),
                scheme: scheme.clone(),
                out: dir.join("goodness").join(format!("{}.json", slug(scheme))),
                base: file.base.clone(),
                student,
                seed: seeds[0],
                passes,
            });
        }
        Ok(GoodDa {
            dir,
            schemes,
            seeds,
            runs,
            goodness,
            file,
        })
    }

    /// Every job, in the fixed order shards split: the distillations, then the measurements.
    pub fn jobs(self: &std::rc::Rc<Self>) -> Vec<Box<dyn Job>> {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        for (i, per_seed) in self.runs.iter().enumerate() {
            for j in 0..per_seed.len() {
                jobs.push(Box::new(RunRef(self.clone(), i, j)));
            }
        }
        for i in 0..self.goodness.len() {
            jobs.push(Box::new(GoodnessRef(self.clone(), i)));
        }
        jobs
    }
}

struct RunRef(std::rc::Rc<GoodDa>, usize, usize);

impl Job for RunRef {
    fn name(&self) -> &str {
        &self.0.runs[self.1][self.2].name
    }
    fn is_done(&self) -> bool {
        self.0.runs[self.1][self.2].is_done()
    }
    fn run(&self, quiet: bool) -> Result<()> {
        self.0.runs[self.1][self.2].run(quiet)
    }
}

struct GoodnessRef(std::rc::Rc<GoodDa>, usize);

impl Job for GoodnessRef {
    fn name(&self) -> &str {
        &self.0.goodness[self.1].name
    }
    fn is_done(&self) -> bool {
        self.0.goodness[self.1].out.exists()
    }
    fn waits_for(&self) -> Option<String> {
        let g = &self.0.goodness[self.1];
        let student = g.student.as_ref()?;
        if student.exists() {
            return None;
        }
        let i = self.0.schemes.iter().position(|s| s == "identity")?;
        let run = &self.0.runs[i][0];
        (!run.is_done()).then(|| run.name.clone())
    }
    fn run(&self, quiet: bool) -> Result<()> {
        self.0.goodness[self.1].run(quiet)
    }
}

/// The T. stddev measurement of one scheme.
#[derive(Debug)]
pub struct GoodnessJob {
    /// Its name.
    pub name: String,
    /// The scheme.
    pub scheme: String,
    /// Where its result goes (JSON).
    pub out: PathBuf,
    /// The study's base config (teacher, data, batch size).
    pub base: kd_core::config::RunConfig,
    /// The student that scores CutMixPick by student entropy.
    pub student: Option<PathBuf>,
    /// The seed of the loader and the augmentation.
    pub seed: u64,
    /// Passes over the training set.
    pub passes: usize,
}

impl GoodnessJob {
    /// Measures the scheme and writes the result as JSON, atomically.
    pub fn run(&self, quiet: bool) -> Result<()> {
        let mut run = self.base.clone();
        run.run.seed = self.seed;
        if let Some(student) = &self.student {
            run.model.student_weights = Some(student.clone());
        }
        let spec: kd_augment::StrongSpec = self
            .scheme
            .parse()
            .with_context(|| format!("scheme '{}'", self.scheme))?;
        let goodness = Goodness::prepare(&GoodnessConfig {
            run,
            schemes: vec![spec],
            passes: self.passes,
        })?;
        let results = goodness.run(&mut Quiet)?;
        let result = results
            .first()
            .context("the measurement returned nothing")?;
        if !quiet {
            println!(
                "{}: T. stddev {}, mean entropy {:.4}, {} groups, {:.0} img/s",
                self.scheme,
                result
                    .t_stddev
                    .map_or("(fewer than 2 groups)".into(), |v| format!("{v:.6}")),
                result.mean_entropy,
                result.groups,
                result.images_per_s
            );
        }
        if let Some(parent) = self.out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        kd_core::train::state::write_atomic(&self.out, &serde_json::to_vec_pretty(result)?)?;
        Ok(())
    }
}

/// What the report reads back from a finished study.
#[derive(Debug, Clone)]
pub struct SchemeResult {
    /// The scheme.
    pub scheme: String,
    /// T. stddev (NaN with fewer than two groups) and mean entropy, once measured.
    pub goodness: Option<(f64, f64)>,
    /// The last epoch of each finished seed.
    pub last: Vec<EpochRow>,
}

impl GoodDa {
    /// What has finished, per scheme.
    pub fn results(&self) -> Result<Vec<SchemeResult>> {
        let mut out = Vec::new();
        for (i, scheme) in self.schemes.iter().enumerate() {
            let g = &self.goodness[i];
            let goodness = if g.out.exists() {
                let v: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(&g.out).with_context(|| format!("{}", g.out.display()))?,
                )
                .with_context(|| format!("{}: not JSON", g.out.display()))?;
                match v["mean_entropy"].as_f64() {
                    Some(e) => Some((v["t_stddev"].as_f64().unwrap_or(f64::NAN), e)),
                    None => bail!("{}: no mean_entropy", g.out.display()),
                }
            } else {
                None
            };
            let mut last = Vec::new();
            for run in &self.runs[i] {
                if run.is_done() {
                    last.extend(read_last_row(&run.dir())?);
                }
            }
            out.push(SchemeResult {
                scheme: scheme.clone(),
                goodness,
                last,
            });
        }
        Ok(out)
    }
}

impl super::Study for GoodDa {
    fn layout(file: StudyFile) -> Result<Self> {
        GoodDa::new(file)
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn file(&self) -> &StudyFile {
        &self.file
    }
    fn job_list(study: &std::rc::Rc<Self>) -> Vec<Box<dyn Job>> {
        study.jobs()
    }
    fn write_report(&self) -> Result<()> {
        report::write(self)
    }
}

pub mod report;
