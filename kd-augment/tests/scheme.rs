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
