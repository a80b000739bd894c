//! The batched loader: epoch coverage and order, independence from the thread count, resuming,
//! transforms and normalisation, early drop, and argument errors.

use kd_augment::Rng;
use kd_data::loader::{
    Batch, BatchImages, FnTransform, Identity, Loader, LoaderConfig, OutputFormat, Transform,
};
use kd_data::subset::Subset;
use kd_data::{DataError, Dataset, ImageShape, Normalization};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `n` RGB 4×4 images whose first two bytes hold the sample index, labels `i % 10`.
fn indexed(n: usize) -> Arc<Dataset> {
    let shape = ImageShape::new(3, 4, 4);
    let mut images = vec![0u8; n * shape.len()];
    for (i, img) in images.chunks_exact_mut(shape.len()).enumerate() {
        img[..2].copy_from_slice(&(i as u16).to_le_bytes());
        for (k, px) in img[2..].iter_mut().enumerate() {
            *px = (i * 31 + k * 7) as u8;
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    let classes = (0..10).map(|c| format!("c{c}")).collect();
    Arc::new(Dataset::new("indexed", shape, images, labels, classes).unwrap())
}

fn config(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        workers: 2,
        seed: 42,
        ..LoaderConfig::default()
    }
}

fn loader(n: usize, config: LoaderConfig) -> Loader {
    Loader::new(indexed(n), config).unwrap()
}

fn bytes(batch: &Batch) -> &[u8] {
    match &batch.images {
        BatchImages::U8(v) => v,
        BatchImages::F32(_) => panic!("expected u8 images"),
    }
}

/// A transform that uses its generator on every byte: any change of stream changes the output.
fn noisy() -> impl Transform {
    FnTransform::new(|input: &[u8], _shape, rng: &mut Rng, out: &mut [u8]| {
        for (o, &i) in out.iter_mut().zip(input) {
            *o = i.wrapping_add(rng.below(256) as u8);
        }
    })
}

fn invalid_message(r: kd_data::Result<Loader>) -> String {
    match r {
        Err(e @ DataError::InvalidArgument { .. }) => e.to_string(),
        other => panic!("expected an InvalidArgument error, got {other:?}"),
    }
}

#[test]
fn every_sample_appears_once_per_epoch_with_its_image_and_label() {
    let l = loader(103, config(10));
    assert_eq!(l.len(), 11);
    let batches: Vec<Batch> = l.epoch(0).collect();
    assert_eq!(batches.len(), 11);
    assert_eq!(batches.last().unwrap().len(), 3);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..103).collect::<Vec<_>>());
    let d = l.dataset();
    for (step, b) in batches.iter().enumerate() {
        assert_eq!((b.epoch, b.step), (0, step));
        for (j, &i) in b.indices.iter().enumerate() {
            assert_eq!(
                &bytes(b)[j * 48..(j + 1) * 48],
                d.image(i),
                "step {step} sample {j}"
            );
            assert_eq!(b.labels[j], i64::from(d.label(i)));
        }
    }
}

#[test]
fn drop_last_drops_only_the_short_batch() {
    let l = loader(
        103,
        LoaderConfig {
            drop_last: true,
            ..config(10)
        },
    );
    assert_eq!(l.len(), 10);
    let batches: Vec<Batch> = l.epoch(3).collect();
    assert_eq!(batches.len(), 10);
    assert!(batches.iter().all(|b| b.len() == 10));
    let seen: std::collections::BTreeSet<usize> =
        batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seen.len(), 100);
    let exact = loader(
        100,
        LoaderConfig {
            drop_last: true,
            ..config(10)
        },
    );
    assert_eq!(exact.epoch(0).count(), 10, "a full last batch is kept");
}

#[test]
fn orders_differ_between_epochs_and_repeat_for_the_same_seed() {
    let l = loader(200, config(16));
    let order = |l: &Loader, e| l.epoch(e).flat_map(|b| b.indices).collect::<Vec<_>>();
    assert_eq!(order(&l, 0), l.order(0));
    assert_ne!(order(&l, 0), order(&l, 1));
    assert_eq!(order(&l, 5), order(&loader(200, config(16)), 5));
    let other_seed = loader(
        200,
        LoaderConfig {
            seed: 43,
            ..config(16)
        },
    );
    assert_ne!(order(&l, 0), order(&other_seed, 0));
}

#[test]
fn without_shuffle_the_index_list_order_is_kept() {
    let l = loader(
        50,
        LoaderConfig {
            shuffle: false,
            ..config(8)
        },
    )
    .with_indices(vec![7, 3, 49, 0, 3])
    .unwrap();
    assert_eq!(l.num_samples(), 5);
    for e in 0..2 {
        let seen: Vec<usize> = l.epoch(e).flat_map(|b| b.indices).collect();
        assert_eq!(seen, vec![7, 3, 49, 0, 3]);
    }
}

#[test]
fn a_subset_restricts_the_samples() {
    let d = indexed(60);
    let subset = Subset::from_indices(&d, vec![5, 10, 15, 20, 59], "five").unwrap();
    let l = Loader::new(d, config(2))
        .unwrap()
        .with_subset(&subset)
        .unwrap();
    let mut seen: Vec<usize> = l.epoch(0).flat_map(|b| b.indices).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![5, 10, 15, 20, 59]);
    let other = indexed(61);
    let e = invalid_message(Loader::new(other, config(2)).unwrap().with_subset(&subset));
    assert!(e.contains("60 samples") && e.contains("has 61"), "{e}");
}

#[test]
fn batches_do_not_depend_on_the_worker_count() {
    let with_workers = |workers| {
        let l = loader(
            150,
            LoaderConfig {
                workers,
                ..config(16)
            },
        )
        .with_transform(noisy())
        .unwrap();
        l.epoch(2).collect::<Vec<_>>()
    };
    let one = with_workers(1);
    assert_eq!(one, with_workers(4));
    // The transform really drew random values.
    let plain: Vec<Batch> = loader(150, config(16)).epoch(2).collect();
    assert_ne!(bytes(&one[0]), bytes(&plain[0]));
}

#[test]
fn transform_draws_differ_between_epochs() {
    let l = loader(
        20,
        LoaderConfig {
            shuffle: false,
            ..config(20)
        },
    )
    .with_transform(noisy())
    .unwrap();
    let a = l.epoch(0).next().unwrap();
    let b = l.epoch(1).next().unwrap();
    assert_eq!(a.indices, b.indices);
    assert_ne!(bytes(&a), bytes(&b));
}

#[test]
fn resuming_mid_epoch_yields_the_remaining_batches() {
    let l = loader(130, config(16)).with_transform(noisy()).unwrap();
    let full: Vec<Batch> = l.epoch(4).collect();
    for step in [0, 1, 5, 8, 9] {
        let resumed: Vec<Batch> = l.epoch_from(4, step).unwrap().collect();
        assert_eq!(resumed.as_slice(), &full[step..], "from step {step}");
    }
    let e = l.epoch_from(4, 10).err().unwrap().to_string();
    assert!(e.contains("step = 10") && e.contains("9 batches"), "{e}");
}

#[test]
fn the_iterator_knows_how_many_batches_are_left() {
    let l = loader(50, config(8));
    let mut epoch = l.epoch_from(0, 2).unwrap();
    assert_eq!(epoch.len(), 5);
    epoch.next();
    assert_eq!(epoch.len(), 4);
    assert_eq!(epoch.count(), 4);
}

#[test]
fn transform_output_shape_is_respected() {
    let crop = ImageShape::new(3, 2, 2);
    // The top-left 2×2 of each channel.
    let top_left = FnTransform::new(
        |input: &[u8], shape: ImageShape, _rng: &mut Rng, out: &mut [u8]| {
            for c in 0..3 {
                for y in 0..2 {
                    for x in 0..2 {
                        out[c * 4 + y * 2 + x] = input[c * shape.plane() + y * shape.width + x];
                    }
                }
            }
        },
    )
    .with_output_shape(crop);
    let l = loader(
        10,
        LoaderConfig {
            shuffle: false,
            ..config(4)
        },
    )
    .with_transform(top_left)
    .unwrap();
    assert_eq!(l.sample_shape(), crop);
    let b = l.epoch(0).next().unwrap();
    assert_eq!(b.shape, crop);
    assert_eq!(bytes(&b).len(), 4 * 12);
    let img = l.dataset().image(1);
    assert_eq!(
        &bytes(&b)[12..24],
        &[
            img[0], img[1], img[4], img[5], img[16], img[17], img[20], img[21], img[32], img[33],
            img[36], img[37]
        ]
    );
}

#[test]
fn f32_output_is_normalised_per_channel() {
    // One 3×1×2 image with known pixels: channel c holds (10·c, 255).
    let shape = ImageShape::new(3, 1, 2);
    let d = Arc::new(
        Dataset::new(
            "px",
            shape,
            vec![0, 255, 10, 255, 20, 255],
            vec![0],
            vec!["a".into()],
        )
        .unwrap(),
    );
    let norm = Normalization::new(&[0.5, 0.4, 0.3], &[0.2, 0.25, 0.5]);
    let l = Loader::new(
        d,
        LoaderConfig {
            output: OutputFormat::F32(norm.clone()),
            ..config(1)
        },
    )
    .unwrap();
    let b = l.epoch(0).next().unwrap();
    let BatchImages::F32(v) = &b.images else {
        panic!("expected f32 images")
    };
    for c in 0..3 {
        for (k, px) in [10.0 * c as f32, 255.0].into_iter().enumerate() {
            let expected = (px / 255.0 - norm.mean[c]) / norm.std[c];
            assert!(
                (v[c * 2 + k] - expected).abs() < 1e-6,
                "channel {c} pixel {k}: {} vs {expected}",
                v[c * 2 + k]
            );
        }
    }
    assert!(
        (v[1] - 2.5).abs() < 1e-6,
        "(1 − 0.5)/0.2 = 2.5, got {}",
        v[1]
    );
}

#[test]
fn f32_batches_match_u8_batches_through_the_normalisation() {
    let norm = Normalization::preset("cifar10").unwrap();
    let f32_loader = loader(
        40,
        LoaderConfig {
            output: OutputFormat::F32(norm.clone()),
            ..config(8)
        },
    );
    let u8_loader = loader(40, config(8));
    let f = f32_loader
        .with_transform(noisy())
        .unwrap()
        .epoch(1)
        .next()
        .unwrap();
    let u = u8_loader
        .with_transform(noisy())
        .unwrap()
        .epoch(1)
        .next()
        .unwrap();
    let BatchImages::F32(v) = &f.images else {
        panic!("expected f32 images")
    };
    for (k, (&x, &b)) in v.iter().zip(bytes(&u)).enumerate() {
        let c = (k % 48) / 16;
        let expected = (b as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        assert!((x - expected).abs() < 1e-6, "value {k}");
    }
}

#[test]
fn dropping_an_epoch_early_stops_the_producer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let slow = FnTransform::new(move |input: &[u8], _s, _r: &mut Rng, out: &mut [u8]| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_micros(200));
        out.copy_from_slice(input);
    });
    let l = loader(
        1000,
        LoaderConfig {
            prefetch: 1,
            ..config(10)
        },
    )
    .with_transform(slow)
    .unwrap();
    let mut epoch = l.epoch(0);
    assert_eq!(epoch.next().unwrap().step, 0);
    assert_eq!(epoch.next().unwrap().step, 1);
    let started = std::time::Instant::now();
    drop(epoch);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let after_drop = calls.load(Ordering::SeqCst);
    // Two consumed, at most one waiting in the channel and one being built.
    assert!(
        after_drop <= 4 * 10,
        "{after_drop} samples built for 2 consumed batches"
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after_drop,
        "the producer went on after the drop"
    );
    // A dropped epoch leaves the loader usable, and an untouched epoch drops cleanly too.
    drop(l.epoch(1));
    assert_eq!(l.epoch(2).count(), 100);
}

#[test]
#[should_panic(expected = "transform failed on purpose")]
fn a_panicking_transform_panics_the_consumer() {
    let failing = FnTransform::new(|_: &[u8], _, _: &mut Rng, _: &mut [u8]| {
        panic!("transform failed on purpose")
    });
    let l = loader(10, config(5)).with_transform(failing).unwrap();
    for _ in l.epoch(0) {}
}

#[test]
fn identity_and_arc_transforms_are_transforms() {
    let shared: Arc<dyn Transform> = Arc::new(Identity);
    let l = loader(12, config(4)).with_transform(shared).unwrap();
    let b = l.epoch(0).next().unwrap();
    assert_eq!(&bytes(&b)[..48], l.dataset().image(b.indices[0]));
}

#[test]
fn empty_index_list_gives_empty_epochs() {
    let l = loader(5, config(4)).with_indices(vec![]).unwrap();
    assert!(l.is_empty());
    assert_eq!(l.epoch(0).count(), 0);
}

#[test]
fn rejects_zero_batch_size_workers_and_prefetch() {
    for (cfg, name) in [
        (
            LoaderConfig {
                batch_size: 0,
                ..config(1)
            },
            "batch_size = 0",
        ),
        (
            LoaderConfig {
                workers: 0,
                ..config(1)
            },
            "workers = 0",
        ),
        (
            LoaderConfig {
                prefetch: 0,
                ..config(1)
            },
            "prefetch = 0",
        ),
    ] {
        let e = invalid_message(Loader::new(indexed(3), cfg));
        assert!(e.contains(name) && e.contains("at least 1"), "{e}");
    }
}

#[test]
fn rejects_an_index_out_of_range() {
    let e = invalid_message(loader(20, config(4)).with_indices(vec![0, 19, 20, 3]));
    assert!(e.contains("indices[2] = 20") && e.contains("0..20"), "{e}");
}

#[test]
fn rejects_a_normalisation_that_does_not_fit_the_images() {
    let two_channels = OutputFormat::F32(Normalization::new(&[0.5, 0.5], &[0.2, 0.2]));
    let e = invalid_message(Loader::new(
        indexed(3),
        LoaderConfig {
            output: two_channels,
            ..config(1)
        },
    ));
    assert!(
        e.contains("normalization") && e.contains("2 channels given, but the images have 3"),
        "{e}"
    );
    let zero_std = OutputFormat::F32(Normalization::new(&[0.5, 0.5, 0.5], &[0.2, 0.0, 0.2]));
    let e = invalid_message(Loader::new(
        indexed(3),
        LoaderConfig {
            output: zero_std,
            ..config(1)
        },
    ));
    assert!(e.contains("positive"), "{e}");
    let ragged = OutputFormat::F32(Normalization::new(&[0.5, 0.5, 0.5], &[0.2]));
    let e = invalid_message(Loader::new(
        indexed(3),
        LoaderConfig {
            output: ragged,
            ..config(1)
        },
    ));
    assert!(e.contains("3 means but 1 standard deviations"), "{e}");
    // A transform to grey makes a 3-channel normalisation wrong.
    let rgb = OutputFormat::F32(Normalization::preset("cifar10").unwrap());
    let grey =
        FnTransform::new(|i: &[u8], _, _: &mut Rng, o: &mut [u8]| o.copy_from_slice(&i[..16]))
            .with_output_shape(ImageShape::new(1, 4, 4));
    let e = invalid_message(
        Loader::new(
            indexed(3),
            LoaderConfig {
                output: rgb,
                ..config(1)
            },
        )
        .unwrap()
        .with_transform(grey),
    );
    assert!(e.contains("3 channels given, but the images have 1"), "{e}");
}

#[test]
fn rejects_a_transform_with_an_empty_output() {
    let empty = FnTransform::new(|_: &[u8], _, _: &mut Rng, _: &mut [u8]| {})
        .with_output_shape(ImageShape::new(3, 0, 4));
    let e = invalid_message(loader(3, config(1)).with_transform(empty));
    assert!(e.contains("transform output shape = 3×0×4"), "{e}");
}
