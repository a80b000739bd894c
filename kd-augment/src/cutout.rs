//! Cutout (DeVries & Taylor, 2017) as the references implement it ([`Cutout`]).
//!
//! For each of `n_holes` holes, the centre is drawn as `y ~ randint(H)` then `x ~ randint(W)`
//! (two [`Rng::below`] calls per hole, in that order), and the hole covers rows `y1..y2` and
//! columns `x1..x2` with
//!
//! ```text
//! y1 = clip(y − L/2, 0, H)   y2 = clip(y + L/2, 0, H)   (L/2 rounded down; same for x with W)
//! ```
//!
//! so a hole is `2·(L/2)` pixels square (L − 1 for odd L) and smaller where it is clipped at a
//! border. Holes may overlap. Every channel of the hole is set to the fill. This is kd_data's
//! `transforms/cutout.py` (the original authors' code) and Good-DA-in-KD's `loops.py::cutout`
//! (one hole of 8 pixels on CIFAR-100, 16 on Tiny ImageNet).
//!
//! The fill: the references multiply the image by a 0/1 mask. kd_data applies Cutout after
//! `ToTensor` and before `Normalize`, so its hole is black: [`CutoutFill::Zero`]. Good-DA-in-KD
//! applies it to the *normalised* tensor, where 0 is the dataset mean, so its hole is the mean
//! colour. On `u8` images the nearest bytes of the mean ([`CutoutFill::from_mean`]) approximate
//! that (e.g. 0.5071·255 = 129.3 → 129); for the exact value, run [`Cutout::cut_in_place`] on the
//! normalised `f32` image with a fill of 0.0.

use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;
use thiserror::Error;

/// Invalid Cutout parameters, or a fill that does not match an image.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CutoutError {
    /// No holes.
    #[error("cutout n_holes must be at least 1, got {n_holes}")]
    NoHoles {
        /// The rejected value.
        n_holes: usize,
    },
    /// A hole of length 0.
    #[error("cutout length must be at least 1, got {length}")]
    ZeroLength {
        /// The rejected value.
        length: usize,
    },
    /// A per-channel fill with no values.
    #[error("cutout fill must have one value, or one per channel; got an empty list")]
    EmptyFill,
    /// A per-channel fill whose length is not the image's channel count.
    #[error("cutout fill has {values} values but the image has {channels} channels")]
    FillChannels {
        /// Number of fill values.
        values: usize,
        /// Channels of the image.
        channels: usize,
    },
}

/// What a Cutout hole is set to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CutoutFill {
    /// Black, as kd_data's Cutout (applied before normalisation).
    Zero,
    /// One value for all channels, or one per channel: the dataset mean from
    /// [`CutoutFill::from_mean`] reproduces Good-DA-in-KD's hole up to rounding to bytes.
    Value(Vec<u8>),
}

impl CutoutFill {
    /// The dataset mean colour, given as fractions of 255 (a `Normalize`'s `mean`), each rounded
    /// to the nearest byte.
    pub fn from_mean(mean: &[f32]) -> CutoutFill {
        CutoutFill::Value(
            mean.iter()
                .map(|&m| (m * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
    }

    /// The fill of channel `c`; for a per-channel value, `c` must be below its length.
    #[inline]
    pub fn value(&self, c: usize) -> u8 {
        match self {
            CutoutFill::Zero => 0,
            CutoutFill::Value(v) if v.len() == 1 => v[0],
            CutoutFill::Value(v) => v[c],
        }
    }

    /// Whether this fill applies to images with `channels` channels.
    pub fn check(&self, channels: usize) -> Result<(), CutoutError> {
        match self {
            CutoutFill::Value(v) if v.len() != 1 && v.len() != channels => {
                Err(CutoutError::FillChannels {
                    values: v.len(),
                    channels,
                })
            }
            _ => Ok(()),
        }
    }
}

/// One hole: rows `y1..y2` and columns `x1..x2` (half-open, already clipped to the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hole {
    /// First row.
    pub y1: usize,
    /// One past the last row.
    pub y2: usize,
    /// First column.
    pub x1: usize,
    /// One past the last column.
    pub x2: usize,
}

impl Hole {
    /// Number of pixels per channel the hole covers.
    pub fn area(&self) -> usize {
        (self.y2 - self.y1) * (self.x2 - self.x1)
    }
}

/// Cutout: `n_holes` square holes of side `length` (before clipping) set to the fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cutout {
    n_holes: usize,
    length: usize,
    fill: CutoutFill,
}

impl Cutout {
    /// `n_holes` holes of side `length` (8 on CIFAR-100 and 16 on Tiny ImageNet in Good-DA-in-KD;
    /// 16 in kd_data's `auto` mode).
    pub fn new(n_holes: usize, length: usize, fill: CutoutFill) -> Result<Cutout, CutoutError> {
        if n_holes == 0 {
            return Err(CutoutError::NoHoles { n_holes });
        }
        if length == 0 {
            return Err(CutoutError::ZeroLength { length });
        }
        if matches!(&fill, CutoutFill::Value(v) if v.is_empty()) {
            return Err(CutoutError::EmptyFill);
        }
        Ok(Cutout {
            n_holes,
            length,
            fill,
        })
    }

    /// The number of holes.
    pub fn n_holes(&self) -> usize {
        self.n_holes
    }

    /// The side of a hole before clipping.
    pub fn length(&self) -> usize {
        self.length
    }

    /// The fill.
    pub fn fill(&self) -> &CutoutFill {
        &self.fill
    }

    /// Draws one hole for an image of `height × width`: the centre row, then the centre column.
    ///
    /// # Panics
    /// If `height` or `width` is 0.
    #[inline]
    pub fn hole(&self, height: usize, width: usize, rng: &mut Rng) -> Hole {
        let half = self.length / 2;
        let y = rng.below(height as u64) as usize;
        let x = rng.below(width as u64) as usize;
        Hole {
            y1: y.saturating_sub(half),
            y2: (y + half).min(height),
            x1: x.saturating_sub(half),
            x2: (x + half).min(width),
        }
    }

    /// Draws the holes and sets them to `fill` (one value, or one per channel) in a CHW image of
    /// any element type: `f32` with a fill of 0.0 on a normalised image is exactly Good-DA-in-KD's
    /// Cutout (up to the sign of zero: the reference's mask product gives −0.0 on negative values).
    ///
    /// # Panics
    /// If `image.len()` differs from `shape.len()`, the image is empty, or `fill` has neither one
    /// value nor one per channel.
    pub fn cut_in_place<T: Copy>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        rng: &mut Rng,
        fill: &[T],
    ) {
        assert!(
            fill.len() == 1 || fill.len() == shape.channels,
            "cutout fill has {} values but the image has {} channels",
            fill.len(),
            shape.channels
        );
        let f = |c: usize| if fill.len() == 1 { fill[0] } else { fill[c] };
        self.cut_with(image, shape, rng, f);
    }

    fn cut_with<T: Copy>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        rng: &mut Rng,
        fill: impl Fn(usize) -> T,
    ) {
        assert_eq!(
            image.len(),
            shape.len(),
            "image has {} values, shape {shape} needs {}",
            image.len(),
            shape.len()
        );
        assert!(
            shape.height > 0 && shape.width > 0,
            "cutout of an empty image ({shape})"
        );
        for _ in 0..self.n_holes {
            let hole = self.hole(shape.height, shape.width, rng);
            fill_hole(image, shape, hole, &fill);
        }
    }
}

/// Sets `hole` of every channel of a CHW image to `fill(channel)`.
fn fill_hole<T: Copy>(image: &mut [T], shape: ImageShape, hole: Hole, fill: &impl Fn(usize) -> T) {
    let plane = shape.plane();
    for c in 0..shape.channels {
        let v = fill(c);
        let p = &mut image[c * plane..(c + 1) * plane];
        for y in hole.y1..hole.y2 {
            p[y * shape.width + hole.x1..y * shape.width + hole.x2].fill(v);
        }
    }
}

impl Transform for Cutout {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        if let Err(e) = self.fill.check(shape.channels) {
            panic!("{e}");
        }
        out.copy_from_slice(input);
        self.cut_with(out, shape, rng, |c| self.fill.value(c));
    }
}
