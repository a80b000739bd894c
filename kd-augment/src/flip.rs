//! Random horizontal flip ([`Flip`]), torchvision's `RandomHorizontalFlip(p)`.
//!
//! torchvision flips when `torch.rand(1) < p`; here one [`Rng::bernoulli`] draw (`next_f64() < p`)
//! is made on every application, whatever `p` (also 0 or 1), so the stream consumed never depends
//! on the parameters or the image. p = 0.5 is the default of torchvision and of every reference.

use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;
use thiserror::Error;

/// Invalid flip parameters.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FlipError {
    /// A probability outside [0, 1] (or NaN).
    #[error("flip probability p must be in [0, 1], got {p}")]
    Probability {
        /// The rejected value.
        p: f64,
    },
}

/// Horizontal flip with probability `p`: one coin per application.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flip {
    p: f64,
}

impl Default for Flip {
    /// p = 0.5.
    fn default() -> Self {
        Flip { p: 0.5 }
    }
}

impl Flip {
    /// A flip applied with probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Flip, FlipError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(FlipError::Probability { p });
        }
        Ok(Flip { p })
    }

    /// The probability of flipping.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Draws the decision: one [`Rng::bernoulli`] call.
    #[inline]
    pub fn decide(&self, rng: &mut Rng) -> bool {
        rng.bernoulli(self.p)
    }
}

/// Writes `input` mirrored left–right into `out` (both CHW of `shape`).
///
/// # Panics
/// If either length differs from `shape.len()`.
pub fn hflip_into(input: &[u8], shape: ImageShape, out: &mut [u8]) {
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
    if shape.width == 0 {
        return;
    }
    for (src, dst) in input
        .chunks_exact(shape.width)
        .zip(out.chunks_exact_mut(shape.width))
    {
        // A zip with a reversed iterator over equal-length rows compiles to a vector shuffle.
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
}

/// Mirrors a CHW image of `shape` left–right in place.
///
/// # Panics
/// If `image.len()` differs from `shape.len()`.
pub fn hflip_in_place(image: &mut [u8], shape: ImageShape) {
    assert_eq!(
        image.len(),
        shape.len(),
        "image has {} bytes, shape {shape} needs {}",
        image.len(),
        shape.len()
    );
    if shape.width == 0 {
        return;
    }
    for row in image.chunks_exact_mut(shape.width) {
        row.reverse();
    }
}

impl Transform for Flip {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        if self.decide(rng) {
            hflip_into(input, shape, out);
        } else {
            out.copy_from_slice(input);
        }
    }
}
