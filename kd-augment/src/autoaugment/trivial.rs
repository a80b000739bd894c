//! TrivialAugmentWide (Müller and Hutter, 2021) as torchvision 0.26's
//! `TrivialAugmentWide(num_magnitude_bins=31, interpolation=NEAREST, fill)` on uint8 tensors.
//!
//! Not in the references. One op per image, drawn uniformly from the 14-op space; then, for
//! ops with magnitudes, a bin drawn uniformly from `0..num_magnitude_bins`; then, for signed
//! ops, a fair bit that negates the magnitude: torchvision's draws, in its order. The wide
//! table has shear up to 0.99, translation up to 32 px whatever the image size, rotation up to
//! 135°, colour factors `1 ± 0.99`, posterize 8 → 2 bits, solarize 255 → 0.

use super::randaugment::{SPACE, Space, space_magnitude};
use super::{AutoAugmentError, AutoOp, Semantics, apply_op_with, check_image, coin};
use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;

/// torchvision's `TrivialAugmentWide`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrivialAugmentWide {
    num_magnitude_bins: usize,
    fill: u8,
}

impl Default for TrivialAugmentWide {
    /// torchvision's defaults: 31 bins, black fill.
    fn default() -> Self {
        TrivialAugmentWide {
            num_magnitude_bins: 31,
            fill: 0,
        }
    }
}

impl TrivialAugmentWide {
    /// TrivialAugmentWide with `num_magnitude_bins` bins, black fill.
    ///
    /// # Errors
    /// If `num_magnitude_bins < 2`.
    pub fn new(num_magnitude_bins: usize) -> Result<Self, AutoAugmentError> {
        if num_magnitude_bins < 2 {
            return Err(AutoAugmentError::TooFewBins(num_magnitude_bins));
        }
        Ok(TrivialAugmentWide {
            num_magnitude_bins,
            fill: 0,
        })
    }

    /// The same with `fill` for the pixels geometric ops bring in (all channels).
    pub const fn with_fill(mut self, fill: u8) -> Self {
        self.fill = fill;
        self
    }

    /// The number of magnitude bins.
    pub const fn num_magnitude_bins(&self) -> usize {
        self.num_magnitude_bins
    }

    /// The op space, in torchvision's order.
    pub const fn op_space() -> &'static [AutoOp; 14] {
        &SPACE
    }

    /// torchvision's wide magnitude table: bin `bin` of `op` for `num_bins` bins, with
    /// whether the op is signed; `None` for ops without magnitude.
    ///
    /// # Panics
    /// If `bin >= num_bins`.
    pub fn magnitude(op: AutoOp, bin: usize, num_bins: usize) -> Option<(f32, bool)> {
        // The wide table does not depend on the image size.
        space_magnitude(Space::Wide, op, bin, num_bins, ImageShape::new(1, 1, 1))
    }

    /// Draws the op and its signed magnitude (as `_apply_op` receives it): op index, then the
    /// bin for ops with magnitudes, then the sign for signed ops.
    pub fn draw(&self, rng: &mut Rng) -> (AutoOp, f64) {
        let op = SPACE[rng.below(SPACE.len() as u64) as usize];
        if Self::magnitude(op, 0, self.num_magnitude_bins).is_none() {
            return (op, 0.0);
        }
        let bin = rng.below(self.num_magnitude_bins as u64) as usize;
        let (m, signed) =
            Self::magnitude(op, bin, self.num_magnitude_bins).expect("op has magnitudes");
        let m = m as f64;
        (op, if signed && coin(rng) { -m } else { m })
    }

    /// Applies `op` with `magnitude` (from [`TrivialAugmentWide::draw`]).
    ///
    /// # Panics
    /// If the image has neither 1 nor 3 channels or the buffers do not match `shape`.
    pub fn apply_op(
        &self,
        op: AutoOp,
        magnitude: f64,
        input: &[u8],
        shape: ImageShape,
        out: &mut [u8],
    ) {
        check_image(input, shape, out);
        apply_op_with(
            Semantics::Current,
            op,
            magnitude,
            self.fill,
            input,
            shape,
            out,
        );
    }
}

impl Transform for TrivialAugmentWide {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        let (op, m) = self.draw(rng);
        self.apply_op(op, m, input, shape, out);
    }
}
