//! RandAugment (Cubuk et al., 2020) as torchvision 0.26's `RandAugment(num_ops=2, magnitude=9,
//! num_magnitude_bins=31, interpolation=NEAREST, fill)` on uint8 tensors.
//!
//! Not in the references (torchvision 0.10 had no RandAugment). Per op, torchvision draws the
//! op uniformly from its 14-op space, then, for signed ops only, one fair bit that negates
//! the magnitude; the magnitude is bin `magnitude` of the op's table ([`RandAugment::magnitude`]).
//! The ops use torchvision ≥ 0.11's semantics ([`super::apply_op_current`]).

use super::{
    AutoAugmentError, AutoOp, Semantics, apply_op_with, check_image, coin, linspace_f32, with_chain,
};
use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;

/// The op space of torchvision's RandAugment and TrivialAugmentWide, in torchvision's order
/// (the index `torch.randint(14)` picks).
pub(crate) const SPACE: [AutoOp; 14] = [
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
];

/// Which of torchvision's two `_augmentation_space` tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// RandAugment's (and AutoAugment 0.26's): shear 0.3, translate 150/331 of the size,
    /// rotate 30°, colour 0.9, posterize 8 → 4 bits.
    Rand,
    /// TrivialAugmentWide's: shear 0.99, translate 32 px, rotate 135°, colour 0.99, posterize
    /// 8 → 2 bits.
    Wide,
}

/// Bin `bin` of `op`'s magnitudes in table `space` for `num_bins` bins and an image of
/// `shape`, as the float32 value torchvision's table holds, with whether the op is signed.
/// `None` for ops without magnitudes (Identity, AutoContrast, Equalize, Invert: magnitude 0).
pub(crate) fn space_magnitude(
    space: Space,
    op: AutoOp,
    bin: usize,
    num_bins: usize,
    shape: ImageShape,
) -> Option<(f32, bool)> {
    assert!(bin < num_bins, "magnitude bin {bin} out of {num_bins} bins");
    let lin = |a: f64, b: f64| linspace_f32(a, b, num_bins, bin);
    let wide = space == Space::Wide;
    let colour = if wide { 0.99 } else { 0.9 };
    Some(match op {
        AutoOp::ShearX | AutoOp::ShearY => (lin(0.0, if wide { 0.99 } else { 0.3 }), true),
        AutoOp::TranslateX if wide => (lin(0.0, 32.0), true),
        AutoOp::TranslateY if wide => (lin(0.0, 32.0), true),
        AutoOp::TranslateX => (lin(0.0, 150.0 / 331.0 * shape.width as f64), true),
        AutoOp::TranslateY => (lin(0.0, 150.0 / 331.0 * shape.height as f64), true),
        AutoOp::Rotate => (lin(0.0, if wide { 135.0 } else { 30.0 }), true),
        AutoOp::Brightness | AutoOp::Color | AutoOp::Contrast | AutoOp::Sharpness => {
            (lin(0.0, colour), true)
        }
        AutoOp::Posterize => {
            // 8 - (arange(n) / ((n - 1) / k)).round().int(): an f32 division, ties to even.
            let k = if wide { 6.0 } else { 4.0 };
            let level = (bin as f32 / ((num_bins - 1) as f64 / k) as f32).round_ties_even();
            (8.0 - level, false)
        }
        AutoOp::Solarize => (lin(255.0, 0.0), false),
        AutoOp::Identity | AutoOp::AutoContrast | AutoOp::Equalize | AutoOp::Invert => return None,
    })
}

/// torchvision's `RandAugment`: `num_ops` ops drawn uniformly (with replacement) from the
/// 14-op space, each at magnitude bin `magnitude` of `num_magnitude_bins`, applied in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandAugment {
    num_ops: usize,
    magnitude: usize,
    num_magnitude_bins: usize,
    fill: u8,
}

impl Default for RandAugment {
    /// torchvision's defaults: 2 ops, magnitude 9 of 31 bins, black fill.
    fn default() -> Self {
        RandAugment {
            num_ops: 2,
            magnitude: 9,
            num_magnitude_bins: 31,
            fill: 0,
        }
    }
}

impl RandAugment {
    /// RandAugment with `num_ops` ops at bin `magnitude` of `num_magnitude_bins`, black fill.
    ///
    /// # Errors
    /// If `num_magnitude_bins < 2` or `magnitude >= num_magnitude_bins`.
    pub fn new(
        num_ops: usize,
        magnitude: usize,
        num_magnitude_bins: usize,
    ) -> Result<Self, AutoAugmentError> {
        if num_magnitude_bins < 2 {
            return Err(AutoAugmentError::TooFewBins(num_magnitude_bins));
        }
        if magnitude >= num_magnitude_bins {
            return Err(AutoAugmentError::MagnitudeOutOfRange {
                magnitude,
                bins: num_magnitude_bins,
            });
        }
        Ok(RandAugment {
            num_ops,
            magnitude,
            num_magnitude_bins,
            fill: 0,
        })
    }

    /// The same with `fill` for the pixels geometric ops bring in (all channels).
    pub const fn with_fill(mut self, fill: u8) -> Self {
        self.fill = fill;
        self
    }

    /// Number of ops per image.
    pub const fn num_ops(&self) -> usize {
        self.num_ops
    }

    /// The magnitude bin.
    pub const fn magnitude_bin(&self) -> usize {
        self.magnitude
    }

    /// The number of magnitude bins.
    pub const fn num_magnitude_bins(&self) -> usize {
        self.num_magnitude_bins
    }

    /// The op space, in torchvision's order.
    pub const fn op_space() -> &'static [AutoOp; 14] {
        &SPACE
    }

    /// torchvision's RandAugment magnitude table: bin `bin` of `op` for `num_bins` bins and an
    /// image of `shape` (translate magnitudes are pixels, 0 to 150/331 of the size), with
    /// whether the op is signed; `None` for ops without magnitude.
    ///
    /// # Panics
    /// If `bin >= num_bins`.
    pub fn magnitude(
        op: AutoOp,
        bin: usize,
        num_bins: usize,
        shape: ImageShape,
    ) -> Option<(f32, bool)> {
        space_magnitude(Space::Rand, op, bin, num_bins, shape)
    }

    /// Draws one op and its sign exactly as torchvision does: the op index, then a fair bit
    /// for signed ops only (1 negates).
    fn draw_one(&self, rng: &mut Rng, shape: ImageShape) -> (AutoOp, f64) {
        let op = SPACE[rng.below(SPACE.len() as u64) as usize];
        match Self::magnitude(op, self.magnitude, self.num_magnitude_bins, shape) {
            None => (op, 0.0),
            Some((m, signed)) => {
                let m = m as f64;
                (op, if signed && coin(rng) { -m } else { m })
            }
        }
    }

    /// Draws the ops of one call with their signed magnitudes (as `_apply_op` receives them).
    pub fn draw(&self, rng: &mut Rng, shape: ImageShape) -> Vec<(AutoOp, f64)> {
        (0..self.num_ops)
            .map(|_| self.draw_one(rng, shape))
            .collect()
    }

    /// Applies `ops` (from [`RandAugment::draw`]) in order.
    ///
    /// # Panics
    /// If the image has neither 1 nor 3 channels or the buffers do not match `shape`.
    pub fn apply_ops(
        &self,
        ops: &[(AutoOp, f64)],
        input: &[u8],
        shape: ImageShape,
        out: &mut [u8],
    ) {
        check_image(input, shape, out);
        let fill = self.fill;
        with_chain(input, out, |chain| {
            for &(op, m) in ops {
                if op != AutoOp::Identity {
                    chain.push(|src, dst| {
                        apply_op_with(Semantics::Current, op, m, fill, src, shape, dst)
                    });
                }
            }
        });
    }
}

impl Transform for RandAugment {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        check_image(input, shape, out);
        let fill = self.fill;
        // Draw and apply op by op (no allocation); the draws do not depend on the image.
        with_chain(input, out, |chain| {
            for _ in 0..self.num_ops {
                let (op, m) = self.draw_one(rng, shape);
                if op != AutoOp::Identity {
                    chain.push(|src, dst| {
                        apply_op_with(Semantics::Current, op, m, fill, src, shape, dst)
                    });
                }
            }
        });
    }
}
