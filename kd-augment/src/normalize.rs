//! `u8` → normalised `f32` ([`Normalize`]), its inverse, and the fused CIFAR training transform
//! ([`CropFlipNormalize`]).
//!
//! [`Normalize`] computes what torchvision's `ToTensor()` followed by `Normalize(mean, std)`
//! computes on the CPU, bit for bit: `ToTensor` divides by 255 in `f32` (`img.float().div(255)`),
//! and `Normalize` subtracts the `f32` mean, then divides by the `f32` std (`sub_(mean).div_(std)`),
//! each step rounded to `f32`:
//!
//! ```text
//! out = ((x as f32 / 255.0) − mean_c) / std_c
//! ```
//!
//! As a byte has 256 values, each channel's results are tabulated once (256 entries) and
//! normalising is a table lookup per pixel. torchvision converts Python's `f64` mean and std to
//! `f32` before use; [`Normalize::from_f64`] does the same cast, so constants written as decimals
//! give the same `f32` values as in PyTorch. A mean and std of one value apply to every channel,
//! as PyTorch's broadcasting does.
//!
//! [`Normalize::denormalize_to_u8`] is Good-DA-in-KD's way back to bytes before its flip, crop and
//! AutoAugment: `x·std + mean`, `·255`, then a *truncating* cast (`(x*255).type(torch.uint8)`),
//! in `f32` in that order. Because of the truncation a byte that went through the round trip can
//! come back one lower (0.99999·255 → 254). Out-of-range values are clamped to 0..=255 (NaN → 0),
//! a deliberate difference: PyTorch's cast wraps them modulo 256 (−1.0 → 255, 256.0 → 0), which
//! never happens on the round trip of a `u8` image but would turn a slightly negative black into
//! white.

use crate::crop::{Crop, CropError};
use crate::flip::Flip;
use crate::rng::Rng;
use crate::shape::ImageShape;
use thiserror::Error;

/// Invalid normalisation constants, or a mismatch with an image.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum NormalizeError {
    /// No mean or std values.
    #[error("normalize needs at least one mean and std value")]
    Empty,
    /// Mean and std of different lengths.
    #[error("normalize mean has {mean} values but std has {std}")]
    Lengths {
        /// Number of mean values.
        mean: usize,
        /// Number of std values.
        std: usize,
    },
    /// A std of zero (after conversion to `f32`), as torchvision rejects.
    #[error("normalize std of channel {channel} is zero")]
    ZeroStd {
        /// The channel.
        channel: usize,
    },
    /// A NaN or infinite constant.
    #[error("normalize {name} of channel {channel} is not finite: {value}")]
    NotFinite {
        /// "mean" or "std".
        name: &'static str,
        /// The channel.
        channel: usize,
        /// The rejected value.
        value: f32,
    },
    /// Constants for a different number of channels than the image has.
    #[error("normalize has {values} mean/std values but the image has {channels} channels")]
    Channels {
        /// Number of mean/std values.
        values: usize,
        /// Channels of the image.
        channels: usize,
    },
    /// The crop of a fused transform does not fit the image.
    #[error(transparent)]
    Crop(#[from] CropError),
}

/// RepDistiller's and Good-DA-in-KD's CIFAR-100 mean (kd_data uses slightly different values).
pub const CIFAR100_MEAN: [f64; 3] = [0.5071, 0.4867, 0.4408];
/// RepDistiller's and Good-DA-in-KD's CIFAR-100 std.
pub const CIFAR100_STD: [f64; 3] = [0.2675, 0.2565, 0.2761];
/// The ImageNet mean (torchvision's models, Tiny ImageNet in Good-DA-in-KD).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// The ImageNet std.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// `ToTensor` + `Normalize(mean, std)`: `u8` CHW → `f32` CHW, and back.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
    /// `lut[c][v]` = the normalised value of byte `v` in channel `c`.
    lut: Vec<[f32; 256]>,
}

/// `ToTensor`'s conversion of one byte: `v / 255` in `f32`.
#[inline]
pub fn to_unit(v: u8) -> f32 {
    v as f32 / 255.0
}

impl Normalize {
    /// Per-channel `mean` and `std` (fractions of 255, as torchvision takes them); one value each
    /// applies to all channels.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Normalize, NormalizeError> {
        if mean.is_empty() || std.is_empty() {
            return Err(NormalizeError::Empty);
        }
        if mean.len() != std.len() {
            return Err(NormalizeError::Lengths {
                mean: mean.len(),
                std: std.len(),
            });
        }
        for (channel, (&m, &s)) in mean.iter().zip(&std).enumerate() {
            if !m.is_finite() {
                return Err(NormalizeError::NotFinite {
                    name: "mean",
                    channel,
                    value: m,
                });
            }
            if !s.is_finite() {
                return Err(NormalizeError::NotFinite {
                    name: "std",
                    channel,
                    value: s,
                });
            }
            if s == 0.0 {
                return Err(NormalizeError::ZeroStd { channel });
            }
        }
        let lut = mean
            .iter()
            .zip(&std)
            .map(|(&m, &s)| std::array::from_fn(|v| (to_unit(v as u8) - m) / s))
            .collect();
        Ok(Normalize { mean, std, lut })
    }

    /// Constants given as `f64` (as written in Python), cast to `f32` as torchvision does.
    pub fn from_f64(mean: &[f64], std: &[f64]) -> Result<Normalize, NormalizeError> {
        Normalize::new(
            mean.iter().map(|&m| m as f32).collect(),
            std.iter().map(|&s| s as f32).collect(),
        )
    }

    /// The per-channel means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-channel standard deviations.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Whether these constants apply to images of `shape` (one value, or one per channel).
    pub fn check(&self, shape: ImageShape) -> Result<(), NormalizeError> {
        if self.mean.len() == 1 || self.mean.len() == shape.channels {
            Ok(())
        } else {
            Err(NormalizeError::Channels {
                values: self.mean.len(),
                channels: shape.channels,
            })
        }
    }

    fn assert_channels(&self, shape: ImageShape) {
        if let Err(e) = self.check(shape) {
            panic!("{e}");
        }
    }

    /// The 256 normalised values of channel `c`.
    #[inline]
    pub fn table(&self, c: usize) -> &[f32; 256] {
        &self.lut[if self.lut.len() == 1 { 0 } else { c }]
    }

    /// The normalised value of byte `v` in channel `c`.
    #[inline]
    pub fn value(&self, c: usize, v: u8) -> f32 {
        self.table(c)[v as usize]
    }

    /// Normalises one CHW image `src` of `shape` into `dst` (same length).
    ///
    /// # Panics
    /// If a length does not match `shape` or the constants do not match its channels.
    pub fn apply_into(&self, src: &[u8], shape: ImageShape, dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            shape.len(),
            "input has {} bytes, shape {shape} needs {}",
            src.len(),
            shape.len()
        );
        assert_eq!(
            dst.len(),
            shape.len(),
            "output has {} values, shape {shape} needs {}",
            dst.len(),
            shape.len()
        );
        self.assert_channels(shape);
        let plane = shape.plane();
        if plane == 0 {
            return;
        }
        for (c, (s, d)) in src
            .chunks_exact(plane)
            .zip(dst.chunks_exact_mut(plane))
            .enumerate()
        {
            let lut = self.table(c);
            for (o, &v) in d.iter_mut().zip(s) {
                *o = lut[v as usize];
            }
        }
    }

    /// Normalises a batch of CHW images of `shape` stored one after the other.
    ///
    /// # Panics
    /// If `src.len()` is not a multiple of `shape.len()` or `dst.len()` differs from it.
    pub fn apply_batch_into(&self, src: &[u8], shape: ImageShape, dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "input has {} bytes but output {} values",
            src.len(),
            dst.len()
        );
        for_each_image(src.len(), shape, |r| {
            self.apply_into(&src[r.clone()], shape, &mut dst[r])
        });
    }

    /// Good-DA-in-KD's way back to bytes: `((x·std + mean)·255) as u8` in `f32`, truncating toward
    /// zero and clamping to 0..=255 (NaN → 0); see the module documentation.
    ///
    /// # Panics
    /// If a length does not match `shape` or the constants do not match its channels.
    pub fn denormalize_to_u8(&self, src: &[f32], shape: ImageShape, dst: &mut [u8]) {
        assert_eq!(
            src.len(),
            shape.len(),
            "input has {} values, shape {shape} needs {}",
            src.len(),
            shape.len()
        );
        assert_eq!(
            dst.len(),
            shape.len(),
            "output has {} bytes, shape {shape} needs {}",
            dst.len(),
            shape.len()
        );
        self.assert_channels(shape);
        let plane = shape.plane();
        if plane == 0 {
            return;
        }
        for (c, (s, d)) in src
            .chunks_exact(plane)
            .zip(dst.chunks_exact_mut(plane))
            .enumerate()
        {
            let k = if self.mean.len() == 1 { 0 } else { c };
            let (m, sd) = (self.mean[k], self.std[k]);
            for (o, &x) in d.iter_mut().zip(s) {
                // Three separately rounded f32 operations, as PyTorch evaluates them; Rust's `as`
                // truncates toward zero and saturates.
                let y = x * sd;
                let y = y + m;
                let y = y * 255.0;
                *o = y as u8;
            }
        }
    }

    /// [`Normalize::denormalize_to_u8`] on a batch of images stored one after the other.
    ///
    /// # Panics
    /// If `src.len()` is not a multiple of `shape.len()` or `dst.len()` differs from it.
    pub fn denormalize_batch_to_u8(&self, src: &[f32], shape: ImageShape, dst: &mut [u8]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "input has {} values but output {} bytes",
            src.len(),
            dst.len()
        );
        for_each_image(src.len(), shape, |r| {
            self.denormalize_to_u8(&src[r.clone()], shape, &mut dst[r])
        });
    }
}

/// Calls `f` with the range of each of the `total / shape.len()` images of a batch.
fn for_each_image(total: usize, shape: ImageShape, mut f: impl FnMut(std::ops::Range<usize>)) {
    let n = shape.len();
    if n == 0 {
        assert_eq!(total, 0, "a batch of empty images ({shape}) must be empty");
        return;
    }
    assert_eq!(
        total % n,
        0,
        "batch of {total} values is not a whole number of {shape} images"
    );
    for i in 0..total / n {
        f(i * n..(i + 1) * n);
    }
}

/// The standard training transform of the references, fused: [`Crop`], then [`Flip`], then
/// [`Normalize`], from the source `u8` image straight into the `f32` output in one pass.
///
/// It draws exactly what the three separate ops draw, in the same order (crop top, crop left,
/// flip coin), and writes exactly what `Crop::apply`, `Flip::apply` and
/// `Normalize::apply_into` would write in sequence: fill pixels become the table value of the fill.
#[derive(Clone, Debug, PartialEq)]
pub struct CropFlipNormalize {
    crop: Crop,
    flip: Flip,
    normalize: Normalize,
}

impl CropFlipNormalize {
    /// Fuses `crop`, `flip` and `normalize`.
    pub fn new(crop: Crop, flip: Flip, normalize: Normalize) -> CropFlipNormalize {
        CropFlipNormalize {
            crop,
            flip,
            normalize,
        }
    }

    /// CIFAR's `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` + `ToTensor()` +
    /// `Normalize(mean, std)`.
    pub fn cifar(normalize: Normalize) -> CropFlipNormalize {
        CropFlipNormalize::new(Crop::cifar(), Flip::default(), normalize)
    }

    /// The crop.
    pub fn crop(&self) -> &Crop {
        &self.crop
    }

    /// The flip.
    pub fn flip(&self) -> &Flip {
        &self.flip
    }

    /// The normalisation.
    pub fn normalize(&self) -> &Normalize {
        &self.normalize
    }

    /// The shape of the output for an input of shape `input`.
    pub fn output_shape(&self, input: ImageShape) -> ImageShape {
        ImageShape::new(input.channels, self.crop.height(), self.crop.width())
    }

    /// Whether the transform applies to images of `shape`.
    pub fn check(&self, shape: ImageShape) -> Result<(), NormalizeError> {
        Self::check_parts(&self.crop, &self.normalize, shape)
    }

    /// Transforms one CHW image `input` of `shape` into `out` (`output_shape(shape).len()` values).
    ///
    /// # Panics
    /// If a length does not match or [`CropFlipNormalize::check`] fails.
    pub fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [f32]) {
        Self::apply_parts(
            &self.crop,
            &self.flip,
            &self.normalize,
            input,
            shape,
            rng,
            out,
        )
    }

    fn check_parts(
        crop: &Crop,
        normalize: &Normalize,
        shape: ImageShape,
    ) -> Result<(), NormalizeError> {
        crop.check(shape)?;
        normalize.check(shape)
    }

    /// [`CropFlipNormalize::apply`] with borrowed parts: what a pipeline holding a crop and a
    /// flip runs when its caller wants normalised floats (the loader's fused path). The draws
    /// are exactly those of `crop` then `flip` with `rng`.
    ///
    /// # Panics
    /// As [`CropFlipNormalize::apply`].
    pub fn apply_parts(
        crop: &Crop,
        flip: &Flip,
        normalize: &Normalize,
        input: &[u8],
        shape: ImageShape,
        rng: &mut Rng,
        out: &mut [f32],
    ) {
        if let Err(e) = Self::check_parts(crop, normalize, shape) {
            panic!("{e}");
        }
        assert_eq!(
            input.len(),
            shape.len(),
            "input has {} bytes, shape {shape} needs {}",
            input.len(),
            shape.len()
        );
        let out_shape = ImageShape::new(shape.channels, crop.height(), crop.width());
        assert_eq!(
            out.len(),
            out_shape.len(),
            "output has {} values, needs {}",
            out.len(),
            out_shape.len()
        );
        let (top, left) = crop.offsets(shape, rng);
        let flip = flip.decide(rng);
        let win = crop.window(shape, top, left);
        let (ow, plane) = (win.out_w, shape.plane());
        let cols = win.src_cols();
        // Flipping mirrors which output columns come from the source.
        let (a, b) = if flip {
            (ow - win.xb, ow - win.xa)
        } else {
            (win.xa, win.xb)
        };
        for c in 0..shape.channels {
            let lut = normalize.table(c);
            let f = lut[crop.fill().value(c) as usize];
            let src = &input[c * plane..(c + 1) * plane];
            let dst = &mut out[c * out_shape.plane()..(c + 1) * out_shape.plane()];
            for (y, row) in dst.chunks_exact_mut(ow).enumerate() {
                let Some(sy) = win.src_row(y) else {
                    row.fill(f);
                    continue;
                };
                let seg = &src[sy * shape.width + cols.start..sy * shape.width + cols.end];
                row[..a].fill(f);
                row[b..].fill(f);
                let mid = &mut row[a..b];
                if flip {
                    // Four at a time from the end of the output: a reversed iterator on either
                    // side measured about 1.5 times slower than the forward loop.
                    let mut o4 = mid.rchunks_exact_mut(4);
                    let mut s4 = seg.chunks_exact(4);
                    for (o, s) in (&mut o4).zip(&mut s4) {
                        o[3] = lut[s[0] as usize];
                        o[2] = lut[s[1] as usize];
                        o[1] = lut[s[2] as usize];
                        o[0] = lut[s[3] as usize];
                    }
                    for (o, &v) in o4.into_remainder().iter_mut().rev().zip(s4.remainder()) {
                        *o = lut[v as usize];
                    }
                } else {
                    for (o, &v) in mid.iter_mut().zip(seg) {
                        *o = lut[v as usize];
                    }
                }
            }
        }
    }

    /// Transforms a batch of images stored one after the other, image `i` with the generator
    /// `rng_for(i)`: derive it from (seed, epoch, sample index) for per-sample randomness, or
    /// return clones of one generator for one decision per batch.
    ///
    /// # Panics
    /// As [`CropFlipNormalize::apply`], or if the lengths are not whole numbers of images.
    pub fn apply_batch(
        &self,
        input: &[u8],
        shape: ImageShape,
        mut rng_for: impl FnMut(usize) -> Rng,
        out: &mut [f32],
    ) {
        let (n_in, n_out) = (shape.len(), self.output_shape(shape).len());
        assert!(n_in > 0 && n_out > 0, "batch of empty images ({shape})");
        assert_eq!(
            input.len() % n_in,
            0,
            "batch of {} bytes is not a whole number of {shape} images",
            input.len()
        );
        let count = input.len() / n_in;
        assert_eq!(
            out.len(),
            count * n_out,
            "output has {} values, {count} images need {}",
            out.len(),
            count * n_out
        );
        for (i, (src, dst)) in input
            .chunks_exact(n_in)
            .zip(out.chunks_exact_mut(n_out))
            .enumerate()
        {
            self.apply(src, shape, &mut rng_for(i), dst);
        }
    }
}
