//! Batch mixing ops (`kd_augment::batch`): mixup, CutMix, the CutMixPick pool (per batch, and
//! per sample with one λ and box per row), Beta/Gamma sampling and derangements.
//!
//! Property tests follow sonos/tract's style: a `Problem` with a proptest strategy, a slow,
//! per-pixel `reference()` written from the reference's formulas (Good-DA-in-KD
//! `helper/loops.py`) and the documented draw order, compared with the fast implementation,
//! plus named regression cases. Values marked "torch 2.11" were computed by the Python script
//! quoted next to them with the project's venv.

use kd_augment::batch::{
    BBox, BatchError, Beta, CutMix, Gamma, Mixup, Partner, PoolOutput, bbox_at, cutmix,
    cutmix_pool, derangement, derangement_into, gather_rows, mix_into, mix_into_par, mix_rows_into,
    mix_rows_into_par, mixup, paste_box_into, paste_box_into_par, paste_boxes_into,
    paste_boxes_into_par, pick_rows, standard_normal, top_rows,
};
use kd_augment::rng::RowStreams;
use kd_augment::{ImageShape, Rng};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// Allocation counting (per thread, so parallel tests do not disturb each other)
// ---------------------------------------------------------------------------------------------

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread-local
// `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(|c| c.get());
    f();
    ALLOCATIONS.with(|c| c.get()) - before
}

// ---------------------------------------------------------------------------------------------
// Helpers and reference implementations
// ---------------------------------------------------------------------------------------------

fn idx(shape: ImageShape, i: usize, c: usize, y: usize, x: usize) -> usize {
    ((i * shape.channels + c) * shape.height + y) * shape.width + x
}

/// Every value distinct (so "equals image i's pixel" identifies i), with a seeded fraction.
fn distinct_batch(n: usize, shape: ImageShape, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..n * shape.len())
        .map(|k| k as f32 - 1000.0 + (rng.below(128) as f32) / 256.0)
        .collect()
}

/// Normal-ish floats, as a normalised batch looks.
fn normal_batch(n: usize, shape: ImageShape, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..n * shape.len())
        .map(|_| standard_normal(&mut rng) as f32)
        .collect()
}

/// The documented partner stream for a derangement: Fisher–Yates from the last position,
/// an attempt refused at the first position that keeps its own index.
fn reference_derangement(n: usize, rng: &mut Rng) -> Vec<usize> {
    loop {
        let mut p: Vec<usize> = (0..n).collect();
        let mut refused = false;
        let mut i = n;
        while i > 1 {
            i -= 1;
            let j = rng.below(i as u64 + 1) as usize;
            p.swap(i, j);
            if p[i] == i {
                refused = true;
                break;
            }
        }
        if !refused && p.iter().enumerate().all(|(k, &v)| k != v) {
            return p;
        }
    }
}

/// The reference's `rand_bbox` with Python's integer semantics written out in `i64`.
fn reference_bbox(h: usize, w: usize, lam: f64, cx: usize, cy: usize) -> BBox {
    let cut_rat = (1.0 - lam).sqrt();
    let cut_w = (w as f64 * cut_rat).trunc() as i64;
    let cut_h = (h as f64 * cut_rat).trunc() as i64;
    let (w, h, cx, cy) = (w as i64, h as i64, cx as i64, cy as i64);
    let clip = |v: i64, hi: i64| v.clamp(0, hi) as usize;
    BBox {
        y1: clip(cy - cut_h / 2, h),
        y2: clip(cy + cut_h / 2, h),
        x1: clip(cx - cut_w / 2, w),
        x2: clip(cx + cut_w / 2, w),
    }
}

fn is_permutation(p: &[usize]) -> bool {
    let mut s = p.to_vec();
    s.sort_unstable();
    s.iter().enumerate().all(|(i, &v)| i == v)
}

fn shape_strategy() -> impl Strategy<Value = ImageShape> {
    (1usize..=3, 1usize..=12, 1usize..=12).prop_map(|(c, h, w)| ImageShape::new(c, h, w))
}

fn alpha_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), Just(0.2), Just(2.0), 0.05f64..5.0]
}

// ---------------------------------------------------------------------------------------------
// Mixup
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct MixupProblem {
    n: usize,
    shape: ImageShape,
    data: Vec<f32>,
    alpha: f64,
    seed: u64,
}

impl MixupProblem {
    fn strategy() -> impl Strategy<Value = Self> {
        (0usize..10, shape_strategy(), alpha_strategy(), any::<u64>()).prop_flat_map(
            |(n, shape, alpha, seed)| {
                proptest::collection::vec(-4.0f32..4.0, n * shape.len()).prop_map(move |data| {
                    MixupProblem {
                        n,
                        shape,
                        data,
                        alpha,
                        seed,
                    }
                })
            },
        )
    }

    /// λ, then `rng.permutation(n)`; each pixel `f32(λ)·x + f32(1−λ)·x_p`.
    fn reference(&self) -> (Vec<f32>, Vec<usize>, f64) {
        let mut rng = Rng::seed_from_u64(self.seed);
        let lambda = Beta::new(self.alpha, self.alpha).unwrap().sample(&mut rng);
        let partner = rng.permutation(self.n);
        let (a, b) = (lambda as f32, (1.0 - lambda) as f32);
        let s = self.shape;
        let mut out = vec![0.0; self.data.len()];
        for i in 0..self.n {
            for c in 0..s.channels {
                for y in 0..s.height {
                    for x in 0..s.width {
                        let own = self.data[idx(s, i, c, y, x)];
                        let other = self.data[idx(s, partner[i], c, y, x)];
                        out[idx(s, i, c, y, x)] = a * own + b * other;
                    }
                }
            }
        }
        (out, partner, lambda)
    }

    fn run(&self) -> kd_augment::batch::MixOutput {
        mixup(
            &self.data,
            self.shape,
            self.alpha,
            &mut Rng::seed_from_u64(self.seed),
        )
        .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mixup_matches_reference(p in MixupProblem::strategy()) {
        let got = p.run();
        let (images, partner, lambda) = p.reference();
        prop_assert_eq!(got.lambda, lambda);
        prop_assert_eq!(&got.partner, &partner);
        prop_assert_eq!(got.bbox, None);
        prop_assert_eq!(
            got.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            images.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn mixup_is_a_convex_combination(p in MixupProblem::strategy()) {
        let got = p.run();
        prop_assert!((0.0..=1.0).contains(&got.lambda), "λ = {}", got.lambda);
        prop_assert!(is_permutation(&got.partner));
        let len = p.shape.len();
        for i in 0..p.n {
            for k in 0..len {
                let (x, y) = (p.data[i * len + k], p.data[got.partner[i] * len + k]);
                let v = got.images[i * len + k];
                // Three f32 roundings (two weights are rounded too): a few ulps of the inputs.
                let tol = 4.0 * f32::EPSILON * x.abs().max(y.abs());
                prop_assert!(v >= x.min(y) - tol && v <= x.max(y) + tol, "{v} not in [{x}, {y}]");
            }
        }
    }

    #[test]
    fn mixup_draws_do_not_depend_on_content(
        p in MixupProblem::strategy(),
        other_seed in any::<u64>(),
    ) {
        let other = normal_batch(p.n, p.shape, other_seed);
        let mut r1 = Rng::seed_from_u64(p.seed);
        let mut r2 = r1.clone();
        let a = mixup(&p.data, p.shape, p.alpha, &mut r1).unwrap();
        let b = mixup(&other, p.shape, p.alpha, &mut r2).unwrap();
        prop_assert_eq!(a.lambda, b.lambda);
        prop_assert_eq!(a.partner, b.partner);
        prop_assert_eq!(r1, r2);
    }
}

#[test]
fn mixup_matches_torch_bit_for_bit() {
    // torch 2.11 (CPU):
    //   torch.manual_seed(3); x = torch.randn(3, 1, 2, 3); lam = 0.3141592653589793
    //   p = torch.tensor([2, 0, 1]); y = lam * x + (1 - lam) * x[p, :]
    // printed as the f32 bit patterns of x and y.
    let x_bits: [u32; 18] = [
        0xbd9cf7af, 0x3eb84264, 0xbf03b3c8, 0xbfd369c6, 0x3f85e413, 0x3f05ae0c, 0xbe2ad005,
        0x3d59398d, 0x3ecf28ab, 0x3f1c7e22, 0x3fef43ea, 0xbf98fd70, 0x3f7f77d8, 0x3eeb19b3,
        0x401bedee, 0xbe1654e2, 0x3ef860dd, 0x3e5228f6,
    ];
    let y_bits: [u32; 18] = [
        0x3f290bde, 0x3edb20d2, 0x3fc1329f, 0xbf1e9c57, 0x3f294cd6, 0x3e9c0fcb, 0xbdd6fabc,
        0x3e86e728, 0xbe672537, 0xbf70d3f2, 0x3fa6fec9, 0xbc8e2ff0, 0x3e4be169, 0x3e38f69e,
        0x3f857e2b, 0x3ebf0b4b, 0x3fb79b01, 0xbf4158fc,
    ];
    let x: Vec<f32> = x_bits.iter().map(|&b| f32::from_bits(b)).collect();
    let mut out = vec![0.0; 18];
    mix_into(
        &x,
        ImageShape::new(1, 2, 3),
        &[2, 0, 1],
        0.3141592653589793,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y_bits);
}

#[test]
fn mixup_regression_single_image_mixes_with_itself() {
    // A batch of one: the permutation is [0] and x' = x up to the rounding of the weights.
    let shape = ImageShape::new(3, 2, 2);
    let data = normal_batch(1, shape, 5);
    let out = mixup(&data, shape, 1.0, &mut Rng::seed_from_u64(9)).unwrap();
    assert_eq!(out.partner, vec![0]);
    for (v, x) in out.images.iter().zip(&data) {
        assert!((v - x).abs() <= 2.0 * f32::EPSILON * x.abs(), "{v} vs {x}");
    }
}

#[test]
fn mixup_with_derangement_never_pairs_an_image_with_itself() {
    let shape = ImageShape::new(1, 2, 2);
    let data = normal_batch(5, shape, 1);
    let m = Mixup::new(1.0).unwrap().with_partner(Partner::Derangement);
    for seed in 0..200 {
        let out = m
            .apply(&data, shape, &mut Rng::seed_from_u64(seed))
            .unwrap();
        assert!(
            out.partner.iter().enumerate().all(|(i, &p)| i != p),
            "{:?}",
            out.partner
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CutMix
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CutMixProblem {
    n: usize,
    shape: ImageShape,
    data: Vec<f32>,
    alpha: f64,
    seed: u64,
}

impl CutMixProblem {
    fn strategy() -> impl Strategy<Value = Self> {
        // n = 1 has no derangement (tested separately).
        (
            prop_oneof![Just(0usize), 2usize..10],
            shape_strategy(),
            alpha_strategy(),
            any::<u64>(),
        )
            .prop_map(|(n, shape, alpha, seed)| CutMixProblem {
                n,
                shape,
                data: distinct_batch(n, shape, seed ^ 0x5555),
                alpha,
                seed,
            })
    }

    /// λ₀, `cx = below(W)`, `cy = below(H)`, the derangement; partner inside the box.
    fn reference(&self) -> (Vec<f32>, Vec<usize>, f64, BBox) {
        let mut rng = Rng::seed_from_u64(self.seed);
        let s = self.shape;
        let lam0 = Beta::new(self.alpha, self.alpha).unwrap().sample(&mut rng);
        let cx = rng.below(s.width as u64) as usize;
        let cy = rng.below(s.height as u64) as usize;
        let bbox = reference_bbox(s.height, s.width, lam0, cx, cy);
        let partner = reference_derangement(self.n, &mut rng);
        let mut out = vec![0.0; self.data.len()];
        for i in 0..self.n {
            for c in 0..s.channels {
                for y in 0..s.height {
                    for x in 0..s.width {
                        let inside = y >= bbox.y1 && y < bbox.y2 && x >= bbox.x1 && x < bbox.x2;
                        let from = if inside { partner[i] } else { i };
                        out[idx(s, i, c, y, x)] = self.data[idx(s, from, c, y, x)];
                    }
                }
            }
        }
        let area = (bbox.y2 - bbox.y1) * (bbox.x2 - bbox.x1);
        let lambda = 1.0 - area as f64 / (s.height * s.width) as f64;
        (out, partner, lambda, bbox)
    }

    fn run(&self) -> kd_augment::batch::MixOutput {
        cutmix(
            &self.data,
            self.shape,
            self.alpha,
            &mut Rng::seed_from_u64(self.seed),
        )
        .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn cutmix_matches_reference(p in CutMixProblem::strategy()) {
        let got = p.run();
        let (images, partner, lambda, bbox) = p.reference();
        prop_assert_eq!(got.bbox, Some(bbox));
        prop_assert_eq!(got.lambda, lambda);
        prop_assert_eq!(&got.partner, &partner);
        prop_assert_eq!(got.images, images);
    }

    #[test]
    fn cutmix_pixels_come_from_exactly_one_image_and_the_box_is_shared(
        p in CutMixProblem::strategy(),
    ) {
        let got = p.run();
        let s = p.shape;
        let bbox = got.bbox.unwrap();
        prop_assert!(got.partner.iter().enumerate().all(|(i, &q)| i != q));
        prop_assert!(is_permutation(&got.partner));
        // λ = 1 − box_area/(H·W), exactly.
        prop_assert_eq!(got.lambda, 1.0 - bbox.area() as f64 / (s.height * s.width) as f64);
        prop_assert!((0.0..=1.0).contains(&got.lambda));
        let rect: BTreeSet<(usize, usize)> = (bbox.y1..bbox.y2)
            .flat_map(|y| (bbox.x1..bbox.x2).map(move |x| (y, x)))
            .collect();
        for i in 0..p.n {
            for c in 0..s.channels {
                let mut pasted = BTreeSet::new();
                for y in 0..s.height {
                    for x in 0..s.width {
                        let v = got.images[idx(s, i, c, y, x)];
                        let own = v == p.data[idx(s, i, c, y, x)];
                        let theirs = v == p.data[idx(s, got.partner[i], c, y, x)];
                        prop_assert!(own != theirs, "pixel must come from exactly one image");
                        if theirs {
                            pasted.insert((y, x));
                        }
                    }
                }
                // The pasted region of every image and channel is exactly the one box.
                prop_assert_eq!(&pasted, &rect);
            }
        }
    }

    #[test]
    fn cutmix_draws_do_not_depend_on_content(
        p in CutMixProblem::strategy(),
        other_seed in any::<u64>(),
    ) {
        let other = normal_batch(p.n, p.shape, other_seed);
        let mut r1 = Rng::seed_from_u64(p.seed);
        let mut r2 = r1.clone();
        let a = cutmix(&p.data, p.shape, p.alpha, &mut r1).unwrap();
        let b = cutmix(&other, p.shape, p.alpha, &mut r2).unwrap();
        prop_assert_eq!(a.lambda, b.lambda);
        prop_assert_eq!(a.bbox, b.bbox);
        prop_assert_eq!(a.partner, b.partner);
        prop_assert_eq!(r1, r2);
    }

    #[test]
    fn bbox_matches_python_integer_semantics(
        h in 1usize..80, w in 1usize..80, lam in 0.0f64..=1.0, cxf in 0.0f64..1.0, cyf in 0.0f64..1.0,
    ) {
        let (cx, cy) = ((cxf * w as f64) as usize, (cyf * h as f64) as usize);
        let shape = ImageShape::new(1, h, w);
        prop_assert_eq!(bbox_at(shape, lam, cx, cy), reference_bbox(h, w, lam, cx, cy));
    }
}

#[test]
fn bbox_matches_the_python_reference() {
    // Good-DA-in-KD's rand_bbox (H, W = size[2], size[3]) with the two randints replaced by
    // the given cx, cy, and its recomputed lam, evaluated by numpy:
    //   cut_rat = np.sqrt(1. - lam); cut_w = int(W * cut_rat); cut_h = int(H * cut_rat)
    //   bbx1 = np.clip(cx - cut_w // 2, 0, W); bby1 = np.clip(cy - cut_h // 2, 0, H)
    //   bbx2 = np.clip(cx + cut_w // 2, 0, W); bby2 = np.clip(cy + cut_h // 2, 0, H)
    //   lam = 1 - (bbx2 - bbx1) * (bby2 - bby1) / (H * W)
    // Rows: (H, W, lam, cx, cy, [bby1, bby2, bbx1, bbx2], recomputed lam).
    #[allow(clippy::type_complexity)]
    let cases: [(usize, usize, f64, usize, usize, [usize; 4], f64); 10] = [
        (32, 32, 0.3, 5, 30, [17, 32, 0, 18], 0.736328125),
        (32, 32, 0.0, 16, 16, [0, 32, 0, 32], 0.0),
        (32, 32, 0.999, 0, 0, [0, 0, 0, 0], 1.0),
        (64, 64, 0.5123, 63, 2, [0, 24, 41, 64], 0.865234375),
        (5, 7, 0.2, 6, 0, [0, 2, 3, 7], 0.7714285714285715),
        (24, 40, 0.61, 39, 23, [16, 24, 27, 40], 0.8916666666666666),
        (32, 32, 1.0, 10, 10, [10, 10, 10, 10], 1.0),
        (8, 8, 0.75, 3, 4, [2, 6, 1, 5], 0.75),
        // 10·sqrt(0.81) = 9.000000000000002 in f64: int() gives 9, half 4.
        (10, 10, 0.19, 5, 5, [1, 9, 1, 9], 0.36),
        (3, 9, 0.01, 1, 8, [3, 3, 0, 5], 1.0),
    ];
    for (h, w, lam, cx, cy, [y1, y2, x1, x2], lam2) in cases {
        let shape = ImageShape::new(3, h, w);
        let b = bbox_at(shape, lam, cx, cy);
        assert_eq!(
            b,
            BBox { y1, y2, x1, x2 },
            "case {h}×{w} λ={lam} cx={cx} cy={cy}"
        );
        assert_eq!(b.lambda(shape), lam2, "case {h}×{w} λ={lam}");
    }
}

#[test]
fn cutmix_paste_matches_the_torch_mask_formula() {
    // torch 2.11 (CPU), same x as mixup_matches_torch_bit_for_bit:
    //   mask = torch.ones((2, 3)); mask[0:1, 1:3] = 0; p2 = torch.tensor([1, 2, 0])
    //   z = x * mask + x[p2] * (1 - mask)
    let x_bits: [u32; 18] = [
        0xbd9cf7af, 0x3eb84264, 0xbf03b3c8, 0xbfd369c6, 0x3f85e413, 0x3f05ae0c, 0xbe2ad005,
        0x3d59398d, 0x3ecf28ab, 0x3f1c7e22, 0x3fef43ea, 0xbf98fd70, 0x3f7f77d8, 0x3eeb19b3,
        0x401bedee, 0xbe1654e2, 0x3ef860dd, 0x3e5228f6,
    ];
    let z_bits: [u32; 18] = [
        0xbd9cf7af, 0x3d59398d, 0x3ecf28ab, 0xbfd369c6, 0x3f85e413, 0x3f05ae0c, 0xbe2ad005,
        0x3eeb19b3, 0x401bedee, 0x3f1c7e22, 0x3fef43ea, 0xbf98fd70, 0x3f7f77d8, 0x3eb84264,
        0xbf03b3c8, 0xbe1654e2, 0x3ef860dd, 0x3e5228f6,
    ];
    let x: Vec<f32> = x_bits.iter().map(|&b| f32::from_bits(b)).collect();
    let mut out = vec![0.0; 18];
    let bbox = BBox {
        y1: 0,
        y2: 1,
        x1: 1,
        x2: 3,
    };
    paste_box_into(&x, ImageShape::new(1, 2, 3), &[1, 2, 0], bbox, &mut out).unwrap();
    assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), z_bits);
}

#[test]
fn cutmix_regression_empty_box_and_full_box() {
    let shape = ImageShape::new(2, 4, 4);
    let data = distinct_batch(3, shape, 2);
    let mut out = vec![0.0; data.len()];
    paste_box_into(
        &data,
        shape,
        &[1, 2, 0],
        BBox {
            y1: 2,
            y2: 2,
            x1: 0,
            x2: 4,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out, data, "an empty box leaves every image as it is");
    let full = BBox {
        y1: 0,
        y2: 4,
        x1: 0,
        x2: 4,
    };
    assert_eq!(full.lambda(shape), 0.0);
    paste_box_into(&data, shape, &[1, 2, 0], full, &mut out).unwrap();
    let len = shape.len();
    assert_eq!(
        &out[..len],
        &data[len..2 * len],
        "a full box is the partner"
    );
    assert_eq!(&out[2 * len..], &data[..len]);
}

#[test]
fn cutmix_with_permutation_partner_is_the_original_cutmix() {
    // Partner::Permutation draws rng.permutation(n) after the box: self-pairs happen.
    let shape = ImageShape::new(1, 4, 4);
    let data = distinct_batch(3, shape, 3);
    let op = CutMix::new(1.0).unwrap().with_partner(Partner::Permutation);
    let mut self_pairs = 0;
    for seed in 0..300 {
        let mut r = Rng::seed_from_u64(seed);
        let out = op.apply(&data, shape, &mut r).unwrap();
        let mut q = Rng::seed_from_u64(seed);
        let lam0 = Beta::symmetric(1.0).unwrap().sample(&mut q);
        let (cx, cy) = (q.below(4) as usize, q.below(4) as usize);
        assert_eq!(out.bbox, Some(reference_bbox(4, 4, lam0, cx, cy)));
        assert_eq!(out.partner, q.permutation(3));
        self_pairs += out
            .partner
            .iter()
            .enumerate()
            .filter(|&(i, &p)| i == p)
            .count();
    }
    // 300 batches of 3, one expected fixed point per permutation.
    assert!((200..400).contains(&self_pairs), "{self_pairs}");
}

#[test]
fn cutmix_of_one_image_is_an_error_not_a_hang() {
    let shape = ImageShape::new(3, 8, 8);
    let data = normal_batch(1, shape, 0);
    let err = cutmix(&data, shape, 1.0, &mut Rng::seed_from_u64(0)).unwrap_err();
    assert_eq!(err, BatchError::NoDerangement { n: 1 });
    assert!(err.to_string().contains("n = 1"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Determinism and threads
// ---------------------------------------------------------------------------------------------

#[test]
fn same_seed_same_output_and_different_seeds_differ() {
    let shape = ImageShape::new(3, 8, 8);
    let data = normal_batch(8, shape, 11);
    let m = |seed| mixup(&data, shape, 1.0, &mut Rng::seed_from_u64(seed)).unwrap();
    let c = |seed| cutmix(&data, shape, 1.0, &mut Rng::seed_from_u64(seed)).unwrap();
    let p = |seed| cutmix_pool(&data, shape, 1.0, 2, &mut Rng::seed_from_u64(seed)).unwrap();
    assert_eq!(m(1), m(1));
    assert_eq!(c(1), c(1));
    assert_eq!(p(1), p(1));
    for (a, b) in [(1, 2), (3, 4), (5, 6)] {
        assert_ne!(m(a).images, m(b).images);
        assert_ne!(c(a).images, c(b).images);
        assert_ne!(p(a).images, p(b).images);
    }
}

#[test]
fn parallel_application_equals_serial_with_1_and_4_threads() {
    let shape = ImageShape::new(3, 16, 16);
    let data = normal_batch(37, shape, 4);
    let mut rng = Rng::seed_from_u64(8);
    let partner = derangement(37, &mut rng).unwrap();
    let bbox = bbox_at(shape, 0.4, 3, 12);
    let mut serial_mix = vec![0.0; data.len()];
    let mut serial_box = vec![0.0; data.len()];
    mix_into(&data, shape, &partner, 0.37, &mut serial_mix).unwrap();
    paste_box_into(&data, shape, &partner, bbox, &mut serial_box).unwrap();
    for threads in [1, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (mix, pasted) = pool.install(|| {
            let mut mix = vec![0.0; data.len()];
            let mut pasted = vec![0.0; data.len()];
            mix_into_par(&data, shape, &partner, 0.37, &mut mix).unwrap();
            paste_box_into_par(&data, shape, &partner, bbox, &mut pasted).unwrap();
            (mix, pasted)
        });
        assert_eq!(mix, serial_mix, "{threads} threads");
        assert_eq!(pasted, serial_box, "{threads} threads");
    }
}

#[test]
fn apply_into_does_not_allocate_once_the_partner_buffer_is_warm() {
    let shape = ImageShape::new(3, 32, 32);
    let data = normal_batch(64, shape, 1);
    let mut out = vec![0.0; data.len()];
    let mut partner = Vec::with_capacity(64);
    let (m, c) = (Mixup::new(1.0).unwrap(), CutMix::new(1.0).unwrap());
    let mut rng = Rng::seed_from_u64(3);
    let n = allocations_in(|| {
        for _ in 0..10 {
            m.apply_into(&data, shape, &mut rng, &mut partner, &mut out)
                .unwrap();
            c.apply_into(&data, shape, &mut rng, &mut partner, &mut out)
                .unwrap();
        }
    });
    assert_eq!(n, 0);
    // The counter works: the allocating form is seen.
    assert!(allocations_in(|| drop(m.apply(&data, shape, &mut rng).unwrap())) > 0);
}

// ---------------------------------------------------------------------------------------------
// Derangements
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn derangement_is_a_permutation_without_fixed_points(n in 2usize..300, seed in any::<u64>()) {
        let mut r = Rng::seed_from_u64(seed);
        let d = derangement(n, &mut r).unwrap();
        prop_assert!(is_permutation(&d));
        prop_assert!(d.iter().enumerate().all(|(i, &v)| i != v));
        // The documented stream.
        prop_assert_eq!(d, reference_derangement(n, &mut Rng::seed_from_u64(seed)));
    }

    #[test]
    fn permutation_partner_is_rng_permutation(n in 0usize..100, seed in any::<u64>()) {
        let mut buf = vec![7; 3];
        Partner::Permutation.draw_into(n, &mut Rng::seed_from_u64(seed), &mut buf).unwrap();
        prop_assert_eq!(buf, Rng::seed_from_u64(seed).permutation(n));
    }
}

#[test]
fn derangements_of_four_are_uniform() {
    let mut r = Rng::seed_from_u64(2024);
    let mut counts: BTreeMap<Vec<usize>, u32> = BTreeMap::new();
    let mut buf = Vec::new();
    for _ in 0..90_000 {
        derangement_into(4, &mut r, &mut buf).unwrap();
        *counts.entry(buf.clone()).or_default() += 1;
    }
    // D(4) = 9; each expected 10,000 (σ ≈ 94): ±600 is over 6σ.
    assert_eq!(counts.len(), 9, "{counts:?}");
    for (d, c) in &counts {
        assert!(d.iter().enumerate().all(|(i, &v)| i != v));
        assert!(
            (9_400..=10_600).contains(c),
            "{d:?}: {c} of 90,000 ({counts:?})"
        );
    }
}

#[test]
fn derangement_regressions_small_n() {
    let mut r = Rng::seed_from_u64(1);
    assert_eq!(derangement(0, &mut r).unwrap(), Vec::<usize>::new());
    assert_eq!(
        derangement(1, &mut r),
        Err(BatchError::NoDerangement { n: 1 })
    );
    for _ in 0..50 {
        assert_eq!(derangement(2, &mut r).unwrap(), vec![1, 0]);
        let d3 = derangement(3, &mut r).unwrap();
        assert!(d3 == vec![1, 2, 0] || d3 == vec![2, 0, 1], "{d3:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Beta, Gamma, normal
// ---------------------------------------------------------------------------------------------

fn moments(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

#[test]
fn standard_normal_has_mean_0_and_variance_1() {
    let mut r = Rng::seed_from_u64(5);
    let xs: Vec<f64> = (0..200_000).map(|_| standard_normal(&mut r)).collect();
    let (m, v) = moments(&xs);
    assert!(m.abs() < 0.01, "mean {m}");
    assert!((v - 1.0).abs() < 0.02, "variance {v}");
}

#[test]
fn gamma_moments_match_shape() {
    for (k, a) in [0.1, 0.5, 1.0, 3.0, 10.0].into_iter().enumerate() {
        let g = Gamma::new(a).unwrap();
        let mut r = Rng::seed_from_u64(100 + k as u64);
        let xs: Vec<f64> = (0..200_000).map(|_| g.sample(&mut r)).collect();
        assert!(xs.iter().all(|&x| x >= 0.0 && x.is_finite()));
        let (m, v) = moments(&xs);
        // Gamma(a, 1): mean a, variance a.
        assert!((m - a).abs() < 0.03 * a, "Gamma({a}) mean {m}");
        assert!((v - a).abs() < 0.1 * a, "Gamma({a}) variance {v}");
    }
}

#[test]
fn beta_moments_match_parameters() {
    let params = [
        (0.2, 0.2),
        (0.5, 0.5),
        (1.0, 1.0),
        (2.0, 2.0),
        (5.0, 5.0),
        (0.3, 3.0),
        (4.0, 0.7),
    ];
    for (k, (a, b)) in params.into_iter().enumerate() {
        let beta = Beta::new(a, b).unwrap();
        let mut r = Rng::seed_from_u64(7 + k as u64);
        let xs: Vec<f64> = (0..100_000).map(|_| beta.sample(&mut r)).collect();
        assert!(
            xs.iter().all(|x| (0.0..=1.0).contains(x)),
            "Beta({a}, {b}) left [0, 1]"
        );
        let (m, v) = moments(&xs);
        let mean = a / (a + b);
        let var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
        assert!(
            (m - mean).abs() < 0.01,
            "Beta({a}, {b}) mean {m}, expected {mean}"
        );
        assert!(
            (v - var).abs() < 0.1 * var,
            "Beta({a}, {b}) variance {v}, expected {var}"
        );
    }
}

#[test]
fn beta_1_1_is_uniform() {
    let beta = Beta::symmetric(1.0).unwrap();
    let mut r = Rng::seed_from_u64(77);
    let mut deciles = [0u32; 10];
    for _ in 0..100_000 {
        deciles[((beta.sample(&mut r) * 10.0) as usize).min(9)] += 1;
    }
    for c in deciles {
        assert!((9_500..=10_500).contains(&c), "{deciles:?}");
    }
}

#[test]
fn beta_with_tiny_alpha_stays_finite_and_splits_between_0_and_1() {
    // Gamma(0.01) draws underflow f64 half the time; the log-space ratio must not give NaN.
    let beta = Beta::symmetric(0.01).unwrap();
    let mut r = Rng::seed_from_u64(3);
    let xs: Vec<f64> = (0..20_000).map(|_| beta.sample(&mut r)).collect();
    assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
    let low = xs.iter().filter(|&&x| x < 0.01).count();
    let high = xs.iter().filter(|&&x| x > 0.99).count();
    assert!(low > 9_000 && high > 9_000, "{low} near 0, {high} near 1");
}

// ---------------------------------------------------------------------------------------------
// The CutMixPick pool, pick and gather
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct PoolProblem {
    cut: CutMixProblem,
    n_run: usize,
}

impl PoolProblem {
    fn strategy() -> impl Strategy<Value = Self> {
        (CutMixProblem::strategy(), 1usize..5).prop_map(|(cut, n_run)| PoolProblem { cut, n_run })
    }

    /// `n_run` CutMix calls in sequence on one generator, concatenated.
    fn reference(&self) -> Vec<f32> {
        let c = &self.cut;
        let mut rng = Rng::seed_from_u64(c.seed);
        let op = CutMix::new(c.alpha).unwrap();
        (0..self.n_run)
            .flat_map(|_| op.apply(&c.data, c.shape, &mut rng).unwrap().images)
            .collect()
    }

    fn run(&self) -> PoolOutput {
        let c = &self.cut;
        cutmix_pool(
            &c.data,
            c.shape,
            c.alpha,
            self.n_run,
            &mut Rng::seed_from_u64(c.seed),
        )
        .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn pool_rows_are_recorded_cutmixes(p in PoolProblem::strategy()) {
        let pool = p.run();
        let (n, s) = (p.cut.n, p.cut.shape);
        prop_assert_eq!(pool.len(), p.n_run * n);
        prop_assert_eq!(pool.images.len(), p.n_run * n * s.len());
        prop_assert_eq!((pool.n, pool.n_run, pool.shape), (n, p.n_run, s));
        prop_assert_eq!(&pool.images, &p.reference());
        for run in 0..p.n_run {
            let rows = &pool.rows[run * n..(run + 1) * n];
            let partners: Vec<usize> = rows.iter().map(|r| r.partner).collect();
            prop_assert!(is_permutation(&partners));
            for (i, row) in rows.iter().enumerate() {
                prop_assert_eq!((row.run, row.source), (run, i));
                prop_assert!(row.partner != row.source);
                prop_assert_eq!(row.bbox, rows[0].bbox, "one box per run");
                prop_assert_eq!(row.lambda, row.bbox.lambda(s));
                // The row is its source with its partner's box, pixel by pixel.
                let img = pool.image(run * n + i);
                for c in 0..s.channels {
                    for y in 0..s.height {
                        for x in 0..s.width {
                            let from = if row.bbox.contains(y, x) { row.partner } else { row.source };
                            prop_assert_eq!(
                                img[(c * s.height + y) * s.width + x],
                                p.cut.data[idx(s, from, c, y, x)]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pick_rows_takes_the_top_scores(
        scores in proptest::collection::vec(
            prop_oneof![8 => (-3i32..4).prop_map(|v| v as f32), 1 => Just(f32::NAN)], 0..40),
        n in 0usize..50,
    ) {
        let got = top_rows(&scores, n);
        // Reference: rank of row r = rows strictly ahead of it (higher score, NaN highest,
        // equal scores ordered by index); take ranks 0..n.
        let ahead = |a: usize, b: usize| {
            let (x, y) = (scores[a], scores[b]);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => a < b,
                (true, false) => true,
                (false, true) => false,
                _ => x > y || (x == y && a < b),
            }
        };
        let mut expected = vec![usize::MAX; scores.len()];
        for r in 0..scores.len() {
            let rank = (0..scores.len()).filter(|&q| q != r && ahead(q, r)).count();
            expected[rank] = r;
        }
        expected.truncate(n.min(scores.len()));
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn pick_regressions() {
    // Ties at the boundary go to the lower row; output is in descending score order.
    assert_eq!(top_rows(&[1.0, 2.0, 2.0, 0.5], 2), vec![1, 2]);
    assert_eq!(top_rows(&[1.0, 2.0, 2.0, 0.5], 1), vec![1]);
    assert_eq!(
        top_rows(&[0.0, -0.0, 0.0], 2),
        vec![0, 1],
        "−0 ties with +0"
    );
    // More picks than rows keeps all (the reference's n_pick = min(len, n_pick)).
    assert_eq!(top_rows(&[3.0, 1.0, 2.0], 64), vec![0, 2, 1]);
    // NaN ranks highest, as torch's ascending sort puts it last and the reference keeps the end.
    assert_eq!(top_rows(&[1.0, f32::NAN, 5.0], 2), vec![1, 2]);
    assert_eq!(
        top_rows(&[f32::INFINITY, f32::NEG_INFINITY, 0.0], 3),
        vec![0, 2, 1]
    );
    assert!(top_rows(&[], 4).is_empty());
}

#[test]
fn pick_and_gather_a_pool() {
    let shape = ImageShape::new(3, 6, 5);
    let data = distinct_batch(8, shape, 1);
    let pool = cutmix_pool(&data, shape, 1.0, 2, &mut Rng::seed_from_u64(4)).unwrap();
    let scores: Vec<f32> = (0..16).map(|r| ((r * 7) % 16) as f32).collect();
    let rows = pick_rows(&pool, &scores, 8).unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|&r| scores[r] >= 8.0), "{rows:?}");
    let (images, prov) = pool.gather(&rows).unwrap();
    assert_eq!(images, gather_rows(&pool.images, shape, &rows).unwrap());
    for (k, &r) in rows.iter().enumerate() {
        assert_eq!(
            &images[k * shape.len()..(k + 1) * shape.len()],
            pool.image(r)
        );
        assert_eq!(prov[k], pool.rows[r]);
    }
    assert_eq!(
        pick_rows(&pool, &scores[..15], 8),
        Err(BatchError::ScoreLength { got: 15, rows: 16 })
    );
    assert_eq!(
        gather_rows(&pool.images, shape, &[0, 16]),
        Err(BatchError::RowOutOfRange { row: 16, rows: 16 })
    );
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_parameters_are_rejected_with_their_name_and_value() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = Mixup::new(bad).unwrap_err();
        assert!(
            matches!(e, BatchError::InvalidParameter { name: "alpha", .. }),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("alpha") && e.to_string().contains(&bad.to_string()),
            "{e}"
        );
        assert!(CutMix::new(bad).is_err());
        assert!(Gamma::new(bad).unwrap_err().to_string().contains("shape"));
        assert!(
            Beta::new(1.0, bad)
                .unwrap_err()
                .to_string()
                .contains("beta")
        );
    }
    let shape = ImageShape::new(3, 4, 4);
    let data = normal_batch(2, shape, 0);
    let mut rng = Rng::seed_from_u64(0);
    let e = mixup(&data[..47], shape, 1.0, &mut rng).unwrap_err();
    assert!(
        matches!(
            e,
            BatchError::BatchLength {
                len: 47,
                image_len: 48,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("47") && e.to_string().contains("3×4×4"),
        "{e}"
    );
    let e = cutmix(&[], ImageShape::new(3, 0, 4), 1.0, &mut rng).unwrap_err();
    assert!(matches!(e, BatchError::EmptyShape { .. }), "{e:?}");
    let e = cutmix_pool(&data, shape, 1.0, 0, &mut rng).unwrap_err();
    assert_eq!(e, BatchError::InvalidRuns { n_run: 0 });
    assert!(e.to_string().contains("n_run"), "{e}");
    let mut short = vec![0.0; 95];
    let e = Mixup::new(1.0)
        .unwrap()
        .apply_into(&data, shape, &mut rng, &mut Vec::new(), &mut short)
        .unwrap_err();
    assert_eq!(
        e,
        BatchError::OutputLength {
            expected: 96,
            got: 95
        }
    );
    let mut out = vec![0.0; 96];
    assert_eq!(
        mix_into(&data, shape, &[0, 2], 0.5, &mut out),
        Err(BatchError::PartnerOutOfRange {
            index: 1,
            partner: 2,
            n: 2
        })
    );
    assert_eq!(
        mix_into(&data, shape, &[0], 0.5, &mut out),
        Err(BatchError::PartnerLength { got: 1, n: 2 })
    );
    let e = paste_box_into(
        &data,
        shape,
        &[1, 0],
        BBox {
            y1: 0,
            y2: 5,
            x1: 0,
            x2: 1,
        },
        &mut out,
    )
    .unwrap_err();
    assert!(
        matches!(e, BatchError::BoxOutOfRange { y2: 5, .. }),
        "{e:?}"
    );
}

#[test]
fn empty_batches_draw_and_return_nothing() {
    let shape = ImageShape::new(3, 4, 4);
    let mut r1 = Rng::seed_from_u64(1);
    let out = cutmix(&[], shape, 1.0, &mut r1).unwrap();
    assert!(out.images.is_empty() && out.partner.is_empty());
    let mut r2 = Rng::seed_from_u64(1);
    let pool = cutmix_pool(&[], shape, 1.0, 3, &mut r2).unwrap();
    assert!(pool.is_empty() && pool.images.is_empty());
    // Every run still draws its λ and box, as three calls would.
    for _ in 1..3 {
        cutmix(&[], shape, 1.0, &mut r1).unwrap();
    }
    assert_eq!(r1, r2);
    assert!(
        mixup(&[], shape, 1.0, &mut Rng::seed_from_u64(1))
            .unwrap()
            .images
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Per sample: one λ (and box) per row, partners from the one permutation / derangement
// ---------------------------------------------------------------------------------------------

/// A batch mixed per sample; the reference draws, from the documented order, the base seed and
/// the partners from the batch's generator, then each row's λ (and `cx`, `cy`) from its stream.
#[derive(Debug, Clone)]
struct PerSampleProblem {
    n: usize,
    shape: ImageShape,
    data: Vec<f32>,
    alpha: f64,
    seed: u64,
}

impl PerSampleProblem {
    /// `min_n` = 2 for CutMix (a batch of one has no derangement).
    fn strategy(min_n: usize) -> impl Strategy<Value = Self> {
        (
            prop_oneof![Just(0usize), min_n..12],
            shape_strategy(),
            alpha_strategy(),
            any::<u64>(),
        )
            .prop_map(|(n, shape, alpha, seed)| PerSampleProblem {
                n,
                shape,
                data: distinct_batch(n, shape, seed ^ 0xA5A5),
                alpha,
                seed,
            })
    }

    /// Mixup per row: `x'ᵢ = f32(λᵢ)·xᵢ + f32(1−λᵢ)·x_pᵢ`, partners by `rng.permutation(n)`.
    fn mixup_reference(&self) -> (Vec<f32>, Vec<usize>, Vec<f64>) {
        let mut rng = Rng::seed_from_u64(self.seed);
        let base = rng.next_u64();
        let partner = rng.permutation(self.n);
        let beta = Beta::new(self.alpha, self.alpha).unwrap();
        let lambdas: Vec<f64> = (0..self.n)
            .map(|i| {
                beta.sample(&mut Rng::from_keys(&[
                    base,
                    kd_augment::rng::domain::SAMPLE,
                    i as u64,
                ]))
            })
            .collect();
        let s = self.shape;
        let mut out = vec![0.0; self.data.len()];
        for i in 0..self.n {
            let (a, b) = (lambdas[i] as f32, (1.0 - lambdas[i]) as f32);
            for c in 0..s.channels {
                for y in 0..s.height {
                    for x in 0..s.width {
                        let own = self.data[idx(s, i, c, y, x)];
                        let other = self.data[idx(s, partner[i], c, y, x)];
                        out[idx(s, i, c, y, x)] = a * own + b * other;
                    }
                }
            }
        }
        (out, partner, lambdas)
    }

    /// CutMix per row: row i's box from its own λ₀, `cx`, `cy`; partner inside the box;
    /// λᵢ = 1 − area/(H·W).
    fn cutmix_reference(&self) -> (Vec<f32>, Vec<usize>, Vec<f64>, Vec<BBox>) {
        let mut rng = Rng::seed_from_u64(self.seed);
        let rows = RowStreams::draw(&mut rng);
        let partner = reference_derangement(self.n, &mut rng);
        let beta = Beta::new(self.alpha, self.alpha).unwrap();
        let s = self.shape;
        let boxes: Vec<BBox> = (0..self.n)
            .map(|i| {
                let mut r = rows.rng(i);
                let lam0 = beta.sample(&mut r);
                let cx = r.below(s.width as u64) as usize;
                let cy = r.below(s.height as u64) as usize;
                reference_bbox(s.height, s.width, lam0, cx, cy)
            })
            .collect();
        let lambdas = boxes
            .iter()
            .map(|b| 1.0 - ((b.y2 - b.y1) * (b.x2 - b.x1)) as f64 / (s.height * s.width) as f64)
            .collect();
        let mut out = vec![0.0; self.data.len()];
        for (i, b) in boxes.iter().enumerate() {
            for c in 0..s.channels {
                for y in 0..s.height {
                    for x in 0..s.width {
                        let inside = y >= b.y1 && y < b.y2 && x >= b.x1 && x < b.x2;
                        let from = if inside { partner[i] } else { i };
                        out[idx(s, i, c, y, x)] = self.data[idx(s, from, c, y, x)];
                    }
                }
            }
        }
        (out, partner, lambdas, boxes)
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn per_sample_mixup_matches_reference(p in PerSampleProblem::strategy(1)) {
        let got = Mixup::new(p.alpha)
            .unwrap()
            .apply_per_sample(&p.data, p.shape, &mut Rng::seed_from_u64(p.seed))
            .unwrap();
        let (images, partner, lambdas) = p.mixup_reference();
        prop_assert_eq!(bits(&got.images), bits(&images));
        prop_assert_eq!(&got.partner, &partner);
        prop_assert_eq!(&got.lambdas, &lambdas);
        prop_assert!(got.lambdas.iter().all(|l| (0.0..=1.0).contains(l)));
        let mean = if p.n == 0 { 1.0 } else { lambdas.iter().sum::<f64>() / p.n as f64 };
        prop_assert_eq!(got.lambda, mean);
        prop_assert_eq!(got.bbox, None);
        prop_assert!(got.bboxes.is_empty());
    }

    #[test]
    fn per_sample_cutmix_matches_reference_and_lambda_is_the_box_area(
        p in PerSampleProblem::strategy(2),
    ) {
        let got = CutMix::new(p.alpha)
            .unwrap()
            .apply_per_sample(&p.data, p.shape, &mut Rng::seed_from_u64(p.seed))
            .unwrap();
        let (images, partner, lambdas, boxes) = p.cutmix_reference();
        prop_assert_eq!(&got.images, &images);
        prop_assert_eq!(&got.partner, &partner);
        prop_assert!(got.partner.iter().enumerate().all(|(i, &q)| i != q));
        prop_assert_eq!(&got.bboxes, &boxes);
        prop_assert_eq!(&got.lambdas, &lambdas);
        let plane = p.shape.plane() as f64;
        for (l, b) in got.lambdas.iter().zip(&got.bboxes) {
            prop_assert_eq!(*l, 1.0 - b.area() as f64 / plane);
        }
        prop_assert_eq!(got.bbox, None);
    }

    /// Each run of the per-sample pool is one per-sample CutMix call, in sequence on the
    /// caller's generator; every row carries its own λ and box.
    #[test]
    fn per_sample_pool_is_n_run_per_sample_cutmix_calls(
        p in PerSampleProblem::strategy(2),
        n_run in 1usize..4,
    ) {
        let op = CutMix::new(p.alpha).unwrap();
        let mut rng = Rng::seed_from_u64(p.seed);
        let pool = op.pool_per_sample(&p.data, p.shape, n_run, &mut rng).unwrap();
        let mut expect = Rng::seed_from_u64(p.seed);
        prop_assert_eq!(pool.len(), n_run * p.n);
        for run in 0..n_run {
            let call = op.apply_per_sample(&p.data, p.shape, &mut expect).unwrap();
            let len = p.data.len();
            prop_assert_eq!(&pool.images[run * len..(run + 1) * len], &call.images[..]);
            for i in 0..p.n {
                let row = pool.rows[run * p.n + i];
                prop_assert_eq!(
                    (row.run, row.source, row.partner, row.lambda, row.bbox),
                    (run, i, call.partner[i], call.lambdas[i], call.bboxes[i])
                );
            }
        }
        prop_assert_eq!(rng, expect);
    }

    #[test]
    fn per_row_mixing_equals_per_batch_mixing_row_by_row(
        p in PerSampleProblem::strategy(2),
        lambda_seed in any::<u64>(),
    ) {
        // mix_rows_into / paste_boxes_into with row i's parameters = the per-batch op with them.
        let mut r = Rng::seed_from_u64(lambda_seed);
        let partner = derangement(p.n, &mut r).unwrap();
        let lambdas: Vec<f64> = (0..p.n).map(|_| r.next_f64()).collect();
        let boxes: Vec<BBox> = lambdas
            .iter()
            .map(|&l| bbox_at(p.shape, l, r.below(p.shape.width as u64) as usize, r.below(p.shape.height as u64) as usize))
            .collect();
        let len = p.shape.len();
        let mut mixed = vec![0.0; p.data.len()];
        let mut pasted = vec![0.0; p.data.len()];
        mix_rows_into(&p.data, p.shape, &partner, &lambdas, &mut mixed).unwrap();
        paste_boxes_into(&p.data, p.shape, &partner, &boxes, &mut pasted).unwrap();
        for i in 0..p.n {
            let mut one = vec![0.0; p.data.len()];
            mix_into(&p.data, p.shape, &partner, lambdas[i], &mut one).unwrap();
            prop_assert_eq!(bits(&mixed[i * len..(i + 1) * len]), bits(&one[i * len..(i + 1) * len]));
            paste_box_into(&p.data, p.shape, &partner, boxes[i], &mut one).unwrap();
            prop_assert_eq!(&pasted[i * len..(i + 1) * len], &one[i * len..(i + 1) * len]);
        }
    }
}

#[test]
fn per_sample_lambdas_and_boxes_differ_across_rows() {
    let shape = ImageShape::new(3, 32, 32);
    let data = normal_batch(64, shape, 21);
    let m = Mixup::new(1.0)
        .unwrap()
        .apply_per_sample(&data, shape, &mut Rng::seed_from_u64(5))
        .unwrap();
    let distinct: BTreeSet<u64> = m.lambdas.iter().map(|l| l.to_bits()).collect();
    assert_eq!(distinct.len(), 64, "every row draws its own λ");
    assert!(is_permutation(&m.partner));
    let c = CutMix::new(1.0)
        .unwrap()
        .apply_per_sample(&data, shape, &mut Rng::seed_from_u64(5))
        .unwrap();
    let boxes: std::collections::HashSet<BBox> = c.bboxes.iter().copied().collect();
    assert!(boxes.len() > 50, "{} distinct boxes of 64", boxes.len());
    let lambdas: BTreeSet<u64> = c.lambdas.iter().map(|l| l.to_bits()).collect();
    assert!(lambdas.len() > 10, "{} distinct λ of 64", lambdas.len());
}

#[test]
fn per_batch_outputs_list_the_one_lambda_and_box_per_row() {
    let shape = ImageShape::new(3, 8, 8);
    let data = normal_batch(6, shape, 2);
    let m = mixup(&data, shape, 1.0, &mut Rng::seed_from_u64(3)).unwrap();
    assert_eq!(m.lambdas, vec![m.lambda; 6]);
    assert!(m.bboxes.is_empty());
    let c = cutmix(&data, shape, 1.0, &mut Rng::seed_from_u64(3)).unwrap();
    assert_eq!(c.lambdas, vec![c.lambda; 6]);
    assert_eq!(c.bboxes, vec![c.bbox.unwrap(); 6]);
}

#[test]
fn per_sample_same_seed_same_output_and_empty_batches() {
    let shape = ImageShape::new(3, 8, 8);
    let data = normal_batch(8, shape, 11);
    let (m, c) = (Mixup::new(1.0).unwrap(), CutMix::new(1.0).unwrap());
    let run = |seed| {
        let mut rng = Rng::seed_from_u64(seed);
        (
            m.apply_per_sample(&data, shape, &mut rng).unwrap(),
            c.apply_per_sample(&data, shape, &mut rng).unwrap(),
            c.pool_per_sample(&data, shape, 2, &mut rng).unwrap(),
        )
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0.images, run(2).0.images);
    assert_ne!(run(1).1.images, run(2).1.images);
    assert_ne!(run(1).2.images, run(2).2.images);
    // An empty batch draws the base seed (and its empty partner list) and returns nothing.
    let mut rng = Rng::seed_from_u64(4);
    let out = c.apply_per_sample(&[], shape, &mut rng).unwrap();
    assert!(out.images.is_empty() && out.lambdas.is_empty() && out.bboxes.is_empty());
    assert_eq!(out.lambda, 1.0);
    let mut one_draw = Rng::seed_from_u64(4);
    one_draw.next_u64();
    assert_eq!(rng, one_draw);
    assert!(matches!(
        c.apply_per_sample(&data[..shape.len()], shape, &mut rng),
        Err(BatchError::NoDerangement { n: 1 })
    ));
}

#[test]
fn per_row_parameter_lists_must_match_the_batch() {
    let shape = ImageShape::new(1, 4, 4);
    let data = normal_batch(3, shape, 1);
    let mut out = vec![0.0; data.len()];
    let partner = [1, 2, 0];
    let e = mix_rows_into(&data, shape, &partner, &[0.5, 0.5], &mut out).unwrap_err();
    assert_eq!(
        e,
        BatchError::RowParamLength {
            what: "lambdas",
            got: 2,
            n: 3
        }
    );
    assert!(e.to_string().contains("2 lambdas for a batch of 3"), "{e}");
    let b = BBox::default();
    let e = paste_boxes_into(&data, shape, &partner, &[b; 4], &mut out).unwrap_err();
    assert!(matches!(
        e,
        BatchError::RowParamLength {
            what: "boxes",
            got: 4,
            n: 3
        }
    ));
    let far = BBox {
        y1: 0,
        y2: 5,
        x1: 0,
        x2: 1,
    };
    let e = paste_boxes_into(&data, shape, &partner, &[b, far, b], &mut out).unwrap_err();
    assert!(matches!(e, BatchError::BoxOutOfRange { y2: 5, .. }), "{e}");
}

#[test]
fn per_row_parallel_application_equals_serial_with_1_and_4_threads() {
    let shape = ImageShape::new(3, 16, 16);
    let data = normal_batch(37, shape, 4);
    let mut rng = Rng::seed_from_u64(8);
    let partner = derangement(37, &mut rng).unwrap();
    let lambdas: Vec<f64> = (0..37).map(|_| rng.next_f64()).collect();
    let boxes: Vec<BBox> = lambdas
        .iter()
        .map(|&l| bbox_at(shape, l, rng.below(16) as usize, rng.below(16) as usize))
        .collect();
    let mut serial_mix = vec![0.0; data.len()];
    let mut serial_box = vec![0.0; data.len()];
    mix_rows_into(&data, shape, &partner, &lambdas, &mut serial_mix).unwrap();
    paste_boxes_into(&data, shape, &partner, &boxes, &mut serial_box).unwrap();
    for threads in [1, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (mix, pasted) = pool.install(|| {
            let mut mix = vec![0.0; data.len()];
            let mut pasted = vec![0.0; data.len()];
            mix_rows_into_par(&data, shape, &partner, &lambdas, &mut mix).unwrap();
            paste_boxes_into_par(&data, shape, &partner, &boxes, &mut pasted).unwrap();
            (mix, pasted)
        });
        assert_eq!(bits(&mix), bits(&serial_mix), "{threads} threads");
        assert_eq!(pasted, serial_box, "{threads} threads");
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput (run with `cargo test --release -p kd-augment --test batch_ops -- --ignored
// --nocapture`; single thread)
// ---------------------------------------------------------------------------------------------

fn time_batches(label: &str, batches: usize, mut f: impl FnMut()) {
    use std::time::Instant;
    for _ in 0..batches / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..batches {
        f();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{label}: {:.0} images/s ({:.1} µs/batch of 64)",
        (batches * 64) as f64 / secs,
        secs / batches as f64 * 1e6
    );
}

#[test]
#[ignore = "timing; run in release"]
fn throughput() {
    for side in [32, 64] {
        let shape = ImageShape::new(3, side, side);
        let data = normal_batch(64, shape, 1);
        let mut out = vec![0.0; data.len()];
        let mut partner = Vec::with_capacity(64);
        let mut rng = Rng::seed_from_u64(1);
        let (m, c) = (Mixup::new(1.0).unwrap(), CutMix::new(1.0).unwrap());
        let batches = if side == 32 { 20_000 } else { 5_000 };
        time_batches(&format!("mixup 64×{shape}"), batches, || {
            m.apply_into(&data, shape, &mut rng, &mut partner, &mut out)
                .unwrap();
            std::hint::black_box(&out);
        });
        time_batches(&format!("cutmix 64×{shape}"), batches, || {
            c.apply_into(&data, shape, &mut rng, &mut partner, &mut out)
                .unwrap();
            std::hint::black_box(&out);
        });
        time_batches(
            &format!("cutmix pool n_run=2, 64×{shape}"),
            batches / 2,
            || {
                std::hint::black_box(c.pool(&data, shape, 2, &mut rng).unwrap());
            },
        );
    }
}
