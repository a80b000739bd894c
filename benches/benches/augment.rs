//! Per-image augmentation throughput on one thread, for 32×32 (CIFAR) and 64×64 (Tiny ImageNet)
//! RGB images: crop + flip + normalise (fused, and as a pipeline followed by `Normalize`), Cutout,
//! AutoAugment, and the batch ops mixup and CutMix on a normalised batch of 64. Every input comes
//! from a pool of seeded random images, cycled, so no image is cache-hot by repetition alone.
//! `benches/python/reference_augment.py` measures the torchvision equivalents.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kd_augment::autoaugment::{AutoAugment, AutoAugmentPolicy};
use kd_augment::batch::{CutMix, Mixup};
use kd_augment::crop::Crop;
use kd_augment::cutout::{Cutout, CutoutFill};
use kd_augment::flip::Flip;
use kd_augment::normalize::{CIFAR100_MEAN, CIFAR100_STD, CropFlipNormalize, Normalize};
use kd_augment::{ImageShape, Pipeline, Rng, Transform};
use std::hint::black_box;
use std::time::Duration;

/// Images in the pool each benchmark cycles through.
const POOL: usize = 512;
/// Images per batch for mixup and CutMix.
const BATCH: usize = 64;
/// The two image sizes.
const SIZES: [usize; 2] = [32, 64];

/// `POOL` random RGB images of `size × size`, back to back.
struct Images {
    shape: ImageShape,
    data: Vec<u8>,
}

impl Images {
    fn new(size: usize, seed: u64) -> Images {
        let shape = ImageShape::new(3, size, size);
        let mut rng = Rng::seed_from_u64(seed);
        let data = (0..POOL * shape.len())
            .map(|_| rng.below(256) as u8)
            .collect();
        Images { shape, data }
    }

    fn get(&self, i: usize) -> &[u8] {
        let len = self.shape.len();
        let i = i % POOL;
        &self.data[i * len..(i + 1) * len]
    }
}

fn label(size: usize) -> String {
    format!("{size}x{size}")
}

fn cifar100() -> Normalize {
    Normalize::from_f64(&CIFAR100_MEAN, &CIFAR100_STD).unwrap()
}

/// A CIFAR-style random crop: pad 4 at 32×32, 8 at 64×64.
fn padding(size: usize) -> usize {
    size / 8
}

fn crop_flip_normalise(c: &mut Criterion) {
    let mut group = c.benchmark_group("crop_flip_normalise");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let images = Images::new(size, 1);
        let shape = images.shape;

        let fused = CropFlipNormalize::new(
            Crop::new(size, padding(size), 0u8).unwrap(),
            Flip::default(),
            cifar100(),
        );
        let mut out = vec![0f32; shape.len()];
        group.bench_function(BenchmarkId::new("fused", label(size)), |b| {
            let mut rng = Rng::seed_from_u64(7);
            let mut i = 0;
            b.iter(|| {
                fused.apply(black_box(images.get(i)), shape, &mut rng, &mut out);
                i += 1;
                black_box(&out);
            })
        });

        let spec = format!("crop:{},flip", padding(size));
        let pipeline = Pipeline::parse(&spec, shape, None).unwrap();
        let normalize = cifar100();
        let mut bytes = vec![0u8; shape.len()];
        group.bench_function(BenchmarkId::new("pipeline+normalize", label(size)), |b| {
            let mut rng = Rng::seed_from_u64(7);
            let mut i = 0;
            b.iter(|| {
                pipeline.apply(black_box(images.get(i)), shape, &mut rng, &mut bytes);
                normalize.apply_into(&bytes, shape, &mut out);
                i += 1;
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn cutout(c: &mut Criterion) {
    let mut group = c.benchmark_group("cutout");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let images = Images::new(size, 2);
        let shape = images.shape;
        let length = size / 4;
        let op = Cutout::new(1, length, CutoutFill::Zero).unwrap();
        let mut out = vec![0u8; shape.len()];
        group.bench_function(
            BenchmarkId::new(format!("u8/L={length}"), label(size)),
            |b| {
                let mut rng = Rng::seed_from_u64(7);
                let mut i = 0;
                b.iter(|| {
                    op.apply(black_box(images.get(i)), shape, &mut rng, &mut out);
                    i += 1;
                    black_box(&out);
                })
            },
        );
    }
    group.finish();
}

fn autoaugment(c: &mut Criterion) {
    let mut group = c.benchmark_group("autoaugment");
    group.throughput(Throughput::Elements(1));
    // The 64×64 CIFAR10 case is the policy torchvision's reference script runs at both sizes.
    let cases = [
        (32, AutoAugmentPolicy::Cifar10),
        (64, AutoAugmentPolicy::ImageNet),
        (64, AutoAugmentPolicy::Cifar10),
    ];
    for (size, policy) in cases {
        let images = Images::new(size, 3);
        let shape = images.shape;
        let op = AutoAugment::new(policy);
        let mut out = vec![0u8; shape.len()];
        group.bench_function(BenchmarkId::new(policy.name(), label(size)), |b| {
            let mut rng = Rng::seed_from_u64(7);
            let mut i = 0;
            b.iter(|| {
                op.apply(black_box(images.get(i)), shape, &mut rng, &mut out);
                i += 1;
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// A batch of `BATCH` normalised images of `size × size`.
fn normalised_batch(size: usize) -> (Vec<f32>, ImageShape) {
    let images = Images::new(size, 4);
    let shape = images.shape;
    let normalize = cifar100();
    let mut batch = vec![0f32; BATCH * shape.len()];
    for (i, dst) in batch.chunks_exact_mut(shape.len()).enumerate() {
        normalize.apply_into(images.get(i), shape, dst);
    }
    (batch, shape)
}

fn mixup(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixup");
    group.throughput(Throughput::Elements(BATCH as u64));
    let op = Mixup::new(1.0).unwrap();
    for size in SIZES {
        let (batch, shape) = normalised_batch(size);
        let mut out = vec![0f32; batch.len()];
        let mut partner = Vec::with_capacity(BATCH);
        group.bench_function(BenchmarkId::new("batch64", label(size)), |b| {
            let mut rng = Rng::seed_from_u64(7);
            b.iter(|| {
                let lambda = op
                    .apply_into(black_box(&batch), shape, &mut rng, &mut partner, &mut out)
                    .unwrap();
                black_box((lambda, &out));
            })
        });
    }
    group.finish();
}

fn cutmix(c: &mut Criterion) {
    let mut group = c.benchmark_group("cutmix");
    group.throughput(Throughput::Elements(BATCH as u64));
    let op = CutMix::new(1.0).unwrap();
    for size in SIZES {
        let (batch, shape) = normalised_batch(size);
        let mut out = vec![0f32; batch.len()];
        let mut partner = Vec::with_capacity(BATCH);
        group.bench_function(BenchmarkId::new("batch64", label(size)), |b| {
            let mut rng = Rng::seed_from_u64(7);
            b.iter(|| {
                let mixed = op
                    .apply_into(black_box(&batch), shape, &mut rng, &mut partner, &mut out)
                    .unwrap();
                black_box((mixed, &out));
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = crop_flip_normalise, cutout, autoaugment, mixup, cutmix
}
criterion_main!(benches);
