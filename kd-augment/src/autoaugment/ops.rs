//! torchvision's tensor functional image operations on `u8` CHW images, bit for bit.
//!
//! Each function reproduces what `torchvision.transforms.functional` computes for a `uint8`
//! tensor (the *tensor* path, not PIL's: the reference runs AutoAugment on a uint8 batch
//! tensor), including its float32 arithmetic, its truncating float → uint8 casts and its
//! quirks (the sharpness blend also touches the border pixels, autocontrast can map the
//! maximum to 254). The fixtures in `tests/fixtures/autoaugment` were made with
//! torchvision 0.26.0 on torch 2.11; the functional ops are the same as in the 0.10.0 that
//! the reference pins, except on one-channel images, where 0.10 refused saturation and
//! contrast: 0.26 (and this module) returns the image unchanged for saturation and blends
//! towards the image's own mean for contrast.
//!
//! All functions read `input` (one image of `shape`) and write `out` (same length); the two
//! must not overlap, which the borrow rules already guarantee.
//!
//! # Affine warps
//!
//! `F.affine` and `F.rotate` on tensors build the inverse matrix with
//! `_get_inverse_affine_matrix` (in f64), round it to f32, and sample with
//! `grid_sample(mode="nearest", padding_mode="zeros", align_corners=False)` over a grid whose
//! origin is the image centre and whose points are pixel centres. [`warp`] reproduces that
//! float32 pipeline step by step: the grid product `[x, y, 1] · θ'` as torch 2.11's CPU `bmm`
//! evaluates it (`acc = x·r₀`, `acc += y·r₁`, `acc += r₂`; for images of fewer than 67 pixels
//! torch's plain loop rounds every product and sum, for larger ones its BLAS kernel fuses the
//! second step into one rounding), the unnormalisation `(g + 1)·(size/2) − 0.5`,
//! round-half-to-even, and the bounds test.
//!
//! The last bit of the grid matters only where a source coordinate is (within ~10⁻⁶ pixel) a
//! half-integer, which takes special geometry: a 90° rotation of an image whose height and
//! width differ in parity, or a shear of exactly 45°, lands on such ties, and there a BLAS
//! library that evaluates the product in another order (or a CPU without FMA) would make torch
//! itself pick the other pixel. Square images (CIFAR, Tiny ImageNet), translations, and the
//! angles AutoAugment and its successors draw are not affected. Checked against torchvision on
//! this machine, beyond the committed fixtures: all 9,025 rotations (multiples of 45° and
//! random angles) and shears (45° and random) on every size from 1×1 to 19×19, ties included,
//! and 15,852 AutoAugment sub-policies and RandAugment/TrivialAugmentWide ops (every bin, both
//! signs) on 32×32, 64×64, 28×28 and 31×17 images matched pixel for pixel.
//!
//! Where the matrix is an integer translation (translate ops, rotation by 0°), the warp is a
//! row copy, which gives the same pixels as the float path.

use crate::shape::ImageShape;

/// Parameters of `torchvision.transforms.functional.affine` (tensor path).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// Rotation in degrees, counter-clockwise positive as torchvision's `affine` defines it.
    pub angle: f64,
    /// Post-rotation translation `[tx, ty]` in pixels (torchvision passes integers).
    pub translate: [f64; 2],
    /// Isotropic scale (1.0 in every AutoAugment op).
    pub scale: f64,
    /// Shear angles `[sx, sy]` in degrees.
    pub shear: [f64; 2],
    /// Centre of rotation and shear in pixel coordinates (`[0, 0]` is the top-left corner of
    /// the top-left pixel); `None` is the image centre, torchvision's default.
    pub center: Option<[f64; 2]>,
}

impl AffineParams {
    /// The identity transform: nothing rotated, translated, scaled or sheared.
    pub const IDENTITY: AffineParams = AffineParams {
        angle: 0.0,
        translate: [0.0, 0.0],
        scale: 1.0,
        shear: [0.0, 0.0],
        center: None,
    };
}

/// torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale, shear)`: the
/// 2×3 matrix mapping output coordinates to input coordinates, in coordinates centred as
/// `center` says (the tensor path passes offsets from the image centre).
pub fn inverse_affine_matrix(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let sx = shear[0].to_radians();
    let sy = shear[1].to_radians();
    let [cx, cy] = center;
    let [tx, ty] = translate;
    // The rotation–shear matrix without scale, as torchvision writes it (same operation order,
    // so the f64 values agree to the last bit).
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// `F.affine(img, angle, translate, scale, shear, NEAREST, fill=[fill]*C, center)` on a uint8
/// tensor. Pixels whose source falls outside the image get `fill` (torchvision's `fill=None`
/// is `fill = 0`).
pub fn affine(input: &[u8], shape: ImageShape, params: &AffineParams, fill: u8, out: &mut [u8]) {
    let center = match params.center {
        None => [0.0, 0.0],
        Some([cx, cy]) => [
            cx - shape.width as f64 * 0.5,
            cy - shape.height as f64 * 0.5,
        ],
    };
    let m = inverse_affine_matrix(
        center,
        params.angle,
        params.translate,
        params.scale,
        params.shear,
    );
    warp(input, shape, &m, fill, out);
}

/// `F.rotate(img, angle, NEAREST, expand=False, center=None, fill=[fill]*C)` on a uint8
/// tensor: counter-clockwise by `angle` degrees about the image centre.
pub fn rotate(input: &[u8], shape: ImageShape, angle: f64, fill: u8, out: &mut [u8]) {
    // torchvision negates the angle here ("incoherence of rotation angle direction between
    // affine and rotate").
    let m = inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0]);
    warp(input, shape, &m, fill, out);
}

/// Adding then subtracting 1.5·2²³ rounds an f32 of magnitude below 2²² to the nearest integer,
/// ties to even (the default rounding mode), as `nearbyint` in torch's grid sampler does.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Samples `input` through the inverse affine `matrix` (torchvision's centred-pixel
/// convention, see the module docs) with nearest interpolation, writing `fill` where the
/// source pixel is outside the image.
pub fn warp(input: &[u8], shape: ImageShape, matrix: &[f64; 6], fill: u8, out: &mut [u8]) {
    check(input, shape, out);
    let (h, w) = (shape.height, shape.width);
    if shape.is_empty() {
        return;
    }
    let m = matrix;
    let integral = |v: f64| v.is_finite() && v.fract() == 0.0 && v.abs() < 1e9;
    if m[0] == 1.0 && m[1] == 0.0 && m[3] == 0.0 && m[4] == 1.0 && integral(m[2]) && integral(m[5])
    {
        shift(input, shape, m[2] as i64, m[5] as i64, fill, out);
        return;
    }
    // torch.tensor(matrix, dtype=float32), then theta^T / [0.5 w, 0.5 h], all in f32.
    let th = m.map(|v| v as f32);
    let half_w = (0.5 * w as f64) as f32;
    let half_h = (0.5 * h as f64) as f32;
    let grid = Grid {
        rx: [th[0] / half_w, th[1] / half_w, th[2] / half_w],
        ry: [th[3] / half_h, th[4] / half_h, th[5] / half_h],
        // grid_sample's unnormalisation factor, static_cast<float>(size) / 2.
        scale_x: w as f32 / 2.0,
        scale_y: h as f32 / 2.0,
        // Rounded coordinates beyond these are outside the image; clamping first keeps the
        // rounding trick in range (and sends NaN out of bounds, since f32::max drops NaN).
        lim: (w.max(h) + 8) as f32,
        w,
        h,
    };
    // torch's bmm runs its plain loop (three f32 multiply-adds, each rounded twice) when
    // 3 · (h·w) · 2 < 400, and the BLAS kernel (fused multiply-adds) otherwise.
    let fused = 6 * h * w >= 400;
    let plane = shape.plane();
    const CHUNK: usize = 256;
    let mut src = [0u32; CHUNK];
    let mut px = [0f32; CHUNK];
    let mut py = [0f32; CHUNK];
    let mut j0 = 0;
    while j0 < w {
        let n = CHUNK.min(w - j0);
        // x·r₀ for the pixel centres of these columns (exact halves relative to the centre,
        // as torch.linspace gives them), shared by every row.
        for k in 0..n {
            let x = ((j0 + k) as f64 - w as f64 * 0.5 + 0.5) as f32;
            px[k] = x * grid.rx[0];
            py[k] = x * grid.ry[0];
        }
        for i in 0..h {
            if fused {
                grid.row::<true>(i, &px[..n], &py[..n], &mut src[..n]);
            } else {
                grid.row::<false>(i, &px[..n], &py[..n], &mut src[..n]);
            }
            for c in 0..shape.channels {
                let in_plane = &input[c * plane..(c + 1) * plane];
                let row = &mut out[c * plane + i * w + j0..c * plane + i * w + j0 + n];
                for (o, &s) in row.iter_mut().zip(&src[..n]) {
                    // u32::MAX (outside) is never a valid index: the one check picks the fill.
                    *o = in_plane.get(s as usize).copied().unwrap_or(fill);
                }
            }
        }
        j0 += n;
    }
}

/// The sampling grid of one warp: torch's rescaled θ and grid_sample's constants.
struct Grid {
    rx: [f32; 3],
    ry: [f32; 3],
    scale_x: f32,
    scale_y: f32,
    lim: f32,
    w: usize,
    h: usize,
}

impl Grid {
    /// Source pixel index (or `u32::MAX` outside the image) for output row `i` and the
    /// columns whose `x·r₀` products are `px` (for the x coordinate) and `py` (for y).
    #[inline]
    fn row<const FUSED: bool>(&self, i: usize, px: &[f32], py: &[f32], src: &mut [u32]) {
        let (rx, ry) = (self.rx, self.ry);
        let y = (i as f64 - self.h as f64 * 0.5 + 0.5) as f32;
        // y·r₁ exactly (a product of two f32s is exact in f64) for the fused sum, and rounded
        // to f32 for the plain loop.
        let (qx, qy) = (y as f64 * rx[1] as f64, y as f64 * ry[1] as f64);
        let (qx32, qy32) = (y * rx[1], y * ry[1]);
        let (wf, hf) = (self.w as f32, self.h as f32);
        for ((s, &ax), &ay) in src.iter_mut().zip(px).zip(py) {
            // acc = x·r₀, then acc += y·r₁ (fused: one rounding), then acc += r₂: the order
            // both of torch's kernels evaluate the three-term dot product in.
            let (gx, gy) = if FUSED {
                (fused_sum(qx, ax) + rx[2], fused_sum(qy, ay) + ry[2])
            } else {
                ((ax + qx32) + rx[2], (ay + qy32) + ry[2])
            };
            let ix = ((gx + 1.0) * self.scale_x - 0.5).max(-8.0).min(self.lim);
            let iy = ((gy + 1.0) * self.scale_y - 0.5).max(-8.0).min(self.lim);
            let ix = (ix + ROUND_MAGIC) - ROUND_MAGIC;
            let iy = (iy + ROUND_MAGIC) - ROUND_MAGIC;
            *s = if ix >= 0.0 && ix < wf && iy >= 0.0 && iy < hf {
                iy as u32 * self.w as u32 + ix as u32
            } else {
                u32::MAX
            };
        }
    }
}

/// `p + c` rounded once to f32, for `p` exactly representable in f64 (here the product of two
/// f32s): the result of the fused multiply-add that produced `p`.
///
/// The f64 sum `s` is rounded already, but rounding it again to f32 gives the correctly rounded
/// result unless `s` landed exactly on a midpoint between two f32s while the exact sum did not
/// (double rounding); only then is the lost error computed (TwoSum) and used to step `s` off
/// the midpoint towards the exact value. Getting this right matters: in a 90° rotation of an
/// image whose sides differ in parity, the tiny `cos 90°` term decides exact ties.
#[inline]
fn fused_sum(p: f64, c: f32) -> f32 {
    let c = c as f64;
    let s = p + c;
    let bits = s.to_bits();
    // The 29 low mantissa bits that f32 drops are exactly one half of its last place.
    if bits & 0x1FFF_FFFF != 0x1000_0000 {
        return s as f32;
    }
    // TwoSum: err is exactly (p + c) − s.
    let pp = s - c;
    let err = (p - pp) + (c - (s - pp));
    if err == 0.0 {
        return s as f32;
    }
    // One f64 step towards the exact sum (|s| grows with the bits for either sign).
    f64::from_bits(if (err > 0.0) == (s > 0.0) {
        bits + 1
    } else {
        bits - 1
    }) as f32
}

/// The warp for an integer translation: output pixel (x, y) is input pixel (x + dx, y + dy),
/// or `fill` outside the image.
fn shift(input: &[u8], shape: ImageShape, dx: i64, dy: i64, fill: u8, out: &mut [u8]) {
    let (h, w) = (shape.height as i64, shape.width as i64);
    let plane = shape.plane();
    // Output columns j0..j1 read input columns j0+dx..j1+dx.
    let j0 = (-dx).clamp(0, w);
    let j1 = (w - dx).clamp(0, w);
    for c in 0..shape.channels {
        let in_plane = &input[c * plane..(c + 1) * plane];
        let out_plane = &mut out[c * plane..(c + 1) * plane];
        for (i, row) in out_plane.chunks_exact_mut(w as usize).enumerate() {
            let si = i as i64 + dy;
            if si < 0 || si >= h || j0 >= j1 {
                row.fill(fill);
                continue;
            }
            let src = &in_plane[(si * w) as usize..((si + 1) * w) as usize];
            row[..j0 as usize].fill(fill);
            row[j0 as usize..j1 as usize]
                .copy_from_slice(&src[(j0 + dx) as usize..(j1 + dx) as usize]);
            row[j1 as usize..].fill(fill);
        }
    }
}

/// Checks the buffer lengths every op relies on.
#[inline]
fn check(input: &[u8], shape: ImageShape, out: &[u8]) {
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

/// Applies a 256-entry table to every byte.
#[inline]
fn map_lut(input: &[u8], lut: &[u8; 256], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(input) {
        *o = lut[v as usize];
    }
}

/// The two halves of torchvision's `_blend(img1, img2, ratio)` =
/// `(ratio·img1 + (1 − ratio)·img2).clamp(0, 255).to(uint8)` as per-value f32 tables:
/// `ratio` and `1 − ratio` (computed in f64, like Python) are rounded to f32, each product is
/// rounded to f32, and the sum is truncated by the uint8 cast (`as u8` truncates and
/// saturates, which is clamp-then-truncate).
struct Blend {
    a: [f32; 256],
    b: [f32; 256],
}

impl Blend {
    fn new(ratio: f64) -> Blend {
        let r = ratio as f32;
        let q = (1.0 - ratio) as f32;
        let mut a = [0f32; 256];
        let mut b = [0f32; 256];
        for v in 0..256 {
            a[v] = r * v as f32;
            b[v] = q * v as f32;
        }
        Blend { a, b }
    }

    #[inline]
    fn mix(&self, x: u8, y: u8) -> u8 {
        (self.a[x as usize] + self.b[y as usize]) as u8
    }
}

fn check_factor(name: &str, factor: f64) {
    assert!(
        factor >= 0.0,
        "{name} factor {factor} must be non-negative (torchvision raises ValueError)"
    );
}

/// `F.adjust_brightness(img, factor)`: `_blend(img, zeros, factor)`.
///
/// # Panics
/// If `factor` is negative (torchvision raises).
pub fn adjust_brightness(input: &[u8], shape: ImageShape, factor: f64, out: &mut [u8]) {
    check(input, shape, out);
    check_factor("brightness", factor);
    let r = factor as f32;
    // (1 − ratio)·0 is ±0, which leaves ratio·x unchanged.
    let lut: [u8; 256] = std::array::from_fn(|v| (r * v as f32) as u8);
    map_lut(input, &lut, out);
}

/// torchvision's `rgb_to_grayscale` weights, applied in f32 and truncated to uint8.
struct Gray {
    r: [f32; 256],
    g: [f32; 256],
    b: [f32; 256],
}

impl Gray {
    fn new() -> Gray {
        Gray {
            r: std::array::from_fn(|v| 0.2989f32 * v as f32),
            g: std::array::from_fn(|v| 0.587f32 * v as f32),
            b: std::array::from_fn(|v| 0.114f32 * v as f32),
        }
    }

    /// `(0.2989·r + 0.587·g + 0.114·b).to(uint8)`, summed left to right in f32.
    #[inline]
    fn luma(&self, r: u8, g: u8, b: u8) -> u8 {
        ((self.r[r as usize] + self.g[g as usize]) + self.b[b as usize]) as u8
    }
}

/// `F.rgb_to_grayscale(img)` for a three-channel image, into one plane of `out`.
pub fn rgb_to_grayscale(input: &[u8], shape: ImageShape, out: &mut [u8]) {
    assert_eq!(
        shape.channels, 3,
        "rgb_to_grayscale needs 3 channels, got {}",
        shape.channels
    );
    assert_eq!(input.len(), shape.len());
    assert_eq!(out.len(), shape.plane());
    let p = shape.plane();
    let gray = Gray::new();
    let (r, rest) = input.split_at(p);
    let (g, b) = rest.split_at(p);
    for (((o, &r), &g), &b) in out.iter_mut().zip(r).zip(g).zip(b) {
        *o = gray.luma(r, g, b);
    }
}

/// `F.adjust_saturation(img, factor)`: `_blend(img, rgb_to_grayscale(img), factor)`; a
/// one-channel image is returned unchanged (torchvision ≥ 0.11; 0.10 raised instead).
///
/// # Panics
/// If `factor` is negative, or the image has neither 1 nor 3 channels.
pub fn adjust_saturation(input: &[u8], shape: ImageShape, factor: f64, out: &mut [u8]) {
    check(input, shape, out);
    check_factor("saturation", factor);
    match shape.channels {
        1 => out.copy_from_slice(input),
        3 => {
            let p = shape.plane();
            let gray = Gray::new();
            let blend = Blend::new(factor);
            let (r, rest) = input.split_at(p);
            let (g, b) = rest.split_at(p);
            let (or, rest) = out.split_at_mut(p);
            let (og, ob) = rest.split_at_mut(p);
            for k in 0..p {
                let l = gray.luma(r[k], g[k], b[k]);
                or[k] = blend.mix(r[k], l);
                og[k] = blend.mix(g[k], l);
                ob[k] = blend.mix(b[k], l);
            }
        }
        c => panic!("adjust_saturation needs 1 or 3 channels, got {c}"),
    }
}

/// The f32 mean torchvision's `adjust_contrast` blends towards: the mean of the truncated
/// grayscale image (3 channels) or of the image (1 channel). The sum is exact in integers;
/// torch's f32 sum is exact too while it stays below 2²⁴ (any image up to 256×256), and then
/// `sum / n` is one f32 division, as in torch.
fn contrast_mean(input: &[u8], shape: ImageShape) -> f32 {
    let p = shape.plane();
    let sum: u64 = match shape.channels {
        1 => input.iter().map(|&v| v as u64).sum(),
        3 => {
            let gray = Gray::new();
            let (r, rest) = input.split_at(p);
            let (g, b) = rest.split_at(p);
            r.iter()
                .zip(g)
                .zip(b)
                .map(|((&r, &g), &b)| gray.luma(r, g, b) as u64)
                .sum()
        }
        c => panic!("adjust_contrast needs 1 or 3 channels, got {c}"),
    };
    sum as f32 / p as f32
}

/// `F.adjust_contrast(img, factor)`: `_blend(img, mean(grayscale(img)), factor)`; for one
/// channel the mean of the image itself (torchvision ≥ 0.11; 0.10 raised instead).
///
/// # Panics
/// If `factor` is negative, or the image has neither 1 nor 3 channels.
pub fn adjust_contrast(input: &[u8], shape: ImageShape, factor: f64, out: &mut [u8]) {
    check(input, shape, out);
    check_factor("contrast", factor);
    if shape.is_empty() {
        return;
    }
    let mean = contrast_mean(input, shape);
    let r = factor as f32;
    let offset = (1.0 - factor) as f32 * mean;
    let lut: [u8; 256] = std::array::from_fn(|v| (r * v as f32 + offset) as u8);
    map_lut(input, &lut, out);
}

/// `F.adjust_sharpness(img, factor)`: blends with the image smoothed by the 3×3 kernel
/// `[[1,1,1],[1,5,1],[1,1,1]] / 13` (border pixels keep their value in the smoothed image, but
/// still go through the f32 blend, which can move them by one). Images of height or width ≤ 2
/// are returned unchanged.
///
/// The smoothed value is `round(S / 13)` with `S` the integer weighted sum; torch computes it
/// with an f32 convolution and `torch.round`, which agree because `S / 13` is never within
/// 1/26 of a half-integer.
///
/// # Panics
/// If `factor` is negative.
pub fn adjust_sharpness(input: &[u8], shape: ImageShape, factor: f64, out: &mut [u8]) {
    check(input, shape, out);
    check_factor("sharpness", factor);
    let (h, w) = (shape.height, shape.width);
    if h <= 2 || w <= 2 {
        out.copy_from_slice(input);
        return;
    }
    let blend = Blend::new(factor);
    let p = shape.plane();
    for c in 0..shape.channels {
        let src = &input[c * p..(c + 1) * p];
        let dst = &mut out[c * p..(c + 1) * p];
        // First and last rows: the smoothed image is the image itself.
        for j in (0..w).chain((h - 1) * w..h * w) {
            dst[j] = blend.mix(src[j], src[j]);
        }
        for i in 1..h - 1 {
            let up = &src[(i - 1) * w..i * w];
            let mid = &src[i * w..(i + 1) * w];
            let down = &src[(i + 1) * w..(i + 2) * w];
            let row = &mut dst[i * w..(i + 1) * w];
            row[0] = blend.mix(mid[0], mid[0]);
            row[w - 1] = blend.mix(mid[w - 1], mid[w - 1]);
            for j in 1..w - 1 {
                let s = up[j - 1] as u32
                    + up[j] as u32
                    + up[j + 1] as u32
                    + mid[j - 1] as u32
                    + 5 * mid[j] as u32
                    + mid[j + 1] as u32
                    + down[j - 1] as u32
                    + down[j] as u32
                    + down[j + 1] as u32;
                let smooth = ((2 * s + 13) / 26) as u8;
                row[j] = blend.mix(mid[j], smooth);
            }
        }
    }
}

/// `F.posterize(img, bits)`: keeps the `bits` most significant bits of every value.
///
/// # Panics
/// If `bits > 8`.
pub fn posterize(input: &[u8], shape: ImageShape, bits: u32, out: &mut [u8]) {
    check(input, shape, out);
    assert!(bits <= 8, "posterize bits {bits} must be in 0..=8");
    // torchvision: img & -(2 ** (8 - bits)); bits = 0 clears everything.
    let mask = (0xFFu32 << (8 - bits)) as u8;
    for (o, &v) in out.iter_mut().zip(input) {
        *o = v & mask;
    }
}

/// `F.solarize(img, threshold)`: inverts every value `>= threshold`. The comparison is made in
/// f32 (torch promotes the uint8 tensor and the Python float to float32). Thresholds above 255
/// leave the image unchanged, as torchvision 0.10 did (0.26 raises instead).
pub fn solarize(input: &[u8], shape: ImageShape, threshold: f64, out: &mut [u8]) {
    check(input, shape, out);
    let t = threshold as f32;
    let lut: [u8; 256] = std::array::from_fn(|v| {
        if v as f32 >= t {
            255 - v as u8
        } else {
            v as u8
        }
    });
    map_lut(input, &lut, out);
}

/// `F.autocontrast(img)`: per channel, stretches `[min, max]` to `[0, 255]` with torchvision's
/// f32 arithmetic `((x − min) · (255 / (max − min))).to(uint8)`, where the quotient is
/// `reciprocal(max − min) · 255` (so `max` may land on 254); a constant channel is left as it
/// is.
pub fn autocontrast(input: &[u8], shape: ImageShape, out: &mut [u8]) {
    check(input, shape, out);
    let p = shape.plane();
    if p == 0 {
        return;
    }
    for c in 0..shape.channels {
        let src = &input[c * p..(c + 1) * p];
        let dst = &mut out[c * p..(c + 1) * p];
        let (lo, hi) = src
            .iter()
            .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if lo == hi {
            dst.copy_from_slice(src);
            continue;
        }
        let min = lo as f32;
        // `bound / (maximum - minimum)` is Tensor.__rtruediv__, which torch implements as
        // `reciprocal() * 255`: not the correctly rounded quotient (for [0, 7] it makes 7 map
        // to 255 where 255/7 rounded would give 254).
        let scale = (1.0f32 / (hi as f32 - min)) * 255.0;
        let lut: [u8; 256] = std::array::from_fn(|v| ((v as f32 - min) * scale) as u8);
        map_lut(src, &lut, dst);
    }
}

/// `F.equalize(img)`: per channel histogram equalisation exactly as torchvision's
/// `_scale_channel` (integer arithmetic): `step = (n − count of the highest present value) //
/// 255`; if `step == 0` the channel is unchanged, else value `v` maps to
/// `min(255, (cumsum(hist)[v − 1] + step // 2) // step)` and 0 maps to 0.
pub fn equalize(input: &[u8], shape: ImageShape, out: &mut [u8]) {
    check(input, shape, out);
    let p = shape.plane();
    for c in 0..shape.channels {
        let src = &input[c * p..(c + 1) * p];
        let dst = &mut out[c * p..(c + 1) * p];
        let mut hist = [0u64; 256];
        for &v in src {
            hist[v as usize] += 1;
        }
        // All nonzero bins but the last one: everything but the highest value present.
        let last = hist.iter().rposition(|&n| n != 0).map_or(0, |k| hist[k]);
        let step = (p as u64 - last) / 255;
        if step == 0 {
            dst.copy_from_slice(src);
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0u64;
        for v in 0..255 {
            cum += hist[v];
            lut[v + 1] = ((cum + step / 2) / step).min(255) as u8;
        }
        map_lut(src, &lut, dst);
    }
}

/// `F.invert(img)`: `255 − x`.
pub fn invert(input: &[u8], shape: ImageShape, out: &mut [u8]) {
    check(input, shape, out);
    for (o, &v) in out.iter_mut().zip(input) {
        *o = 255 - v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general float path, forced (no integer-shift shortcut).
    fn warp_float(input: &[u8], shape: ImageShape, m: &[f64; 6], fill: u8, out: &mut [u8]) {
        // A matrix entry off by far less than the f32 rounding of the grid keeps every sample
        // the same but defeats the shortcut's exact-integer test.
        let mut m2 = *m;
        m2[0] = f64::from_bits(m2[0].to_bits() - 1);
        warp(input, shape, &m2, fill, out);
    }

    #[test]
    fn integer_shift_shortcut_matches_the_float_path() {
        for &(c, h, w) in &[(3, 8, 10), (1, 7, 5), (3, 32, 32), (1, 1, 6)] {
            let shape = ImageShape::new(c, h, w);
            let input: Vec<u8> = (0..shape.len()).map(|k| (k * 37 % 251) as u8).collect();
            for &(tx, ty) in &[
                (0.0, 0.0),
                (3.0, 0.0),
                (-2.0, 1.0),
                (0.0, -5.0),
                (11.0, 40.0),
                (-9.0, -9.0),
            ] {
                let m = inverse_affine_matrix([0.0, 0.0], 0.0, [tx, ty], 1.0, [0.0, 0.0]);
                let mut a = vec![0; shape.len()];
                let mut b = vec![0; shape.len()];
                warp(&input, shape, &m, 7, &mut a);
                warp_float(&input, shape, &m, 7, &mut b);
                assert_eq!(a, b, "shape {shape} translate ({tx}, {ty})");
            }
        }
    }

    #[test]
    fn translate_moves_content_right_and_down() {
        let shape = ImageShape::new(1, 3, 4);
        let input: Vec<u8> = (1..=12).collect();
        let mut out = vec![0; 12];
        let p = AffineParams {
            translate: [1.0, 1.0],
            ..AffineParams::IDENTITY
        };
        affine(&input, shape, &p, 0, &mut out);
        assert_eq!(out, vec![0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7]);
    }

    #[test]
    fn rotate_quarter_turn_is_counter_clockwise_about_the_centre() {
        // A 4×4 quarter turn about the centre is an exact permutation of the pixels:
        // out[i][j] = in[j][w-1-i] for counter-clockwise rotation.
        let shape = ImageShape::new(1, 4, 4);
        let input: Vec<u8> = (0..16).collect();
        let mut out = vec![0; 16];
        rotate(&input, shape, 90.0, 0, &mut out);
        let expected: Vec<u8> = (0..4)
            .flat_map(|i| (0..4).map(move |j| (j * 4 + (3 - i)) as u8))
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn equalize_spreads_two_levels() {
        // 255 samples of 10 and 255 of 20: step = 255 // 255 = 1, lut[10] = 0, lut[20] = 255.
        let shape = ImageShape::new(1, 2, 255);
        let input: Vec<u8> = (0..510).map(|k| if k < 255 { 10 } else { 20 }).collect();
        let mut out = vec![0; 510];
        equalize(&input, shape, &mut out);
        assert!(out[..255].iter().all(|&v| v == 0));
        assert!(out[255..].iter().all(|&v| v == 255));
    }

    #[test]
    fn sharpness_smoothing_is_integer_rounding() {
        // Centre 0 among 255s: S = 8·255 = 2040, 2040/13 = 156.92 → 157; factor 0 gives it.
        let shape = ImageShape::new(1, 3, 3);
        let mut input = vec![255u8; 9];
        input[4] = 0;
        let mut out = vec![0; 9];
        adjust_sharpness(&input, shape, 0.0, &mut out);
        assert_eq!(out[4], 157);
        assert!(out.iter().enumerate().all(|(k, &v)| k == 4 || v == 255));
    }
}
