//! Property tests of the basic per-image ops (crop, flip, Cutout, normalise and the fused
//! crop+flip+normalise), in the style of sonos/tract's suite: each `…Problem` has a strategy, a
//! slow and obviously correct `reference()`, and named regression cases; torchvision fixtures
//! (`fixtures/basic_ops_torchvision.py`) pin the semantics the references rely on.

use kd_augment::crop::{CenterCrop, Crop, CropError, Fill, Padding};
use kd_augment::cutout::{Cutout, CutoutError, CutoutFill, Hole};
use kd_augment::flip::{Flip, FlipError, hflip_in_place, hflip_into};
use kd_augment::normalize::{
    CIFAR100_MEAN, CIFAR100_STD, CropFlipNormalize, Normalize, NormalizeError,
};
use kd_augment::{ImageShape, Rng, Transform};
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::HashSet;

/// Applies `t` to `image` and returns the output.
fn run<T: Transform + ?Sized>(t: &T, image: &[u8], shape: ImageShape, rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![0u8; t.output_shape(shape).len()];
    t.apply(image, shape, rng, &mut out);
    out
}

/// A random image of `shape`.
fn random_image(shape: ImageShape, rng: &mut Rng) -> Vec<u8> {
    (0..shape.len()).map(|_| rng.below(256) as u8).collect()
}

/// Pixel (c, y, x) of a CHW image.
fn at(image: &[u8], shape: ImageShape, c: usize, y: usize, x: usize) -> u8 {
    image[(c * shape.height + y) * shape.width + x]
}

fn shape_strategy(max_c: usize, max_side: usize) -> impl Strategy<Value = ImageShape> {
    (1..=max_c, 1..=max_side, 1..=max_side).prop_map(|(c, h, w)| ImageShape::new(c, h, w))
}

/// `count` random normalisation constants (means in [−1, 2], stds of either sign in [0.01, 10]).
fn stats_strategy(count: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (
        vec(-1.0f32..2.0, count),
        vec(
            (0.01f32..10.0, any::<bool>()).prop_map(|(s, neg)| if neg { -s } else { s }),
            count,
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Crop
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct CropProblem {
    shape: ImageShape,
    image: Vec<u8>,
    height: usize,
    width: usize,
    padding: Padding,
    /// One value for all channels, or one per channel.
    fill: Fill,
    seed: u64,
}

impl CropProblem {
    fn strategy() -> impl Strategy<Value = CropProblem> {
        (
            shape_strategy(3, 12),
            vec(0usize..=5, 4),
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_flat_map(|(shape, pad, all, image_width, seed)| {
                let padding = Padding::ltrb(pad[0], pad[1], pad[2], pad[3]);
                let ph = shape.height + padding.top + padding.bottom;
                let pw = shape.width + padding.left + padding.right;
                let fill = if all {
                    any::<u8>().prop_map(Fill::All).boxed()
                } else {
                    vec(any::<u8>(), shape.channels)
                        .prop_map(Fill::PerChannel)
                        .boxed()
                };
                // Crops as wide as the image (CIFAR's case) take a faster path: test it often.
                let width = if image_width {
                    Just(shape.width).boxed()
                } else {
                    (1..=pw).boxed()
                };
                (
                    Just(shape),
                    vec(any::<u8>(), shape.len()),
                    1..=ph,
                    width,
                    Just(padding),
                    fill,
                    Just(seed),
                )
            })
            .prop_map(
                |(shape, image, height, width, padding, fill, seed)| CropProblem {
                    shape,
                    image,
                    height,
                    width,
                    padding,
                    fill,
                    seed,
                },
            )
    }

    fn crop(&self) -> Crop {
        Crop::rect(self.height, self.width, self.padding, self.fill.clone()).unwrap()
    }

    fn padded_size(&self) -> (usize, usize) {
        let (s, p) = (self.shape, self.padding);
        (s.height + p.top + p.bottom, s.width + p.left + p.right)
    }

    /// torchvision's way: draw top then left, then slice the padded image.
    fn reference(&self) -> Vec<u8> {
        let (ph, pw) = self.padded_size();
        let mut rng = Rng::seed_from_u64(self.seed);
        let top = rng.below((ph - self.height + 1) as u64) as usize;
        let left = rng.below((pw - self.width + 1) as u64) as usize;
        self.reference_at(top, left)
    }

    /// The window at (`top`, `left`) of the materialised padded image.
    fn reference_at(&self, top: usize, left: usize) -> Vec<u8> {
        let s = self.shape;
        let p = self.padding;
        let (ph, pw) = self.padded_size();
        let mut padded = vec![0u8; s.channels * ph * pw];
        for c in 0..s.channels {
            for y in 0..ph {
                for x in 0..pw {
                    let inside =
                        y >= p.top && y < p.top + s.height && x >= p.left && x < p.left + s.width;
                    padded[(c * ph + y) * pw + x] = if inside {
                        at(&self.image, s, c, y - p.top, x - p.left)
                    } else {
                        self.fill.value(c)
                    };
                }
            }
        }
        let mut out = Vec::with_capacity(s.channels * self.height * self.width);
        for c in 0..s.channels {
            for y in 0..self.height {
                for x in 0..self.width {
                    out.push(padded[(c * ph + top + y) * pw + left + x]);
                }
            }
        }
        out
    }

    fn run(&self) -> Vec<u8> {
        run(
            &self.crop(),
            &self.image,
            self.shape,
            &mut Rng::seed_from_u64(self.seed),
        )
    }

    fn check(&self) {
        assert_eq!(self.run(), self.reference(), "{self:?}");
    }
}

/// Named crop cases: the CIFAR crop, a window lying wholly in the padding, asymmetric padding
/// with per-channel fill, and padding larger than the image.
fn crop_regressions() -> Vec<CropProblem> {
    let mut rng = Rng::seed_from_u64(99);
    let cifar = ImageShape::new(3, 32, 32);
    let tiny = ImageShape::new(2, 2, 3);
    vec![
        CropProblem {
            shape: cifar,
            image: random_image(cifar, &mut rng),
            height: 32,
            width: 32,
            padding: Padding::uniform(4),
            fill: Fill::All(0),
            seed: 1,
        },
        // 2×3 image padded by 5: most windows see only fill.
        CropProblem {
            shape: tiny,
            image: random_image(tiny, &mut rng),
            height: 3,
            width: 2,
            padding: Padding::uniform(5),
            fill: Fill::PerChannel(vec![7, 200]),
            seed: 12,
        },
        CropProblem {
            shape: ImageShape::new(1, 5, 4),
            image: (1..=20).collect(),
            height: 5,
            width: 6,
            padding: Padding::ltrb(0, 3, 4, 0),
            fill: Fill::All(255),
            seed: 5,
        },
    ]
}

#[test]
fn crop_regressions_match_reference() {
    for p in crop_regressions() {
        p.check();
    }
}

/// Every offset of each regression case, including windows wholly above, below or beside the
/// image (which once broke the full-width fast path).
#[test]
fn crop_regressions_at_every_offset() {
    let mut cases = crop_regressions();
    cases.push(CropProblem {
        shape: ImageShape::new(1, 1, 1),
        image: vec![0],
        height: 1,
        width: 1,
        padding: Padding::ltrb(0, 2, 0, 0),
        fill: Fill::PerChannel(vec![0]),
        seed: 0,
    });
    cases.push(CropProblem {
        shape: ImageShape::new(1, 1, 3),
        image: vec![0, 65, 132],
        height: 1,
        width: 3,
        padding: Padding::ltrb(0, 0, 0, 2),
        fill: Fill::PerChannel(vec![116]),
        seed: 0,
    });
    cases.push(CropProblem {
        shape: ImageShape::new(2, 6, 11),
        image: (0..132).map(|i| (i * 37 % 251) as u8).collect(),
        height: 7,
        width: 11,
        padding: Padding::ltrb(0, 4, 3, 5),
        fill: Fill::All(9),
        seed: 0,
    });
    for p in cases {
        let crop = p.crop();
        let (ph, pw) = p.padded_size();
        for top in 0..=ph - p.height {
            for left in 0..=pw - p.width {
                let mut out = vec![0; crop.output_shape(p.shape).len()];
                crop.apply_at(&p.image, p.shape, top, left, &mut out);
                assert_eq!(out, p.reference_at(top, left), "({top}, {left}) {p:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn crop_matches_padded_reference(p in CropProblem::strategy()) {
        p.check();
    }

    /// Every output pixel is the source pixel at the drawn offset, or the fill.
    #[test]
    fn crop_pixels_are_source_at_offset_or_fill(p in CropProblem::strategy()) {
        let crop = p.crop();
        let (top, left) = crop.offsets(p.shape, &mut Rng::seed_from_u64(p.seed));
        let out = p.run();
        let os = crop.output_shape(p.shape);
        prop_assert_eq!(os, ImageShape::new(p.shape.channels, p.height, p.width));
        prop_assert_eq!(out.len(), os.len());
        for c in 0..os.channels {
            for y in 0..os.height {
                for x in 0..os.width {
                    let (sy, sx) = ((top + y) as isize - p.padding.top as isize, (left + x) as isize - p.padding.left as isize);
                    let inside = sy >= 0 && sx >= 0 && (sy as usize) < p.shape.height && (sx as usize) < p.shape.width;
                    let expected = if inside { at(&p.image, p.shape, c, sy as usize, sx as usize) } else { p.fill.value(c) };
                    prop_assert_eq!(at(&out, os, c, y, x), expected);
                }
            }
        }
    }

    /// Padding 0 and a crop of the image's size is the identity, whatever the seed.
    #[test]
    fn crop_without_padding_to_full_size_is_identity(shape in shape_strategy(3, 16), seed in any::<u64>()) {
        let image = random_image(shape, &mut Rng::seed_from_u64(seed ^ 1));
        let crop = Crop::rect(shape.height, shape.width, Padding::uniform(0), 0).unwrap();
        prop_assert_eq!(run(&crop, &image, shape, &mut Rng::seed_from_u64(seed)), image);
    }
}

#[test]
fn crop_offsets_are_uniform_over_0_to_2p() {
    // CIFAR's crop: 9 offsets per axis, 81 pairs. Chi-square against uniform with loose bounds
    // (the 99.999 % quantiles are about 37 for 8 degrees of freedom and 140 for 80).
    let crop = Crop::cifar();
    let shape = ImageShape::new(3, 32, 32);
    let mut rng = Rng::seed_from_u64(2024);
    let n = 81_000;
    let (mut tops, mut lefts, mut pairs) = ([0f64; 9], [0f64; 9], [0f64; 81]);
    for _ in 0..n {
        let (t, l) = crop.offsets(shape, &mut rng);
        assert!(t <= 8 && l <= 8, "offset ({t}, {l}) outside 0..=8");
        tops[t] += 1.0;
        lefts[l] += 1.0;
        pairs[t * 9 + l] += 1.0;
    }
    let chi2 = |counts: &[f64]| {
        let e = n as f64 / counts.len() as f64;
        counts.iter().map(|&o| (o - e) * (o - e) / e).sum::<f64>()
    };
    assert!(chi2(&tops) < 37.0, "tops {tops:?}");
    assert!(chi2(&lefts) < 37.0, "lefts {lefts:?}");
    assert!(chi2(&pairs) < 140.0, "pairs chi2 {}", chi2(&pairs));
    // The top offset is drawn first: with a crop that only moves vertically, the one draw made
    // for the left offset is the second value of the stream.
    let vertical = Crop::rect(32, 40, Padding::uniform(4), 0).unwrap();
    let mut a = Rng::seed_from_u64(5);
    let (t, l) = vertical.offsets(shape, &mut a);
    let mut b = Rng::seed_from_u64(5);
    assert_eq!((t, l), (b.below(9) as usize, 0));
    b.below(1);
    assert_eq!(a, b);
}

#[test]
fn crop_matches_torchvision_pad_and_crop() {
    let fixture = fixture();
    for case in fixture["pad_crop"].as_array().unwrap() {
        let s = usizes(&case["shape"]);
        let shape = ImageShape::new(s[0], s[1], s[2]);
        let p = usizes(&case["padding_ltrb"]);
        let size = usizes(&case["size"]);
        let fill: Vec<u8> = bytes(&case["fill"]);
        let crop = Crop::rect(
            size[0],
            size[1],
            Padding::ltrb(p[0], p[1], p[2], p[3]),
            fill,
        )
        .unwrap();
        let mut out = vec![0u8; crop.output_shape(shape).len()];
        let (top, left) = (
            case["top"].as_u64().unwrap() as usize,
            case["left"].as_u64().unwrap() as usize,
        );
        crop.apply_at(&bytes(&case["input"]), shape, top, left, &mut out);
        assert_eq!(out, bytes(&case["output"]), "{case}");
    }
}

#[test]
fn center_crop_matches_torchvision() {
    let fixture = fixture();
    for case in fixture["center_crop"].as_array().unwrap() {
        let s = usizes(&case["shape"]);
        let shape = ImageShape::new(s[0], s[1], s[2]);
        let size = usizes(&case["crop"]);
        let crop = CenterCrop::rect(size[0], size[1]).unwrap();
        let mut rng = Rng::seed_from_u64(0);
        assert_eq!(
            run(&crop, &bytes(&case["input"]), shape, &mut rng),
            bytes(&case["output"]),
            "{case}"
        );
        assert_eq!(rng, Rng::seed_from_u64(0), "CenterCrop draws nothing");
    }
}

#[test]
fn crop_rejects_bad_parameters_with_messages_naming_them() {
    let e = Crop::new(0, 4, 0).unwrap_err();
    assert_eq!(
        e,
        CropError::EmptySize {
            height: 0,
            width: 0
        }
    );
    assert!(e.to_string().contains("height 0"), "{e}");
    assert_eq!(
        Crop::rect(3, 3, Padding::uniform(0), Vec::new()).unwrap_err(),
        CropError::EmptyFill
    );
    assert!(CenterCrop::rect(3, 0).is_err());

    let shape = ImageShape::new(3, 32, 32);
    assert!(Crop::new(40, 4, 0).unwrap().check(shape).is_ok());
    let e = Crop::new(41, 4, 0).unwrap().check(shape).unwrap_err();
    assert!(
        matches!(
            e,
            CropError::TooLarge {
                height: 41,
                padded_height: 40,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("41×41") && e.to_string().contains("40×40"),
        "{e}"
    );
    let e = Crop::new(32, 4, [1u8, 2])
        .unwrap()
        .check(shape)
        .unwrap_err();
    assert_eq!(
        e,
        CropError::FillChannels {
            values: 2,
            channels: 3
        }
    );
}

#[test]
#[should_panic(expected = "larger than the padded image")]
fn crop_too_large_panics_in_apply() {
    let shape = ImageShape::new(1, 4, 4);
    run(
        &Crop::new(7, 1, 0).unwrap(),
        &[0; 16],
        shape,
        &mut Rng::seed_from_u64(0),
    );
}

// ---------------------------------------------------------------------------------------------
// Flip
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct FlipProblem {
    shape: ImageShape,
    image: Vec<u8>,
    p: f64,
    seed: u64,
}

impl FlipProblem {
    fn strategy() -> impl Strategy<Value = FlipProblem> {
        (
            shape_strategy(3, 12),
            prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0f64..=1.0],
            any::<u64>(),
        )
            .prop_flat_map(|(shape, p, seed)| {
                (
                    Just(shape),
                    vec(any::<u8>(), shape.len()),
                    Just(p),
                    Just(seed),
                )
            })
            .prop_map(|(shape, image, p, seed)| FlipProblem {
                shape,
                image,
                p,
                seed,
            })
    }

    /// One `next_f64() < p` coin, then each row read backwards.
    fn reference(&self) -> Vec<u8> {
        let flip = Rng::seed_from_u64(self.seed).next_f64() < self.p;
        let s = self.shape;
        let mut out = Vec::with_capacity(s.len());
        for c in 0..s.channels {
            for y in 0..s.height {
                for x in 0..s.width {
                    out.push(at(
                        &self.image,
                        s,
                        c,
                        y,
                        if flip { s.width - 1 - x } else { x },
                    ));
                }
            }
        }
        out
    }
}

fn flip_regressions() -> Vec<FlipProblem> {
    vec![
        FlipProblem {
            shape: ImageShape::new(1, 1, 1),
            image: vec![9],
            p: 1.0,
            seed: 0,
        },
        FlipProblem {
            shape: ImageShape::new(2, 2, 3),
            image: (0..12).collect(),
            p: 1.0,
            seed: 3,
        },
        FlipProblem {
            shape: ImageShape::new(3, 1, 4),
            image: (0..12).collect(),
            p: 0.0,
            seed: 3,
        },
    ]
}

#[test]
fn flip_regressions_match_reference() {
    for p in flip_regressions() {
        let flip = Flip::new(p.p).unwrap();
        assert_eq!(
            run(&flip, &p.image, p.shape, &mut Rng::seed_from_u64(p.seed)),
            p.reference(),
            "{p:?}"
        );
    }
    // Hand-made: a 2×3 image, flipped.
    let mut img = vec![1, 2, 3, 4, 5, 6];
    hflip_in_place(&mut img, ImageShape::new(1, 2, 3));
    assert_eq!(img, [3, 2, 1, 6, 5, 4]);
}

proptest! {
    #[test]
    fn flip_matches_reference(p in FlipProblem::strategy()) {
        let flip = Flip::new(p.p).unwrap();
        let mut rng = Rng::seed_from_u64(p.seed);
        let out = run(&flip, &p.image, p.shape, &mut rng);
        prop_assert_eq!(&out, &p.reference());
        // Exactly one coin, whatever p and the image.
        let mut one = Rng::seed_from_u64(p.seed);
        one.next_u64();
        prop_assert_eq!(rng, one);
    }

    #[test]
    fn flip_twice_is_identity(p in FlipProblem::strategy()) {
        let always = Flip::new(1.0).unwrap();
        let mut rng = Rng::seed_from_u64(p.seed);
        let once = run(&always, &p.image, p.shape, &mut rng);
        prop_assert_eq!(run(&always, &once, p.shape, &mut rng), p.image.clone());
        let mut buf = vec![0; p.shape.len()];
        hflip_into(&p.image, p.shape, &mut buf);
        prop_assert_eq!(&buf, &once);
        hflip_in_place(&mut buf, p.shape);
        prop_assert_eq!(buf, p.image.clone());
        let never = Flip::new(0.0).unwrap();
        prop_assert_eq!(run(&never, &p.image, p.shape, &mut rng), p.image);
    }
}

#[test]
fn flip_frequency_is_p() {
    let shape = ImageShape::new(1, 1, 2);
    for p in [0.1, 0.5, 0.8] {
        let flip = Flip::new(p).unwrap();
        let mut rng = Rng::seed_from_u64(77);
        let n = 20_000;
        let flipped = (0..n)
            .filter(|_| run(&flip, &[0, 1], shape, &mut rng) == [1, 0])
            .count();
        let expected = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (flipped as f64 - expected).abs() < 5.0 * sd,
            "p {p}: {flipped} of {n}"
        );
    }
}

#[test]
fn flip_rejects_probabilities_outside_unit_interval() {
    for p in [-0.1, 1.5, f64::NAN] {
        let e = Flip::new(p).unwrap_err();
        assert!(matches!(e, FlipError::Probability { .. }));
        assert!(e.to_string().contains("flip probability p"), "{e}");
    }
    assert!(Flip::new(1.5).unwrap_err().to_string().contains("1.5"));
    assert_eq!(Flip::default().p(), 0.5);
}

// ---------------------------------------------------------------------------------------------
// Cutout
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct CutoutProblem {
    shape: ImageShape,
    image: Vec<u8>,
    n_holes: usize,
    length: usize,
    fill: CutoutFill,
    seed: u64,
}

impl CutoutProblem {
    fn strategy() -> impl Strategy<Value = CutoutProblem> {
        (
            shape_strategy(3, 20),
            1usize..=3,
            1usize..=24,
            0..3u8,
            any::<u64>(),
        )
            .prop_flat_map(|(shape, n_holes, length, fill_kind, seed)| {
                let fill = match fill_kind {
                    0 => Just(CutoutFill::Zero).boxed(),
                    1 => any::<u8>().prop_map(|v| CutoutFill::Value(vec![v])).boxed(),
                    _ => vec(any::<u8>(), shape.channels)
                        .prop_map(CutoutFill::Value)
                        .boxed(),
                };
                (
                    Just(shape),
                    vec(any::<u8>(), shape.len()),
                    Just(n_holes),
                    Just(length),
                    fill,
                    Just(seed),
                )
            })
            .prop_map(
                |(shape, image, n_holes, length, fill, seed)| CutoutProblem {
                    shape,
                    image,
                    n_holes,
                    length,
                    fill,
                    seed,
                },
            )
    }

    fn cutout(&self) -> Cutout {
        Cutout::new(self.n_holes, self.length, self.fill.clone()).unwrap()
    }

    fn fill_of(&self, c: usize) -> u8 {
        match &self.fill {
            CutoutFill::Zero => 0,
            CutoutFill::Value(v) => v[if v.len() == 1 { 0 } else { c }],
        }
    }

    /// The reference's holes: y ~ randint(H), x ~ randint(W), numpy-style clip of y ± L//2.
    fn reference_holes(&self) -> Vec<Hole> {
        let (h, w) = (self.shape.height as i64, self.shape.width as i64);
        let half = self.length as i64 / 2;
        let mut rng = Rng::seed_from_u64(self.seed);
        (0..self.n_holes)
            .map(|_| {
                let y = rng.below(h as u64) as i64;
                let x = rng.below(w as u64) as i64;
                Hole {
                    y1: (y - half).clamp(0, h) as usize,
                    y2: (y + half).clamp(0, h) as usize,
                    x1: (x - half).clamp(0, w) as usize,
                    x2: (x + half).clamp(0, w) as usize,
                }
            })
            .collect()
    }

    /// A 0/1 mask over (y, x), then the fill where the mask is 0, in every channel.
    fn reference(&self) -> Vec<u8> {
        let s = self.shape;
        let mut mask = vec![true; s.plane()];
        for hole in self.reference_holes() {
            for y in hole.y1..hole.y2 {
                for x in hole.x1..hole.x2 {
                    mask[y * s.width + x] = false;
                }
            }
        }
        let mut out = self.image.clone();
        for c in 0..s.channels {
            for (i, &keep) in mask.iter().enumerate() {
                if !keep {
                    out[c * s.plane() + i] = self.fill_of(c);
                }
            }
        }
        out
    }

    fn run(&self) -> Vec<u8> {
        run(
            &self.cutout(),
            &self.image,
            self.shape,
            &mut Rng::seed_from_u64(self.seed),
        )
    }
}

/// Named Cutout cases: Good-DA-in-KD's CIFAR-100 setting, Tiny ImageNet's, an odd length, a hole
/// longer than the image, overlapping holes.
fn cutout_regressions() -> Vec<CutoutProblem> {
    let mut rng = Rng::seed_from_u64(4);
    let cifar = ImageShape::new(3, 32, 32);
    let tiny = ImageShape::new(3, 64, 64);
    let small = ImageShape::new(1, 3, 5);
    vec![
        CutoutProblem {
            shape: cifar,
            image: random_image(cifar, &mut rng),
            n_holes: 1,
            length: 8,
            fill: CutoutFill::from_mean(&[0.5071, 0.4867, 0.4408]),
            seed: 8,
        },
        CutoutProblem {
            shape: tiny,
            image: random_image(tiny, &mut rng),
            n_holes: 1,
            length: 16,
            fill: CutoutFill::Zero,
            seed: 16,
        },
        CutoutProblem {
            shape: cifar,
            image: random_image(cifar, &mut rng),
            n_holes: 2,
            length: 7,
            fill: CutoutFill::Value(vec![255]),
            seed: 7,
        },
        CutoutProblem {
            shape: small,
            image: vec![1; 15],
            n_holes: 5,
            length: 40,
            fill: CutoutFill::Zero,
            seed: 0,
        },
    ]
}

#[test]
fn cutout_regressions_match_reference() {
    for p in cutout_regressions() {
        assert_eq!(p.run(), p.reference(), "{p:?}");
    }
}

proptest! {
    #[test]
    fn cutout_matches_mask_reference(p in CutoutProblem::strategy()) {
        prop_assert_eq!(p.run(), p.reference());
    }

    /// At most (2·⌊L/2⌋)² ≤ L² pixels change per hole, only to the fill, and the holes follow the
    /// reference formula, clipping included.
    #[test]
    fn cutout_changes_few_pixels_and_only_to_fill(p in CutoutProblem::strategy()) {
        let cutout = p.cutout();
        let mut rng = Rng::seed_from_u64(p.seed);
        let holes: Vec<Hole> = (0..p.n_holes).map(|_| cutout.hole(p.shape.height, p.shape.width, &mut rng)).collect();
        prop_assert_eq!(&holes, &p.reference_holes());
        let side = 2 * (p.length / 2);
        for h in &holes {
            prop_assert!(h.y1 <= h.y2 && h.y2 <= p.shape.height && h.x1 <= h.x2 && h.x2 <= p.shape.width);
            prop_assert!(h.y2 - h.y1 <= side && h.x2 - h.x1 <= side);
        }
        let out = p.run();
        prop_assert_eq!(out.len(), p.image.len());
        let s = p.shape;
        let mut changed_positions = 0;
        for i in 0..s.plane() {
            let (y, x) = (i / s.width, i % s.width);
            let in_hole = holes.iter().any(|h| (h.y1..h.y2).contains(&y) && (h.x1..h.x2).contains(&x));
            let mut changed = false;
            for c in 0..s.channels {
                let (a, b) = (p.image[c * s.plane() + i], out[c * s.plane() + i]);
                if a != b {
                    changed = true;
                    prop_assert!(in_hole, "pixel ({y}, {x}) changed outside the holes");
                    prop_assert_eq!(b, p.fill_of(c));
                }
            }
            changed_positions += changed as usize;
        }
        prop_assert!(changed_positions <= p.n_holes * p.length * p.length);
    }

    /// On a normalised `f32` image, a fill of 0.0 is the reference's mask product.
    #[test]
    fn cutout_on_normalised_floats_is_the_mask_product(p in CutoutProblem::strategy()) {
        let norm = Normalize::new(vec![0.3], vec![0.2]).unwrap();
        let mut x = vec![0f32; p.image.len()];
        norm.apply_into(&p.image, p.shape, &mut x);
        let reference = CutoutProblem { fill: CutoutFill::Value(vec![0]), image: vec![1; p.image.len()], ..p.clone() }.reference();
        let masked: Vec<f32> = x.iter().zip(&reference).map(|(&v, &m)| v * m as f32).collect();
        p.cutout().cut_in_place(&mut x, p.shape, &mut Rng::seed_from_u64(p.seed), &[0.0]);
        prop_assert_eq!(x, masked);
    }
}

#[test]
fn cutout_hole_examples_by_hand() {
    // L = 8 on 32×32: centre (y, x) gives rows y−4..y+4, clipped.
    let c = Cutout::new(1, 8, CutoutFill::Zero).unwrap();
    for seed in 0..200 {
        let mut probe = Rng::seed_from_u64(seed);
        let (y, x) = (probe.below(32) as usize, probe.below(32) as usize);
        let hole = c.hole(32, 32, &mut Rng::seed_from_u64(seed));
        let expected = match (y, x) {
            (0, 0) => Hole {
                y1: 0,
                y2: 4,
                x1: 0,
                x2: 4,
            },
            _ => Hole {
                y1: y.max(4) - 4,
                y2: (y + 4).min(32),
                x1: x.max(4) - 4,
                x2: (x + 4).min(32),
            },
        };
        assert_eq!(hole, expected, "centre ({y}, {x})");
        if (4..=28).contains(&y) && (4..=28).contains(&x) {
            assert_eq!(hole.area(), 64);
        }
    }
    // An odd length makes holes of L − 1, as `length // 2` does in the reference.
    let c = Cutout::new(1, 5, CutoutFill::Zero).unwrap();
    let hole = c.hole(1000, 1000, &mut Rng::seed_from_u64(1));
    assert!(hole.y2 - hole.y1 <= 4 && hole.x2 - hole.x1 <= 4);
}

#[test]
fn cutout_fill_from_mean_rounds_to_nearest_byte() {
    // 0.5071·255 = 129.31, 0.4867·255 = 124.11, 0.4408·255 = 112.40.
    assert_eq!(
        CutoutFill::from_mean(&[0.5071, 0.4867, 0.4408]),
        CutoutFill::Value(vec![129, 124, 112])
    );
    assert_eq!(
        Fill::from_mean(&[0.5071, 0.4867, 0.4408]),
        Fill::PerChannel(vec![129, 124, 112])
    );
}

#[test]
fn cutout_rejects_bad_parameters() {
    assert_eq!(
        Cutout::new(0, 8, CutoutFill::Zero).unwrap_err(),
        CutoutError::NoHoles { n_holes: 0 }
    );
    let e = Cutout::new(1, 0, CutoutFill::Zero).unwrap_err();
    assert!(
        e.to_string().contains("length") && e.to_string().contains('0'),
        "{e}"
    );
    assert_eq!(
        Cutout::new(1, 8, CutoutFill::Value(vec![])).unwrap_err(),
        CutoutError::EmptyFill
    );
    let fill = CutoutFill::Value(vec![1, 2]);
    assert_eq!(
        fill.check(3).unwrap_err(),
        CutoutError::FillChannels {
            values: 2,
            channels: 3
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism and per-batch randomness, for every op
// ---------------------------------------------------------------------------------------------

/// The ops under test, each with an input shape it accepts.
fn all_ops() -> Vec<(&'static str, Box<dyn Transform>, ImageShape)> {
    let cifar = ImageShape::new(3, 32, 32);
    vec![
        ("crop", Box::new(Crop::cifar()), cifar),
        (
            "crop rect",
            Box::new(Crop::rect(20, 28, Padding::ltrb(1, 2, 3, 4), [1u8, 2, 3]).unwrap()),
            cifar,
        ),
        ("flip", Box::new(Flip::default()), cifar),
        (
            "cutout",
            Box::new(Cutout::new(2, 8, CutoutFill::Zero).unwrap()),
            cifar,
        ),
        ("center crop", Box::new(CenterCrop::new(24).unwrap()), cifar),
    ]
}

#[test]
fn same_seed_same_output_and_different_seeds_differ() {
    let mut rng = Rng::seed_from_u64(31);
    for (name, op, shape) in all_ops() {
        let image = random_image(shape, &mut rng);
        let outputs: Vec<Vec<u8>> = (0..64)
            .map(|seed| {
                let a = run(op.as_ref(), &image, shape, &mut Rng::seed_from_u64(seed));
                assert_eq!(
                    a,
                    run(op.as_ref(), &image, shape, &mut Rng::seed_from_u64(seed)),
                    "{name}"
                );
                a
            })
            .collect();
        let distinct = outputs.iter().collect::<HashSet<_>>().len();
        let expected = match name {
            "center crop" => 1,
            "flip" => 2,
            _ => 30,
        };
        if name == "center crop" || name == "flip" {
            assert_eq!(distinct, expected, "{name}");
        } else {
            assert!(
                distinct >= expected,
                "{name}: {distinct} distinct outputs of 64"
            );
        }
    }
}

/// A clone of one generator given to two different images makes the same decision for both
/// (and consumes the same stream), which is how per-batch randomness works. The decision is drawn
/// explicitly from a third clone and each output is checked against it.
#[test]
fn cloned_rng_makes_the_same_decision_on_different_images() {
    let mut rng = Rng::seed_from_u64(8);
    let shape = ImageShape::new(3, 32, 32);
    let crop = Crop::rect(20, 28, Padding::ltrb(1, 2, 3, 4), [1u8, 2, 3]).unwrap();
    let flip = Flip::default();
    let cutout = Cutout::new(2, 8, CutoutFill::Value(vec![255])).unwrap();
    let mut flips = 0;
    for seed in 0..50 {
        let batch_rng = Rng::seed_from_u64(seed);
        let (top, left) = crop.offsets(shape, &mut batch_rng.clone());
        let flipped = flip.decide(&mut batch_rng.clone());
        flips += flipped as usize;
        let mut r = batch_rng.clone();
        let holes = [cutout.hole(32, 32, &mut r), cutout.hole(32, 32, &mut r)];
        for _ in 0..2 {
            let image = random_image(shape, &mut rng);
            let mut expected = vec![0; crop.output_shape(shape).len()];
            crop.apply_at(&image, shape, top, left, &mut expected);
            assert_eq!(
                run(&crop, &image, shape, &mut batch_rng.clone()),
                expected,
                "crop, seed {seed}"
            );

            let mut expected = image.clone();
            if flipped {
                hflip_in_place(&mut expected, shape);
            }
            assert_eq!(
                run(&flip, &image, shape, &mut batch_rng.clone()),
                expected,
                "flip, seed {seed}"
            );

            let mut expected = image.clone();
            for h in holes {
                for c in 0..3 {
                    for y in h.y1..h.y2 {
                        expected[(c * 32 + y) * 32 + h.x1..(c * 32 + y) * 32 + h.x2].fill(255);
                    }
                }
            }
            assert_eq!(
                run(&cutout, &image, shape, &mut batch_rng.clone()),
                expected,
                "cutout, seed {seed}"
            );
        }
    }
    assert!((10..=40).contains(&flips), "{flips} flips of 50");
}

/// The stream an op consumes depends on the shape only, never on the image's content.
#[test]
fn draws_do_not_depend_on_content() {
    let mut rng = Rng::seed_from_u64(9);
    for (name, op, shape) in all_ops() {
        for seed in 0..20 {
            let (a, b) = (random_image(shape, &mut rng), vec![0u8; shape.len()]);
            let (mut ra, mut rb) = (Rng::seed_from_u64(seed), Rng::seed_from_u64(seed));
            run(op.as_ref(), &a, shape, &mut ra);
            run(op.as_ref(), &b, shape, &mut rb);
            assert_eq!(ra, rb, "{name}");
        }
    }
}

#[test]
fn cloned_rng_gives_one_crop_offset_for_the_batch() {
    // Per-batch mode on a whole batch: every image is cropped at the same offset.
    let crop = Crop::cifar();
    let shape = ImageShape::new(3, 32, 32);
    let mut rng = Rng::seed_from_u64(3);
    let batch_rng = Rng::seed_from_u64(17);
    let offsets = crop.offsets(shape, &mut batch_rng.clone());
    for _ in 0..8 {
        let image = random_image(shape, &mut rng);
        let mut expected = vec![0; shape.len()];
        crop.apply_at(&image, shape, offsets.0, offsets.1, &mut expected);
        assert_eq!(run(&crop, &image, shape, &mut batch_rng.clone()), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Normalize
// ---------------------------------------------------------------------------------------------

/// torchvision's order of f32 operations: ToTensor's `/255`, then `−mean`, then `/std`.
fn torch_formula(v: u8, mean: f32, std: f32) -> f32 {
    let x: f32 = v as f32 / 255.0f32;
    let x: f32 = x - mean;
    x / std
}

#[derive(Clone, Debug)]
struct NormalizeProblem {
    shape: ImageShape,
    image: Vec<u8>,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl NormalizeProblem {
    fn strategy() -> impl Strategy<Value = NormalizeProblem> {
        (shape_strategy(4, 16), any::<bool>())
            .prop_flat_map(|(shape, broadcast)| {
                let k = if broadcast { 1 } else { shape.channels };
                (
                    Just(shape),
                    vec(any::<u8>(), shape.len()),
                    stats_strategy(k),
                )
            })
            .prop_map(|(shape, image, (mean, std))| NormalizeProblem {
                shape,
                image,
                mean,
                std,
            })
    }

    fn reference(&self) -> Vec<f32> {
        let plane = self.shape.plane();
        let k = |c: usize| if self.mean.len() == 1 { 0 } else { c };
        self.image
            .iter()
            .enumerate()
            .map(|(i, &v)| torch_formula(v, self.mean[k(i / plane)], self.std[k(i / plane)]))
            .collect()
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

proptest! {
    #[test]
    fn normalize_is_bit_identical_to_the_f32_formula(p in NormalizeProblem::strategy()) {
        let norm = Normalize::new(p.mean.clone(), p.std.clone()).unwrap();
        let mut out = vec![f32::NAN; p.image.len()];
        norm.apply_into(&p.image, p.shape, &mut out);
        prop_assert_eq!(bits(&out), bits(&p.reference()));
        // Every byte value, through the table accessor.
        for c in 0..p.shape.channels {
            let k = if p.mean.len() == 1 { 0 } else { c };
            for v in 0..=255u8 {
                prop_assert_eq!(norm.value(c, v).to_bits(), torch_formula(v, p.mean[k], p.std[k]).to_bits());
            }
        }
    }

    #[test]
    fn normalize_batch_is_per_image(p in NormalizeProblem::strategy(), n in 0usize..4) {
        let norm = Normalize::new(p.mean.clone(), p.std.clone()).unwrap();
        let batch: Vec<u8> = (0..n).flat_map(|i| p.image.iter().map(move |&v| v.wrapping_add(i as u8 * 37))).collect();
        let mut out = vec![0f32; batch.len()];
        norm.apply_batch_into(&batch, p.shape, &mut out);
        let mut back = vec![0u8; batch.len()];
        norm.denormalize_batch_to_u8(&out, p.shape, &mut back);
        for i in 0..n {
            let r = i * p.shape.len()..(i + 1) * p.shape.len();
            let mut one = vec![0f32; p.shape.len()];
            norm.apply_into(&batch[r.clone()], p.shape, &mut one);
            prop_assert_eq!(bits(&out[r.clone()]), bits(&one));
            let mut one_back = vec![0u8; p.shape.len()];
            norm.denormalize_to_u8(&one, p.shape, &mut one_back);
            prop_assert_eq!(&back[r], &one_back[..]);
        }
    }

    /// Normalise then denormalise with truncation gives the byte back, or one less; never more.
    #[test]
    fn round_trip_loses_at_most_one(mean in vec(0.0f32..1.0, 3), std in vec(0.05f32..1.0, 3)) {
        let norm = Normalize::new(mean, std).unwrap();
        let shape = ImageShape::new(3, 16, 16);
        let image: Vec<u8> = (0..shape.len()).map(|i| (i % 256) as u8).collect();
        let mut x = vec![0f32; shape.len()];
        norm.apply_into(&image, shape, &mut x);
        let mut back = vec![0u8; shape.len()];
        norm.denormalize_to_u8(&x, shape, &mut back);
        for (&v, &b) in image.iter().zip(&back) {
            prop_assert!(b == v || b + 1 == v, "{v} came back as {b}");
        }
    }
}

#[test]
fn normalize_matches_torchvision_bit_for_bit() {
    let fixture = fixture();
    let shape = ImageShape::new(3, 16, 16);
    for case in fixture["normalize"].as_array().unwrap() {
        let mean: Vec<f64> = case["mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let std: Vec<f64> = case["std"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let norm = Normalize::from_f64(&mean, &std).unwrap();
        let input = bytes(&case["input"]);
        let mut out = vec![0f32; shape.len()];
        norm.apply_into(&input, shape, &mut out);
        let expected: Vec<u32> = case["output_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(bits(&out), expected, "{}", case["name"]);
        // Good-DA-in-KD's way back, truncation included.
        let mut back = vec![0u8; shape.len()];
        norm.denormalize_to_u8(&out, shape, &mut back);
        let expected_back = bytes(&case["denormalized"]);
        assert_eq!(back, expected_back, "{}", case["name"]);
        // The round trip does lose a level on some bytes (the truncation the reference has).
        let lost = input.iter().zip(&back).filter(|(v, b)| v != b).count();
        assert!(lost > 0, "{}: no byte lost a level", case["name"]);
    }
}

#[test]
fn denormalize_truncates_and_clamps() {
    let norm = Normalize::new(vec![0.0], vec![1.0]).unwrap();
    let shape = ImageShape::new(1, 1, 9);
    // x·255: 254.745, 255, 382.5, −51, NaN, 127.5, −0.255, 0.255, 254.99999
    let x = [
        0.999f32,
        1.0,
        1.5,
        -0.2,
        f32::NAN,
        0.5,
        -0.001,
        0.001,
        0.99999994,
    ];
    let mut out = vec![0u8; 9];
    norm.denormalize_to_u8(&x, shape, &mut out);
    assert_eq!(out, [254, 255, 255, 0, 0, 127, 0, 0, 254]);
    // With a mean and std: (1.0·0.25 + 0.5)·255 = 191.25 → 191.
    let norm = Normalize::new(vec![0.5], vec![0.25]).unwrap();
    norm.denormalize_to_u8(&[1.0], ImageShape::new(1, 1, 1), &mut out[..1]);
    assert_eq!(out[0], 191);
}

#[test]
fn normalize_rejects_bad_constants() {
    assert_eq!(
        Normalize::new(vec![], vec![]).unwrap_err(),
        NormalizeError::Empty
    );
    assert_eq!(
        Normalize::new(vec![0.5; 3], vec![0.2; 2]).unwrap_err(),
        NormalizeError::Lengths { mean: 3, std: 2 }
    );
    let e = Normalize::new(vec![0.5, 0.5], vec![0.2, 0.0]).unwrap_err();
    assert_eq!(e, NormalizeError::ZeroStd { channel: 1 });
    assert!(e.to_string().contains("std of channel 1"), "{e}");
    // A std that rounds to zero in f32 is zero, as torchvision checks after conversion.
    assert!(matches!(
        Normalize::from_f64(&[0.0], &[1e-50]),
        Err(NormalizeError::ZeroStd { channel: 0 })
    ));
    let e = Normalize::new(vec![f32::NAN], vec![1.0]).unwrap_err();
    assert!(e.to_string().contains("mean of channel 0"), "{e}");
    let norm = Normalize::from_f64(&CIFAR100_MEAN, &CIFAR100_STD).unwrap();
    assert_eq!(
        norm.check(ImageShape::new(1, 2, 2)).unwrap_err(),
        NormalizeError::Channels {
            values: 3,
            channels: 1
        }
    );
    assert_eq!(norm.mean()[0], 0.5071f64 as f32);
}

// ---------------------------------------------------------------------------------------------
// Fused crop + flip + normalise
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct FusedProblem {
    crop: CropProblem,
    p: f64,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl FusedProblem {
    fn strategy() -> impl Strategy<Value = FusedProblem> {
        (
            CropProblem::strategy(),
            prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0f64..=1.0],
            any::<bool>(),
        )
            .prop_flat_map(|(crop, p, broadcast)| {
                let k = if broadcast { 1 } else { crop.shape.channels };
                (Just(crop), Just(p), stats_strategy(k))
            })
            .prop_map(|(crop, p, (mean, std))| FusedProblem { crop, p, mean, std })
    }

    fn fused(&self) -> CropFlipNormalize {
        CropFlipNormalize::new(
            self.crop.crop(),
            Flip::new(self.p).unwrap(),
            Normalize::new(self.mean.clone(), self.std.clone()).unwrap(),
        )
    }

    /// The three ops one after the other, with one generator.
    fn reference(&self) -> Vec<f32> {
        let f = self.fused();
        let shape = self.crop.shape;
        let mut rng = Rng::seed_from_u64(self.crop.seed);
        let cropped = run(f.crop(), &self.crop.image, shape, &mut rng);
        let cshape = f.crop().output_shape(shape);
        let flipped = run(f.flip(), &cropped, cshape, &mut rng);
        let mut out = vec![0f32; cshape.len()];
        f.normalize().apply_into(&flipped, cshape, &mut out);
        out
    }

    fn run(&self) -> Vec<f32> {
        let f = self.fused();
        let mut out = vec![f32::NAN; f.output_shape(self.crop.shape).len()];
        f.apply(
            &self.crop.image,
            self.crop.shape,
            &mut Rng::seed_from_u64(self.crop.seed),
            &mut out,
        );
        out
    }
}

fn fused_regressions() -> Vec<FusedProblem> {
    let cifar_mean: Vec<f32> = CIFAR100_MEAN.iter().map(|&m| m as f32).collect();
    let cifar_std: Vec<f32> = CIFAR100_STD.iter().map(|&s| s as f32).collect();
    crop_regressions()
        .into_iter()
        .flat_map(|crop| {
            let k = crop.shape.channels;
            let (mean, std) = if k == 3 {
                (cifar_mean.clone(), cifar_std.clone())
            } else {
                (vec![0.5; k], vec![0.25; k])
            };
            [0.0, 1.0].map(|p| FusedProblem {
                crop: crop.clone(),
                p,
                mean: mean.clone(),
                std: std.clone(),
            })
        })
        .collect()
}

#[test]
fn fused_regressions_match_separate_ops() {
    for p in fused_regressions() {
        assert_eq!(bits(&p.run()), bits(&p.reference()), "{p:?}");
    }
}

proptest! {
    #[test]
    fn fused_equals_crop_then_flip_then_normalize(p in FusedProblem::strategy()) {
        prop_assert_eq!(bits(&p.run()), bits(&p.reference()));
    }
}

#[test]
fn fused_batch_per_sample_and_per_batch() {
    let norm = Normalize::from_f64(&CIFAR100_MEAN, &CIFAR100_STD).unwrap();
    let fused = CropFlipNormalize::cifar(norm);
    let shape = ImageShape::new(3, 32, 32);
    assert!(fused.check(shape).is_ok());
    assert!(matches!(
        fused.check(ImageShape::new(3, 16, 16)),
        Err(NormalizeError::Crop(_))
    ));
    let mut rng = Rng::seed_from_u64(5);
    let n = 6;
    let batch: Vec<u8> = (0..n).flat_map(|_| random_image(shape, &mut rng)).collect();
    let one = |i: usize, r: &mut Rng| {
        let mut o = vec![0f32; shape.len()];
        fused.apply(
            &batch[i * shape.len()..(i + 1) * shape.len()],
            shape,
            r,
            &mut o,
        );
        o
    };
    // Per sample: image i with its own stream.
    let mut out = vec![0f32; batch.len()];
    fused.apply_batch(
        &batch,
        shape,
        |i| Rng::from_keys(&[1, 2, i as u64]),
        &mut out,
    );
    for i in 0..n {
        assert_eq!(
            bits(&out[i * shape.len()..(i + 1) * shape.len()]),
            bits(&one(i, &mut Rng::from_keys(&[1, 2, i as u64])))
        );
    }
    // Per batch: clones of one stream, so every image gets the same crop offset and flip.
    let batch_rng = Rng::seed_from_u64(99);
    fused.apply_batch(&batch, shape, |_| batch_rng.clone(), &mut out);
    for i in 0..n {
        assert_eq!(
            bits(&out[i * shape.len()..(i + 1) * shape.len()]),
            bits(&one(i, &mut batch_rng.clone()))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------------------------

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/basic_ops_torchvision.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u8::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Throughput: a quick single-thread timing, not a benchmark (the criterion benches are separate).
// `cargo test --release -p kd-augment --test basic_ops -- --ignored --nocapture throughput`
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore]
fn throughput() {
    use std::hint::black_box;
    use std::time::{Duration, Instant};
    /// Images per second of `f(i)`, over at least half a second, best of three runs.
    fn time(mut f: impl FnMut(usize)) -> f64 {
        let mut best = 0f64;
        for _ in 0..3 {
            let (t, mut i) = (Instant::now(), 0);
            while t.elapsed() < Duration::from_millis(500) {
                for _ in 0..1000 {
                    f(i);
                    i += 1;
                }
            }
            best = best.max(i as f64 / t.elapsed().as_secs_f64());
        }
        best
    }
    let norm = Normalize::from_f64(&CIFAR100_MEAN, &CIFAR100_STD).unwrap();
    println!(
        "{:<40} {:>14} {:>14}",
        "img/s, one thread", "hot (8 imgs)", "cold (24 MiB)"
    );
    for (side, pad, hole) in [(32usize, 4usize, 8usize), (64, 8, 16)] {
        let shape = ImageShape::new(3, side, side);
        let fused = CropFlipNormalize::new(
            Crop::new(side, pad, 0).unwrap(),
            Flip::default(),
            norm.clone(),
        );
        let (crop, flip) = (Crop::new(side, pad, 0).unwrap(), Flip::default());
        let always = Flip::new(1.0).unwrap();
        let cutout = Cutout::new(1, hole, CutoutFill::Zero).unwrap();
        let mut rows: Vec<(String, [f64; 2])> = Vec::new();
        for (k, pool) in [8usize, (24 << 20) / shape.len()].into_iter().enumerate() {
            let mut rng = Rng::seed_from_u64(1);
            let images: Vec<u8> = (0..pool)
                .flat_map(|_| random_image(shape, &mut rng))
                .collect();
            // A stride coprime with the pool size visits the images out of order, like a shuffled epoch.
            let img = |i: usize| {
                let j = (i * 7919) % pool;
                &images[j * shape.len()..(j + 1) * shape.len()]
            };
            let rng_of = |i: usize| Rng::from_keys(&[7, 0, i as u64]);
            let (mut a, mut b) = (vec![0u8; shape.len()], vec![0u8; shape.len()]);
            let mut out = vec![0f32; shape.len()];
            let mut results = vec![
                (
                    "fused crop+flip+normalize",
                    time(|i| {
                        fused.apply(img(i), shape, &mut rng_of(i), &mut out);
                        black_box(&out);
                    }),
                ),
                (
                    "crop, flip, normalize (separate)",
                    time(|i| {
                        let mut r = rng_of(i);
                        crop.apply(img(i), shape, &mut r, &mut a);
                        flip.apply(&a, shape, &mut r, &mut b);
                        norm.apply_into(&b, shape, &mut out);
                        black_box(&out);
                    }),
                ),
                (
                    "crop+flip (u8 out)",
                    time(|i| {
                        let mut r = rng_of(i);
                        crop.apply(img(i), shape, &mut r, &mut a);
                        flip.apply(&a, shape, &mut r, &mut b);
                        black_box(&b);
                    }),
                ),
                (
                    "crop (u8)",
                    time(|i| {
                        crop.apply(img(i), shape, &mut rng_of(i), &mut a);
                        black_box(&a);
                    }),
                ),
                (
                    "flip p=1 (u8)",
                    time(|i| {
                        always.apply(img(i), shape, &mut rng_of(i), &mut a);
                        black_box(&a);
                    }),
                ),
                (
                    "normalize",
                    time(|i| {
                        norm.apply_into(img(i), shape, &mut out);
                        black_box(&out);
                    }),
                ),
            ];
            results.push((
                if hole == 8 {
                    "cutout 1×8"
                } else {
                    "cutout 1×16"
                },
                time(|i| {
                    cutout.apply(img(i), shape, &mut rng_of(i), &mut a);
                    black_box(&a);
                }),
            ));
            for (j, (name, v)) in results.into_iter().enumerate() {
                if k == 0 {
                    rows.push((format!("{name} {side}×{side}"), [v, 0.0]));
                } else {
                    rows[j].1[1] = v;
                }
            }
        }
        for (name, [hot, cold]) in rows {
            println!("{name:<40} {hot:>14.0} {cold:>14.0}");
        }
    }
}
