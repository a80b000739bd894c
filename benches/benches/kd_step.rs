//! One knowledge-distillation training step on the CPU, RepDistiller's recipe: batch 64 of
//! 3×32×32 images, 100 classes, `0.1·CE + 0.9·KL(T = 4)`, SGD (lr 0.05, momentum 0.9, weight
//! decay 5e-4). A step is `Objective::forward` (the frozen teacher in eval mode without a graph,
//! the student in train mode), `Sgd::zero_grad`, `backward`, `Sgd::step`: what the trainer does
//! per batch, without the loader. `benches/python/reference_kd_step.py` measures the same step in
//! PyTorch eager.
//!
//! Two views per teacher → student pair:
//! * `x`: the plain KD step (one teacher forward, one student forward);
//! * `x+flip`: with Good-DA-in-KD's augmented view x′ = the horizontally flipped batch
//!   (precomputed) and loss weights [w₀, w₁, w₂] = [1, 0, 1]: the teacher also runs on x′ and the
//!   student runs a second forward on x′ with a KD term on it.
//!
//! `KD_BENCH_FORMAT` is the layout of the batches and the convolution weights, as
//! `run.memory_format` (default `auto`: channels-last on the CPU, as the trainer runs;
//! `contiguous` is PyTorch's default NCHW, which `reference_kd_step.py` uses unless given
//! `--channels-last`).
//! `KD_BENCH_THREADS` sets libtorch's intra-op threads (default 2); `KD_BENCH_PAIRS` restricts
//! the pairs, as `teacher:student` separated by commas (default
//! `resnet32x4:resnet8x4,resnet56:resnet20`).

mod common;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use kd_core::loss::{KdKind, KdLoss};
use kd_core::models::{self, Model, ModelConfig};
use kd_core::optim::{Sgd, SgdConfig};
use kd_core::runtime::MemoryFormat;
use kd_core::train::objective::{AugBatch, Objective};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor, nn};

const BATCH: i64 = 64;
const DEFAULT_PAIRS: &str = "resnet32x4:resnet8x4,resnet56:resnet20";

/// RepDistiller's distillation loss with Good-DA-in-KD's `lw_mix = [1, 0, 1]`.
fn objective() -> Objective {
    Objective {
        ce: 0.1,
        kd: 0.9,
        aug: [1.0, 0.0, 1.0],
        loss: KdLoss::new(KdKind::Kl, 4.0).expect("T = 4 is a valid temperature"),
        student_pick_train: true,
    }
}

/// The flipped batch as x′: every row is its own source, nothing is mixed.
fn flipped_view(x_flip: &Tensor) -> AugBatch {
    let identity: Vec<i64> = (0..BATCH).collect();
    AugBatch {
        images: x_flip.shallow_clone(),
        source: identity.clone(),
        partner: identity,
        lambda: vec![1.0; BATCH as usize],
        pick: None,
    }
}

/// A student with its SGD, and a frozen teacher, freshly initialised.
struct Pair {
    _teacher_vs: nn::VarStore,
    teacher: Box<dyn Model>,
    _student_vs: nn::VarStore,
    student: Box<dyn Model>,
    sgd: Sgd,
}

impl Pair {
    fn new(teacher: &str, student: &str, cfg: &ModelConfig, format: MemoryFormat) -> Pair {
        let mut teacher_vs = nn::VarStore::new(Device::Cpu);
        let teacher_model = models::build(teacher, &teacher_vs.root(), cfg).expect("a zoo model");
        teacher_vs.freeze();
        format.apply_to(&teacher_vs);
        let student_vs = nn::VarStore::new(Device::Cpu);
        let student_model = models::build(student, &student_vs.root(), cfg).expect("a zoo model");
        format.apply_to(&student_vs);
        let sgd = Sgd::from_var_store(&student_vs, SgdConfig::default()).expect("an optimizer");
        Pair {
            _teacher_vs: teacher_vs,
            teacher: teacher_model,
            _student_vs: student_vs,
            student: student_model,
            sgd,
        }
    }

    /// One training step, as the trainer takes it.
    fn step(&mut self, objective: &Objective, x: &Tensor, y: &Tensor, aug: Option<AugBatch>) {
        let out = objective.forward(
            self.student.as_ref(),
            Some(self.teacher.as_ref()),
            x,
            y,
            aug,
            false,
            None,
        );
        self.sgd.zero_grad();
        out.loss.backward();
        self.sgd.step(SgdConfig::default().lr);
    }
}

fn bench_kd_step(c: &mut Criterion) {
    let threads = common::init_torch();
    let format = common::format();
    let cfg = ModelConfig::default();
    let x = Tensor::randn([BATCH, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(cfg.num_classes, [BATCH], (Kind::Int64, Device::Cpu));
    let x_flip = format.tensor(&x.flip([3]));
    let x = format.tensor(&x);
    let objective = objective();

    let mut group = c.benchmark_group(format!("kd_step_{threads}threads_{format}"));
    // A step takes from a tenth of a second to seconds: one step per sample, ten samples.
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for (teacher, student) in common::pairs(DEFAULT_PAIRS) {
        let name = format!("{teacher}-{student}");
        for with_view in [false, true] {
            let mut pair = Pair::new(&teacher, &student, &cfg, format);
            let view = if with_view { "x+flip" } else { "x" };
            group.bench_function(BenchmarkId::new(&name, view), |b| {
                b.iter_custom(|iters| {
                    // x′'s bookkeeping is built before the clock starts: the step is timed.
                    let mut views: Vec<Option<AugBatch>> = (0..iters)
                        .map(|_| with_view.then(|| flipped_view(&x_flip)))
                        .collect();
                    let start = Instant::now();
                    for aug in views.drain(..) {
                        pair.step(&objective, &x, &y, aug);
                    }
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_kd_step);
criterion_main!(benches);
