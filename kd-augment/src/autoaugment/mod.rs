//! AutoAugment (CIFAR10, IMAGENET and SVHN policies), RandAugment and TrivialAugmentWide on
//! `u8` CHW images with 1 or 3 channels, matching torchvision's *tensor* implementation.
//!
//! # Reference semantics
//!
//! Good-DA-in-KD (reference `good-da-in-kd.md` §2 and §7) denormalises its batch, casts it to
//! uint8 and applies `torchvision.transforms.AutoAugment(policy)` of torchvision **0.10.0**
//! with NEAREST interpolation and `fill=None` (black). That is what [`AutoAugment`] does:
//!
//! * the 25 sub-policies of each policy ([`AutoAugmentPolicy::sub_policies`]), identical in
//!   0.10 and 0.26;
//! * 0.10's magnitude table ([`magnitude_v010`]): 10 bins from `torch.linspace` in float32;
//!   Shear 0–0.3 applied as `shear = degrees(m)` about the image centre (no `atan`, no corner
//!   centre, which later versions use); Translate 0–150/331 applied as `int(size · m)` pixels;
//!   Rotate 0–30°; Brightness/Color/Contrast/Sharpness factor `1 + m`, m in 0–0.9; Posterize
//!   bits `[8,8,7,7,6,6,5,5,4,4]`; Solarize thresholds `linspace(256, 0)` (bin 0 is a no-op);
//! * the draws of 0.10's `get_params`, in its order: the sub-policy id, two probabilities (an
//!   op fires when its draw `<=` its probability, compared in f32), two signs (0 negates a
//!   signed magnitude). All five are drawn on every call, so a clone of one [`Rng`] given to
//!   every image of a batch applies the same sub-policy and decisions to the whole batch, the
//!   way the reference does on its batch tensor.
//!
//! The image operations ([`ops`]) reproduce torchvision's tensor functional API bit for bit
//! (float32 blends with truncating casts, the `grid_sample` pixel convention of `F.affine`,
//! see the [`ops`] docs), and are checked against torchvision 0.26.0 fixtures.
//!
//! Beyond the references, [`RandAugment`] (2 ops, magnitude 9 of 31 bins) and
//! [`TrivialAugmentWide`] follow torchvision 0.26, whose ops differ from 0.10's in three
//! places, which [`apply_op_current`] implements: shear is `degrees(atan(m))` about the
//! top-left corner, translate magnitudes are pixels, and Solarize's bins run 255 → 0.
//!
//! Our [`Rng`] is not torch's generator, so the drawn numbers differ from torchvision's for a
//! given seed; the structure of the draws (what is drawn, how many, in which order, with which
//! distribution) is torchvision's.
//!
//! Differences from torchvision, on purpose: `fill` is one value for all channels (torchvision
//! also takes a per-channel list); on a one-channel image Color is a no-op and Contrast blends
//! towards the image's mean (0.26's behaviour; 0.10 raised for both); solarize thresholds above
//! 255 are a no-op (0.10's behaviour; 0.26 raises).

pub mod ops;
mod policy;
mod randaugment;
mod trivial;

pub use policy::{
    AutoAugment, AutoAugmentDecision, AutoAugmentPolicy, PolicyOp, SubPolicy, magnitude_v010,
};
pub use randaugment::RandAugment;
pub use trivial::TrivialAugmentWide;

use crate::rng::Rng;
use crate::shape::ImageShape;
use ops::AffineParams;
use std::cell::RefCell;

/// Errors of this module's constructors and parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoAugmentError {
    /// A policy name that is not `cifar10`, `imagenet` or `svhn`.
    #[error("unknown AutoAugment policy {0:?}: expected cifar10, imagenet or svhn")]
    UnknownPolicy(String),
    /// An operation name that is none of torchvision's.
    #[error("unknown AutoAugment operation {0:?}")]
    UnknownOp(String),
    /// `num_magnitude_bins` below 2 (torchvision's tables need two ends).
    #[error("num_magnitude_bins = {0} must be at least 2")]
    TooFewBins(usize),
    /// A RandAugment `magnitude` that is not a bin index.
    #[error("RandAugment magnitude = {magnitude} must be below num_magnitude_bins = {bins}")]
    MagnitudeOutOfRange {
        /// The magnitude (bin index) asked for.
        magnitude: usize,
        /// The number of bins.
        bins: usize,
    },
}

/// The image operations of AutoAugment, RandAugment and TrivialAugmentWide, named as in
/// torchvision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoOp {
    /// The image as it is (RandAugment and TrivialAugmentWide only).
    Identity,
    /// Horizontal shear.
    ShearX,
    /// Vertical shear.
    ShearY,
    /// Horizontal translation.
    TranslateX,
    /// Vertical translation.
    TranslateY,
    /// Rotation, counter-clockwise for positive magnitudes.
    Rotate,
    /// Brightness, factor `1 + magnitude`.
    Brightness,
    /// Saturation, factor `1 + magnitude`.
    Color,
    /// Contrast, factor `1 + magnitude`.
    Contrast,
    /// Sharpness, factor `1 + magnitude`.
    Sharpness,
    /// Keep `int(magnitude)` bits.
    Posterize,
    /// Invert values at or above the threshold `magnitude`.
    Solarize,
    /// Per-channel stretch to the full range.
    AutoContrast,
    /// Per-channel histogram equalisation.
    Equalize,
    /// `255 − x`.
    Invert,
}

impl AutoOp {
    /// Every operation, in torchvision's RandAugment order followed by `Invert`.
    pub const ALL: [AutoOp; 15] = [
        AutoOp::Identity,
        AutoOp::ShearX,
        AutoOp::ShearY,
        AutoOp::TranslateX,
        AutoOp::TranslateY,
        AutoOp::Rotate,
        AutoOp::Brightness,
        AutoOp::Color,
        AutoOp::Contrast,
        AutoOp::Sharpness,
        AutoOp::Posterize,
        AutoOp::Solarize,
        AutoOp::AutoContrast,
        AutoOp::Equalize,
        AutoOp::Invert,
    ];

    /// torchvision's name of the operation (`"ShearX"`, `"AutoContrast"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            AutoOp::Identity => "Identity",
            AutoOp::ShearX => "ShearX",
            AutoOp::ShearY => "ShearY",
            AutoOp::TranslateX => "TranslateX",
            AutoOp::TranslateY => "TranslateY",
            AutoOp::Rotate => "Rotate",
            AutoOp::Brightness => "Brightness",
            AutoOp::Color => "Color",
            AutoOp::Contrast => "Contrast",
            AutoOp::Sharpness => "Sharpness",
            AutoOp::Posterize => "Posterize",
            AutoOp::Solarize => "Solarize",
            AutoOp::AutoContrast => "AutoContrast",
            AutoOp::Equalize => "Equalize",
            AutoOp::Invert => "Invert",
        }
    }

    /// Whether the operation moves pixels (and so uses `fill`).
    pub const fn is_geometric(self) -> bool {
        matches!(
            self,
            AutoOp::ShearX
                | AutoOp::ShearY
                | AutoOp::TranslateX
                | AutoOp::TranslateY
                | AutoOp::Rotate
        )
    }
}

impl std::fmt::Display for AutoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AutoOp {
    type Err = AutoAugmentError;

    /// Parses torchvision's name of an operation (exact spelling).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AutoOp::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| AutoAugmentError::UnknownOp(s.to_string()))
    }
}

/// Which torchvision `_apply_op` a magnitude is interpreted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Semantics {
    /// torchvision 0.10 (AutoAugment as the reference runs it).
    V010,
    /// torchvision ≥ 0.11 (RandAugment, TrivialAugmentWide).
    Current,
}

/// Applies `op` with `magnitude` as torchvision **0.10**'s AutoAugment does (the reference's
/// semantics): Shear `m` → `F.affine(shear = degrees(m))` about the image centre; Translate
/// `m` → `int(width · m)` or `int(height · m)` pixels; Rotate `m` degrees
/// counter-clockwise; Brightness/Color/Contrast/Sharpness factor `1 + m`; Posterize
/// `int(m)` bits; Solarize threshold `m`; the others ignore `m`. `fill` is the value of pixels
/// that geometric ops bring in from outside the image.
///
/// # Panics
/// If the buffers do not hold one image of `shape`, Color/Contrast get neither 1 nor 3
/// channels, a colour factor `1 + m` is negative, or Posterize bits are outside 0..=8.
pub fn apply_op(
    op: AutoOp,
    magnitude: f64,
    fill: u8,
    input: &[u8],
    shape: ImageShape,
    out: &mut [u8],
) {
    apply_op_with(Semantics::V010, op, magnitude, fill, input, shape, out);
}

/// Applies `op` with `magnitude` as torchvision **≥ 0.11**'s `_apply_op` does (RandAugment and
/// TrivialAugmentWide): as [`apply_op`], except Shear `m` →
/// `F.affine(shear = degrees(atan(m)), center = [0, 0])` (about the top-left corner) and
/// Translate `m` → `int(m)` pixels.
///
/// # Panics
/// As [`apply_op`].
pub fn apply_op_current(
    op: AutoOp,
    magnitude: f64,
    fill: u8,
    input: &[u8],
    shape: ImageShape,
    out: &mut [u8],
) {
    apply_op_with(Semantics::Current, op, magnitude, fill, input, shape, out);
}

fn apply_op_with(
    sem: Semantics,
    op: AutoOp,
    m: f64,
    fill: u8,
    input: &[u8],
    shape: ImageShape,
    out: &mut [u8],
) {
    let shear = |sx: f64, sy: f64| AffineParams {
        shear: [sx, sy],
        center: if sem == Semantics::Current {
            Some([0.0, 0.0])
        } else {
            None
        },
        ..AffineParams::IDENTITY
    };
    let shear_deg = |m: f64| match sem {
        Semantics::V010 => m.to_degrees(),
        Semantics::Current => m.atan().to_degrees(),
    };
    // Python's int(): truncation toward zero.
    let pixels = |m: f64, size: usize| match sem {
        Semantics::V010 => (size as f64 * m).trunc(),
        Semantics::Current => m.trunc(),
    };
    match op {
        AutoOp::Identity => out.copy_from_slice(input),
        AutoOp::ShearX => ops::affine(input, shape, &shear(shear_deg(m), 0.0), fill, out),
        AutoOp::ShearY => ops::affine(input, shape, &shear(0.0, shear_deg(m)), fill, out),
        AutoOp::TranslateX => {
            let p = AffineParams {
                translate: [pixels(m, shape.width), 0.0],
                ..AffineParams::IDENTITY
            };
            ops::affine(input, shape, &p, fill, out)
        }
        AutoOp::TranslateY => {
            let p = AffineParams {
                translate: [0.0, pixels(m, shape.height)],
                ..AffineParams::IDENTITY
            };
            ops::affine(input, shape, &p, fill, out)
        }
        AutoOp::Rotate => ops::rotate(input, shape, m, fill, out),
        AutoOp::Brightness => ops::adjust_brightness(input, shape, 1.0 + m, out),
        AutoOp::Color => ops::adjust_saturation(input, shape, 1.0 + m, out),
        AutoOp::Contrast => ops::adjust_contrast(input, shape, 1.0 + m, out),
        AutoOp::Sharpness => ops::adjust_sharpness(input, shape, 1.0 + m, out),
        AutoOp::Posterize => {
            let bits = m.trunc();
            assert!(
                (0.0..=8.0).contains(&bits),
                "posterize bits {bits} must be in 0..=8"
            );
            ops::posterize(input, shape, bits as u32, out)
        }
        AutoOp::Solarize => ops::solarize(input, shape, m, out),
        AutoOp::AutoContrast => ops::autocontrast(input, shape, out),
        AutoOp::Equalize => ops::equalize(input, shape, out),
        AutoOp::Invert => ops::invert(input, shape, out),
    }
}

/// `torch.linspace(start, end, steps)[idx]` in float32, as torch 2.11's CPU kernel computes it:
/// `step = (end − start) / (steps − 1)` in f32, then `start + step·idx` for the first half and
/// `end − step·(steps − 1 − idx)` for the second, each with a single rounding (a fused
/// multiply-add; the f64 expression is exact for the tables used here).
pub(crate) fn linspace_f32(start: f64, end: f64, steps: usize, idx: usize) -> f32 {
    debug_assert!(idx < steps);
    let (start, end) = (start as f32, end as f32);
    if steps == 1 {
        return start;
    }
    let step = (end - start) / (steps - 1) as f32;
    if idx < steps / 2 {
        (start as f64 + step as f64 * idx as f64) as f32
    } else {
        (end as f64 - step as f64 * (steps - 1 - idx) as f64) as f32
    }
}

/// Panics unless the transforms' inputs are what torchvision accepts.
fn check_image(input: &[u8], shape: ImageShape, out: &[u8]) {
    assert!(
        shape.channels == 1 || shape.channels == 3,
        "AutoAugment-style transforms need 1 or 3 channels, got shape {shape}"
    );
    assert_eq!(
        input.len(),
        shape.len(),
        "input has {} bytes, shape {shape} needs {}",
        input.len(),
        shape.len()
    );
    assert_eq!(
        out.len(),
        shape.len(),
        "output has {} bytes, shape {shape} needs {}",
        out.len(),
        shape.len()
    );
}

thread_local! {
    /// Per-thread buffer between chained ops, so `apply` allocates only on a thread's first
    /// (or first larger) image.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where the current image of a [`Chain`] lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Input,
    Out,
    Scratch,
}

/// Runs a sequence of ops from `input` to `out`, ping-ponging between `out` and a scratch
/// buffer so that every op reads and writes different memory.
struct Chain<'a> {
    input: &'a [u8],
    out: &'a mut [u8],
    scratch: &'a mut [u8],
    at: At,
}

impl Chain<'_> {
    /// Applies one op to the current image.
    fn push(&mut self, f: impl FnOnce(&[u8], &mut [u8])) {
        self.at = match self.at {
            At::Input => {
                f(self.input, self.out);
                At::Out
            }
            At::Out => {
                f(self.out, self.scratch);
                At::Scratch
            }
            At::Scratch => {
                f(self.scratch, self.out);
                At::Out
            }
        };
    }

    /// Leaves the result in `out`.
    fn finish(self) {
        match self.at {
            At::Input => self.out.copy_from_slice(self.input),
            At::Out => {}
            At::Scratch => self.out.copy_from_slice(self.scratch),
        }
    }
}

/// Runs `f` with a [`Chain`] from `input` to `out`, then leaves the result in `out`.
fn with_chain<R>(input: &[u8], out: &mut [u8], f: impl FnOnce(&mut Chain<'_>) -> R) -> R {
    let run = |scratch: &mut [u8], out: &mut [u8]| {
        let mut chain = Chain {
            input,
            out,
            scratch,
            at: At::Input,
        };
        let r = f(&mut chain);
        chain.finish();
        r
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < input.len() {
                buf.resize(input.len(), 0);
            }
            run(&mut buf[..input.len()], out)
        }
        // Only reachable if an op re-entered a transform on the same thread.
        Err(_) => run(&mut vec![0; input.len()], out),
    })
}

/// Draws torchvision's `torch.randint(2, (1,))` as a sign: `true` (negate) with probability ½.
#[inline]
fn coin(rng: &mut Rng) -> bool {
    rng.below(2) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_round_trip() {
        for op in AutoOp::ALL {
            assert_eq!(op.name().parse::<AutoOp>().unwrap(), op);
        }
        let err = "Shear".parse::<AutoOp>().unwrap_err();
        assert!(err.to_string().contains("\"Shear\""), "{err}");
    }

    #[test]
    fn linspace_ends_are_exact() {
        for &(a, b, n) in &[
            (0.0, 0.3, 10),
            (256.0, 0.0, 10),
            (0.0, 0.99, 31),
            (255.0, 0.0, 31),
        ] {
            assert_eq!(linspace_f32(a, b, n, 0), a as f32);
            assert_eq!(linspace_f32(a, b, n, n - 1), b as f32);
        }
    }

    #[test]
    fn chain_of_any_length_ends_in_out() {
        let input = [1u8, 2, 3];
        for n in 0..5 {
            let mut out = [0u8; 3];
            with_chain(&input, &mut out, |chain| {
                for _ in 0..n {
                    chain.push(|src, dst| {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = s + 10;
                        }
                    });
                }
            });
            assert_eq!(out, [1 + 10 * n, 2 + 10 * n, 3 + 10 * n]);
        }
    }
}
