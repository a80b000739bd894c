//! `kd analyze`: how confident several models are on one dataset, sample by sample — the
//! entropy/TLD analysis of "When does Knowledge Distillation Help?" (kd-codebases.md A.9).
//!
//! For each model: its per-sample softmax entropy and top logit difference (TLD), written as CSV
//! and `.npy`; its top-1 and expected calibration error (the paper's Table 14). Over the models:
//! the density of each model's TLD on one axis (the `pdf_plot` notebook's figure), and, with the
//! first model as the teacher, the four-case table of teacher/student right/wrong with the
//! teacher's mean entropy and the sample count per case (Table 2).
//!
//! Where we differ from the reference, on purpose:
//! - The images are the clean ones (no crop or flip), in eval mode. kd_data's notebooks analyse
//!   one cached pass of the *augmented* training loader, with CIFAR-10's normalisation even on
//!   CIFAR-100 (A.12, item 4): neither is reproduced. The normalisation here is the trainer's
//!   (`data.norm`, `auto` by default).
//! - The density is the same piecewise-constant histogram density (`np.histogram` then
//!   `rv_histogram`), but over the models' own TLD range by default; `--tld-range=-10,20` gives
//!   the notebook's fixed range. Values outside the range are left out of the density, as numpy
//!   does, and counted in the report.
//! - Entropy is `−Σ p·log_softmax`, finite where the reference's `−Σ p·log p` is NaN.

use anyhow::{Context, Result, bail};
use kd_cli::cli::{AnalyzeArgs, SplitArg};
use kd_core::checkpoint::LoadOptions;
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::models::{self, ModelConfig};
use kd_data::loader::{BatchImages, Loader, LoaderConfig, OutputFormat};
use kd_data::{Dataset, Normalization, Split};
use kd_report::{Align, LinePlot, Plot, Series, Table, fmt_fixed};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor, nn};

/// One model to analyse.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Its name in tables, plots and file names.
    pub label: String,
    /// The zoo architecture.
    pub arch: String,
    /// The weights file.
    pub weights: PathBuf,
}

/// The models of `--models` (`PATH` or `ARCH=PATH`) with the labels of `--labels` (or their
/// defaults: the run's name for a run's checkpoint, else the file's stem).
pub fn model_specs(entries: &[String], labels: &[String]) -> Result<Vec<ModelSpec>> {
    if entries.is_empty() {
        bail!("--models: name at least one model");
    }
    if !labels.is_empty() && labels.len() != entries.len() {
        bail!(
            "--labels has {} names for {} models",
            labels.len(),
            entries.len()
        );
    }
    let mut specs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let (arch, weights) = match entry.split_once('=') {
            Some((arch, path)) => (arch.trim().to_string(), PathBuf::from(path.trim())),
            None => {
                let path = PathBuf::from(entry.trim());
                (run_architecture(&path)?, path)
            }
        };
        if !weights.exists() {
            bail!("--models: {} does not exist", weights.display());
        }
        let label = match labels.get(i) {
            Some(l) => l.trim().to_string(),
            None => default_label(&weights),
        };
        specs.push(ModelSpec {
            label,
            arch,
            weights,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for s in &specs {
        if !seen.insert(file_stem_of(&s.label)) {
            bail!(
                "two models are labelled '{}': name them with --labels",
                s.label
            );
        }
    }
    Ok(specs)
}

/// The run directory of a checkpoint `<run>/checkpoints/<file>`, if it is one.
fn run_dir_of(weights: &Path) -> Option<&Path> {
    let parent = weights.parent()?;
    (parent.file_name()? == "checkpoints").then(|| parent.parent())?
}

/// The student architecture of the run whose checkpoint `weights` is.
fn run_architecture(weights: &Path) -> Result<String> {
    let hint = || {
        format!(
            "cannot tell the architecture of {}: write it as ARCH=PATH (e.g. wrn_16_2={})",
            weights.display(),
            weights.display()
        )
    };
    let config = run_dir_of(weights)
        .map(|d| d.join("config.toml"))
        .filter(|c| c.exists())
        .with_context(hint)?;
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let cfg: RunConfig =
        toml::from_str(&text).with_context(|| format!("{}: not a run config", config.display()))?;
    Ok(cfg.model.student)
}

fn default_label(weights: &Path) -> String {
    let stem = weights
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    match run_dir_of(weights).and_then(Path::file_name) {
        Some(run) if stem == "last" => run.to_string_lossy().to_string(),
        Some(run) => format!("{}_{stem}", run.to_string_lossy()),
        None => stem,
    }
}

/// A label as a file name: characters other than letters, digits, `-`, `_` and `.` become `_`.
pub fn file_stem_of(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The config whose `[data]` section `--data` names: a run's config file (`.toml`), or a dataset
/// folder (or `synthetic`) with the default data settings; `norm` overrides `data.norm`.
pub fn data_config(data: &Path, norm: Option<&str>) -> Result<RunConfig> {
    let mut cfg = if data.extension().is_some_and(|e| e == "toml") {
        ConfigSource::default().with_file(data)?.resolve()?
    } else {
        let mut cfg = RunConfig::default();
        cfg.data.dataset = data.display().to_string();
        cfg
    };
    if let Some(n) = norm {
        cfg.data.norm = n.to_string();
    }
    Ok(cfg)
}

/// The `split` of the config's data, with the normalisation the trainer uses (computed from the
/// training split).
pub fn open_split(cfg: &RunConfig, split: Split) -> Result<(Arc<Dataset>, Normalization)> {
    let (train, test) = kd_core::train::open_data(cfg)?;
    let norm = kd_core::train::normalization(cfg, &train)?;
    Ok((if split == Split::Train { train } else { test }, norm))
}

/// Per-sample logits (`[n, classes]`, row-major) of the model `arch` with `weights` on the
/// samples `indices` of `ds` (all of them, in order, when `None`): clean images normalised by
/// `norm`, eval mode, no gradient.
pub fn logits(
    arch: &str,
    weights: &Path,
    ds: &Arc<Dataset>,
    norm: &Normalization,
    indices: Option<Vec<usize>>,
    device: Device,
    batch_size: usize,
) -> Result<Vec<f32>> {
    let shape = ds.shape();
    if shape.height != shape.width {
        bail!(
            "{}: images are {shape}; the zoo takes square images",
            ds.name()
        );
    }
    let cfg = ModelConfig {
        num_classes: ds.num_classes() as i64,
        input_size: shape.height as i64,
    };
    let vs = nn::VarStore::new(device);
    let model = models::build(arch, &vs.root(), &cfg)?;
    kd_core::checkpoint::load_weights(&vs, weights, LoadOptions::default())
        .with_context(|| format!("loading {} into {arch}", weights.display()))?;
    let mut loader = Loader::new(
        Arc::clone(ds),
        LoaderConfig {
            batch_size: batch_size.max(1),
            shuffle: false,
            output: OutputFormat::F32(norm.clone()),
            ..LoaderConfig::default()
        },
    )?;
    if let Some(indices) = indices {
        loader = loader.with_indices(indices)?;
    }
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(loader.num_samples() * ds.num_classes());
    for batch in loader.epoch(0) {
        let BatchImages::F32(pixels) = &batch.images else {
            unreachable!("f32 output was asked for")
        };
        let x = Tensor::from_slice(pixels).view([
            batch.len() as i64,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        ]);
        // Grey images as three channels, as the trainer feeds them.
        let x = if shape.channels == 1 {
            x.repeat([1, 3, 1, 1])
        } else {
            x
        };
        let z = model
            .forward_t(&x.to_device(device), false)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous();
        out.extend(Vec::<f32>::try_from(z.view([-1]))?);
    }
    Ok(out)
}

/// [`logits`] of the whole of `ds`, cached in `cache` (a `.npy` of `[n, classes]` float32):
/// read when it exists with the right shape, else computed and written atomically. Studies use
/// it for the teacher, whose outputs every run shares.
pub fn cached_logits(
    cache: &Path,
    arch: &str,
    weights: &Path,
    ds: &Arc<Dataset>,
    norm: &Normalization,
    device: Device,
) -> Result<Vec<f32>> {
    let want = [ds.len() as i64, ds.num_classes() as i64];
    if cache.exists() {
        let t = Tensor::read_npy(cache).with_context(|| format!("reading {}", cache.display()))?;
        if t.size() == want && t.kind() == Kind::Float {
            return Ok(Vec::<f32>::try_from(t.view([-1]))?);
        }
        bail!(
            "{} holds {:?} {:?} logits, not [{}, {}] float: it was made for other data; delete it",
            cache.display(),
            t.size(),
            t.kind(),
            want[0],
            want[1]
        );
    }
    let z = logits(arch, weights, ds, norm, None, device, 256)?;
    write_npy(&Tensor::from_slice(&z).view(want), cache)?;
    Ok(z)
}

/// Writes `t` as `.npy` to `path` through a temporary file beside it, renamed into place.
pub fn write_npy(t: &Tensor, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let name = path.file_name().context("an .npy path names a file")?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    t.write_npy(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The argmax of each row (ties to the lower index).
pub fn predictions(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (c, &v)| {
                    if v > best.1 { (c, v) } else { best }
                })
                .0
        })
        .collect()
}

/// Whether each row's argmax is its label.
pub fn correct(logits: &[f32], labels: &[usize], classes: usize) -> Vec<bool> {
    predictions(logits, classes)
        .into_iter()
        .zip(labels)
        .map(|(p, &y)| p == y)
        .collect()
}

/// The paper's four cases of a teacher–student pair on each sample (Table 2): teacher right or
/// wrong × student right or wrong, with the teacher's entropy summed per case.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cases {
    /// Samples per case, in [`Cases::NAMES`]' order.
    pub count: [usize; 4],
    /// The teacher's entropy summed over each case's samples.
    pub entropy_sum: [f64; 4],
}

impl Cases {
    /// The cases, teacher first: T/F is "teacher right, student wrong".
    pub const NAMES: [&'static str; 4] = ["T/T", "T/F", "F/T", "F/F"];

    /// Counts the cases of each sample.
    ///
    /// # Panics
    /// If the three slices differ in length (the caller evaluated both models on the same data).
    pub fn new(
        teacher_correct: &[bool],
        student_correct: &[bool],
        teacher_entropy: &[f64],
    ) -> Cases {
        assert!(
            teacher_correct.len() == student_correct.len()
                && teacher_correct.len() == teacher_entropy.len(),
            "the cases need the same samples for both models"
        );
        let mut cases = Cases::default();
        for ((&t, &s), &h) in teacher_correct
            .iter()
            .zip(student_correct)
            .zip(teacher_entropy)
        {
            let i = 2 * usize::from(!t) + usize::from(!s);
            cases.count[i] += 1;
            cases.entropy_sum[i] += h;
        }
        cases
    }

    /// The teacher's mean entropy in case `i` (`None` for an empty case).
    pub fn mean_entropy(&self, i: usize) -> Option<f64> {
        (self.count[i] > 0).then(|| self.entropy_sum[i] / self.count[i] as f64)
    }

    /// The teacher's mean entropy over the samples the student predicts correctly (T/T and F/T):
    /// the paper's Table 13.
    pub fn entropy_student_correct(&self) -> Option<f64> {
        let n = self.count[0] + self.count[2];
        (n > 0).then(|| (self.entropy_sum[0] + self.entropy_sum[2]) / n as f64)
    }
}

/// One model's per-sample confidence and summary numbers.
#[derive(Clone, Debug)]
pub struct Confidence {
    /// Softmax entropy (nats) per sample.
    pub entropy: Vec<f64>,
    /// Top logit difference per sample.
    pub tld: Vec<f64>,
    /// Whether the argmax is the label, per sample.
    pub correct: Vec<bool>,
    /// Top-1 (%).
    pub top1: f64,
    /// Expected calibration error (%), 15 bins.
    pub ece: f64,
}

/// The confidence measures of `logits` (`[labels.len(), classes]`).
pub fn confidence(logits: &[f32], labels: &[usize], classes: usize) -> Result<Confidence> {
    let correct = correct(logits, labels, classes);
    let right = correct.iter().filter(|&&c| c).count();
    Ok(Confidence {
        entropy: kd_metrics::entropy(logits, classes)?,
        tld: kd_metrics::tld(logits, labels, classes)?,
        top1: 100.0 * right as f64 / labels.len().max(1) as f64,
        ece: 100.0 * kd_metrics::ece(logits, labels, classes)?.ece,
        correct,
    })
}

/// One model's TLD density: `density[i]` over `[edges[i], edges[i+1])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Density {
    /// The model.
    pub label: String,
    /// Bin edges.
    pub edges: Vec<f64>,
    /// Density per bin (integrates to 1 over the range when any value fell in it).
    pub density: Vec<f64>,
    /// Values outside the range, left out.
    pub outside: u64,
}

/// The range covering every value of `values` (widened by 1 around a single value).
pub fn data_range(values: &[&[f64]]) -> Option<(f64, f64)> {
    let all = values
        .iter()
        .flat_map(|v| v.iter())
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    match (lo.is_finite(), lo < hi) {
        (false, _) => None,
        (true, true) => Some((lo, hi)),
        (true, false) => Some((lo - 1.0, hi + 1.0)),
    }
}

/// The histogram density of each model's values over `range` in `bins` bins (numpy's
/// `histogram(density=True)`, which `rv_histogram` turns into the reference's pdf).
pub fn densities(
    models: &[(&str, &[f64])],
    bins: usize,
    range: (f64, f64),
) -> Result<Vec<Density>> {
    models
        .iter()
        .map(|(label, values)| {
            let h = kd_metrics::Histogram::new(values, bins, range.0, range.1)?;
            Ok(Density {
                label: label.to_string(),
                density: h.density(),
                edges: h.edges,
                outside: h.outside,
            })
        })
        .collect()
}

/// The densities as step curves on one axis (the rv_histogram pdf is constant on each bin).
pub fn density_plot(title: &str, densities: &[Density]) -> LinePlot {
    LinePlot {
        title: title.to_string(),
        x_label: "top logit difference (TLD)".into(),
        y_label: "density".into(),
        series: densities
            .iter()
            .map(|d| {
                let mut xs = Vec::with_capacity(2 * d.density.len());
                let mut ys = Vec::with_capacity(2 * d.density.len());
                for (e, &v) in d.edges.windows(2).zip(&d.density) {
                    xs.extend([e[0], e[1]]);
                    ys.extend([v, v]);
                }
                Series::new(d.label.clone(), xs, ys)
            })
            .collect(),
    }
}

/// Parses `--tld-range LO,HI`.
fn parse_range(text: &str) -> Result<(f64, f64)> {
    let parse = |s: &str| -> Result<f64> {
        s.trim()
            .parse::<f64>()
            .with_context(|| format!("--tld-range '{text}': '{s}' is not a number"))
    };
    let (lo, hi) = text
        .split_once(',')
        .with_context(|| format!("--tld-range '{text}': expected LO,HI, e.g. -10,20"))?;
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        bail!("--tld-range '{text}': expected finite LO < HI");
    }
    Ok((lo, hi))
}

/// Runs `kd analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let specs = model_specs(&args.models, &args.labels)?;
    if args.bins == 0 {
        bail!("--bins 0: the density needs at least one bin");
    }
    let range = args.tld_range.as_deref().map(parse_range).transpose()?;
    let device = kd_core::runtime::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let cfg = data_config(&args.data, args.norm.as_deref())?;
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let (ds, norm) = open_split(&cfg, split)?;
    let classes = ds.num_classes();
    let labels: Vec<usize> = ds.labels().iter().map(|&l| l as usize).collect();
    let mut measured = Vec::new();
    for s in &specs {
        let z = logits(
            &s.arch,
            &s.weights,
            &ds,
            &norm,
            None,
            device,
            args.batch_size,
        )?;
        let c = confidence(&z, &labels, classes).with_context(|| s.label.clone())?;
        println!(
            "{} ({}): top-1 {:.2}%, mean entropy {:.4}, mean TLD {:.3}, ECE {:.2}%",
            s.label,
            s.arch,
            c.top1,
            mean(&c.entropy),
            mean(&c.tld),
            c.ece
        );
        measured.push(c);
    }
    let report = Analysis {
        specs: &specs,
        measured: &measured,
        labels: &labels,
        dataset: format!("{} ({} split, {} samples)", ds.name(), split, ds.len()),
        bins: args.bins,
        range,
    };
    report.write(&args.out)?;
    println!("analysis written to {}", args.out.display());
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Everything `kd analyze` writes, computed.
struct Analysis<'a> {
    specs: &'a [ModelSpec],
    measured: &'a [Confidence],
    labels: &'a [usize],
    dataset: String,
    bins: usize,
    range: Option<(f64, f64)>,
}

impl Analysis<'_> {
    fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let atomic = |name: &str, text: &str| -> Result<()> {
            kd_report::write_atomic(&out.join(name), text.as_bytes())?;
            Ok(())
        };
        atomic("per_sample.csv", &self.per_sample_csv())?;
        for (s, c) in self.specs.iter().zip(self.measured) {
            let stem = file_stem_of(&s.label);
            write_npy(
                &Tensor::from_slice(&c.entropy),
                &out.join(format!("{stem}.entropy.npy")),
            )?;
            write_npy(
                &Tensor::from_slice(&c.tld),
                &out.join(format!("{stem}.tld.npy")),
            )?;
        }
        atomic("models.csv", &self.models_csv())?;
        let densities = self.densities()?;
        atomic("tld_density.csv", &density_csv(&densities))?;
        density_plot(&format!("TLD density, {}", self.dataset), &densities)
            .write(&out.join("tld_density"))?;
        let cases = self.cases();
        atomic("cases.csv", &self.cases_csv(&cases))?;
        atomic("report.md", &self.markdown(&cases, &densities)?)?;
        Ok(())
    }

    fn per_sample_csv(&self) -> String {
        let mut csv = String::from("index,label");
        for s in self.specs {
            let l = file_stem_of(&s.label);
            let _ = write!(csv, ",{l}_correct,{l}_entropy,{l}_tld");
        }
        csv.push('\n');
        for (i, y) in self.labels.iter().enumerate() {
            let _ = write!(csv, "{i},{y}");
            for c in self.measured {
                let _ = write!(
                    csv,
                    ",{},{},{}",
                    u8::from(c.correct[i]),
                    c.entropy[i],
                    c.tld[i]
                );
            }
            csv.push('\n');
        }
        csv
    }

    fn models_csv(&self) -> String {
        let mut csv = String::from("model,arch,weights,samples,top1,mean_entropy,mean_tld,ece\n");
        for (s, c) in self.specs.iter().zip(self.measured) {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{}",
                s.label,
                s.arch,
                s.weights.display(),
                c.correct.len(),
                c.top1,
                mean(&c.entropy),
                mean(&c.tld),
                c.ece
            );
        }
        csv
    }

    fn densities(&self) -> Result<Vec<Density>> {
        let models: Vec<(&str, &[f64])> = self
            .specs
            .iter()
            .zip(self.measured)
            .map(|(s, c)| (s.label.as_str(), c.tld.as_slice()))
            .collect();
        let all: Vec<&[f64]> = models.iter().map(|m| m.1).collect();
        let range = match self.range {
            Some(r) => r,
            None => data_range(&all).context("no finite TLD to draw")?,
        };
        densities(&models, self.bins, range)
    }

    /// Each later model against the first (the teacher).
    fn cases(&self) -> Vec<Cases> {
        let Some(teacher) = self.measured.first() else {
            return Vec::new();
        };
        self.measured[1..]
            .iter()
            .map(|s| Cases::new(&teacher.correct, &s.correct, &teacher.entropy))
            .collect()
    }

    fn cases_csv(&self, cases: &[Cases]) -> String {
        let mut csv = String::from("teacher,student,case,count,teacher_mean_entropy\n");
        for (s, c) in self.specs[1..].iter().zip(cases) {
            for (i, name) in Cases::NAMES.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "{},{},{name},{},{}",
                    self.specs[0].label,
                    s.label,
                    c.count[i],
                    c.mean_entropy(i).map_or(String::new(), |v| v.to_string())
                );
            }
        }
        csv
    }

    fn markdown(&self, cases: &[Cases], densities: &[Density]) -> Result<String> {
        let mut md = String::new();
        let _ = writeln!(md, "# Confidence analysis: {}\n", self.dataset);
        let _ = writeln!(
            md,
            "Clean images (no augmentation), eval mode. Entropy in nats at τ = 1; TLD = z_y − max_{{k≠y}} z_k (negative when misclassified); ECE in %, 15 bins (the paper's Table 14).\n"
        );
        let mut t = Table::new([
            "model",
            "arch",
            "top-1 (%)",
            "mean entropy",
            "mean TLD",
            "ECE (%)",
        ])
        .with_align(vec![
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ]);
        for (s, c) in self.specs.iter().zip(self.measured) {
            t.push_row([
                s.label.clone(),
                s.arch.clone(),
                fmt_fixed(c.top1, 2),
                fmt_fixed(mean(&c.entropy), 4),
                fmt_fixed(mean(&c.tld), 3),
                fmt_fixed(c.ece, 2),
            ]);
        }
        md.push_str(&t.to_markdown()?);
        if !cases.is_empty() {
            let _ = writeln!(
                md,
                "\nTeacher ({}) right/wrong × student right/wrong: the teacher's mean entropy (number of samples), as the paper's Table 2.\n",
                self.specs[0].label
            );
            let mut header = vec!["case".to_string()];
            header.extend(self.specs[1..].iter().map(|s| s.label.clone()));
            let mut t = Table::new(header);
            for (i, name) in Cases::NAMES.iter().enumerate() {
                let mut row = vec![name.to_string()];
                row.extend(cases.iter().map(|c| {
                    format!(
                        "{} ({})",
                        c.mean_entropy(i).map_or("–".into(), |v| fmt_fixed(v, 4)),
                        c.count[i]
                    )
                }));
                t.push_row(row);
            }
            let mut row = vec!["S. right".to_string()];
            row.extend(cases.iter().map(|c| {
                c.entropy_student_correct()
                    .map_or("–".into(), |v| fmt_fixed(v, 4))
            }));
            t.push_row(row);
            md.push_str(&t.to_markdown()?);
            let _ = writeln!(
                md,
                "\n\"S. right\" is the teacher's mean entropy over the samples the student gets right (T/T and F/T; the paper's Table 13)."
            );
        }
        let outside: u64 = densities.iter().map(|d| d.outside).sum();
        let (lo, hi) = (
            densities[0].edges[0],
            *densities[0].edges.last().expect("bins ≥ 1"),
        );
        let _ = writeln!(
            md,
            "\n![TLD density](tld_density.png)\n\nTLD density over [{}, {}] in {} bins (`tld_density.csv`, also `tld_density.svg`){}.",
            fmt_fixed(lo, 3),
            fmt_fixed(hi, 3),
            self.bins,
            if outside > 0 {
                format!("; {outside} values outside the range are left out")
            } else {
                String::new()
            }
        );
        Ok(md)
    }
}

/// The densities in long form: one row per model and bin.
fn density_csv(densities: &[Density]) -> String {
    let mut csv = String::from("model,bin_lower,bin_upper,density\n");
    for d in densities {
        for (e, v) in d.edges.windows(2).zip(&d.density) {
            let _ = writeln!(csv, "{},{},{},{}", d.label, e[0], e[1], v);
        }
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_split_by_teacher_then_student() {
        let t = [true, true, false, false, true];
        let s = [true, false, true, false, true];
        let h = [0.1, 0.2, 0.3, 0.4, 0.5];
        let c = Cases::new(&t, &s, &h);
        assert_eq!(c.count, [2, 1, 1, 1]);
        assert!((c.mean_entropy(0).unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(c.mean_entropy(1), Some(0.2));
        // Student right: samples 0, 2, 4.
        assert!((c.entropy_student_correct().unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(Cases::new(&[], &[], &[]).mean_entropy(3), None);
    }

    #[test]
    fn predictions_take_the_first_of_tied_maxima() {
        assert_eq!(
            predictions(&[1.0, 3.0, 3.0, 0.0, -1.0, -2.0], 3),
            vec![1, 0]
        );
        assert_eq!(
            correct(&[1.0, 3.0, 3.0, 0.0, -1.0, -2.0], &[1, 2], 3),
            vec![true, false]
        );
    }

    #[test]
    fn densities_integrate_to_one_and_the_plot_steps() {
        let a = [-1.0, 0.5, 0.6, 2.0, 3.0];
        let b = [0.0, 1.0];
        let range = data_range(&[&a, &b]).unwrap();
        assert_eq!(range, (-1.0, 3.0));
        let d = densities(&[("a", &a), ("b", &b)], 8, range).unwrap();
        for one in &d {
            let area: f64 = one
                .edges
                .windows(2)
                .zip(&one.density)
                .map(|(e, v)| (e[1] - e[0]) * v)
                .sum();
            assert!((area - 1.0).abs() < 1e-12, "{}: {area}", one.label);
        }
        let plot = density_plot("t", &d);
        assert_eq!(plot.series[0].xs.len(), 16);
        assert_eq!(plot.series[0].ys[0], plot.series[0].ys[1]);
        assert_eq!(data_range(&[&[2.0]]), Some((1.0, 3.0)));
        assert_eq!(data_range(&[&[]]), None);
    }

    #[test]
    fn ranges_and_labels_parse() {
        assert_eq!(parse_range("-10,20").unwrap(), (-10.0, 20.0));
        assert!(parse_range("3,1").is_err() && parse_range("x,1").is_err());
        assert_eq!(file_stem_of("a b/c"), "a_b_c");
        assert_eq!(
            default_label(Path::new("runs/kd_t4/checkpoints/last.safetensors")),
            "kd_t4"
        );
        assert_eq!(
            default_label(Path::new("runs/kd_t4/checkpoints/best.safetensors")),
            "kd_t4_best"
        );
        assert_eq!(default_label(Path::new("teachers/wrn.safetensors")), "wrn");
    }
}
