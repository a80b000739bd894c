//! The paper's schemes by name, the reference's per-batch semantics on normalised batches, and
//! the per-sample variant (every row its own draws, from the row generators of one base seed).

use kd_augment::batch::{CutMix, Mixup};
use kd_augment::crop::{Crop, Fill};
use kd_augment::normalize::Normalize;
use kd_augment::rng::RowStreams;
use kd_augment::scheme::{PickBy, SchemeParams, StrongOutput};
use kd_augment::{ImageShape, Randomness, Rng, Scheme, StrongSpec, StrongerDa, Transform};
use proptest::prelude::*;
use std::collections::HashSet;

const SHAPE: ImageShape = ImageShape::new(3, 32, 32);
const N: usize = 8;

fn norm() -> Normalize {
    Normalize::new(vec![0.5071, 0.4867, 0.4408], vec![0.2675, 0.2565, 0.2761]).unwrap()
}

/// A normalised batch whose pixels are exact images of bytes (as the loader makes them).
fn batch(seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut rng = Rng::seed_from_u64(seed);
    let bytes: Vec<u8> = (0..N * SHAPE.len()).map(|_| rng.below(256) as u8).collect();
    let mut f = vec![0f32; bytes.len()];
    norm().apply_batch_into(&bytes, SHAPE, &mut f);
    (bytes, f)
}

fn da(scheme: Scheme) -> StrongerDa {
    StrongerDa::new(scheme, SchemeParams::for_image_size(32), SHAPE, norm()).unwrap()
}

#[test]
fn names_parse_and_print() {
    for s in Scheme::PAPER {
        assert_eq!(s.name().parse::<Scheme>().unwrap(), s);
    }
    assert_eq!("crop_flip".parse::<Scheme>().unwrap(), Scheme::CropFlip);
    assert_eq!(
        "CutMix_Pick:T_ENT".parse::<Scheme>().unwrap(),
        Scheme::CutMixPick(PickBy::TeacherEntropy)
    );
    let e = "cutmx".parse::<Scheme>().unwrap_err().to_string();
    assert!(
        e.contains("'cutmx'") && e.contains("did you mean 'cutmix'"),
        "{e}"
    );
    let e = "cutmix_pick".parse::<Scheme>().unwrap_err().to_string();
    assert!(e.contains("needs a criterion"), "{e}");
    assert_eq!(Scheme::PAPER.len(), 9);
}

#[test]
fn reference_parameters_by_image_size() {
    let p = SchemeParams::for_image_size(32);
    assert_eq!((p.crop_padding, p.cutout_length, p.n_run), (4, 8, 2));
    let p = SchemeParams::for_image_size(64);
    assert_eq!((p.crop_padding, p.cutout_length), (8, 16));
    let p = SchemeParams::for_image_size(224);
    assert_eq!((p.crop_padding, p.cutout_length), (28, 56));
}

#[test]
fn identity_returns_the_batch() {
    let (_, x) = batch(1);
    assert_eq!(
        da(Scheme::Identity)
            .apply(&x, &mut Rng::seed_from_u64(0))
            .unwrap()
            .images(),
        &x[..]
    );
}

/// crop+flip: one offset and one coin for the batch, through the truncating u8 round trip —
/// so every image equals the same u8 crop+flip of its truncated bytes, renormalised.
#[test]
fn crop_flip_is_one_draw_for_the_batch_through_the_u8_round_trip() {
    let (_, x) = batch(2);
    let n = norm();
    let mut bytes = vec![0u8; x.len()];
    n.denormalize_batch_to_u8(&x, SHAPE, &mut bytes);
    let crop = Crop::new(32, 4, Fill::All(0)).unwrap();
    for seed in 0..10 {
        let got = da(Scheme::CropFlip)
            .apply(&x, &mut Rng::seed_from_u64(seed))
            .unwrap();
        let mut rng = Rng::seed_from_u64(seed);
        let (top, left) = crop.offsets(SHAPE, &mut rng);
        let flip = rng.bernoulli(0.5);
        for (i, img) in bytes.chunks_exact(SHAPE.len()).enumerate() {
            let mut c = vec![0u8; SHAPE.len()];
            crop.apply_at(img, SHAPE, top, left, &mut c);
            if flip {
                let mut f = vec![0u8; SHAPE.len()];
                kd_augment::flip::hflip_into(&c, SHAPE, &mut f);
                c = f;
            }
            let mut want = vec![0f32; SHAPE.len()];
            n.apply_into(&c, SHAPE, &mut want);
            assert_eq!(
                &got.images()[i * SHAPE.len()..(i + 1) * SHAPE.len()],
                &want[..],
                "seed {seed} image {i}"
            );
        }
    }
}

#[test]
fn cutout_puts_one_hole_at_the_same_place_in_every_image_at_the_mean() {
    let (_, x) = batch(3);
    let out = da(Scheme::Cutout)
        .apply(&x, &mut Rng::seed_from_u64(4))
        .unwrap();
    let zeros: Vec<Vec<usize>> = out
        .images()
        .chunks_exact(SHAPE.len())
        .zip(x.chunks_exact(SHAPE.len()))
        .map(|(o, i)| (0..o.len()).filter(|&k| o[k] != i[k]).collect())
        .collect();
    assert!(!zeros[0].is_empty() && zeros[0].len() <= 3 * 8 * 8);
    for (img, z) in out.images().chunks_exact(SHAPE.len()).zip(&zeros) {
        assert!(z.iter().all(|&k| img[k] == 0.0));
    }
    // Changed positions agree across images up to pixels that were already 0.
    for z in &zeros[1..] {
        assert!(z.iter().all(|k| zeros[0].contains(k)) || zeros[0].iter().all(|k| z.contains(k)));
    }
}

#[test]
fn autoaugment_applies_one_sub_policy_to_the_batch() {
    // The same image repeated: a per-batch draw must give identical outputs for every copy.
    let (_, x) = batch(5);
    let one = &x[..SHAPE.len()];
    let repeated: Vec<f32> = (0..N).flat_map(|_| one.iter().copied()).collect();
    for seed in 0..20 {
        let out = da(Scheme::AutoAugment)
            .apply(&repeated, &mut Rng::seed_from_u64(seed))
            .unwrap();
        let imgs: Vec<&[f32]> = out.images().chunks_exact(SHAPE.len()).collect();
        assert!(imgs.iter().all(|i| *i == imgs[0]), "seed {seed}");
    }
}

#[test]
fn mixup_cutmix_and_the_pool_return_what_a_loss_needs() {
    let (_, x) = batch(6);
    match da(Scheme::Mixup)
        .apply(&x, &mut Rng::seed_from_u64(1))
        .unwrap()
    {
        StrongOutput::Mixed(m) => {
            assert!((0.0..=1.0).contains(&m.lambda) && m.partner.len() == N && m.bbox.is_none())
        }
        other => panic!("{other:?}"),
    }
    match da(Scheme::CutMix)
        .apply(&x, &mut Rng::seed_from_u64(1))
        .unwrap()
    {
        StrongOutput::Mixed(m) => {
            assert!(m.bbox.is_some());
            assert!(
                m.partner.iter().enumerate().all(|(i, &p)| p != i),
                "not a derangement"
            );
        }
        other => panic!("{other:?}"),
    }
    match da(Scheme::CutMixPick(PickBy::TeacherEntropy))
        .apply(&x, &mut Rng::seed_from_u64(1))
        .unwrap()
    {
        StrongOutput::Pool(p) => assert_eq!((p.len(), p.n_run), (2 * N, 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_batch_length_is_an_error() {
    let e = da(Scheme::Flip)
        .apply(&[0.0; 100], &mut Rng::seed_from_u64(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("100"), "{e}");
}

#[test]
fn the_crop_transform_is_reused_not_reimplemented() {
    // crop: same as Crop with the batch generator (a guard that the scheme uses the tested op).
    let (_, x) = batch(7);
    let n = norm();
    let mut bytes = vec![0u8; x.len()];
    n.denormalize_batch_to_u8(&x, SHAPE, &mut bytes);
    let crop = Crop::new(32, 4, Fill::All(0)).unwrap();
    let got = da(Scheme::Crop)
        .apply(&x, &mut Rng::seed_from_u64(11))
        .unwrap();
    let mut c = vec![0u8; SHAPE.len()];
    crop.apply(
        &bytes[..SHAPE.len()],
        SHAPE,
        &mut Rng::seed_from_u64(11),
        &mut c,
    );
    let mut want = vec![0f32; SHAPE.len()];
    n.apply_into(&c, SHAPE, &mut want);
    assert_eq!(&got.images()[..SHAPE.len()], &want[..]);
}

/// FNV-1a over the bit patterns of `v`: a fingerprint of a whole output batch.
fn fingerprint(v: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for x in v {
        for b in x.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Per-batch output pinned: the fingerprints, mix parameters and generator states below were
/// recorded from the code before per-sample randomness was added, so that adding it cannot
/// change a per-batch run (seed 2024 on `batch(99)`, 8 images of 32 px).
#[test]
fn per_batch_output_is_unchanged_regression() {
    use kd_augment::batch::BBox;
    let x = batch(99).1;
    let run = |scheme: &str| {
        let scheme: Scheme = scheme.parse().unwrap();
        let mut rng = Rng::seed_from_u64(2024);
        let out = da(scheme).apply(&x, &mut rng).unwrap();
        (out, rng.next_u64())
    };
    let images: [(&str, u64, u64); 6] = [
        ("crop", 0xbd0d3cac48d50414, 0x3e595fe9cf746b2a),
        ("identity", 0x793af90d63b61a0e, 0x8641253f8fed82d1),
        ("flip", 0xfd530596635eca01, 0x4b7eeec62af66af9),
        ("crop+flip", 0x1196c9eb989b63dc, 0x6bf1aa430346476c),
        ("cutout", 0x4b8b21a011a93666, 0x3e595fe9cf746b2a),
        ("autoaugment", 0xd109eeea3926df3b, 0xceecac21bb20bc65),
    ];
    for (name, print, after) in images {
        let (out, next) = run(name);
        assert!(matches!(out, StrongOutput::Images(_)), "{name}");
        assert_eq!(fingerprint(out.images()), print, "{name}");
        assert_eq!(next, after, "{name}: generator state after the batch");
    }

    let (out, next) = run("mixup");
    let StrongOutput::Mixed(m) = out else {
        panic!("mixup: {out:?}")
    };
    assert_eq!(fingerprint(&m.images), 0xef27efcb6592b864);
    assert_eq!(next, 0x7f5d4190700dc04d);
    assert_eq!(m.lambda, 0.3934298419523113);
    assert_eq!(m.partner, [5, 6, 3, 2, 1, 0, 4, 7]);
    assert_eq!(m.bbox, None);

    let (out, next) = run("cutmix");
    let StrongOutput::Mixed(m) = out else {
        panic!("cutmix: {out:?}")
    };
    let cutmix_box = BBox {
        y1: 9,
        y2: 32,
        x1: 19,
        x2: 32,
    };
    assert_eq!(fingerprint(&m.images), 0xeb14d9cd6d1341de);
    assert_eq!(next, 0xb9effd93248507a3);
    assert_eq!(m.lambda, 0.7080078125);
    assert_eq!(m.partner, [5, 6, 0, 1, 7, 2, 3, 4]);
    assert_eq!(m.bbox, Some(cutmix_box));

    // Run 0 of the pool is the CutMix call above; run 1 its own λ, box and derangement.
    let second_box = BBox {
        y1: 0,
        y2: 13,
        x1: 0,
        x2: 24,
    };
    let runs = [
        (0.7080078125, cutmix_box, [5, 6, 0, 1, 7, 2, 3, 4]),
        (0.6953125, second_box, [1, 0, 5, 2, 6, 7, 3, 4]),
    ];
    for name in ["cutmix_pick:student_entropy", "cutmix_pick:teacher_entropy"] {
        let (out, next) = run(name);
        let StrongOutput::Pool(p) = out else {
            panic!("{name}: {out:?}")
        };
        assert_eq!(fingerprint(&p.images), 0x12d23eddb7ae13f9, "{name}");
        assert_eq!(next, 0xf66e1b0aae2a63a7, "{name}");
        assert_eq!(p.rows.len(), 2 * N);
        for (r, row) in p.rows.iter().enumerate() {
            let (lambda, bbox, partner) = runs[r / N];
            assert_eq!(
                (row.run, row.source, row.partner, row.lambda, row.bbox),
                (r / N, r % N, partner[r % N], lambda, bbox),
                "{name} row {r}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-sample randomness
// ---------------------------------------------------------------------------------------------

fn da_per_sample(scheme: Scheme) -> StrongerDa {
    da(scheme).with_randomness(Randomness::PerSample)
}

/// Every scheme: the paper's nine and `crop`.
fn all_schemes() -> Vec<Scheme> {
    let mut all = vec![Scheme::Crop];
    all.extend(Scheme::PAPER);
    all
}

/// `n` copies of the first image of `batch(seed)`.
fn identical(n: usize, seed: u64) -> Vec<f32> {
    let (_, x) = batch(seed);
    x[..SHAPE.len()]
        .iter()
        .copied()
        .cycle()
        .take(n * SHAPE.len())
        .collect()
}

fn rows(images: &[f32], shape: ImageShape) -> Vec<&[f32]> {
    images.chunks_exact(shape.len()).collect()
}

#[test]
fn per_sample_flip_on_64_identical_images_flips_some_rows_and_not_others() {
    let x = identical(64, 8);
    let n = norm();
    // The two possible results: the u8 round trip of the image, flipped or not.
    let mut bytes = vec![0u8; SHAPE.len()];
    n.denormalize_to_u8(&x[..SHAPE.len()], SHAPE, &mut bytes);
    let mut flipped_bytes = vec![0u8; SHAPE.len()];
    kd_augment::flip::hflip_into(&bytes, SHAPE, &mut flipped_bytes);
    let (mut kept, mut flipped) = (vec![0f32; SHAPE.len()], vec![0f32; SHAPE.len()]);
    n.apply_into(&bytes, SHAPE, &mut kept);
    n.apply_into(&flipped_bytes, SHAPE, &mut flipped);
    assert_ne!(kept, flipped);

    let out = da_per_sample(Scheme::Flip)
        .apply(&x, &mut Rng::seed_from_u64(3))
        .unwrap();
    let (mut n_kept, mut n_flipped) = (0, 0);
    for row in rows(out.images(), SHAPE) {
        if row == &kept[..] {
            n_kept += 1;
        } else if row == &flipped[..] {
            n_flipped += 1;
        } else {
            panic!("a row is neither the image nor its mirror");
        }
    }
    assert_eq!(n_kept + n_flipped, 64);
    assert!(
        n_kept > 0 && n_flipped > 0,
        "{n_kept} kept, {n_flipped} flipped"
    );
    // Per batch, the one coin treats all 64 alike.
    let out = da(Scheme::Flip)
        .apply(&x, &mut Rng::seed_from_u64(3))
        .unwrap();
    let r = rows(out.images(), SHAPE);
    assert!(r.iter().all(|row| *row == r[0]));
}

#[test]
fn per_sample_crop_offsets_differ_across_rows() {
    let x = identical(64, 9);
    let mut rng = Rng::seed_from_u64(12);
    let streams = RowStreams::draw(&mut rng.clone());
    let out = da_per_sample(Scheme::Crop).apply(&x, &mut rng).unwrap();
    let crop = Crop::new(32, 4, Fill::All(0)).unwrap();
    let offsets: Vec<(usize, usize)> = (0..64)
        .map(|i| crop.offsets(SHAPE, &mut streams.rng(i)))
        .collect();
    let distinct: HashSet<_> = offsets.iter().collect();
    assert!(
        distinct.len() > 30,
        "{} distinct offsets of 64",
        distinct.len()
    );
    // Identical inputs: rows differ exactly where their offsets do.
    let r = rows(out.images(), SHAPE);
    for i in 0..64 {
        for j in 0..i {
            assert_eq!(r[i] == r[j], offsets[i] == offsets[j], "rows {i} and {j}");
        }
    }
}

#[test]
fn per_sample_autoaugment_and_cutout_draw_per_image() {
    // The per-batch test above gives identical copies identical outputs; per sample they differ.
    let x = identical(N, 5);
    for scheme in [Scheme::AutoAugment, Scheme::Cutout, Scheme::CropFlip] {
        let out = da_per_sample(scheme)
            .apply(&x, &mut Rng::seed_from_u64(1))
            .unwrap();
        let distinct: HashSet<Vec<u32>> = rows(out.images(), SHAPE)
            .iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        assert!(distinct.len() > 1, "{scheme}: all {N} rows alike");
    }
}

/// An image scheme per sample on a random batch; the plain reference applies the per-batch
/// scheme to each image alone, with that row's generator.
#[derive(Debug, Clone)]
struct ImageSchemeProblem {
    scheme: Scheme,
    shape: ImageShape,
    data: Vec<f32>,
    seed: u64,
}

impl ImageSchemeProblem {
    fn strategy() -> impl Strategy<Value = Self> {
        let schemes = [
            Scheme::Identity,
            Scheme::Flip,
            Scheme::Crop,
            Scheme::CropFlip,
            Scheme::Cutout,
            Scheme::AutoAugment,
        ];
        (
            proptest::sample::select(schemes.to_vec()),
            0usize..6,
            proptest::sample::select(vec![8usize, 12, 16, 32]),
            1usize..=16,
            any::<u64>(),
        )
            .prop_map(|(scheme, n, height, width, seed)| {
                let shape = ImageShape::new(3, height, width.max(4));
                let mut rng = Rng::seed_from_u64(seed ^ 0x77);
                let bytes: Vec<u8> = (0..n * shape.len()).map(|_| rng.below(256) as u8).collect();
                let mut data = vec![0f32; bytes.len()];
                norm().apply_batch_into(&bytes, shape, &mut data);
                ImageSchemeProblem {
                    scheme,
                    shape,
                    data,
                    seed,
                }
            })
    }

    fn build(&self) -> StrongerDa {
        let params = SchemeParams::for_image_size(self.shape.height);
        StrongerDa::new(self.scheme, params, self.shape, norm()).unwrap()
    }

    /// Row i = the per-batch scheme on image i alone, drawing from `RowStreams::rng(i)`.
    fn reference(&self) -> Vec<f32> {
        let per_batch = self.build();
        let streams = RowStreams::draw(&mut Rng::seed_from_u64(self.seed));
        self.data
            .chunks_exact(self.shape.len())
            .enumerate()
            .flat_map(|(i, img)| {
                let out = per_batch.apply(img, &mut streams.rng(i)).unwrap();
                out.images().to_vec()
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn per_sample_rows_equal_the_per_batch_scheme_on_one_image(p in ImageSchemeProblem::strategy()) {
        let mut rng = Rng::seed_from_u64(p.seed);
        let out = p.build().with_randomness(Randomness::PerSample).apply(&p.data, &mut rng).unwrap();
        let want = p.reference();
        prop_assert_eq!(
            out.images().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // The batch's generator gives one base seed (the identity draws nothing).
        let mut expect = Rng::seed_from_u64(p.seed);
        if p.scheme != Scheme::Identity {
            expect.next_u64();
        }
        prop_assert_eq!(rng, expect);
    }
}

#[test]
fn per_sample_image_scheme_regressions() {
    // Named cases beside the strategy: an empty batch, one image, a non-square crop+flip.
    for (scheme, n, shape) in [
        (Scheme::AutoAugment, 0, ImageShape::new(3, 32, 32)),
        (Scheme::Cutout, 1, ImageShape::new(3, 8, 8)),
        (Scheme::CropFlip, 3, ImageShape::new(3, 16, 5)),
    ] {
        let p = ImageSchemeProblem {
            scheme,
            shape,
            data: identical(n, 4)
                .chunks_exact(SHAPE.len())
                .flat_map(|img| img[..shape.len()].to_vec())
                .collect(),
            seed: 99,
        };
        let out = p
            .build()
            .with_randomness(Randomness::PerSample)
            .apply(&p.data, &mut Rng::seed_from_u64(p.seed))
            .unwrap();
        assert_eq!(out.images(), &p.reference()[..], "{scheme} n = {n} {shape}");
    }
}

#[test]
fn per_sample_mixup_rows_are_their_own_convex_combinations() {
    let (_, x) = batch(13);
    let mut rng = Rng::seed_from_u64(6);
    let same = Mixup::new(1.0)
        .unwrap()
        .apply_per_sample(&x, SHAPE, &mut rng.clone())
        .unwrap();
    let StrongOutput::Mixed(m) = da_per_sample(Scheme::Mixup).apply(&x, &mut rng).unwrap() else {
        panic!("mixup gives a mixed batch")
    };
    assert_eq!(m, same);
    let distinct: HashSet<u64> = m.lambdas.iter().map(|l| l.to_bits()).collect();
    assert_eq!(distinct.len(), N, "λ per row: {:?}", m.lambdas);
    let mut sorted = m.partner.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..N).collect::<Vec<_>>(),
        "partners from one permutation"
    );
    let len = SHAPE.len();
    for (i, &l) in m.lambdas.iter().enumerate() {
        let (a, b) = (l as f32, (1.0 - l) as f32);
        let p = m.partner[i];
        for k in 0..len {
            let want = a * x[i * len + k] + b * x[p * len + k];
            assert_eq!(
                m.images[i * len + k].to_bits(),
                want.to_bits(),
                "row {i} pixel {k}"
            );
        }
    }
    assert_eq!(m.bbox, None);
}

#[test]
fn per_sample_cutmix_and_pool_lambdas_are_their_boxes_areas() {
    let (_, x) = batch(14);
    let plane = SHAPE.plane() as f64;
    let mut rng = Rng::seed_from_u64(7);
    let same = CutMix::new(1.0)
        .unwrap()
        .apply_per_sample(&x, SHAPE, &mut rng.clone())
        .unwrap();
    let StrongOutput::Mixed(m) = da_per_sample(Scheme::CutMix).apply(&x, &mut rng).unwrap() else {
        panic!("cutmix gives a mixed batch")
    };
    assert_eq!(m, same);
    assert_eq!((m.bbox, m.bboxes.len(), m.lambdas.len()), (None, N, N));
    assert!(m.partner.iter().enumerate().all(|(i, &p)| p != i));
    let distinct: HashSet<_> = m.bboxes.iter().collect();
    assert!(distinct.len() > 1, "one box per row: {:?}", m.bboxes);
    for (l, b) in m.lambdas.iter().zip(&m.bboxes) {
        assert_eq!(*l, 1.0 - b.area() as f64 / plane);
    }

    for pick in [PickBy::TeacherEntropy, PickBy::StudentEntropy] {
        let mut rng = Rng::seed_from_u64(8);
        let same = CutMix::new(1.0)
            .unwrap()
            .pool_per_sample(&x, SHAPE, 2, &mut rng.clone())
            .unwrap();
        let StrongOutput::Pool(p) = da_per_sample(Scheme::CutMixPick(pick))
            .apply(&x, &mut rng)
            .unwrap()
        else {
            panic!("cutmix_pick gives a pool")
        };
        assert_eq!(p, same);
        assert_eq!((p.len(), p.n_run), (2 * N, 2));
        for row in &p.rows {
            assert_eq!(row.lambda, 1.0 - row.bbox.area() as f64 / plane);
        }
        let boxes: HashSet<_> = p.rows.iter().map(|r| r.bbox).collect();
        assert!(boxes.len() > 2, "boxes per row, not per run");
    }
}

#[test]
fn per_sample_same_seed_same_output_and_different_seeds_differ() {
    let (_, x) = batch(15);
    for scheme in all_schemes() {
        let d = da_per_sample(scheme);
        let run = |seed| d.apply(&x, &mut Rng::seed_from_u64(seed)).unwrap();
        assert_eq!(run(21), run(21), "{scheme}");
        if scheme != Scheme::Identity {
            assert_ne!(run(21).images(), run(22).images(), "{scheme}");
        }
    }
}

#[test]
fn per_sample_output_does_not_depend_on_the_thread_count() {
    let x: Vec<f32> = (0..5).flat_map(|s| batch(30 + s).1).collect(); // 40 images
    for scheme in all_schemes() {
        let d = da_per_sample(scheme);
        let default = d.apply(&x, &mut Rng::seed_from_u64(4)).unwrap();
        for threads in [1, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| d.apply(&x, &mut Rng::seed_from_u64(4)).unwrap());
            assert_eq!(got, default, "{scheme} on {threads} threads");
        }
    }
}

#[test]
fn per_batch_is_the_default_and_explicit_per_batch_changes_nothing() {
    let (_, x) = batch(16);
    for scheme in all_schemes() {
        let d = da(scheme);
        assert_eq!(d.randomness(), Randomness::PerBatch);
        assert_eq!(d.spec(), StrongSpec::from(scheme));
        let explicit = da(scheme).with_randomness(Randomness::PerBatch);
        let (mut r1, mut r2) = (Rng::seed_from_u64(2), Rng::seed_from_u64(2));
        assert_eq!(
            d.apply(&x, &mut r1).unwrap(),
            explicit.apply(&x, &mut r2).unwrap()
        );
        assert_eq!(r1, r2);
    }
    assert_eq!(
        format!("{:?}", da(Scheme::Flip)),
        "StrongerDa(flip on 3×32×32)"
    );
    assert_eq!(
        format!("{:?}", da_per_sample(Scheme::Flip)),
        "StrongerDa(flip@sample on 3×32×32)"
    );
}

#[test]
fn strong_specs_parse_print_and_serialise() {
    let spec = |s: &str| s.parse::<StrongSpec>().unwrap();
    let sample = |scheme| StrongSpec {
        scheme,
        randomness: Randomness::PerSample,
    };
    assert_eq!(spec("autoaugment@sample"), sample(Scheme::AutoAugment));
    assert_eq!(
        spec("cutmix_pick:teacher_entropy@sample"),
        sample(Scheme::CutMixPick(PickBy::TeacherEntropy))
    );
    assert_eq!(
        spec(" CutMix_Pick:S_ENT @ Sample "),
        sample(Scheme::CutMixPick(PickBy::StudentEntropy))
    );
    assert_eq!(spec("flip@batch"), Scheme::Flip.into());
    assert_eq!(spec("crop_flip"), Scheme::CropFlip.into());
    for scheme in all_schemes() {
        for randomness in [Randomness::PerBatch, Randomness::PerSample] {
            let s = StrongSpec { scheme, randomness };
            assert_eq!(spec(&s.to_string()), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<StrongSpec>(&json).unwrap(), s);
        }
    }
    assert_eq!(sample(Scheme::Mixup).to_string(), "mixup@sample");
    assert_eq!(StrongSpec::from(Scheme::Mixup).to_string(), "mixup");
    assert_eq!(
        serde_json::to_string(&sample(Scheme::CropFlip)).unwrap(),
        "\"crop+flip@sample\""
    );

    let err = |s: &str| s.parse::<StrongSpec>().unwrap_err().to_string();
    let e = err("cutmix@smaple");
    assert!(
        e.contains("'cutmix@smaple'")
            && e.contains("'@smaple'")
            && e.contains("did you mean '@sample'"),
        "{e}"
    );
    let e = err("cutmx@sample");
    assert!(
        e.contains("'cutmx'") && e.contains("did you mean 'cutmix'"),
        "{e}"
    );
    let e = err("cutmix_pick@sample");
    assert!(e.contains("needs a criterion"), "{e}");
    let e = serde_json::from_str::<StrongSpec>("\"autoaugmnt@sample\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean 'autoaugment'"), "{e}");
    // A bare Scheme has no mode, and says where the mode goes.
    let e = "flip@sample".parse::<Scheme>().unwrap_err().to_string();
    assert!(
        e.contains("'flip@sample'") && e.contains("StrongSpec"),
        "{e}"
    );

    let built = StrongerDa::from_spec(
        spec("cutout@sample"),
        SchemeParams::for_image_size(32),
        SHAPE,
        norm(),
    )
    .unwrap();
    assert_eq!(
        (built.scheme(), built.randomness()),
        (Scheme::Cutout, Randomness::PerSample)
    );
}
