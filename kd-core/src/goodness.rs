//! How good a stronger DA is for distillation, measured with the teacher alone: Good-DA-in-KD's
//! T. stddev and mean teacher entropy (good-da-in-kd.md §1.2, `--utils.check_ce_var`).
//!
//! Per scheme, for `passes` passes over the training loader (the trainer's: shuffled,
//! `data.batch_size`, the short last batch kept, the standard DA `data.standard`), each batch x
//! becomes x′ by the stronger DA with the trainer's per-batch generator
//! ([`crate::train::strong_rng`]), so pass e sees exactly the x and x′ of training epoch e. The
//! teacher, in eval mode without a graph, gives softmax probabilities at temperature 1 over all
//! classes on x and on x′, and both go to a [`TStddev`] with the paper's groups of 5 iterations
//! × (original + augmented). The reported T. stddev is the cumulative value at the end; the mean
//! entropy is over every original and augmented row, as the reference's `MeanEntropy`.
//!
//! The teacher sees x and x′ in one concatenated forward: in eval mode a row's output does not
//! depend on the rest of the batch. CutMixPick by teacher entropy scores the pool of 2 × B CutMix
//! rows in that same forward (`[x; pool]`) and keeps the probabilities of the picked rows, where
//! the reference runs the teacher a third time on x′: the same values, one pass. CutMixPick by
//! student entropy scores the pool with the given student checkpoint in eval mode (in the
//! reference's T. stddev runs the student is frozen and in `eval()`), then runs the teacher on
//! `[x; picked rows]`.
//!
//! A thread prepares the next batch (the loader's standard DA, then the stronger DA and the
//! input tensor) while the teacher computes, so a scheme runs at the speed of the teacher's
//! forward pass.

use crate::checkpoint::{self, LoadOptions};
use crate::config::RunConfig;
use crate::loss::entropy;
use crate::models::{self, Model, ModelConfig};
use crate::runtime::MemoryFormat;
use crate::train::objective::{eval_logits, pick_highest_entropy};
use crate::train::{
    Placement, TrainError, f32_pixels, images_tensor, load_teacher, normalization, open_data,
    placement, strong_rng, stronger_da, train_loader,
};
use kd_augment::scheme::{PickBy, Scheme, StrongOutput, StrongSpec};
use kd_augment::{ImageShape, StrongerDa};
use kd_data::loader::Loader;
use kd_metrics::{TStddev, TStddevConfig};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

/// Errors of a goodness measurement.
#[derive(Debug, thiserror::Error)]
pub enum GoodnessError {
    /// A setting that does not fit (no schemes, no passes, S. ent. without a student).
    #[error("{key}: {why}")]
    Setting {
        /// The setting.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// Preparing the data, the teacher or the stronger DA (the trainer's own checks).
    #[error(transparent)]
    Prepare(#[from] TrainError),
    /// The stronger DA on a batch.
    #[error("augmentation: {0}")]
    Augment(#[from] kd_augment::AugmentError),
    /// The T. stddev accumulator.
    #[error("T. stddev: {0}")]
    Metrics(#[from] kd_metrics::MetricsError),
    /// libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Batches [`Goodness::teacher_throughput`] holds and cycles through.
pub const BASELINE_BATCHES: usize = 8;

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, GoodnessError>;

/// Short names of the paper's CutMixPick variants, as `kd goodness --da` accepts them.
pub const ALIASES: [(&str, &str); 2] = [
    ("cutmix_pick_t", "cutmix_pick:teacher_entropy"),
    ("cutmix_pick_s", "cutmix_pick:student_entropy"),
];

/// Parses a comma-separated list of stronger DAs (`identity,flip,cutmix_pick_t`): kd-augment's
/// [`StrongSpec`] names (with `@sample` for per-sample draws) and the [`ALIASES`]. An unknown
/// name is an error that names it, lists the known ones and suggests the nearest; a scheme
/// listed twice is an error.
pub fn parse_schemes(list: &str) -> Result<Vec<StrongSpec>> {
    let mut specs: Vec<StrongSpec> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (body, mode) = match item.rsplit_once('@') {
            Some((b, m)) => (b, Some(m)),
            None => (item, None),
        };
        let key = body.to_ascii_lowercase();
        let body = ALIASES
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(body, |(_, name)| name);
        let text = match mode {
            Some(m) => format!("{body}@{m}"),
            None => body.to_string(),
        };
        let spec: StrongSpec = text.parse().map_err(|e: kd_augment::AugmentError| {
            let mut known: Vec<&str> = Scheme::PAPER.iter().map(|s| s.name()).collect();
            known.push(Scheme::Crop.name());
            known.extend(ALIASES.iter().map(|a| a.0));
            let hint = kd_augment::pipeline::closest(&key, &known)
                .map(|c| format!("; did you mean '{c}'?"))
                .unwrap_or_default();
            GoodnessError::Setting {
                key: format!("scheme '{item}'"),
                why: format!("{e} (known: {}){hint}", known.join(", ")),
            }
        })?;
        if specs.contains(&spec) {
            return Err(GoodnessError::Setting {
                key: format!("scheme '{item}'"),
                why: format!("{spec} is listed twice"),
            });
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(GoodnessError::Setting {
            key: "schemes".into(),
            why: "no scheme given".into(),
        });
    }
    Ok(specs)
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct GoodnessConfig {
    /// The data and its loader (`data.*`: dataset, norm, batch size, standard DA, subset,
    /// workers), `run.seed`, `run.device`, `run.threads`, `run.amp`, the teacher
    /// (`model.teacher`, `model.teacher_weights`), for CutMixPick by student entropy the student
    /// (`model.student`, `model.student_weights`), and `augment.pick_n` (0: the batch size).
    pub run: RunConfig,
    /// The stronger DAs, measured in this order.
    pub schemes: Vec<StrongSpec>,
    /// Passes over the training set per scheme (the reference: 10 epochs).
    pub passes: usize,
}

/// One scheme's measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemeGoodness {
    /// The scheme's canonical name (`crop+flip`, `cutmix_pick:teacher_entropy`, …).
    pub scheme: String,
    /// T. stddev after the last group (cumulative); `None` with fewer than two groups.
    pub t_stddev: Option<f64>,
    /// The mean teacher entropy (nats, temperature 1) over every original and augmented row.
    pub mean_entropy: f64,
    /// Groups in the T. stddev.
    pub groups: usize,
    /// Original images (x) seen, over all passes.
    pub samples: usize,
    /// Probability rows pushed (x and x′).
    pub rows: usize,
    /// Images through the teacher's forward pass (x and x′, or x and CutMixPick's pool).
    pub images: usize,
    /// Wall time of the scheme, data preparation overlapped.
    pub seconds: f64,
    /// `images / seconds`: the teacher's forward throughput while measuring.
    pub images_per_s: f64,
}

/// The teacher's plain forward throughput, the yardstick of [`SchemeGoodness::images_per_s`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Images forwarded.
    pub images: usize,
    /// Wall time.
    pub seconds: f64,
    /// `images / seconds`.
    pub images_per_s: f64,
}

/// What a measurement is about to do, for the observer's header.
#[derive(Clone, Debug)]
pub struct GoodnessInfo {
    /// The device.
    pub device: Device,
    /// Training images per pass.
    pub samples_per_pass: usize,
    /// Batches per pass.
    pub steps_per_pass: usize,
    /// Passes per scheme.
    pub passes: usize,
    /// Classes.
    pub classes: usize,
    /// The schemes.
    pub schemes: Vec<StrongSpec>,
}

/// Receives a measurement's progress.
pub trait GoodnessObserver {
    /// Before the first scheme.
    fn started(&mut self, _info: &GoodnessInfo) {}
    /// At a scheme's start, with its total batches over all passes.
    fn scheme_started(&mut self, _spec: &StrongSpec, _steps: usize) {}
    /// After each batch, with the images the teacher saw.
    fn step(&mut self, _images: usize) {}
    /// After each scheme.
    fn scheme_finished(&mut self, _result: &SchemeGoodness) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;
impl GoodnessObserver for Quiet {}

/// Everything a measurement needs, checked: the loader, the teacher, the student if a scheme
/// needs it.
pub struct Goodness {
    cfg: GoodnessConfig,
    device: Device,
    amp: bool,
    format: MemoryFormat,
    shape: ImageShape,
    norm: kd_data::Normalization,
    classes: usize,
    train: Loader,
    teacher: (nn::VarStore, Box<dyn Model>),
    student: Option<(nn::VarStore, Box<dyn Model>)>,
    pick_n: usize,
}

impl std::fmt::Debug for Goodness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Goodness({:?})", self.cfg.schemes)
    }
}

/// A batch ready for the teacher, made on the producer thread.
struct Prepared {
    /// Rows of x.
    n: usize,
    /// `[x; x′]`, or `[x; pool]` for CutMixPick, on the CPU.
    input: Tensor,
}

impl Goodness {
    /// Checks and builds everything before any measuring: the settings, the data, the teacher
    /// (its weights and class count), the student for S. ent., every scheme.
    pub fn prepare(cfg: &GoodnessConfig) -> Result<Goodness> {
        let setting = |key: &str, why: String| GoodnessError::Setting {
            key: key.into(),
            why,
        };
        let run = &cfg.run;
        run.validate().map_err(TrainError::from)?;
        if cfg.passes == 0 {
            return Err(setting("passes", "must be at least 1".into()));
        }
        if cfg.schemes.is_empty() {
            return Err(setting("schemes", "no scheme given".into()));
        }
        let (Some(teacher_name), Some(teacher_path)) =
            (&run.model.teacher, &run.model.teacher_weights)
        else {
            return Err(setting(
                "model.teacher",
                "the measurement needs a teacher and its weights (model.teacher and model.teacher_weights)"
                    .into(),
            ));
        };
        let needs_student = cfg
            .schemes
            .iter()
            .any(|s| s.scheme == Scheme::CutMixPick(PickBy::StudentEntropy));
        if needs_student && run.model.student_weights.is_none() {
            return Err(setting(
                "model.student_weights",
                "cutmix_pick:student_entropy ranks the pool by a trained student's entropy: give the student (model.student and model.student_weights; kd goodness: --student-model and --student)"
                    .into(),
            ));
        }
        let Placement {
            device,
            amp,
            format,
        } = placement(run)?;

        let (train_ds, _) = open_data(run)?;
        let shape = train_ds.shape();
        if shape.height != shape.width {
            return Err(setting(
                "data.dataset",
                format!("images are {shape}; the zoo takes square images"),
            ));
        }
        let norm = normalization(run, &train_ds)?;
        let train = train_loader(run, &train_ds, &norm)?;
        // Every scheme binds to the data before any work.
        for spec in &cfg.schemes {
            stronger_da(*spec, shape, &norm)?;
        }
        let model_cfg = ModelConfig {
            num_classes: train_ds.num_classes() as i64,
            input_size: shape.height as i64,
        };
        let teacher = load_teacher(teacher_name, teacher_path, &model_cfg, device)?;
        format.apply_to(&teacher.0);
        let student = match (&run.model.student_weights, needs_student) {
            (Some(path), true) => {
                let mut vs = nn::VarStore::new(device);
                let model = models::build(&run.model.student, &vs.root(), &model_cfg)
                    .map_err(TrainError::from)?;
                if !path.exists() {
                    return Err(setting(
                        "model.student_weights",
                        format!("{}: no such file", path.display()),
                    ));
                }
                checkpoint::load_weights(&vs, path, LoadOptions::default()).map_err(|source| {
                    TrainError::StudentWeights {
                        path: path.clone(),
                        source,
                    }
                })?;
                vs.freeze();
                format.apply_to(&vs);
                Some((vs, model))
            }
            _ => None,
        };
        let pick_n = if run.augment.pick_n == 0 {
            run.data.batch_size
        } else {
            run.augment.pick_n
        };
        Ok(Goodness {
            cfg: cfg.clone(),
            device,
            amp,
            format,
            shape,
            norm,
            classes: train_ds.num_classes(),
            train,
            teacher,
            student,
            pick_n,
        })
    }

    /// What [`Goodness::run`] will do.
    pub fn info(&self) -> GoodnessInfo {
        GoodnessInfo {
            device: self.device,
            samples_per_pass: self.train.num_samples(),
            steps_per_pass: self.train.len(),
            passes: self.cfg.passes,
            classes: self.classes,
            schemes: self.cfg.schemes.clone(),
        }
    }

    /// Measures every scheme, in order.
    pub fn run(&self, observer: &mut dyn GoodnessObserver) -> Result<Vec<SchemeGoodness>> {
        observer.started(&self.info());
        let mut out = Vec::with_capacity(self.cfg.schemes.len());
        for spec in &self.cfg.schemes {
            let result = self.measure(*spec, observer)?;
            observer.scheme_finished(&result);
            out.push(result);
        }
        Ok(out)
    }

    /// Measures one scheme (it need not be one of the configured ones, but CutMixPick by student
    /// entropy needs the student the config named).
    pub fn measure(
        &self,
        spec: StrongSpec,
        observer: &mut dyn GoodnessObserver,
    ) -> Result<SchemeGoodness> {
        let da = stronger_da(spec, self.shape, &self.norm)?;
        let student = match spec.scheme {
            Scheme::CutMixPick(PickBy::StudentEntropy) => Some(
                self.student
                    .as_ref()
                    .map(|(_, m)| m.as_ref())
                    .ok_or_else(|| GoodnessError::Setting {
                        key: "model.student_weights".into(),
                        why: "cutmix_pick:student_entropy needs a student checkpoint".into(),
                    })?,
            ),
            _ => None,
        };
        let pick = match spec.scheme {
            Scheme::CutMixPick(by) => Some(by),
            _ => None,
        };
        let passes = self.cfg.passes;
        observer.scheme_started(&spec, passes * self.train.len());
        let mut stddev = TStddev::new(self.classes, TStddevConfig::default())?;
        let (mut entropy_sum, mut rows, mut samples, mut images) = (0f64, 0usize, 0usize, 0usize);
        let t0 = Instant::now();
        {
            let (tx, rx) = crossbeam_channel::bounded::<Prepared>(2);
            let producer_da = &da;
            let train = &self.train;
            let seed = self.cfg.run.run.seed;
            let result = std::thread::scope(|scope| -> Result<()> {
                let producer = scope.spawn(move || -> Result<()> {
                    for pass in 1..=passes {
                        for batch in train.epoch(pass as u64) {
                            let prepared = prepare(producer_da, &batch, seed, pass)?;
                            if tx.send(prepared).is_err() {
                                return Ok(()); // the consumer stopped
                            }
                        }
                    }
                    Ok(())
                });
                let measured = (|| -> Result<()> {
                    let _guard = tch::no_grad_guard();
                    for prepared in rx.iter() {
                        let n = prepared.n;
                        let input = self.format.tensor(&prepared.input.to_device(self.device));
                        let (logits, forwarded) = self.teacher_logits(&input, n, pick, student)?;
                        let probs = logits
                            .softmax(1, Kind::Float)
                            .to_device(Device::Cpu)
                            .contiguous();
                        let probs: Vec<f32> = Vec::try_from(probs.view([-1]))?;
                        let split = n * self.classes;
                        stddev.push_iteration(&[&probs[..split], &probs[split..]])?;
                        entropy_sum += f64::try_from(entropy(&logits).sum(Kind::Double))?;
                        rows += probs.len() / self.classes;
                        samples += n;
                        images += forwarded;
                        observer.step(forwarded);
                    }
                    Ok(())
                })();
                drop(rx);
                let produced = producer.join().expect("the batch producer does not panic");
                measured.and(produced)
            });
            result?;
            if let Device::Cuda(index) = self.device {
                tch::Cuda::synchronize(index as i64);
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        Ok(SchemeGoodness {
            scheme: spec.to_string(),
            t_stddev: stddev.value(),
            mean_entropy: entropy_sum / rows.max(1) as f64,
            groups: stddev.groups(),
            samples,
            rows,
            images,
            seconds,
            images_per_s: images as f64 / seconds.max(1e-9),
        })
    }

    /// The teacher's plain eval forward throughput on the same data, data loading excluded: the
    /// first batches of `batch_size` images of the training loader (its standard DA, no
    /// stronger DA; at most [`BASELINE_BATCHES`], held on the device) are forwarded in turn
    /// until one pass's worth of images went through, each forward's logits brought to the CPU
    /// as `kd eval` does; one forward warms up first. With `batch_size` = 2B (3B for CutMixPick
    /// by teacher entropy) the teacher sees batches as large as in [`Goodness::measure`], so the
    /// two rates compare: a scheme runs at the speed of the teacher's forward pass when its
    /// rate is close to this one. On the CPU both cut their batches into passes of B rows
    /// (`data.batch_size`), which run faster there than one large pass.
    pub fn teacher_throughput(&self, batch_size: usize) -> Result<Throughput> {
        let mut run = self.cfg.run.clone();
        run.data.batch_size = batch_size;
        let loader = train_loader(&run, self.train.dataset(), &self.norm)?;
        let batches: Vec<Tensor> = loader
            .epoch(1)
            .take(BASELINE_BATCHES)
            .map(|b| {
                let x = images_tensor(f32_pixels(&b), self.shape).to_device(self.device);
                self.format.tensor(&x)
            })
            .collect();
        let teacher = self.teacher.1.as_ref();
        let _guard = tch::no_grad_guard();
        let rows = self.cfg.run.data.batch_size as i64;
        let forward = |x: &Tensor| eval_logits(teacher, x, rows, self.amp).to_device(Device::Cpu);
        if let Some(first) = batches.first() {
            let _ = forward(first);
        }
        let target = self.train.num_samples().max(1);
        let mut images = 0usize;
        let t0 = Instant::now();
        for x in batches.iter().cycle() {
            let _ = forward(x);
            images += x.size()[0] as usize;
            if images >= target {
                break;
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        Ok(Throughput {
            batch_size,
            images,
            seconds,
            images_per_s: images as f64 / seconds.max(1e-9),
        })
    }

    /// The teacher's logits on `[x; x′]` (`[n + m, classes]`, float) and how many images it
    /// forwarded. For CutMixPick, `input` is `[x; pool]` and x′ is the picked rows of the pool.
    fn teacher_logits(
        &self,
        input: &Tensor,
        n: usize,
        pick: Option<PickBy>,
        student: Option<&dyn Model>,
    ) -> Result<(Tensor, usize)> {
        let teacher = self.teacher.1.as_ref();
        let rows = input.size()[0];
        let n64 = n as i64;
        // Batch-sized passes on the CPU (see `eval_logits`); one pass on CUDA.
        let forward =
            |model: &dyn Model, x: &Tensor| -> Tensor { eval_logits(model, x, n64, self.amp) };
        let index = |v: Vec<usize>| {
            let v: Vec<i64> = v.into_iter().map(|r| r as i64).collect();
            Tensor::from_slice(&v).to_device(self.device)
        };
        Ok(match pick {
            None => (forward(teacher, input), rows as usize),
            Some(PickBy::TeacherEntropy) => {
                let all = forward(teacher, input);
                let pool = all.narrow(0, n64, rows - n64);
                let kept = index(pick_highest_entropy(&pool, self.pick_n));
                let logits =
                    Tensor::f_cat(&[all.narrow(0, 0, n64), pool.index_select(0, &kept)], 0)?;
                (logits, rows as usize)
            }
            Some(PickBy::StudentEntropy) => {
                let student = student.ok_or_else(|| GoodnessError::Setting {
                    key: "model.student_weights".into(),
                    why: "cutmix_pick:student_entropy needs a student checkpoint".into(),
                })?;
                let pool = input.narrow(0, n64, rows - n64);
                let kept = index(pick_highest_entropy(&forward(student, &pool), self.pick_n));
                let x = Tensor::f_cat(&[input.narrow(0, 0, n64), pool.index_select(0, &kept)], 0)?;
                let forwarded = x.size()[0] as usize;
                (forward(teacher, &x), forwarded)
            }
        })
    }
}

/// x′ of `batch` (the trainer's generator for its step in pass `pass`) and the teacher's input
/// `[x; x′]` (or `[x; pool]`).
fn prepare(
    da: &StrongerDa,
    batch: &kd_data::loader::Batch,
    seed: u64,
    pass: usize,
) -> Result<Prepared> {
    let x = f32_pixels(batch);
    let mut rng = strong_rng(seed, pass, batch.step);
    let out = da.apply(x, &mut rng)?;
    let aug = match &out {
        StrongOutput::Images(v) => v.as_slice(),
        StrongOutput::Mixed(m) => m.images.as_slice(),
        StrongOutput::Pool(p) => p.images.as_slice(),
    };
    let mut pixels = Vec::with_capacity(x.len() + aug.len());
    pixels.extend_from_slice(x);
    pixels.extend_from_slice(aug);
    Ok(Prepared {
        n: batch.len(),
        input: images_tensor(&pixels, batch.shape),
    })
}

/// Writes `results` as CSV: a header, then one line per scheme (an empty `t_stddev` when it is
/// undefined).
pub fn to_csv(results: &[SchemeGoodness]) -> String {
    let mut s = String::from(
        "scheme,t_stddev,mean_entropy,groups,samples,rows,images,seconds,images_per_s\n",
    );
    for r in results {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.scheme,
            r.t_stddev.map_or(String::new(), |v| format!("{v:.9}")),
            format_args!("{:.9}", r.mean_entropy),
            r.groups,
            r.samples,
            r.rows,
            r.images,
            format_args!("{:.3}", r.seconds),
            format_args!("{:.1}", r.images_per_s),
        ));
    }
    s
}
