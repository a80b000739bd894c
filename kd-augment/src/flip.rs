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
        reverse_row(dst, src);
    }
}

/// Writes `src` reversed into `dst` (same length), sixteen bytes at a time.
///
/// Reversing fixed 16-byte arrays compiles to a few vector shuffles whatever the row length;
/// the plain reversed-iterator loop was vectorised only for rows longer than 32 bytes, so
/// CIFAR's 32-byte rows ran byte by byte, four times slower.
#[inline]
pub(crate) fn reverse_row(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.rchunks_exact(16);
    for (d16, s16) in (&mut d).zip(&mut s) {
        let mut a: [u8; 16] = s16.try_into().expect("a chunk of 16");
        a.reverse();
        d16.copy_from_slice(&a);
    }
    for (x, y) in d
        .into_remainder()
        .iter_mut()
        .zip(s.remainder().iter().rev())
    {
        *x = *y;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_row_reverses_every_length() {
        for n in 0..100 {
            let src: Vec<u8> = (0..n as u8).collect();
            let mut dst = vec![0u8; n];
            reverse_row(&mut dst, &src);
            let expected: Vec<u8> = src.iter().rev().copied().collect();
            assert_eq!(dst, expected, "length {n}");
        }
    }
}
