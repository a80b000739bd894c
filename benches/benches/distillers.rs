//! One training step of each RepDistiller distiller on the CPU, against the plain KD step of the
//! same pair: what each method adds. Batch 64 of 3×32×32 images, 100 classes, SGD (lr 0.05,
//! momentum 0.9, weight decay 5e-4 on the student and the distiller's modules); a step is
//! `Objective::forward` with the distiller's term (both networks' features, the student's with
//! its graph), `Sgd::zero_grad`, `backward`, `Sgd::step`, as the trainer takes it.
//!
//! Cases, per teacher → student pair:
//! * `kd`: RepDistiller's KD line, 0.1·CE + 0.9·KL(T = 4) (logits only);
//! * `<method>`: CE + 0·KL + β·method with the run script's β (the KL term is computed anyway, as
//!   the reference computes it), the method's main stage; AB's and FSP's have no distiller term
//!   (their cost is the feature taps);
//! * `<method>-init`: one init-stage step of AB, FT and FSP;
//! * `crd-draw`: CRD's draw of a batch's positives and 16,384 negatives each (over CIFAR-100's
//!   50,000 samples), which the trainer makes on its batch thread, outside the step.
//!
//! CRD runs at the reference's settings (K = 16,384, memory of 50,000 rows). At the end the bench
//! prints each case's mean step time relative to `kd` (its own measurement, not criterion's
//! statistics), in wall time and, on Linux, in the CPU time of the benchmarking thread
//! (`/proc/thread-self/schedstat`): with `KD_BENCH_THREADS=1` libtorch computes on that thread, so
//! the CPU-time ratio stays meaningful on a machine shared with other work, where wall times are
//! not. `KD_BENCH_THREADS` sets libtorch's intra-op threads (default 2);
//! `KD_BENCH_PAIRS` the pairs, as `teacher:student` separated by commas (default
//! `resnet56:resnet20`; `resnet32x4:resnet8x4` is RepDistiller's headline pair).

mod common;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use kd_augment::Rng;
use kd_core::distill::contrast::ContrastSampler;
use kd_core::distill::crd::CrdMode;
use kd_core::distill::{self, Contrast, Distiller, Method, Params, Setup};
use kd_core::loss::{KdKind, KdLoss};
use kd_core::models::{self, Model, ModelConfig};
use kd_core::optim::{Sgd, SgdConfig, named_trainable_variables};
use kd_core::train::objective::{DistillStep, Objective};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor, nn};

const BATCH: i64 = 64;
const DEFAULT_PAIRS: &str = "resnet56:resnet20";
/// CIFAR-100's training samples, CRD's memory rows.
const TRAIN_SAMPLES: usize = 50_000;

/// A case's mean step time: wall seconds and, where known, the thread's CPU seconds.
struct Mean {
    pair: String,
    case: String,
    wall: f64,
    cpu: Option<f64>,
}

/// Mean step times per (pair, case), for the relative table printed at the end.
static MEANS: Mutex<Vec<Mean>> = Mutex::new(Vec::new());

/// The CPU time this thread has run, in seconds (Linux's `/proc/thread-self/schedstat`).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

/// The objective of a case: the KD line, or a method's γ = 1, α = 0.
fn objective(method: Method) -> Objective {
    let (ce, kd) = if method == Method::None {
        (0.1, 0.9)
    } else {
        (1.0, 0.0)
    };
    Objective {
        ce,
        kd,
        aug: [1.0, 0.0, 1.0],
        loss: KdLoss::new(KdKind::Kl, 4.0).expect("T = 4 is a valid temperature"),
        student_pick_train: true,
    }
}

/// A teacher, a student with its SGD, and the method's distiller, freshly initialised.
struct Case {
    _teacher_vs: nn::VarStore,
    teacher: Box<dyn Model>,
    _student_vs: nn::VarStore,
    student: Box<dyn Model>,
    _distill_vs: nn::VarStore,
    distiller: Option<Box<dyn Distiller>>,
    sgd: Sgd,
    init_sgd: Option<Sgd>,
}

fn feature_shapes(model: &dyn Model) -> Vec<Vec<i64>> {
    let x = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| model.forward_features(&x, false, false));
    out.features
        .iter()
        .map(|f| f.size()[1..].to_vec())
        .collect()
}

fn select(vs: &nn::VarStore, prefixes: &[&str]) -> Vec<(String, Tensor)> {
    named_trainable_variables(vs)
        .expect("named variables")
        .into_iter()
        .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(&format!("{p}."))))
        .collect()
}

impl Case {
    fn new(teacher: &str, student: &str, method: Method, cfg: &ModelConfig) -> Case {
        let mut teacher_vs = nn::VarStore::new(Device::Cpu);
        let teacher_model = models::build(teacher, &teacher_vs.root(), cfg).expect("a zoo model");
        teacher_vs.freeze();
        let student_vs = nn::VarStore::new(Device::Cpu);
        let student_model = models::build(student, &student_vs.root(), cfg).expect("a zoo model");
        let mut sgd = Sgd::from_var_store(&student_vs, SgdConfig::default()).expect("an optimizer");
        let distill_vs = nn::VarStore::new(Device::Cpu);
        let (ss, ts) = (
            feature_shapes(student_model.as_ref()),
            feature_shapes(teacher_model.as_ref()),
        );
        let params = Params::default();
        let setup = Setup {
            method,
            params: &params,
            student,
            teacher,
            student_shapes: &ss,
            teacher_shapes: &ts,
            train_samples: TRAIN_SAMPLES,
        };
        let distiller =
            distill::build(&setup, &distill_vs.root()).unwrap_or_else(|e| panic!("{e}"));
        let mut init_sgd = None;
        if let Some(d) = &distiller {
            sgd.add_params("distill", select(&distill_vs, d.trainable()))
                .expect("distinct names");
            if let Some(stage) = d.init_stage() {
                let mut params = Vec::new();
                if stage.student {
                    params = named_trainable_variables(&student_vs).expect("named variables");
                }
                let mut s = Sgd::new(params, SgdConfig::default()).expect("an optimizer");
                s.add_params("distill", select(&distill_vs, stage.modules))
                    .expect("distinct names");
                init_sgd = Some(s);
            }
        }
        Case {
            _teacher_vs: teacher_vs,
            teacher: teacher_model,
            _student_vs: student_vs,
            student: student_model,
            _distill_vs: distill_vs,
            distiller,
            sgd,
            init_sgd,
        }
    }

    /// One main-stage step.
    fn step(&mut self, objective: &Objective, x: &Tensor, y: &Tensor, contrast: Option<Contrast>) {
        let beta = self
            .distiller
            .as_ref()
            .map_or(0.0, |d| d.method().default_beta());
        let distill = self.distiller.as_mut().map(|d| DistillStep {
            distiller: d.as_mut(),
            beta,
            contrast,
        });
        let out = objective.forward(
            self.student.as_ref(),
            Some(self.teacher.as_ref()),
            x,
            y,
            None,
            false,
            distill,
        );
        self.sgd.zero_grad();
        out.loss.backward();
        self.sgd.step(SgdConfig::default().lr);
    }

    /// One init-stage step (AB, FT, FSP).
    fn init_step(&mut self, x: &Tensor) {
        let d = self.distiller.as_mut().expect("a distiller");
        let stage = d.init_stage().expect("an init stage");
        let preact = d.preact();
        let f_t = tch::no_grad(|| self.teacher.forward_features(x, false, preact).features);
        let f_s = if stage.student {
            self.student.forward_features(x, true, preact).features
        } else {
            Vec::new()
        };
        let loss = d.init_loss(&f_s, &f_t).expect("an init loss");
        let sgd = self.init_sgd.as_mut().expect("an init optimizer");
        sgd.zero_grad();
        loss.backward();
        sgd.step(SgdConfig::default().lr);
    }
}

/// CRD's sampler over CIFAR-100's layout (500 samples per class, 100 classes).
fn cifar100_sampler() -> ContrastSampler {
    let labels: Vec<u32> = (0..TRAIN_SAMPLES as u32).map(|i| i % 100).collect();
    let all: Vec<usize> = (0..TRAIN_SAMPLES).collect();
    ContrastSampler::new(&all, &labels, 16_384, CrdMode::Exact).expect("100 classes")
}

/// Times `iters` calls of `f` (its setup excluded: `prepare` runs before the clock starts),
/// and records the mean under (`pair`, `case`).
fn timed<P>(
    pair: &str,
    case: &str,
    iters: u64,
    mut prepare: impl FnMut() -> P,
    mut f: impl FnMut(P),
) -> Duration {
    let inputs: Vec<P> = (0..iters).map(|_| prepare()).collect();
    let cpu0 = thread_cpu_seconds();
    let start = Instant::now();
    for p in inputs {
        f(p);
    }
    let elapsed = start.elapsed();
    let n = iters.max(1) as f64;
    let cpu = cpu0.zip(thread_cpu_seconds()).map(|(a, b)| (b - a) / n);
    let mut means = MEANS.lock().expect("not poisoned");
    means.retain(|m| !(m.pair == pair && m.case == case));
    means.push(Mean {
        pair: pair.to_string(),
        case: case.to_string(),
        wall: elapsed.as_secs_f64() / n,
        cpu,
    });
    elapsed
}

fn bench_distillers(c: &mut Criterion) {
    let threads = common::init_torch();
    let cfg = ModelConfig::default();
    let x = Tensor::randn([BATCH, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(cfg.num_classes, [BATCH], (Kind::Int64, Device::Cpu));
    let sampler = cifar100_sampler();
    let batch_indices: Vec<usize> = (0..BATCH as usize)
        .map(|i| i * 701 % TRAIN_SAMPLES)
        .collect();

    let mut group = c.benchmark_group(format!("distillers_{threads}threads"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for (teacher, student) in common::pairs(DEFAULT_PAIRS) {
        let pair = format!("{teacher}-{student}");
        for method in Method::ALL {
            let mut case = Case::new(&teacher, &student, method, &cfg);
            let objective = objective(method);
            let name = if method == Method::None {
                "kd"
            } else {
                method.name()
            };
            let mut rng = Rng::seed_from_u64(1);
            group.bench_function(BenchmarkId::new(&pair, name), |b| {
                b.iter_custom(|iters| {
                    timed(
                        &pair,
                        name,
                        iters,
                        || {
                            (method == Method::Crd).then(|| {
                                sampler
                                    .draw(&batch_indices, &mut rng)
                                    .to_device(Device::Cpu)
                            })
                        },
                        |contrast| case.step(&objective, &x, &y, contrast),
                    )
                })
            });
            if method.has_init_stage() {
                let id = format!("{name}-init");
                group.bench_function(BenchmarkId::new(&pair, &id), |b| {
                    b.iter_custom(|iters| timed(&pair, &id, iters, || (), |()| case.init_step(&x)))
                });
            }
        }
        let mut rng = Rng::seed_from_u64(2);
        group.bench_function(BenchmarkId::new(&pair, "crd-draw"), |b| {
            b.iter_custom(|iters| {
                timed(
                    &pair,
                    "crd-draw",
                    iters,
                    || (),
                    |()| {
                        std::hint::black_box(sampler.draw(&batch_indices, &mut rng));
                    },
                )
            })
        });
    }
    group.finish();
    print_relative();
}

/// Each case's mean step time relative to its pair's `kd` step.
fn print_relative() {
    let means = MEANS.lock().expect("not poisoned");
    let mut pairs: Vec<&String> = means.iter().map(|m| &m.pair).collect();
    pairs.dedup();
    for pair in pairs {
        let Some(kd) = means.iter().find(|m| &m.pair == pair && m.case == "kd") else {
            continue;
        };
        println!(
            "\n{pair}: mean time per step, and relative to plain KD ({:.1} ms wall, thread CPU {})",
            kd.wall * 1e3,
            kd.cpu
                .map_or("unknown".into(), |c| format!("{:.1} ms", c * 1e3))
        );
        for m in means.iter().filter(|m| &m.pair == pair) {
            let cpu = match (m.cpu, kd.cpu) {
                (Some(c), Some(k)) => format!("{:>8.1} ms  {:>5.2}×", c * 1e3, c / k),
                _ => "unknown".into(),
            };
            println!(
                "  {:<10} wall {:>8.1} ms  {:>5.2}×   thread CPU {cpu}",
                m.case,
                m.wall * 1e3,
                m.wall / kd.wall
            );
        }
    }
}

criterion_group!(benches, bench_distillers);
criterion_main!(benches);
