//! Random crop with constant padding ([`Crop`]) and the deterministic [`CenterCrop`].
//!
//! [`Crop`] has the semantics of torchvision's `RandomCrop(size, padding, fill)` with
//! `padding_mode="constant"`: the image is padded with `fill` on each side, then a window of the
//! crop size is taken at offsets drawn uniformly over every position where it fits in the padded
//! image, the top offset first, then the left one (torchvision's `get_params` draws
//! `i = randint(0, H_pad − h + 1)`, then `j = randint(0, W_pad − w + 1)`). With CIFAR's
//! `RandomCrop(32, padding=4)` both offsets are uniform over `0..=8`.
//!
//! The padded image is never built: each output row is the fill, or a copied segment of one
//! source row with the fill on either side, so a crop costs one pass over its output. A crop as
//! wide as the image (CIFAR's case) is a single shifted copy of the rows it keeps, with the
//! padding columns written over afterwards.
//!
//! Deliberate differences from torchvision:
//! - Two [`Rng::below`] draws are made on every call, even when the padded image has the crop's
//!   size and torchvision draws nothing, so the draws never depend on the parameters' fit.
//! - `pad_if_needed` and the non-constant padding modes are not implemented.
//! - A crop larger than the padded image is an error ([`Crop::check`]; `apply` panics), as
//!   torchvision raises `ValueError`.

use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;
use std::ops::Range;
use thiserror::Error;

/// Invalid parameters of a crop, or a crop that does not fit an image.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CropError {
    /// A crop of zero height or width.
    #[error("crop size must be at least 1×1, got height {height} × width {width}")]
    EmptySize {
        /// The requested height.
        height: usize,
        /// The requested width.
        width: usize,
    },
    /// A per-channel fill with no values.
    #[error("fill must have one value, or one per channel; got an empty list")]
    EmptyFill,
    /// A per-channel fill whose length is not the image's channel count.
    #[error("fill has {values} values but the image has {channels} channels")]
    FillChannels {
        /// Number of fill values.
        values: usize,
        /// Channels of the image.
        channels: usize,
    },
    /// A crop larger than the padded image.
    #[error(
        "crop {height}×{width} is larger than the padded image {padded_height}×{padded_width} \
         (image {shape}, padding {padding:?})"
    )]
    TooLarge {
        /// Crop height.
        height: usize,
        /// Crop width.
        width: usize,
        /// Image height after padding.
        padded_height: usize,
        /// Image width after padding.
        padded_width: usize,
        /// The image shape.
        shape: ImageShape,
        /// The padding.
        padding: Padding,
    },
}

/// Padding on each side of an image, in torchvision's (left, top, right, bottom) order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Columns added on the left.
    pub left: usize,
    /// Rows added on the top.
    pub top: usize,
    /// Columns added on the right.
    pub right: usize,
    /// Rows added at the bottom.
    pub bottom: usize,
}

impl Padding {
    /// `p` on every side (torchvision's `padding=p`).
    pub const fn uniform(p: usize) -> Self {
        Padding {
            left: p,
            top: p,
            right: p,
            bottom: p,
        }
    }

    /// Padding in torchvision's 4-tuple order (left, top, right, bottom).
    pub const fn ltrb(left: usize, top: usize, right: usize, bottom: usize) -> Self {
        Padding {
            left,
            top,
            right,
            bottom,
        }
    }
}

impl From<usize> for Padding {
    fn from(p: usize) -> Self {
        Padding::uniform(p)
    }
}

/// The value written where a crop reads outside the image.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fill {
    /// One value for every channel: 0 (black) is torchvision's default; kd_data's `auto` mode
    /// uses 128.
    All(u8),
    /// One value per channel, e.g. the dataset mean from [`Fill::from_mean`].
    PerChannel(Vec<u8>),
}

impl Fill {
    /// The dataset mean colour, given as fractions of 255 (the `mean` of a `Normalize`), each
    /// rounded to the nearest byte.
    pub fn from_mean(mean: &[f32]) -> Fill {
        Fill::PerChannel(
            mean.iter()
                .map(|&m| (m * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
    }

    /// The fill of channel `c`. For [`Fill::PerChannel`], `c` must be below the number of values.
    #[inline]
    pub fn value(&self, c: usize) -> u8 {
        match self {
            Fill::All(v) => *v,
            Fill::PerChannel(v) => v[c],
        }
    }

    /// Whether this fill can pad an image with `channels` channels.
    pub fn check(&self, channels: usize) -> Result<(), CropError> {
        match self {
            Fill::All(_) => Ok(()),
            Fill::PerChannel(v) if v.len() == channels => Ok(()),
            Fill::PerChannel(v) => Err(CropError::FillChannels {
                values: v.len(),
                channels,
            }),
        }
    }

    fn validate(self) -> Result<Fill, CropError> {
        match &self {
            Fill::PerChannel(v) if v.is_empty() => Err(CropError::EmptyFill),
            _ => Ok(self),
        }
    }
}

impl From<u8> for Fill {
    fn from(v: u8) -> Self {
        Fill::All(v)
    }
}

impl From<Vec<u8>> for Fill {
    fn from(v: Vec<u8>) -> Self {
        Fill::PerChannel(v)
    }
}

impl<const N: usize> From<[u8; N]> for Fill {
    fn from(v: [u8; N]) -> Self {
        Fill::PerChannel(v.to_vec())
    }
}

/// Where an `out_h × out_w` window whose top-left corner lies at source coordinates
/// (`y0`, `x0`) (negative inside the padding) reads the source image.
///
/// Shared by the crops and by the fused crop+flip+normalise, so that both copy exactly the same
/// pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub out_h: usize,
    pub out_w: usize,
    y0: isize,
    src_h: usize,
    /// Output columns `xa..xb` come from the source; the others are fill.
    pub xa: usize,
    pub xb: usize,
    /// Source column of output column `xa`.
    src_xa: usize,
}

impl Window {
    pub fn new(shape: ImageShape, out_h: usize, out_w: usize, y0: isize, x0: isize) -> Window {
        let w = shape.width as isize;
        let ow = out_w as isize;
        let xa = (-x0).clamp(0, ow);
        let xb = (w - x0).clamp(xa, ow);
        // An empty column range must still name a valid (empty) slice of the source row.
        let src_xa = if xa < xb { (xa + x0) as usize } else { 0 };
        Window {
            out_h,
            out_w,
            y0,
            src_h: shape.height,
            xa: xa as usize,
            xb: xb as usize,
            src_xa,
        }
    }

    /// The source row read by output row `y`, or `None` when the row lies in the padding.
    #[inline]
    pub fn src_row(&self, y: usize) -> Option<usize> {
        let sy = y as isize + self.y0;
        (sy >= 0 && (sy as usize) < self.src_h).then_some(sy as usize)
    }

    /// The output rows `ya..yb` that read the source; the others are fill.
    #[inline]
    pub fn src_rows(&self) -> (usize, usize) {
        let (h, oh) = (self.src_h as isize, self.out_h as isize);
        let ya = (-self.y0).clamp(0, oh);
        let yb = (h - self.y0).clamp(ya, oh);
        (ya as usize, yb as usize)
    }

    /// The source columns read by output columns `xa..xb`.
    #[inline]
    pub fn src_cols(&self) -> Range<usize> {
        self.src_xa..self.src_xa + (self.xb - self.xa)
    }

    /// Copies the window of every channel of `input` into `out`, writing `fill` outside the image.
    pub fn copy(&self, input: &[u8], shape: ImageShape, fill: &Fill, out: &mut [u8]) {
        let plane = shape.plane();
        let ow = self.out_w;
        let out_plane = self.out_h * ow;
        let cols = self.src_cols();
        let (ya, yb) = self.src_rows();
        for c in 0..shape.channels {
            let f = fill.value(c);
            let src = &input[c * plane..(c + 1) * plane];
            let dst = &mut out[c * out_plane..(c + 1) * out_plane];
            fill_row(&mut dst[..ya * ow], f);
            fill_row(&mut dst[yb * ow..], f);
            let inside = &mut dst[ya * ow..yb * ow];
            if cols.is_empty() || inside.is_empty() {
                fill_row(inside, f);
            } else if ow == shape.width {
                // Output and source rows have the same stride, so the window is one shifted
                // copy; the columns that copy wraps into the padding are then overwritten.
                let n = inside.len() - self.xa - (ow - self.xb);
                let s0 = (ya as isize + self.y0) as usize * shape.width + cols.start;
                inside[self.xa..self.xa + n].copy_from_slice(&src[s0..s0 + n]);
                for row in inside.chunks_exact_mut(ow) {
                    fill_row(&mut row[..self.xa], f);
                    fill_row(&mut row[self.xb..], f);
                }
            } else {
                for (y, row) in (ya..yb).zip(inside.chunks_exact_mut(ow)) {
                    let start = (y as isize + self.y0) as usize * shape.width;
                    fill_row(&mut row[..self.xa], f);
                    copy_row(
                        &mut row[self.xa..self.xb],
                        &src[start + cols.start..start + cols.end],
                    );
                    fill_row(&mut row[self.xb..], f);
                }
            }
        }
    }
}

/// Copies `src` into `dst` (same length) without calling `memcpy` for short rows: crops copy
/// tens of bytes per row, where the call costs more than the copy. Overlapping fixed-size moves
/// cover every length.
#[inline]
pub(crate) fn copy_row(dst: &mut [u8], src: &[u8]) {
    let n = dst.len();
    assert_eq!(n, src.len());
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        16..=256 => {
            let mut i = 0;
            while i + 16 <= n {
                dst[i..i + 16].copy_from_slice(&src[i..i + 16]);
                i += 16;
            }
            if i < n {
                dst[n - 16..].copy_from_slice(&src[n - 16..]);
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Sets `dst` to `v`, without calling `memset` for short rows (see [`copy_row`]).
#[inline]
pub(crate) fn fill_row(dst: &mut [u8], v: u8) {
    let n = dst.len();
    match n {
        0 => {}
        1..=3 => {
            dst[0] = v;
            dst[n / 2] = v;
            dst[n - 1] = v;
        }
        4..=7 => {
            dst[..4].copy_from_slice(&[v; 4]);
            dst[n - 4..].copy_from_slice(&[v; 4]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&[v; 8]);
            dst[n - 8..].copy_from_slice(&[v; 8]);
        }
        16..=256 => {
            let mut i = 0;
            while i + 16 <= n {
                dst[i..i + 16].copy_from_slice(&[v; 16]);
                i += 16;
            }
            if i < n {
                dst[n - 16..].copy_from_slice(&[v; 16]);
            }
        }
        _ => dst.fill(v),
    }
}

/// torchvision's `RandomCrop(size, padding, fill)` (constant padding) on one CHW `u8` image.
///
/// Draws `top` uniform in `0..=H + pad_top + pad_bottom − height`, then `left` uniform in
/// `0..=W + pad_left + pad_right − width` (two [`Rng::below`] calls, in that order, on every call),
/// and outputs the `height × width` window of the padded image at (`top`, `left`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crop {
    height: usize,
    width: usize,
    padding: Padding,
    fill: Fill,
}

impl Crop {
    /// A `size × size` crop of the image padded by `padding` on each side with `fill`
    /// (`Crop::new(32, 4, 0)` is CIFAR's `RandomCrop(32, padding=4)`).
    pub fn new(size: usize, padding: usize, fill: impl Into<Fill>) -> Result<Crop, CropError> {
        Crop::rect(size, size, Padding::uniform(padding), fill)
    }

    /// A `height × width` crop with per-side padding.
    pub fn rect(
        height: usize,
        width: usize,
        padding: Padding,
        fill: impl Into<Fill>,
    ) -> Result<Crop, CropError> {
        if height == 0 || width == 0 {
            return Err(CropError::EmptySize { height, width });
        }
        Ok(Crop {
            height,
            width,
            padding,
            fill: fill.into().validate()?,
        })
    }

    /// CIFAR's standard crop: 32×32 with 4 pixels of black padding.
    pub fn cifar() -> Crop {
        Crop {
            height: 32,
            width: 32,
            padding: Padding::uniform(4),
            fill: Fill::All(0),
        }
    }

    /// The crop height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The crop width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The padding.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// The fill.
    pub fn fill(&self) -> &Fill {
        &self.fill
    }

    /// Whether this crop applies to images of `shape`: the crop fits the padded image and the fill
    /// has a value for each channel.
    pub fn check(&self, shape: ImageShape) -> Result<(), CropError> {
        self.fill.check(shape.channels)?;
        self.offset_ranges(shape).map(|_| ())
    }

    /// The number of possible (top, left) offsets, or the error saying the crop does not fit.
    fn offset_ranges(&self, shape: ImageShape) -> Result<(usize, usize), CropError> {
        let p = self.padding;
        let (ph, pw) = (
            shape.height + p.top + p.bottom,
            shape.width + p.left + p.right,
        );
        if self.height > ph || self.width > pw {
            return Err(CropError::TooLarge {
                height: self.height,
                width: self.width,
                padded_height: ph,
                padded_width: pw,
                shape,
                padding: p,
            });
        }
        Ok((ph - self.height + 1, pw - self.width + 1))
    }

    /// Draws the window's (top, left) corner in padded-image coordinates: top first, then left.
    ///
    /// # Panics
    /// If the crop does not fit the padded image (see [`Crop::check`]).
    pub fn offsets(&self, shape: ImageShape, rng: &mut Rng) -> (usize, usize) {
        let (rows, cols) = self.offset_ranges(shape).unwrap_or_else(|e| panic!("{e}"));
        let top = rng.below(rows as u64) as usize;
        let left = rng.below(cols as u64) as usize;
        (top, left)
    }

    pub(crate) fn window(&self, shape: ImageShape, top: usize, left: usize) -> Window {
        Window::new(
            shape,
            self.height,
            self.width,
            top as isize - self.padding.top as isize,
            left as isize - self.padding.left as isize,
        )
    }

    /// Writes the window at padded-image offsets (`top`, `left`) into `out`, without drawing.
    ///
    /// # Panics
    /// If the lengths of `input` or `out` do not match the shapes, or the fill does not match the
    /// channels.
    pub fn apply_at(
        &self,
        input: &[u8],
        shape: ImageShape,
        top: usize,
        left: usize,
        out: &mut [u8],
    ) {
        assert_eq!(
            input.len(),
            shape.len(),
            "input has {} bytes, shape {shape} needs {}",
            input.len(),
            shape.len()
        );
        let out_len = self.output_shape(shape).len();
        assert_eq!(
            out.len(),
            out_len,
            "output has {} bytes, needs {out_len}",
            out.len()
        );
        if let Err(e) = self.fill.check(shape.channels) {
            panic!("{e}");
        }
        self.window(shape, top, left)
            .copy(input, shape, &self.fill, out);
    }
}

impl Transform for Crop {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        ImageShape::new(input.channels, self.height, self.width)
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        let (top, left) = self.offsets(shape, rng);
        self.apply_at(input, shape, top, left, out);
    }
}

/// torchvision's `CenterCrop(size)`: the centred window, with black padding where the crop is
/// larger than the image. It draws nothing.
///
/// Where the image is larger, the window starts at `round((H − h) / 2)` with Python's rounding
/// (half to even: a difference of 3 starts at 2, of 5 at 2); where the crop is larger,
/// `(h − H) / 2` rows (rounded down) of padding come first, as in torchvision's `center_crop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    height: usize,
    width: usize,
}

impl CenterCrop {
    /// A `size × size` centre crop.
    pub fn new(size: usize) -> Result<CenterCrop, CropError> {
        CenterCrop::rect(size, size)
    }

    /// A `height × width` centre crop.
    pub fn rect(height: usize, width: usize) -> Result<CenterCrop, CropError> {
        if height == 0 || width == 0 {
            return Err(CropError::EmptySize { height, width });
        }
        Ok(CenterCrop { height, width })
    }

    /// The source coordinates (row, column) of the window's top-left pixel; negative where the
    /// window starts in the padding.
    pub fn origin(&self, shape: ImageShape) -> (isize, isize) {
        (
            centre_start(shape.height, self.height),
            centre_start(shape.width, self.width),
        )
    }
}

/// Start of a centred window of `crop` pixels over `size` pixels, as torchvision computes it.
fn centre_start(size: usize, crop: usize) -> isize {
    if crop > size {
        -(((crop - size) / 2) as isize)
    } else {
        let d = size - crop;
        // Python's round(d / 2.0) rounds halves to even.
        let half = d / 2;
        let start = if d % 2 == 1 && half % 2 == 1 {
            half + 1
        } else {
            half
        };
        start as isize
    }
}

impl Transform for CenterCrop {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        ImageShape::new(input.channels, self.height, self.width)
    }

    fn apply(&self, input: &[u8], shape: ImageShape, _rng: &mut Rng, out: &mut [u8]) {
        assert_eq!(
            input.len(),
            shape.len(),
            "input has {} bytes, shape {shape} needs {}",
            input.len(),
            shape.len()
        );
        let out_len = self.output_shape(shape).len();
        assert_eq!(
            out.len(),
            out_len,
            "output has {} bytes, needs {out_len}",
            out.len()
        );
        let (y0, x0) = self.origin(shape);
        Window::new(shape, self.height, self.width, y0, x0).copy(input, shape, &Fill::All(0), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_start_rounds_half_to_even_like_python() {
        // round(d / 2) in Python for d = 0..=7: 0, 0, 1, 2, 2, 2, 3, 4.
        let expected = [0, 0, 1, 2, 2, 2, 3, 4];
        for (d, &e) in expected.iter().enumerate() {
            assert_eq!(centre_start(10 + d, 10), e, "d = {d}");
        }
        // Crop larger than the image: floor((crop − size) / 2) rows of padding first.
        assert_eq!(centre_start(3, 6), -1);
        assert_eq!(centre_start(3, 7), -2);
    }

    #[test]
    fn row_helpers_copy_and_fill_every_length() {
        for n in 0..300 {
            let src: Vec<u8> = (0..n).map(|i| (i * 7 + 1) as u8).collect();
            let mut dst = vec![0u8; n];
            copy_row(&mut dst, &src);
            assert_eq!(dst, src, "copy of {n}");
            fill_row(&mut dst, 9);
            assert!(dst.iter().all(|&v| v == 9), "fill of {n}");
        }
    }

    #[test]
    fn window_with_no_source_columns_reads_nothing() {
        // A 2-pixel-wide image with the window entirely right of it.
        let w = Window::new(ImageShape::new(1, 2, 2), 2, 2, 0, 5);
        assert_eq!(w.xa, w.xb);
        assert!(w.src_cols().is_empty());
    }
}
