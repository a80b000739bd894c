//! A whole distillation epoch end to end on real CIFAR-10 images: `Session::train_epoch`, i.e.
//! the loader (shuffling, per-sample standard DA `crop:4,flip` and normalisation on its worker
//! threads), the stronger DA on the batch-producer thread, and the KD steps
//! (`0.1·CE + 0.9·KL(T = 4)`, SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 64).
//! `benches/python/reference_epoch.py` runs the same epoch with torchvision and a PyTorch
//! `DataLoader`.
//!
//! The data: the 4,096 training images `i·50000/4096` (i = 0..4096, in torchvision's ImageFolder
//! order) of the shared JPEG CIFAR-10 archive, unpacked once into `KD_BENCH_DATA` (default
//! `target/kd-bench-data/`; kd-data also caches the decoded images there). The archive is
//! `KD_BENCH_CIFAR_TGZ`, by default `../shared/datasets/cifar10-jpg.tar.gz` beside the checkout;
//! without it the bench says so and measures nothing.
//!
//! Two cases: the standard DA only, and with Good-DA-in-KD's CutMix as the stronger DA
//! (`augment.strong = "cutmix"`, `loss.aug = [1, 0, 1]`: the teacher also runs on x′ and the
//! student has a second forward with a KD term on it). The teacher (freshly initialised, 10
//! classes) and the student are `KD_BENCH_PAIR` (`teacher:student`). Its default is
//! `resnet20:resnet8`, not RepDistiller's `resnet56:resnet20`: on the 2-core reference machine
//! an epoch of the latter takes 15–30 s, so eleven epochs per case run well past a few minutes;
//! `KD_BENCH_PAIR=resnet56:resnet20` measures it.
//! `KD_BENCH_THREADS` is `run.threads` (libtorch intra-op threads, default 2) and
//! `KD_BENCH_WORKERS` is `data.workers` (loader threads, default 2) and `KD_BENCH_FORMAT` is
//! `run.memory_format` (default `auto`: channels-last on the CPU).

mod common;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::models::{self, ModelConfig};
use kd_core::runtime::MemoryFormat;
use kd_core::train::{Mode, Session, Silent};
use kd_data::Split;
use kd_data::subset::Subset;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, nn};

/// Training images per epoch.
const SAMPLES: usize = 4096;
/// The archive's top folder.
const ARCHIVE_ROOT: &str = "cifar10_jpg_yoongikim";
/// Written once the archive is completely unpacked.
const UNPACKED_MARK: &str = ".kd-bench-unpacked";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

/// The workspace root (this package is `benches/` in it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the benches package sits in the workspace")
        .to_path_buf()
}

/// Unpacks the archive into `dir` unless that was done before; returns the ImageFolder root.
fn unpack_cifar10(archive: &Path, dir: &Path) -> PathBuf {
    let root = dir.join(ARCHIVE_ROOT);
    if !root.join(UNPACKED_MARK).exists() {
        eprintln!(
            "unpacking {} into {} (once)",
            archive.display(),
            dir.display()
        );
        std::fs::create_dir_all(dir).expect("creating the bench data folder");
        kd_data::download::unpack_tar_gz(archive, dir).expect("unpacking the CIFAR-10 archive");
        std::fs::write(root.join(UNPACKED_MARK), b"").expect("marking the archive unpacked");
    }
    root
}

/// The bench's training subset: `SAMPLES` indices spread evenly over the training set, the same
/// rule `reference_epoch.py` applies.
fn even_subset(root: &Path, path: &Path) -> PathBuf {
    // The first open decodes the 50,000 JPEGs and caches them (.kd-cache in the root).
    let train = kd_data::detect::open(root, Split::Train).expect("opening CIFAR-10's train split");
    let n = train.len();
    let indices = (0..SAMPLES).map(|i| i * n / SAMPLES).collect();
    Subset::from_indices(&train, indices, format!("{SAMPLES} of {n}, evenly spaced"))
        .expect("a valid index list")
        .save(path)
        .expect("writing the subset file");
    path.to_path_buf()
}

/// A freshly initialised teacher's weights, as a safetensors file.
fn teacher_weights(name: &str, classes: i64, path: &Path) -> PathBuf {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        num_classes: classes,
        input_size: 32,
    };
    models::build(name, &vs.root(), &cfg).expect("a zoo model");
    kd_core::checkpoint::save_safetensors(&vs, path).expect("writing the teacher's weights");
    path.to_path_buf()
}

/// A TOML basic string.
fn quoted(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 path");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What every case shares.
struct Setup {
    data: PathBuf,
    subset: PathBuf,
    out_dir: PathBuf,
    teacher: String,
    teacher_weights: PathBuf,
    student: String,
    threads: usize,
    workers: usize,
    format: MemoryFormat,
}

impl Setup {
    /// The run config of one case (`strong`: the stronger DA, if any).
    fn config(&self, name: &str, strong: Option<&str>) -> RunConfig {
        let mut overrides = vec![
            format!("run.name={name}"),
            format!("run.out_dir={}", quoted(&self.out_dir)),
            "run.device=cpu".into(),
            // Far beyond the epochs a bench runs, so the schedule never ends.
            "run.epochs=100000".into(),
            format!("run.threads={}", self.threads),
            format!("run.memory_format={}", self.format),
            format!("data.dataset={}", quoted(&self.data)),
            format!("data.subset={}", quoted(&self.subset)),
            "data.norm=cifar10".into(),
            "data.batch_size=64".into(),
            format!("data.workers={}", self.workers),
            "data.standard=\"crop:4,flip\"".into(),
            format!("model.teacher={}", self.teacher),
            format!("model.teacher_weights={}", quoted(&self.teacher_weights)),
            format!("model.student={}", self.student),
            "loss.ce=0.1".into(),
            "loss.kd=0.9".into(),
            "loss.temperature=4.0".into(),
            "loss.aug=[1.0, 0.0, 1.0]".into(),
        ];
        if let Some(s) = strong {
            overrides.push(format!("augment.strong={s}"));
        }
        ConfigSource {
            file: None,
            preset: None,
            overrides,
        }
        .resolve()
        .expect("a valid bench config")
    }
}

fn bench_epoch(c: &mut Criterion) {
    kd_core::runtime::keep_freed_memory();
    let archive = std::env::var_os("KD_BENCH_CIFAR_TGZ")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/datasets/cifar10-jpg.tar.gz"));
    if !archive.is_file() {
        eprintln!(
            "epoch bench skipped: the CIFAR-10 archive {} is not there (set KD_BENCH_CIFAR_TGZ to \
             a copy of cifar10-jpg.tar.gz)",
            archive.display()
        );
        return;
    }
    let data_dir = std::env::var_os("KD_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/kd-bench-data"));
    let data = unpack_cifar10(&archive, &data_dir);
    let pair = std::env::var("KD_BENCH_PAIR").unwrap_or_else(|_| "resnet20:resnet8".into());
    let (teacher, student) = pair
        .split_once(':')
        .unwrap_or_else(|| panic!("KD_BENCH_PAIR={pair}: expected teacher:student"));
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let setup = Setup {
        subset: even_subset(&data, &tmp.path().join("subset.json")),
        teacher_weights: teacher_weights(teacher, 10, &tmp.path().join("teacher.safetensors")),
        data,
        out_dir: tmp.path().join("runs"),
        teacher: teacher.to_string(),
        student: student.to_string(),
        threads: env_usize("KD_BENCH_THREADS", 2),
        workers: env_usize("KD_BENCH_WORKERS", 2),
        format: common::format(),
    };

    let mut group = c.benchmark_group(format!(
        "kd_epoch_{}threads_{}workers_{}",
        setup.threads, setup.workers, setup.format
    ));
    // An epoch takes seconds: one warm-up epoch, then exactly one epoch per sample, ten samples.
    // (A flat sampling mode whose target time is shorter than an epoch gives one iteration per
    // sample; criterion warns that it needs longer, which is expected here.)
    group
        .throughput(Throughput::Elements(SAMPLES as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    for (case, strong) in [("crop+flip", None), ("crop+flip+cutmix", Some("cutmix"))] {
        let cfg = setup.config(&case.replace('+', "_"), strong);
        let mut session = Session::prepare(&cfg, Mode::Distill, false).expect("a prepared session");
        let mut epoch = 0;
        group.bench_function(
            BenchmarkId::new(format!("{teacher}-{student}"), case),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        epoch += 1;
                        let row = session
                            .train_epoch(epoch, &mut Silent)
                            .expect("a training epoch");
                        assert!(row.train_loss.is_finite());
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_epoch);
criterion_main!(benches);
