//! The paper's schemes by name, and the reference's per-batch semantics on normalised batches.

use kd_augment::crop::{Crop, Fill};
use kd_augment::normalize::Normalize;
use kd_augment::scheme::{PickBy, SchemeParams, StrongOutput};
use kd_augment::{ImageShape, Rng, Scheme, StrongerDa, Transform};

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
