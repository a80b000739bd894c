//! Loader throughput on a CIFAR-sized dataset: images per second for a full epoch, by worker
//! count, without transform, with a closure that copies, and with `f32` normalisation; and end to
//! end with CIFAR's standard augmentation (`crop:4,flip`, then `f32` normalisation), the loader
//! counterpart of torchvision's DataLoader in `benches/python/reference_augment.py`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kd_augment::{Pipeline, Rng};
use kd_data::loader::{FnTransform, Loader, LoaderConfig, OutputFormat};
use kd_data::{Dataset, ImageShape, Normalization};
use std::sync::Arc;
use std::time::Duration;

const SAMPLES: usize = 10_000;
const BATCH: usize = 64;

/// 10 000 random 3×32×32 images with 100 classes, drawn from our seeded generator.
fn cifar_sized() -> Arc<Dataset> {
    let shape = ImageShape::new(3, 32, 32);
    let mut rng = Rng::seed_from_u64(2024);
    let images = (0..SAMPLES * shape.len())
        .map(|_| rng.below(256) as u8)
        .collect();
    let labels = (0..SAMPLES).map(|_| rng.below(100) as u32).collect();
    let classes = (0..100).map(|c| format!("class{c}")).collect();
    Arc::new(Dataset::new("bench-cifar", shape, images, labels, classes).unwrap())
}

/// What the workers do to each sample.
#[derive(Clone, Copy)]
enum Work {
    /// `u8` batches, no transform.
    None,
    /// `u8` batches through a closure that copies its input.
    Copy,
    /// `f32` batches normalised with the CIFAR-100 constants, no transform.
    Normalise,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::None => "u8",
            Work::Copy => "u8+copy-closure",
            Work::Normalise => "f32-normalised",
        }
    }

    fn loader(self, dataset: Arc<Dataset>, workers: usize) -> Loader {
        let output = match self {
            Work::Normalise => OutputFormat::F32(Normalization::preset("cifar100").unwrap()),
            Work::None | Work::Copy => OutputFormat::U8,
        };
        // drop_last makes every epoch exactly len() × BATCH images, the throughput declared.
        let config = LoaderConfig {
            batch_size: BATCH,
            drop_last: true,
            workers,
            output,
            ..LoaderConfig::default()
        };
        let loader = Loader::new(dataset, config).unwrap();
        match self {
            Work::Copy => loader
                .with_transform(FnTransform::new(
                    |input: &[u8], _, _: &mut Rng, out: &mut [u8]| out.copy_from_slice(input),
                ))
                .unwrap(),
            Work::None | Work::Normalise => loader,
        }
    }
}

fn epoch_throughput(c: &mut Criterion) {
    let dataset = cifar_sized();
    let mut group = c.benchmark_group("loader_epoch");
    for work in [Work::None, Work::Copy, Work::Normalise] {
        for workers in [1, 2] {
            let loader = work.loader(dataset.clone(), workers);
            group.throughput(Throughput::Elements((loader.len() * BATCH) as u64));
            let mut epoch = 0;
            group.bench_with_input(
                BenchmarkId::new(work.name(), format!("{workers}w")),
                &loader,
                |b, loader| {
                    b.iter(|| {
                        epoch += 1;
                        loader
                            .epoch(epoch)
                            .map(|batch| std::hint::black_box(batch).len())
                            .sum::<usize>()
                    })
                },
            );
        }
    }
    group.finish();
}

/// One epoch of 10 000 CIFAR-sized images through `crop:4,flip` and CIFAR-100 normalisation.
fn crop_flip_normalise(c: &mut Criterion) {
    let dataset = cifar_sized();
    let mut group = c.benchmark_group("loader_crop_flip_normalise");
    for workers in [1, 2] {
        let config = LoaderConfig {
            batch_size: BATCH,
            drop_last: true,
            workers,
            output: OutputFormat::F32(Normalization::preset("cifar100").unwrap()),
            ..LoaderConfig::default()
        };
        let pipeline = Pipeline::parse("crop:4,flip", dataset.shape(), None).unwrap();
        let loader = Loader::new(dataset.clone(), config)
            .unwrap()
            .with_transform(pipeline)
            .unwrap();
        group.throughput(Throughput::Elements((loader.len() * BATCH) as u64));
        let mut epoch = 0;
        group.bench_with_input(
            BenchmarkId::new("f32-cifar100", format!("{workers}w")),
            &loader,
            |b, loader| {
                b.iter(|| {
                    epoch += 1;
                    loader
                        .epoch(epoch)
                        .map(|batch| std::hint::black_box(batch).len())
                        .sum::<usize>()
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = epoch_throughput, crop_flip_normalise
}
criterion_main!(benches);
