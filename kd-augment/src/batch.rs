//! Per-batch mixing augmentations on normalised `f32` batches: mixup, CutMix, and the CutMix
//! pool that CutMixPick draws from; with the Beta/Gamma sampling and the derangements they need.
//!
//! # Layout
//!
//! A batch is `n` images of one [`ImageShape`], contiguous NCHW `f32` (`batch.len() == n ·
//! shape.len()`; `n` is inferred). This is the normalised batch tensor on which Good-DA-in-KD
//! applies its stronger DA (`helper/loops.py::get_mixed_input`), so these ops work on floats,
//! not on the loader's `u8` images, and they are not [`crate::Transform`]s.
//!
//! # Reference semantics (Good-DA-in-KD, `helper/loops.py`)
//!
//! * **mixup** (`mixup`): `lam = np.random.beta(α, α)` (α = 1.0), one λ per batch;
//!   `rand_index = torch.randperm(B)` (self-pairs allowed); `x' = lam·x + (1−lam)·x[rand_index]`.
//!   No label mixing; λ and `rand_index` are returned. The products are computed in `f32` with
//!   `f32(λ)` and `f32(1 − λ)` rounded from the `f64` λ, then added: bit for bit what PyTorch
//!   does with a Python-float scalar (checked against torch 2.11 on CPU; see the tests).
//! * **CutMix** (`cutmix`): `lam ~ Beta(1, 1)`, one λ and one box per batch, from
//!   `rand_bbox(size, lam)` with `H, W = size[2], size[3]`: `cut_rat = sqrt(1 − lam)`,
//!   `cut_w = int(W·cut_rat)`, `cut_h = int(H·cut_rat)`, `cx = randint(W)`, `cy = randint(H)`,
//!   `x1 = clip(cx − cut_w//2, 0, W)`, `x2 = clip(cx + cut_w//2, 0, W)`, and the same for y
//!   with H. The mask `mask[y1:y2, x1:x2] = 0` puts the **partner** inside the box and the image
//!   itself outside: `x' = x·mask + x[rand_index]·(1 − mask)`. The partner is a `randperm`
//!   re-drawn while it has a fixed point (a derangement; "a small change from original cutmix").
//!   λ is then recomputed from the clipped box: `lam = 1 − (x2−x1)(y2−y1)/(h·w)`.
//!   *On the W/H swap:* the original CutMix code (clovaai) reads `W = size[2]; H = size[3]`,
//!   i.e. its "W" is the height, and its box indexes `[:, :, bbx1:bbx2, bby1:bby2]`; that is
//!   self-consistent and only renames the axes. Good-DA-in-KD reads `H, W = size[2], size[3]`
//!   and masks `[bby1:bby2, bbx1:bbx2]` — no swap. We follow Good-DA-in-KD exactly: `x` is the
//!   column (width) axis, drawn first, `y` the row (height) axis, drawn second. For the square
//!   images of the studies the two conventions give the same distribution of boxes.
//!   Note the box side is `2·(cut_w//2)` before clipping (one less than `cut_w` when it is odd),
//!   as in the reference.
//! * **CutMixPick** (`cutmix_pick`): `mix_n_run` (= 2) independent `cutmix` calls, each with its
//!   own λ, box and derangement, concatenated along the batch → `n_run·B` rows; a model scores
//!   each row (entropy), and the `n_pick` (= 64) highest-scoring rows are kept
//!   (`argsort(score)[-n_pick:]`, with `n_pick = min(rows, n_pick)`). The scoring needs a model
//!   and lives in kd-core; [`cutmix_pool`] builds the pool, [`pick_rows`] selects the rows from
//!   the scores and [`gather_rows`] copies them.
//!
//! # Random draws (the stream is part of the API: a seed reproduces a batch)
//!
//! All randomness comes from the caller's [`Rng`], never from the image content, in this order:
//!
//! * mixup: λ ([`Beta::sample`]: Gamma(α) then Gamma(α)), then the partner
//!   ([`Partner::Permutation`]: a Fisher–Yates shuffle of `0..n`, the stream of
//!   [`Rng::permutation`]; [`Partner::Derangement`]: [`derangement`]).
//! * CutMix: λ, then `cx = below(W)`, then `cy = below(H)`, then the partner — the reference's
//!   order (`np.random.beta`, `randint(W)`, `randint(H)`, `torch.randperm`).
//! * pool: `n_run` CutMix draws in sequence on the same generator.
//!
//! # Per-sample randomness
//!
//! The reference draws one λ (and one box) per batch. [`Mixup::apply_per_sample`],
//! [`CutMix::apply_per_sample`] and [`CutMix::pool_per_sample`] give every row its own: the
//! caller's generator gives a [`RowStreams`] base seed (one draw), then the partners (one
//! permutation or derangement of the batch, as per batch); row `i` then draws from its own
//! stream `RowStreams::rng(i)` what the batch would have drawn — mixup: λᵢ; CutMix: λᵢ, `cxᵢ`,
//! `cyᵢ`, with λᵢ recomputed from row i's clipped box. [`MixOutput::lambdas`] and
//! [`MixOutput::bboxes`] (and each [`PoolRow`]) hold the per-row values; a pool makes each of its
//! `n_run` calls per sample in this way.
//!
//! The number of draws varies (Gamma and derangements use rejection) but depends only on the
//! generator's state, `n` and the shape, so two batches of equal size and shape given clones of
//! one generator get the same λ, box and partners. The numbers cannot equal NumPy's or
//! PyTorch's streams; only their distributions match.
//!
//! # Deliberate differences from the reference
//!
//! * λ is returned as `f64` (the reference's `lam` is a Python float); mixing uses it exactly as
//!   PyTorch does (above).
//! * CutMix copies pixels instead of computing `x·mask + x_p·(1−mask)`: identical for finite
//!   values, except that the reference turns an outside-box `−0.0` into `+0.0` and lets a NaN or
//!   infinity of one image leak into the other (`NaN·0 = NaN`).
//! * A derangement of one image does not exist: the reference's re-draw loop never ends on a
//!   batch of 1; we return [`BatchError::NoDerangement`].
//! * The reference asserts `mix_n_run ≥ 2` when parsing options; [`cutmix_pool`] accepts
//!   `n_run ≥ 1` (1 is plain CutMix).
//! * [`pick_rows`] breaks score ties by the lower row index and ranks NaN highest (torch's sort
//!   puts NaN last, so the reference picks NaN rows first too); the reference's unstable sort
//!   breaks ties arbitrarily. It returns rows in descending score order, the reverse of the
//!   reference's `index[-n_pick:]` (ascending); a batch's order does not change the loss.
//! * α must be finite and > 0; the reference's mixup falls back to λ = 1 for α ≤ 0.

use crate::rng::{Rng, RowStreams};
use crate::shape::ImageShape;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use thiserror::Error;

/// Invalid parameters or buffers given to a batch op.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BatchError {
    /// A Beta/Gamma parameter (mixup/CutMix α) that is not finite and positive.
    #[error("{name} must be finite and > 0, got {value}")]
    InvalidParameter {
        /// The parameter's name (`alpha`, `beta`, `shape`).
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// An image shape with no pixels.
    #[error("image shape {shape} has no pixels")]
    EmptyShape {
        /// The shape given.
        shape: ImageShape,
    },
    /// A batch whose length is not a whole number of images.
    #[error(
        "batch of {len} floats is not a whole number of {shape} images ({image_len} floats each)"
    )]
    BatchLength {
        /// Floats in the batch.
        len: usize,
        /// The image shape.
        shape: ImageShape,
        /// Floats per image.
        image_len: usize,
    },
    /// An output buffer of the wrong size.
    #[error("output buffer has {got} floats, expected {expected}")]
    OutputLength {
        /// Floats needed.
        expected: usize,
        /// Floats given.
        got: usize,
    },
    /// A derangement was asked for a batch of one image.
    #[error("no derangement of n = {n}: the only permutation of one image maps it to itself")]
    NoDerangement {
        /// The batch size.
        n: usize,
    },
    /// `n_run` = 0 for a CutMix pool.
    #[error("n_run must be ≥ 1, got {n_run}")]
    InvalidRuns {
        /// The value given.
        n_run: usize,
    },
    /// A partner list whose length is not the batch size.
    #[error("partner list has {got} entries for a batch of {n}")]
    PartnerLength {
        /// Entries given.
        got: usize,
        /// The batch size.
        n: usize,
    },
    /// A per-row parameter list (λ or boxes) whose length is not the batch size.
    #[error("{got} {what} for a batch of {n}")]
    RowParamLength {
        /// What the list holds (`lambdas`, `boxes`).
        what: &'static str,
        /// Entries given.
        got: usize,
        /// The batch size.
        n: usize,
    },
    /// A partner index outside the batch.
    #[error("partner[{index}] = {partner} is out of range for a batch of {n}")]
    PartnerOutOfRange {
        /// Position in the partner list.
        index: usize,
        /// The out-of-range value.
        partner: usize,
        /// The batch size.
        n: usize,
    },
    /// A box that does not fit the image.
    #[error("box rows {y1}..{y2}, columns {x1}..{x2} does not fit a {shape} image")]
    BoxOutOfRange {
        /// First row.
        y1: usize,
        /// One past the last row.
        y2: usize,
        /// First column.
        x1: usize,
        /// One past the last column.
        x2: usize,
        /// The image shape.
        shape: ImageShape,
    },
    /// A score list whose length is not the pool's row count.
    #[error("{got} scores for a pool of {rows} rows")]
    ScoreLength {
        /// Scores given.
        got: usize,
        /// Rows in the pool.
        rows: usize,
    },
    /// A row index outside the pool or batch.
    #[error("row {row} is out of range for {rows} rows")]
    RowOutOfRange {
        /// The row asked for.
        row: usize,
        /// Rows available.
        rows: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Distributions
// ---------------------------------------------------------------------------------------------

/// A standard normal draw (Box–Muller, cosine branch; two uniforms per call, the sine branch
/// is discarded so that the generator is the only state).
pub fn standard_normal(rng: &mut Rng) -> f64 {
    // 1 − U ∈ (0, 1]: ln never sees 0.
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The Gamma(shape, 1) distribution, sampled with Marsaglia and Tsang's method (2000); for
/// shape < 1 with their boost `Gamma(a) = Gamma(a + 1) · U^(1/a)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gamma {
    shape: f64,
}

impl Gamma {
    /// Gamma(`shape`, scale 1); `shape` must be finite and > 0.
    pub fn new(shape: f64) -> Result<Self, BatchError> {
        check_positive("shape", shape)?;
        Ok(Gamma { shape })
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        self.ln_sample(rng).exp()
    }

    /// The logarithm of one draw. For small shapes a Gamma draw underflows to 0 in `f64`
    /// (`U^(1/a)` with a = 0.01 is below 1e-300 half the time); its logarithm does not, and
    /// [`Beta`] needs only the difference of two logarithms.
    pub fn ln_sample(&self, rng: &mut Rng) -> f64 {
        if self.shape >= 1.0 {
            marsaglia_tsang(self.shape, rng).ln()
        } else {
            let g = marsaglia_tsang(self.shape + 1.0, rng);
            let u = 1.0 - rng.next_f64(); // (0, 1]
            g.ln() + u.ln() / self.shape
        }
    }
}

/// Marsaglia–Tsang for `a ≥ 1`: squeeze test first, then the exact log test.
fn marsaglia_tsang(a: f64, rng: &mut Rng) -> f64 {
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let t = 1.0 + c * x;
        if t <= 0.0 {
            continue;
        }
        let v = t * t * t;
        let u = rng.next_f64();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// The Beta(a, b) distribution as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)` drawn in
/// that order; computed from the logarithms so that small parameters give 0 or 1, never NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Beta {
    a: Gamma,
    b: Gamma,
}

impl Beta {
    /// Beta(`alpha`, `beta`); both must be finite and > 0.
    pub fn new(alpha: f64, beta: f64) -> Result<Self, BatchError> {
        check_positive("alpha", alpha)?;
        check_positive("beta", beta)?;
        Ok(Beta {
            a: Gamma { shape: alpha },
            b: Gamma { shape: beta },
        })
    }

    /// The symmetric Beta(α, α) of mixup and CutMix.
    pub fn symmetric(alpha: f64) -> Result<Self, BatchError> {
        check_positive("alpha", alpha)?;
        Ok(Beta {
            a: Gamma { shape: alpha },
            b: Gamma { shape: alpha },
        })
    }

    /// One draw in [0, 1].
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        let lx = self.a.ln_sample(rng);
        let ly = self.b.ln_sample(rng);
        // X/(X+Y) = 1/(1 + e^(ly−lx)); take the exponent that cannot overflow.
        if lx >= ly {
            1.0 / (1.0 + (ly - lx).exp())
        } else {
            let r = (lx - ly).exp();
            r / (1.0 + r)
        }
    }
}

fn check_positive(name: &'static str, value: f64) -> Result<(), BatchError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(BatchError::InvalidParameter { name, value })
    }
}

// ---------------------------------------------------------------------------------------------
// Partners
// ---------------------------------------------------------------------------------------------

/// How each image of a batch gets the image it is mixed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partner {
    /// A uniform random permutation: an image may be paired with itself (mixup's
    /// `torch.randperm(B)` in the reference).
    Permutation,
    /// A uniform random derangement: no image is paired with itself (the reference's CutMix,
    /// which re-draws `randperm` while it has a fixed point). The default, as issue 3 asks.
    #[default]
    Derangement,
}

impl Partner {
    /// Draws the partners of a batch of `n` into `out` (cleared first; no allocation once its
    /// capacity is `n`).
    pub fn draw_into(
        self,
        n: usize,
        rng: &mut Rng,
        out: &mut Vec<usize>,
    ) -> Result<(), BatchError> {
        match self {
            Partner::Permutation => {
                out.clear();
                out.extend(0..n);
                rng.shuffle(out);
                Ok(())
            }
            Partner::Derangement => derangement_into(n, rng, out),
        }
    }
}

/// A uniform random derangement of `0..n` (a permutation with `p[i] != i` for every `i`).
///
/// Algorithm: rejection sampling with early refusal. Fisher–Yates (the same steps as
/// [`Rng::shuffle`]) fixes position `i` at step `i`, from the last position down; as soon as a
/// fixed position holds its own index the attempt is refused and a new one starts. Accepting
/// exactly the fixed-point-free outcomes of a uniform permutation makes the result uniform over
/// the `D(n)` derangements — the distribution of the reference's "re-draw `randperm` until no
/// fixed point" — while a refused attempt stops early instead of finishing the shuffle
/// (expected attempts `n!/D(n) → e`). Sattolo's algorithm was not used: it yields only the
/// `(n−1)!` single cycles, not all derangements (for n = 4, 6 of the 9).
///
/// `n = 0` gives the empty permutation (vacuously a derangement). `n = 1` has none and returns
/// [`BatchError::NoDerangement`] (the reference's loop would never end).
pub fn derangement(n: usize, rng: &mut Rng) -> Result<Vec<usize>, BatchError> {
    let mut out = Vec::with_capacity(n);
    derangement_into(n, rng, &mut out)?;
    Ok(out)
}

/// [`derangement`] into a caller's buffer (cleared first).
pub fn derangement_into(n: usize, rng: &mut Rng, out: &mut Vec<usize>) -> Result<(), BatchError> {
    if n == 1 {
        return Err(BatchError::NoDerangement { n });
    }
    'attempt: loop {
        out.clear();
        out.extend(0..n);
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            out.swap(i, j);
            if out[i] == i {
                continue 'attempt;
            }
        }
        if n == 0 || out[0] != 0 {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Boxes
// ---------------------------------------------------------------------------------------------

/// A CutMix box: rows `y1..y2` and columns `x1..x2` (half-open), the same for every channel;
/// shared by every image of the batch when drawn per batch, one per image when drawn per
/// sample. May be empty (λ = 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BBox {
    /// First row (`bby1`).
    pub y1: usize,
    /// One past the last row (`bby2`).
    pub y2: usize,
    /// First column (`bbx1`).
    pub x1: usize,
    /// One past the last column (`bbx2`).
    pub x2: usize,
}

impl BBox {
    /// Pixels per channel inside the box.
    pub fn area(&self) -> usize {
        (self.y2 - self.y1) * (self.x2 - self.x1)
    }

    /// The reference's recomputed λ: the fraction of each image that stays its own,
    /// `1 − area / (H·W)` in `f64`.
    pub fn lambda(&self, shape: ImageShape) -> f64 {
        1.0 - self.area() as f64 / shape.plane() as f64
    }

    /// Whether pixel (`y`, `x`) is inside.
    pub fn contains(&self, y: usize, x: usize) -> bool {
        (self.y1..self.y2).contains(&y) && (self.x1..self.x2).contains(&x)
    }

    fn check(&self, shape: ImageShape) -> Result<(), BatchError> {
        if self.y1 <= self.y2
            && self.y2 <= shape.height
            && self.x1 <= self.x2
            && self.x2 <= shape.width
        {
            Ok(())
        } else {
            Err(BatchError::BoxOutOfRange {
                y1: self.y1,
                y2: self.y2,
                x1: self.x1,
                x2: self.x2,
                shape,
            })
        }
    }
}

/// The deterministic part of the reference's `rand_bbox`: the box for a drawn `lambda` and
/// centre column `cx` / row `cy` (`cut_w = int(W·sqrt(1−λ))`, `x1 = clip(cx − cut_w//2, 0, W)`,
/// `x2 = clip(cx + cut_w//2, 0, W)`, the same for rows with H).
pub fn bbox_at(shape: ImageShape, lambda: f64, cx: usize, cy: usize) -> BBox {
    let cut_rat = (1.0 - lambda).sqrt();
    // `as usize` truncates toward zero like Python's int() on these non-negative values; a NaN
    // cut_rat (λ > 1 cannot come from Beta) would give 0, an empty box.
    let half_w = ((shape.width as f64 * cut_rat) as usize) / 2;
    let half_h = ((shape.height as f64 * cut_rat) as usize) / 2;
    BBox {
        y1: cy.saturating_sub(half_h).min(shape.height),
        y2: (cy + half_h).min(shape.height),
        x1: cx.saturating_sub(half_w).min(shape.width),
        x2: (cx + half_w).min(shape.width),
    }
}

/// The reference's `rand_bbox`: draws `cx = below(W)` then `cy = below(H)` and returns
/// [`bbox_at`]. `shape` must have pixels.
pub fn rand_bbox(shape: ImageShape, lambda: f64, rng: &mut Rng) -> BBox {
    let cx = rng.below(shape.width as u64) as usize;
    let cy = rng.below(shape.height as u64) as usize;
    bbox_at(shape, lambda, cx, cy)
}

// ---------------------------------------------------------------------------------------------
// Applying given parameters (pure, allocation-free)
// ---------------------------------------------------------------------------------------------

/// The number of images in `batch`, after checking the shape and length.
pub fn batch_size(batch: &[f32], shape: ImageShape) -> Result<usize, BatchError> {
    let image_len = shape.len();
    if image_len == 0 {
        return Err(BatchError::EmptyShape { shape });
    }
    if batch.len() % image_len != 0 {
        return Err(BatchError::BatchLength {
            len: batch.len(),
            shape,
            image_len,
        });
    }
    Ok(batch.len() / image_len)
}

fn check_partner(partner: &[usize], n: usize) -> Result<(), BatchError> {
    if partner.len() != n {
        return Err(BatchError::PartnerLength {
            got: partner.len(),
            n,
        });
    }
    if let Some((index, &p)) = partner.iter().enumerate().find(|&(_, &p)| p >= n) {
        return Err(BatchError::PartnerOutOfRange {
            index,
            partner: p,
            n,
        });
    }
    Ok(())
}

fn check_out(out: &[f32], expected: usize) -> Result<(), BatchError> {
    if out.len() == expected {
        Ok(())
    } else {
        Err(BatchError::OutputLength {
            expected,
            got: out.len(),
        })
    }
}

/// Mixup with given parameters: `out[i] = f32(λ)·batch[i] + f32(1−λ)·batch[partner[i]]`.
pub fn mix_into(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    lambda: f64,
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    let (a, b) = mix_weights(lambda);
    for (i, o) in out.chunks_exact_mut(len).enumerate() {
        mix_image(batch, len, i, partner[i], a, b, o);
    }
    Ok(())
}

/// [`mix_into`] with images spread over rayon's pool; the same output for any thread count.
pub fn mix_into_par(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    lambda: f64,
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    let (a, b) = mix_weights(lambda);
    out.par_chunks_exact_mut(len)
        .enumerate()
        .for_each(|(i, o)| mix_image(batch, len, i, partner[i], a, b, o));
    Ok(())
}

/// Mixup with one λ per row: `out[i] = f32(λᵢ)·batch[i] + f32(1−λᵢ)·batch[partner[i]]`, each
/// row computed exactly as [`mix_into`] computes it with `lambda = lambdas[i]`.
pub fn mix_rows_into(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    lambdas: &[f64],
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_rows("lambdas", lambdas.len(), n)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    for (i, o) in out.chunks_exact_mut(len).enumerate() {
        let (a, b) = mix_weights(lambdas[i]);
        mix_image(batch, len, i, partner[i], a, b, o);
    }
    Ok(())
}

/// [`mix_rows_into`] with images spread over rayon's pool; the same output for any thread count.
pub fn mix_rows_into_par(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    lambdas: &[f64],
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_rows("lambdas", lambdas.len(), n)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    out.par_chunks_exact_mut(len)
        .enumerate()
        .for_each(|(i, o)| {
            let (a, b) = mix_weights(lambdas[i]);
            mix_image(batch, len, i, partner[i], a, b, o)
        });
    Ok(())
}

fn check_rows(what: &'static str, got: usize, n: usize) -> Result<(), BatchError> {
    if got == n {
        Ok(())
    } else {
        Err(BatchError::RowParamLength { what, got, n })
    }
}

/// PyTorch's weights for `lam * x + (1 - lam) * y` with a Python float: each rounded to f32.
#[inline]
fn mix_weights(lambda: f64) -> (f32, f32) {
    (lambda as f32, (1.0 - lambda) as f32)
}

#[inline]
fn mix_image(batch: &[f32], len: usize, i: usize, p: usize, a: f32, b: f32, out: &mut [f32]) {
    let x = &batch[i * len..(i + 1) * len];
    let y = &batch[p * len..(p + 1) * len];
    // Two roundings (product, then sum), no fused multiply-add: PyTorch's separate kernels.
    for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
        *o = a * x + b * y;
    }
}

/// CutMix with given parameters: `out[i]` is `batch[i]` with the box of every channel copied
/// from `batch[partner[i]]`.
pub fn paste_box_into(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    bbox: BBox,
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    bbox.check(shape)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    for (i, o) in out.chunks_exact_mut(len).enumerate() {
        paste_image(batch, shape, i, partner[i], bbox, o);
    }
    Ok(())
}

/// [`paste_box_into`] with images spread over rayon's pool; the same output for any thread
/// count.
pub fn paste_box_into_par(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    bbox: BBox,
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    bbox.check(shape)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    out.par_chunks_exact_mut(len)
        .enumerate()
        .for_each(|(i, o)| paste_image(batch, shape, i, partner[i], bbox, o));
    Ok(())
}

/// CutMix with one box per row: `out[i]` is `batch[i]` with `boxes[i]` of every channel copied
/// from `batch[partner[i]]`.
pub fn paste_boxes_into(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    boxes: &[BBox],
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_boxes(boxes, n, shape)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    for (i, o) in out.chunks_exact_mut(len).enumerate() {
        paste_image(batch, shape, i, partner[i], boxes[i], o);
    }
    Ok(())
}

/// [`paste_boxes_into`] with images spread over rayon's pool; the same output for any thread
/// count.
pub fn paste_boxes_into_par(
    batch: &[f32],
    shape: ImageShape,
    partner: &[usize],
    boxes: &[BBox],
    out: &mut [f32],
) -> Result<(), BatchError> {
    let n = batch_size(batch, shape)?;
    check_partner(partner, n)?;
    check_boxes(boxes, n, shape)?;
    check_out(out, batch.len())?;
    let len = shape.len();
    out.par_chunks_exact_mut(len)
        .enumerate()
        .for_each(|(i, o)| paste_image(batch, shape, i, partner[i], boxes[i], o));
    Ok(())
}

fn check_boxes(boxes: &[BBox], n: usize, shape: ImageShape) -> Result<(), BatchError> {
    check_rows("boxes", boxes.len(), n)?;
    boxes.iter().try_for_each(|b| b.check(shape))
}

#[inline]
fn paste_image(batch: &[f32], shape: ImageShape, i: usize, p: usize, bbox: BBox, out: &mut [f32]) {
    let len = shape.len();
    out.copy_from_slice(&batch[i * len..(i + 1) * len]);
    if bbox.x1 == bbox.x2 || bbox.y1 == bbox.y2 {
        return;
    }
    let src = &batch[p * len..(p + 1) * len];
    let (w, plane) = (shape.width, shape.plane());
    for c in 0..shape.channels {
        let base = c * plane;
        for y in bbox.y1..bbox.y2 {
            let row = base + y * w;
            out[row + bbox.x1..row + bbox.x2].copy_from_slice(&src[row + bbox.x1..row + bbox.x2]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mixup and CutMix
// ---------------------------------------------------------------------------------------------

/// What a mixed batch's loss needs.
#[derive(Clone, Debug, PartialEq)]
pub struct MixOutput {
    /// The mixed batch, same shape as the input.
    pub images: Vec<f32>,
    /// `partner[i]`: the image mixed into image `i` (the reference's `rand_index`).
    pub partner: Vec<usize>,
    /// The fraction of each image that is its own: mixup's drawn λ, or CutMix's λ recomputed
    /// from the clipped box (`1 − area/(H·W)`). Per sample, where every row has its own, this
    /// is the mean of [`MixOutput::lambdas`] (1 for an empty batch); read `lambdas` instead.
    pub lambda: f64,
    /// `lambdas[i]`: the fraction of row `i` that is image `i` (per batch: `n` copies of
    /// `lambda`; per sample: row `i`'s own draw, for CutMix recomputed from `bboxes[i]`).
    pub lambdas: Vec<f64>,
    /// CutMix's box when the whole batch shares one (per batch); `None` for mixup and for
    /// CutMix per sample, whose boxes are in [`MixOutput::bboxes`].
    pub bbox: Option<BBox>,
    /// `bboxes[i]`: the box pasted into row `i` from `partner[i]` (per batch: `n` copies of the
    /// one box); empty for mixup.
    pub bboxes: Vec<BBox>,
}

impl MixOutput {
    /// The output of one λ (and box) for the whole batch.
    fn per_batch(images: Vec<f32>, partner: Vec<usize>, lambda: f64, bbox: Option<BBox>) -> Self {
        let n = partner.len();
        MixOutput {
            images,
            partner,
            lambda,
            lambdas: vec![lambda; n],
            bbox,
            bboxes: bbox.map_or_else(Vec::new, |b| vec![b; n]),
        }
    }

    /// The output of one λ (and box) per row.
    fn per_sample(
        images: Vec<f32>,
        partner: Vec<usize>,
        lambdas: Vec<f64>,
        bboxes: Vec<BBox>,
    ) -> Self {
        let lambda = if lambdas.is_empty() {
            1.0
        } else {
            lambdas.iter().sum::<f64>() / lambdas.len() as f64
        };
        MixOutput {
            images,
            partner,
            lambda,
            lambdas,
            bbox: None,
            bboxes,
        }
    }
}

/// Mixup: `x' = λ·x + (1−λ)·x[partner]`, one λ ~ Beta(α, α) per batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mixup {
    beta: Beta,
    alpha: f64,
    partner: Partner,
}

impl Mixup {
    /// Mixup with λ ~ Beta(`alpha`, `alpha`) (the reference uses α = 1) and partners by
    /// [`Partner::Permutation`], as the reference's `torch.randperm`.
    pub fn new(alpha: f64) -> Result<Self, BatchError> {
        Ok(Mixup {
            beta: Beta::symmetric(alpha)?,
            alpha,
            partner: Partner::Permutation,
        })
    }

    /// The same op with another partner rule.
    pub fn with_partner(mut self, partner: Partner) -> Self {
        self.partner = partner;
        self
    }

    /// α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The partner rule.
    pub fn partner(&self) -> Partner {
        self.partner
    }

    /// Draws λ then the partners of a batch of `n` (into `partner`); returns λ.
    pub fn draw_into(
        &self,
        n: usize,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
    ) -> Result<f64, BatchError> {
        let lambda = self.beta.sample(rng);
        self.partner.draw_into(n, rng, partner)?;
        Ok(lambda)
    }

    /// Mixes `batch` into the caller's `out` (same length), with the partners written into
    /// `partner`; returns λ. Allocation-free once `partner` has capacity `n`.
    pub fn apply_into(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
        out: &mut [f32],
    ) -> Result<f64, BatchError> {
        let n = batch_size(batch, shape)?;
        check_out(out, batch.len())?;
        let lambda = self.draw_into(n, rng, partner)?;
        mix_into(batch, shape, partner, lambda, out)?;
        Ok(lambda)
    }

    /// Mixes `batch` into a new buffer.
    pub fn apply(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
    ) -> Result<MixOutput, BatchError> {
        let mut images = vec![0.0; batch.len()];
        let mut partner = Vec::new();
        let lambda = self.apply_into(batch, shape, rng, &mut partner, &mut images)?;
        Ok(MixOutput::per_batch(images, partner, lambda, None))
    }

    /// Draws the [`RowStreams`] base, then the partners of a batch of `n` (into `partner`), then
    /// each row's λ from its own stream (into `lambdas`).
    pub fn draw_per_sample_into(
        &self,
        n: usize,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
        lambdas: &mut Vec<f64>,
    ) -> Result<(), BatchError> {
        let rows = RowStreams::draw(rng);
        self.partner.draw_into(n, rng, partner)?;
        lambdas.clear();
        lambdas.extend((0..n).map(|i| self.beta.sample(&mut rows.rng(i))));
        Ok(())
    }

    /// Mixes `batch` into a new buffer with one λ per row (partners still from one permutation
    /// of the batch): `x'ᵢ = λᵢ·xᵢ + (1−λᵢ)·x[partner[i]]`.
    pub fn apply_per_sample(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
    ) -> Result<MixOutput, BatchError> {
        let n = batch_size(batch, shape)?;
        let (mut partner, mut lambdas) = (Vec::with_capacity(n), Vec::with_capacity(n));
        self.draw_per_sample_into(n, rng, &mut partner, &mut lambdas)?;
        let mut images = vec![0.0; batch.len()];
        mix_rows_into(batch, shape, &partner, &lambdas, &mut images)?;
        Ok(MixOutput::per_sample(images, partner, lambdas, Vec::new()))
    }
}

/// CutMix: one λ ~ Beta(α, α) and one box per batch, pasted from each image's partner, with λ
/// recomputed from the clipped box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CutMix {
    beta: Beta,
    alpha: f64,
    partner: Partner,
}

impl CutMix {
    /// CutMix with λ ~ Beta(`alpha`, `alpha`) (the reference uses 1) and partners by
    /// [`Partner::Derangement`], as the reference.
    pub fn new(alpha: f64) -> Result<Self, BatchError> {
        Ok(CutMix {
            beta: Beta::symmetric(alpha)?,
            alpha,
            partner: Partner::Derangement,
        })
    }

    /// The same op with another partner rule ([`Partner::Permutation`] is the original
    /// clovaai CutMix, where an image can be pasted onto itself).
    pub fn with_partner(mut self, partner: Partner) -> Self {
        self.partner = partner;
        self
    }

    /// α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The partner rule.
    pub fn partner(&self) -> Partner {
        self.partner
    }

    /// Draws λ, the box (`cx`, then `cy`) and the partners of a batch of `n` images of `shape`
    /// (into `partner`); returns the recomputed λ and the box.
    pub fn draw_into(
        &self,
        n: usize,
        shape: ImageShape,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
    ) -> Result<(f64, BBox), BatchError> {
        if shape.is_empty() {
            return Err(BatchError::EmptyShape { shape });
        }
        let drawn = self.beta.sample(rng);
        let bbox = rand_bbox(shape, drawn, rng);
        self.partner.draw_into(n, rng, partner)?;
        Ok((bbox.lambda(shape), bbox))
    }

    /// Mixes `batch` into the caller's `out`, with the partners written into `partner`;
    /// returns the recomputed λ and the box. Allocation-free once `partner` has capacity `n`.
    pub fn apply_into(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
        out: &mut [f32],
    ) -> Result<(f64, BBox), BatchError> {
        let n = batch_size(batch, shape)?;
        check_out(out, batch.len())?;
        let (lambda, bbox) = self.draw_into(n, shape, rng, partner)?;
        paste_box_into(batch, shape, partner, bbox, out)?;
        Ok((lambda, bbox))
    }

    /// Mixes `batch` into a new buffer.
    pub fn apply(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
    ) -> Result<MixOutput, BatchError> {
        let mut images = vec![0.0; batch.len()];
        let mut partner = Vec::new();
        let (lambda, bbox) = self.apply_into(batch, shape, rng, &mut partner, &mut images)?;
        Ok(MixOutput::per_batch(images, partner, lambda, Some(bbox)))
    }

    /// Draws the [`RowStreams`] base, then the partners of a batch of `n` images of `shape`
    /// (into `partner`), then each row's λ, `cx` and `cy` from its own stream; writes each row's
    /// box into `boxes` and its λ, recomputed from that box, into `lambdas`.
    pub fn draw_per_sample_into(
        &self,
        n: usize,
        shape: ImageShape,
        rng: &mut Rng,
        partner: &mut Vec<usize>,
        lambdas: &mut Vec<f64>,
        boxes: &mut Vec<BBox>,
    ) -> Result<(), BatchError> {
        if shape.is_empty() {
            return Err(BatchError::EmptyShape { shape });
        }
        let rows = RowStreams::draw(rng);
        self.partner.draw_into(n, rng, partner)?;
        boxes.clear();
        boxes.extend((0..n).map(|i| {
            let mut r = rows.rng(i);
            let drawn = self.beta.sample(&mut r);
            rand_bbox(shape, drawn, &mut r)
        }));
        lambdas.clear();
        lambdas.extend(boxes.iter().map(|b| b.lambda(shape)));
        Ok(())
    }

    /// Mixes `batch` into a new buffer with one λ and one box per row (partners still from one
    /// derangement of the batch).
    pub fn apply_per_sample(
        &self,
        batch: &[f32],
        shape: ImageShape,
        rng: &mut Rng,
    ) -> Result<MixOutput, BatchError> {
        let n = batch_size(batch, shape)?;
        let mut images = vec![0.0; batch.len()];
        let (mut partner, mut lambdas, mut boxes) = (Vec::new(), Vec::new(), Vec::new());
        self.draw_per_sample_into(n, shape, rng, &mut partner, &mut lambdas, &mut boxes)?;
        paste_boxes_into(batch, shape, &partner, &boxes, &mut images)?;
        Ok(MixOutput::per_sample(images, partner, lambdas, boxes))
    }

    /// The CutMixPick pool: `n_run` independent CutMix draws of `batch`, concatenated.
    pub fn pool(
        &self,
        batch: &[f32],
        shape: ImageShape,
        n_run: usize,
        rng: &mut Rng,
    ) -> Result<PoolOutput, BatchError> {
        let mut partner = Vec::new();
        Self::pool_with(batch, shape, n_run, |batch, out, rows| {
            let (lambda, bbox) = self.apply_into(batch, shape, rng, &mut partner, out)?;
            rows.extend(partner.iter().map(|&p| (p, lambda, bbox)));
            Ok(())
        })
    }

    /// The CutMixPick pool with every call per sample ([`CutMix::apply_per_sample`]): each of
    /// the `n_run` calls draws its own derangement and one λ and box per row.
    pub fn pool_per_sample(
        &self,
        batch: &[f32],
        shape: ImageShape,
        n_run: usize,
        rng: &mut Rng,
    ) -> Result<PoolOutput, BatchError> {
        let (mut partner, mut lambdas, mut boxes) = (Vec::new(), Vec::new(), Vec::new());
        Self::pool_with(batch, shape, n_run, |batch, out, rows| {
            let n = batch_size(batch, shape)?;
            self.draw_per_sample_into(n, shape, rng, &mut partner, &mut lambdas, &mut boxes)?;
            paste_boxes_into(batch, shape, &partner, &boxes, out)?;
            rows.extend((0..n).map(|i| (partner[i], lambdas[i], boxes[i])));
            Ok(())
        })
    }

    /// `n_run` calls of `run(batch, out, rows)`, each mixing into its slice `out` of the pool
    /// and pushing (partner, λ, box) for each of its rows.
    fn pool_with(
        batch: &[f32],
        shape: ImageShape,
        n_run: usize,
        mut run: impl FnMut(&[f32], &mut [f32], &mut Vec<(usize, f64, BBox)>) -> Result<(), BatchError>,
    ) -> Result<PoolOutput, BatchError> {
        if n_run == 0 {
            return Err(BatchError::InvalidRuns { n_run });
        }
        let n = batch_size(batch, shape)?;
        let mut images = vec![0.0; n_run * batch.len()];
        let mut rows = Vec::with_capacity(n_run * n);
        let mut drawn = Vec::with_capacity(n);
        let batch_len = batch.len();
        for r in 0..n_run {
            drawn.clear();
            run(
                batch,
                &mut images[r * batch_len..(r + 1) * batch_len],
                &mut drawn,
            )?;
            rows.extend(
                drawn
                    .iter()
                    .enumerate()
                    .map(|(source, &(partner, lambda, bbox))| PoolRow {
                        run: r,
                        source,
                        partner,
                        lambda,
                        bbox,
                    }),
            );
        }
        Ok(PoolOutput {
            images,
            shape,
            n,
            n_run,
            rows,
        })
    }
}

/// Mixup with λ ~ Beta(`alpha`, `alpha`) and a random permutation of partners (the reference).
pub fn mixup(
    batch: &[f32],
    shape: ImageShape,
    alpha: f64,
    rng: &mut Rng,
) -> Result<MixOutput, BatchError> {
    Mixup::new(alpha)?.apply(batch, shape, rng)
}

/// CutMix with λ ~ Beta(`alpha`, `alpha`) and a random derangement of partners (the reference).
pub fn cutmix(
    batch: &[f32],
    shape: ImageShape,
    alpha: f64,
    rng: &mut Rng,
) -> Result<MixOutput, BatchError> {
    CutMix::new(alpha)?.apply(batch, shape, rng)
}

// ---------------------------------------------------------------------------------------------
// The CutMixPick pool
// ---------------------------------------------------------------------------------------------

/// Where one row of a CutMix pool came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolRow {
    /// Which CutMix call (0..n_run) made it.
    pub run: usize,
    /// The image it is (outside the box): index into the original batch.
    pub source: usize,
    /// The image pasted inside the box: index into the original batch.
    pub partner: usize,
    /// Its recomputed λ (fraction of `source`).
    pub lambda: f64,
    /// Its box (shared by its run when drawn per batch, its own when drawn per sample).
    pub bbox: BBox,
}

/// `n_run` CutMix calls of one batch, concatenated: row `r·n + i` is image `i` of run `r`.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolOutput {
    /// `[n_run·n, c, h, w]` images.
    pub images: Vec<f32>,
    /// The shape of one image.
    pub shape: ImageShape,
    /// Images in the original batch.
    pub n: usize,
    /// Number of CutMix calls.
    pub n_run: usize,
    /// One entry per row.
    pub rows: Vec<PoolRow>,
}

impl PoolOutput {
    /// Rows in the pool (`n_run·n`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the pool has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The pixels of row `r`.
    pub fn image(&self, r: usize) -> &[f32] {
        let len = self.shape.len();
        &self.images[r * len..(r + 1) * len]
    }

    /// The picked rows' images and provenance, in the order of `rows`.
    pub fn gather(&self, rows: &[usize]) -> Result<(Vec<f32>, Vec<PoolRow>), BatchError> {
        let images = gather_rows(&self.images, self.shape, rows)?;
        Ok((images, rows.iter().map(|&r| self.rows[r]).collect()))
    }
}

/// The CutMixPick pool: `n_run` independent CutMix calls (λ ~ Beta(`alpha`, `alpha`), each with
/// its own λ, box and derangement), concatenated into `[n_run·n, c, h, w]`.
pub fn cutmix_pool(
    batch: &[f32],
    shape: ImageShape,
    alpha: f64,
    n_run: usize,
    rng: &mut Rng,
) -> Result<PoolOutput, BatchError> {
    CutMix::new(alpha)?.pool(batch, shape, n_run, rng)
}

/// The `n` highest-scoring rows of `pool` (all rows if `n` exceeds them, as the reference's
/// `n_pick = min(len, n_pick)`), in descending score order, ties by the lower row index, NaN
/// highest. kd-core computes the scores (the teacher's or student's entropy on each row).
pub fn pick_rows(pool: &PoolOutput, scores: &[f32], n: usize) -> Result<Vec<usize>, BatchError> {
    if scores.len() != pool.len() {
        return Err(BatchError::ScoreLength {
            got: scores.len(),
            rows: pool.len(),
        });
    }
    Ok(top_rows(scores, n))
}

/// The indices of the `n` highest `scores` (all if fewer), in descending score order, ties by
/// the lower index, NaN ranked above every number.
pub fn top_rows(scores: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // A stable sort keeps equal scores in index order.
    order.sort_by(|&a, &b| descending(scores[a], scores[b]));
    order.truncate(n.min(scores.len()));
    order
}

fn descending(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // Neither is NaN, so partial_cmp is total here (and −0 == +0, a tie).
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// Copies the images at `rows` of `images` (a batch of `shape`) into a new batch.
pub fn gather_rows(
    images: &[f32],
    shape: ImageShape,
    rows: &[usize],
) -> Result<Vec<f32>, BatchError> {
    let mut out = vec![0.0; rows.len() * shape.len()];
    gather_rows_into(images, shape, rows, &mut out)?;
    Ok(out)
}

/// [`gather_rows`] into a caller's buffer of `rows.len()` images.
pub fn gather_rows_into(
    images: &[f32],
    shape: ImageShape,
    rows: &[usize],
    out: &mut [f32],
) -> Result<(), BatchError> {
    let total = batch_size(images, shape)?;
    check_out(out, rows.len() * shape.len())?;
    if let Some(&row) = rows.iter().find(|&&r| r >= total) {
        return Err(BatchError::RowOutOfRange { row, rows: total });
    }
    let len = shape.len();
    for (o, &r) in out.chunks_exact_mut(len).zip(rows) {
        o.copy_from_slice(&images[r * len..(r + 1) * len]);
    }
    Ok(())
}
