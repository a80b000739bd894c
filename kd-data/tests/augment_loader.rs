//! kd-augment pipelines as the loader's per-sample transform: thread-count independence and
//! per-batch randomness through the loader.

use kd_augment::Pipeline;
use kd_data::loader::{BatchImages, Loader, LoaderConfig};
use kd_data::synthetic::{self, SyntheticConfig};
use kd_data::{Dataset, Split};
use std::sync::Arc;

fn data() -> Arc<Dataset> {
    let cfg = SyntheticConfig {
        train_per_class: 30,
        ..SyntheticConfig::default()
    };
    Arc::new(synthetic::generate(&cfg, Split::Train).unwrap())
}

fn bytes(b: &kd_data::loader::Batch) -> &[u8] {
    match &b.images {
        BatchImages::U8(v) => v,
        BatchImages::F32(_) => panic!("expected u8 batches"),
    }
}

fn loader(ds: &Arc<Dataset>, spec: &str, workers: usize) -> Loader {
    let pipeline = Pipeline::parse(spec, ds.shape(), None).unwrap();
    let config = LoaderConfig {
        batch_size: 32,
        workers,
        seed: 7,
        ..LoaderConfig::default()
    };
    Loader::new(Arc::clone(ds), config)
        .unwrap()
        .with_transform(pipeline)
        .unwrap()
}

#[test]
fn batches_are_the_same_with_1_and_4_threads() {
    let ds = data();
    let spec = "crop:4,flip,cutout:8,autoaugment,crop:2@batch";
    let a: Vec<Vec<u8>> = loader(&ds, spec, 1)
        .epoch(3)
        .map(|b| bytes(&b).to_vec())
        .collect();
    let b: Vec<Vec<u8>> = loader(&ds, spec, 4)
        .epoch(3)
        .map(|b| bytes(&b).to_vec())
        .collect();
    assert_eq!(a, b);
    let c: Vec<Vec<u8>> = loader(&ds, spec, 2)
        .epoch(4)
        .map(|b| bytes(&b).to_vec())
        .collect();
    assert_ne!(a, c, "epochs 3 and 4 gave the same augmentation");
}

#[test]
fn a_per_batch_flip_flips_all_or_none_of_a_batch() {
    let ds = data();
    let flip = loader(&ds, "flip@batch", 2);
    let mut seen = [false, false];
    for batch in flip.epoch(0) {
        let per_image = ds.shape().len();
        let flipped: Vec<bool> = bytes(&batch)
            .chunks_exact(per_image)
            .zip(&batch.indices)
            .map(|(img, &i)| img != ds.image(i))
            .collect();
        assert!(
            flipped.iter().all(|&f| f == flipped[0]),
            "step {}: {flipped:?}",
            batch.step
        );
        seen[flipped[0] as usize] = true;
    }
    assert_eq!(seen, [true, true]);
}

/// `crop,flip` into normalised floats takes the one-pass path; adding an identity op turns
/// that off. Both must give the same floats, with 1 and with 3 workers.
#[test]
fn the_fused_crop_flip_normalise_path_equals_the_general_one() {
    use kd_data::Normalization;
    use kd_data::loader::OutputFormat;
    let ds = data();
    let norm = Normalization::preset("cifar100").unwrap();
    let floats = |spec: &str, workers: usize| -> Vec<Vec<f32>> {
        let pipeline = Pipeline::parse(spec, ds.shape(), None).unwrap();
        let config = LoaderConfig {
            batch_size: 32,
            workers,
            seed: 3,
            output: OutputFormat::F32(norm.clone()),
            ..LoaderConfig::default()
        };
        let loader = Loader::new(Arc::clone(&ds), config)
            .unwrap()
            .with_transform(pipeline)
            .unwrap();
        loader
            .epoch(1)
            .map(|b| match b.images {
                BatchImages::F32(v) => v,
                BatchImages::U8(_) => panic!("expected f32"),
            })
            .collect()
    };
    let fused = floats("crop:4,flip", 1);
    assert_eq!(fused, floats("crop:4,flip,identity", 1));
    assert_eq!(fused, floats("crop:4,flip", 3));
}
