//! A seeded synthetic image-classification dataset, generated in memory in a fraction of a
//! second: the default data of `kd demo` and of the fast tests, where a small CNN must learn
//! something real on a CPU in about a minute without any download.
//!
//! # What an image is
//!
//! One coloured glyph on a cluttered, noisy background, `size × size` RGB (default 32×32, CHW
//! `u8` like CIFAR). The label is the glyph's **shape**, one of [`NUM_SHAPES`]:
//!
//! | label | name          | glyph                                   | after a left-right flip |
//! |-------|---------------|-----------------------------------------|-------------------------|
//! | 0     | `disk`        | filled circle                           | itself                  |
//! | 1     | `ring`        | annulus, hole half the diameter         | itself                  |
//! | 2     | `square`      | filled square                           | itself                  |
//! | 3     | `triangle`    | filled triangle pointing up             | itself                  |
//! | 4     | `plus`        | `+`                                     | itself                  |
//! | 5     | `hbars`       | three horizontal bars `≡`               | itself                  |
//! | 6     | `vbars`       | three vertical bars `‖|`                | itself                  |
//! | 7     | `cross`       | diagonal cross `×`                      | itself                  |
//! | 8     | `arrow-left`  | arrow pointing left `◀━`                | **`arrow-right`**       |
//! | 9     | `arrow-right` | arrow pointing right `━▶`               | **`arrow-left`**        |
//!
//! # Sources of variation
//!
//! Everything below is drawn per image, independently of the label (the hue only beyond ten
//! classes, see below), so none of it is a shortcut to the label:
//!
//! * **position**: the glyph's centre is uniform over the positions that keep it inside the
//!   image: a small glyph moves across two thirds of the image, the largest hardly at all;
//! * **scale and aspect**: the glyph's square spans 40–72% of the image side, stretched by up
//!   to ±15% along one axis;
//! * **rotation**: up to ±20°, small enough that `hbars` never looks like `vbars`, nor `plus`
//!   like `cross`, nor one arrow like the other;
//! * **colour**: a uniformly random hue (saturation 0.55–1), light on a dark background or dark
//!   on a light one, with equal odds;
//! * **background**: a linear gradient between two dull random colours, in a random direction;
//! * **clutter**: 3–8 distractors of random colours, small dots (radius 3–10% of the side) and
//!   short strokes (10–35% long, 1–2 px wide at 32×32); 30% of them are drawn over the glyph
//!   and occlude a little of it;
//! * **pixel noise**: independent per pixel and channel, standard deviation 4–16 grey levels.
//!
//! A human names every label at a glance; a linear model on raw pixels cannot (the glyph is
//! anywhere, in any colour, on any background), so the task needs features that are invariant
//! to position and colour, which a small CNN learns.
//!
//! # Horizontal flip is not label-preserving
//!
//! On purpose, classes 8 and 9 are exact mirror images of each other ([`Shape::mirror`]), while
//! classes 0–7 are mirror-symmetric glyphs drawn from mirror-symmetric distributions (position,
//! rotation, gradient direction and clutter are all symmetric), so flipping one of their images
//! gives another image of the same class. A random horizontal flip that keeps the label
//! therefore *teaches the network that the two arrows are one class*: expect those two classes
//! to fall to about 50% accuracy each, 8–10 points of overall accuracy, while the other eight
//! classes are unaffected (measured below). This makes the dataset a test of whether a researcher's augmentation
//! fits the data; a flip that respects the labels maps label `l` to
//! [`SyntheticConfig::mirrored_label`].
//!
//! # More than ten classes
//!
//! Up to [`MAX_CLASSES`] classes combine a shape with a hue family: class `k` draws shape
//! `k % 10` in hue family `k / 10`. With `F = ⌈classes / 10⌉` families, family `f` owns the
//! hue sector `[f, f + 1) · 360° / F` and its glyphs take a hue from the middle 70% of that
//! sector, at saturation 0.75–1 so the hue reads clearly; the class name then says the sector,
//! e.g. `ring-hue180-360`. With ten classes or fewer there is one family, all hues, and colour
//! carries no information. Beyond ten classes colour *is* part of the label, and neighbouring
//! sectors grow hard to tell apart as `F` grows (36° wide at 100 classes).
//!
//! # Determinism
//!
//! Image `i` of a split is drawn from its own stream,
//! `Rng::from_keys(&[seed, domain::SYNTHETIC, split tag, i])`, and has label `i % classes`. So
//! an image depends neither on how many images are generated (a smaller `*_per_class` gives a
//! prefix of a larger one, with every class in it) nor on the number of threads, train and test
//! never share a stream, and the arithmetic is plain IEEE-754 (no `sin`, `exp` or other libm
//! function whose last bit varies between platforms), so a seed gives the same bytes everywhere.
//!
//! # Difficulty
//!
//! Measured with the default configuration (seed 0, 5000 training and 1000 test images):
//!
//! * nearest class mean on raw pixels: 12% (chance is 10%: no shortcut);
//! * linear models on hand-made polarity-free edge features (`tests/synthetic.rs`):
//!   nearest class mean 55%, averaged perceptron 72%;
//! * a three-layer CNN (16-32-64 channels, batch norm, global pooling), 10 epochs of Adam on
//!   one CPU thread, about 40 s (`tests/synthetic_check.py`): 92% without augmentation; 89%
//!   with random crop (pad 4); 84% with flip, the arrows at 54% and 39% while the other
//!   classes keep 93%; 82% with both. In this short-training regime crop slows learning; when
//!   the data is scarce and the network trained to convergence (100 images per class, 60
//!   epochs, 100% training accuracy) crop helps: 84% without, 89% with.
//!
//! So the task leaves room between a small student and a larger teacher, which is what
//! distillation experiments need.

use crate::dataset::{Dataset, ImageShape, Split};
use crate::error::{DataError, Result};
use kd_augment::rng::{Rng, domain};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Number of glyph shapes: class `k` draws [`Shape::ALL`]`[k % NUM_SHAPES]`.
pub const NUM_SHAPES: usize = 10;
/// The most classes: each of the ten shapes in each of ten hue families.
pub const MAX_CLASSES: usize = 100;
/// The smallest image side: below it the bars and the ring's hole vanish.
pub const MIN_SIZE: usize = 8;
/// The largest image side (the glyphs have no detail that would need more).
pub const MAX_SIZE: usize = 512;

/// The glyph a class draws.
///
/// A glyph is a region of the square `[-1, 1]²` (u to the right, v downwards), see
/// [`Shape::contains`]; images place it with a random position, scale, aspect and rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Filled circle.
    Disk,
    /// Annulus whose hole is half its diameter.
    Ring,
    /// Filled square.
    Square,
    /// Filled triangle pointing up.
    Triangle,
    /// `+`.
    Plus,
    /// Three horizontal bars.
    HorizontalBars,
    /// Three vertical bars.
    VerticalBars,
    /// Diagonal cross `×`.
    Cross,
    /// Arrow pointing left: the mirror image of [`Shape::ArrowRight`].
    ArrowLeft,
    /// Arrow pointing right: the mirror image of [`Shape::ArrowLeft`].
    ArrowRight,
}

/// Inner radius of the ring, as a fraction of its outer radius.
const RING_HOLE: f64 = 0.5;
/// Half-width of the arms of `+`: wide enough to stay solid at the smallest scale.
const PLUS_ARM: f64 = 0.3;
/// Centres and half-thickness of the three bars: bars and gaps are each 2–4 px at 32×32.
const BAR_CENTRES: [f64; 3] = [-0.68, 0.0, 0.68];
const BAR_HALF: f64 = 0.18;
/// Half-width of the arms of `×`, measured along u (their true half-width is this / √2).
const CROSS_ARM: f64 = 0.4;
/// The arrow head spans u in [-1, ARROW_NECK] and v in ±ARROW_HEAD; its shaft is ±ARROW_SHAFT.
const ARROW_NECK: f64 = -0.05;
const ARROW_HEAD: f64 = 0.8;
const ARROW_SHAFT: f64 = 0.25;

impl Shape {
    /// The shapes in label order.
    pub const ALL: [Shape; NUM_SHAPES] = [
        Shape::Disk,
        Shape::Ring,
        Shape::Square,
        Shape::Triangle,
        Shape::Plus,
        Shape::HorizontalBars,
        Shape::VerticalBars,
        Shape::Cross,
        Shape::ArrowLeft,
        Shape::ArrowRight,
    ];

    /// The position of the shape in [`Shape::ALL`]: its label when there are ten classes.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class name of the shape (`disk`, `arrow-left`, …).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Disk => "disk",
            Shape::Ring => "ring",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Plus => "plus",
            Shape::HorizontalBars => "hbars",
            Shape::VerticalBars => "vbars",
            Shape::Cross => "cross",
            Shape::ArrowLeft => "arrow-left",
            Shape::ArrowRight => "arrow-right",
        }
    }

    /// The shape a left-right flip turns this one into: itself for the symmetric shapes, the
    /// other arrow for an arrow.
    pub fn mirror(self) -> Shape {
        match self {
            Shape::ArrowLeft => Shape::ArrowRight,
            Shape::ArrowRight => Shape::ArrowLeft,
            symmetric => symmetric,
        }
    }

    /// Whether the point `(u, v)` of the glyph square `[-1, 1]²` (u to the right, v downwards)
    /// belongs to the glyph.
    pub fn contains(self, u: f64, v: f64) -> bool {
        match self {
            Shape::Disk => u * u + v * v <= 1.0,
            Shape::Ring => (RING_HOLE * RING_HOLE..=1.0).contains(&(u * u + v * v)),
            Shape::Square => u.abs().max(v.abs()) <= 0.85,
            // Apex at (0, -0.95), base at v = 0.85 from u = -1 to 1.
            Shape::Triangle => v <= 0.85 && u.abs() <= (v + 0.95) / 1.8,
            Shape::Plus => arm(u, v) || arm(v, u),
            Shape::HorizontalBars => bars(u, v),
            Shape::VerticalBars => bars(v, u),
            Shape::Cross => {
                u.abs() <= 0.95
                    && v.abs() <= 0.95
                    && ((u - v).abs() <= CROSS_ARM || (u + v).abs() <= CROSS_ARM)
            }
            Shape::ArrowLeft => arrow_left(u, v),
            // Defined as the mirror image so that the two can differ in nothing else.
            Shape::ArrowRight => arrow_left(-u, v),
        }
    }
}

/// A vertical arm of `+` (a horizontal one with the coordinates swapped).
fn arm(across: f64, along: f64) -> bool {
    across.abs() <= PLUS_ARM && along.abs() <= 1.0
}

/// Three bars running along `along`, stacked across `across`.
fn bars(along: f64, across: f64) -> bool {
    along.abs() <= 0.95 && BAR_CENTRES.iter().any(|c| (across - c).abs() <= BAR_HALF)
}

fn arrow_left(u: f64, v: f64) -> bool {
    let head =
        (-1.0..=ARROW_NECK).contains(&u) && v.abs() <= ARROW_HEAD * (u + 1.0) / (ARROW_NECK + 1.0);
    let shaft = (ARROW_NECK - 0.05..=1.0).contains(&u) && v.abs() <= ARROW_SHAFT;
    head || shaft
}

/// The glyph of `shape` filling a `size × size` square, without position, colour or noise:
/// row-major, `true` where a pixel's centre is inside the glyph.
///
/// Pixel centres are sampled symmetrically about the middle, so flipping the mask of a shape
/// left-right gives exactly the mask of its [`Shape::mirror`].
pub fn glyph_mask(shape: Shape, size: usize) -> Vec<bool> {
    // (2x + 1 - size) / size is the centre of pixel x in [-1, 1]; for the mirrored pixel
    // size - 1 - x the numerator is exactly negated, and so is the quotient.
    let coord = |x: usize| (2.0 * x as f64 + 1.0 - size as f64) / size as f64;
    (0..size * size)
        .map(|p| shape.contains(coord(p % size), coord(p / size)))
        .collect()
}

/// What to generate: the seed, the sizes and the number of classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Names the whole dataset: the same seed gives the same bytes.
    pub seed: u64,
    /// Training images of each class (default 500).
    pub train_per_class: usize,
    /// Test images of each class (default 100).
    pub test_per_class: usize,
    /// Image side in pixels, in `MIN_SIZE..=MAX_SIZE` (default 32).
    pub size: usize,
    /// Number of classes, in `1..=MAX_CLASSES` (default 10); classes beyond ten add hue
    /// families (see the module documentation).
    pub classes: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 0,
            train_per_class: 500,
            test_per_class: 100,
            size: 32,
            classes: 10,
        }
    }
}

impl SyntheticConfig {
    /// Checks the ranges of `classes` and `size`, and that each split fits in memory's address
    /// space.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CLASSES).contains(&self.classes) {
            return Err(DataError::invalid(
                "synthetic classes",
                self.classes,
                format!("must be in 1..={MAX_CLASSES}"),
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(DataError::invalid(
                "synthetic size",
                self.size,
                format!("must be in {MIN_SIZE}..={MAX_SIZE} pixels"),
            ));
        }
        for split in [Split::Train, Split::Test] {
            self.split_bytes(split)?;
        }
        Ok(())
    }

    /// The shape of every image: 3 × size × size.
    pub fn image_shape(&self) -> ImageShape {
        ImageShape::new(3, self.size, self.size)
    }

    /// Images of each class in `split`.
    pub fn per_class(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train_per_class,
            Split::Test => self.test_per_class,
        }
    }

    /// Number of hue families, `⌈classes / 10⌉`: 1 means colour carries no information.
    pub fn families(&self) -> usize {
        self.classes.div_ceil(NUM_SHAPES)
    }

    /// The label of image `index` of either split: the classes take turns.
    pub fn label_of(&self, index: usize) -> u32 {
        (index % self.classes) as u32
    }

    /// The class names: the shape's name, followed by its hue sector when there are several
    /// families (`ring-hue180-360`).
    pub fn class_names(&self) -> Vec<String> {
        let families = self.families();
        (0..self.classes)
            .map(|k| {
                let name = shape_of(k as u32).name();
                if families == 1 {
                    return name.to_string();
                }
                let f = k / NUM_SHAPES;
                format!(
                    "{name}-hue{}-{}",
                    f * 360 / families,
                    (f + 1) * 360 / families
                )
            })
            .collect()
    }

    /// The label of a left-right flipped image of class `label`: `label` itself for the
    /// symmetric shapes, the other arrow of the same hue family for an arrow, and `None` when
    /// that arrow's class is beyond `classes` (its flip belongs to no class).
    pub fn mirrored_label(&self, label: u32) -> Option<u32> {
        let k = label as usize;
        let mirrored = k - k % NUM_SHAPES + shape_of(label).mirror().index();
        (mirrored < self.classes).then_some(mirrored as u32)
    }

    /// Bytes of the images of `split`, or an error naming the field when it overflows.
    fn split_bytes(&self, split: Split) -> Result<usize> {
        let field = match split {
            Split::Train => "synthetic train_per_class",
            Split::Test => "synthetic test_per_class",
        };
        self.per_class(split)
            .checked_mul(self.classes)
            .and_then(|n| n.checked_mul(self.image_shape().len()))
            .filter(|&bytes| bytes <= isize::MAX as usize)
            .ok_or_else(|| {
                DataError::invalid(
                    field,
                    self.per_class(split),
                    format!(
                        "{} classes × {} bytes per image overflows memory",
                        self.classes,
                        self.image_shape().len()
                    ),
                )
            })
    }
}

/// The shape class `label` draws.
pub fn shape_of(label: u32) -> Shape {
    Shape::ALL[label as usize % NUM_SHAPES]
}

/// Generates the `split` of the dataset `cfg` describes, in parallel on rayon's pool; the bytes
/// do not depend on the number of threads.
///
/// Images are ordered so that the classes take turns (`label = index % classes`), and named
/// after [`SyntheticConfig::class_names`]; the dataset is named `synthetic/train` or
/// `synthetic/test`.
pub fn generate(cfg: &SyntheticConfig, split: Split) -> Result<Dataset> {
    cfg.validate()?;
    let shape = cfg.image_shape();
    let mut images = vec![0u8; cfg.split_bytes(split)?];
    images
        .par_chunks_mut(shape.len())
        .enumerate()
        .for_each(|(i, out)| render(cfg, split, i, out));
    let labels = (0..images.len() / shape.len())
        .map(|i| cfg.label_of(i))
        .collect();
    Dataset::new(
        format!("synthetic/{split}"),
        shape,
        images,
        labels,
        cfg.class_names(),
    )
}

/// Keeps the train and test streams apart (0 is left unused).
fn split_tag(split: Split) -> u64 {
    match split {
        Split::Train => 1,
        Split::Test => 2,
    }
}

/// Draws image `index` of `split` into `out` (CHW).
fn render(cfg: &SyntheticConfig, split: Split, index: usize, out: &mut [u8]) {
    let mut rng = Rng::from_keys(&[cfg.seed, domain::SYNTHETIC, split_tag(split), index as u64]);
    let label = cfg.label_of(index);
    let light_on_dark = rng.bernoulli(0.5);
    let mut canvas = Canvas::new(cfg.size, &Gradient::random(&mut rng, light_on_dark));
    let clutter: Vec<Clutter> = (0..rng.range_inclusive(3, 8))
        .map(|_| Clutter::random(&mut rng, cfg.size))
        .collect();
    let (front, behind): (Vec<_>, Vec<_>) = clutter.iter().partition(|c| c.front);
    for c in behind {
        c.paint(&mut canvas);
    }
    let colour = foreground(
        &mut rng,
        label as usize / NUM_SHAPES,
        cfg.families(),
        light_on_dark,
    );
    let placement = Placement::random(&mut rng, cfg.size);
    let glyph = shape_of(label);
    canvas.paint(placement.bounds(cfg.size), colour, |x, y| {
        let (u, v) = placement.to_glyph(x, y);
        glyph.contains(u, v)
    });
    for c in front {
        c.paint(&mut canvas);
    }
    let sigma = uniform(&mut rng, 4.0, 16.0);
    canvas.quantise(&mut Noise::new(rng, sigma), out);
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// A uniformly random unit vector, by rejection (no trigonometry, see "Determinism").
fn direction(rng: &mut Rng) -> (f64, f64) {
    loop {
        let (x, y) = (uniform(rng, -1.0, 1.0), uniform(rng, -1.0, 1.0));
        let n2 = x * x + y * y;
        if (1e-4..=1.0).contains(&n2) {
            let n = n2.sqrt();
            return (x / n, y / n);
        }
    }
}

type Rgb = [f64; 3];

/// HSV to RGB, all components in [0, 1].
fn hsv(h: f64, s: f64, v: f64) -> Rgb {
    let h6 = (h - h.floor()) * 6.0;
    let sector = h6.floor();
    let f = h6 - sector;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match sector as u8 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// A dull colour for the background: dark when the glyph is light and the other way round.
fn background_colour(rng: &mut Rng, light_on_dark: bool) -> Rgb {
    let (lo, hi) = if light_on_dark {
        (0.05, 0.35)
    } else {
        (0.65, 1.0)
    };
    let (h, s) = (rng.next_f64(), uniform(rng, 0.0, 0.45));
    hsv(h, s, uniform(rng, lo, hi))
}

/// The glyph's colour: a hue from the family's sector (all hues when there is one family),
/// saturated, and bright or dark against the background.
fn foreground(rng: &mut Rng, family: usize, families: usize, light_on_dark: bool) -> Rgb {
    let (hue, s_lo) = if families == 1 {
        (rng.next_f64(), 0.55)
    } else {
        // The middle 70% of the sector leaves a gap between neighbouring families.
        let f = family as f64 + uniform(rng, 0.15, 0.85);
        (f / families as f64, 0.75)
    };
    let s = uniform(rng, s_lo, 1.0);
    let (v_lo, v_hi) = if light_on_dark {
        (0.75, 1.0)
    } else {
        (0.25, 0.55)
    };
    hsv(hue, s, uniform(rng, v_lo, v_hi))
}

/// A linear blend between two colours along a direction across the image.
struct Gradient {
    from: Rgb,
    to: Rgb,
    dir: (f64, f64),
}

impl Gradient {
    fn random(rng: &mut Rng, light_on_dark: bool) -> Self {
        let from = background_colour(rng, light_on_dark);
        let to = background_colour(rng, light_on_dark);
        Gradient {
            from,
            to,
            dir: direction(rng),
        }
    }

    /// The colour at `(x, y)` of a `size`-pixel image.
    fn at(&self, x: f64, y: f64, size: f64) -> Rgb {
        // The projection on a unit vector of a point of the image, from its centre, lies in
        // ±size/√2: t spans at most [0, 1].
        let proj = (x - size / 2.0) * self.dir.0 + (y - size / 2.0) * self.dir.1;
        let t = 0.5 + proj * std::f64::consts::FRAC_1_SQRT_2 / size;
        std::array::from_fn(|c| self.from[c] + (self.to[c] - self.from[c]) * t)
    }
}

/// Pixel rectangle `[x0, x1) × [y0, y1)`.
struct Bounds {
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
}

impl Bounds {
    /// The pixels a shape centred at `(cx, cy)` reaching `(ex, ey)` either way can touch.
    fn around(cx: f64, cy: f64, ex: f64, ey: f64, size: usize) -> Self {
        let clamp = |a: f64| a.clamp(0.0, size as f64) as usize;
        Bounds {
            x0: clamp((cx - ex).floor()),
            x1: clamp((cx + ex).ceil()),
            y0: clamp((cy - ey).floor()),
            y1: clamp((cy + ey).ceil()),
        }
    }
}

/// The image being drawn: RGB in [0, 1], row-major.
struct Canvas {
    size: usize,
    rgb: Vec<Rgb>,
}

/// Sub-pixel sample offsets: 2×2 supersampling gives the edges four levels of coverage.
const SUBSAMPLES: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];

impl Canvas {
    fn new(size: usize, background: &Gradient) -> Self {
        let rgb = (0..size * size)
            .map(|p| {
                background.at(
                    (p % size) as f64 + 0.5,
                    (p / size) as f64 + 0.5,
                    size as f64,
                )
            })
            .collect();
        Canvas { size, rgb }
    }

    /// Blends `colour` over the pixels of `bounds` in proportion to the share of their
    /// sub-pixel samples (in image coordinates) that are `inside`.
    fn paint(&mut self, bounds: Bounds, colour: Rgb, inside: impl Fn(f64, f64) -> bool) {
        for y in bounds.y0..bounds.y1 {
            for x in bounds.x0..bounds.x1 {
                let hits = SUBSAMPLES
                    .iter()
                    .filter(|(dx, dy)| inside(x as f64 + dx, y as f64 + dy))
                    .count();
                if hits > 0 {
                    let alpha = hits as f64 / SUBSAMPLES.len() as f64;
                    let px = &mut self.rgb[y * self.size + x];
                    for c in 0..3 {
                        px[c] += (colour[c] - px[c]) * alpha;
                    }
                }
            }
        }
    }

    /// Writes the image as CHW bytes, adding `noise` to every byte.
    fn quantise(&self, noise: &mut Noise, out: &mut [u8]) {
        let plane = self.size * self.size;
        for (c, channel) in out.chunks_exact_mut(plane).enumerate() {
            for (byte, px) in channel.iter_mut().zip(&self.rgb) {
                *byte = (px[c] * 255.0 + noise.next()).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Share of the distractors drawn over the glyph rather than behind it.
const FRONT_CLUTTER: f64 = 0.3;

/// A distractor: a dot or a short stroke, behind or in front of the glyph.
struct Clutter {
    kind: ClutterKind,
    colour: Rgb,
    front: bool,
}

enum ClutterKind {
    Dot {
        cx: f64,
        cy: f64,
        r: f64,
    },
    Stroke {
        x: f64,
        y: f64,
        dx: f64,
        dy: f64,
        len: f64,
        half: f64,
    },
}

impl Clutter {
    fn random(rng: &mut Rng, size: usize) -> Self {
        let s = size as f64;
        let (x, y) = (uniform(rng, 0.0, s), uniform(rng, 0.0, s));
        let colour = hsv(rng.next_f64(), rng.next_f64(), rng.next_f64());
        let front = rng.bernoulli(FRONT_CLUTTER);
        let kind = if rng.bernoulli(0.5) {
            ClutterKind::Dot {
                cx: x,
                cy: y,
                r: uniform(rng, 0.03, 0.1) * s,
            }
        } else {
            let (dx, dy) = direction(rng);
            let len = uniform(rng, 0.1, 0.35) * s;
            ClutterKind::Stroke {
                x,
                y,
                dx,
                dy,
                len,
                half: (uniform(rng, 0.015, 0.035) * s).max(0.5),
            }
        };
        Clutter {
            kind,
            colour,
            front,
        }
    }

    fn paint(&self, canvas: &mut Canvas) {
        let (size, colour) = (canvas.size, self.colour);
        match self.kind {
            ClutterKind::Dot { cx, cy, r } => {
                let bounds = Bounds::around(cx, cy, r, r, size);
                canvas.paint(bounds, colour, |px, py| {
                    (px - cx) * (px - cx) + (py - cy) * (py - cy) <= r * r
                });
            }
            ClutterKind::Stroke {
                x,
                y,
                dx,
                dy,
                len,
                half,
            } => {
                let (mx, my) = (x + dx * len / 2.0, y + dy * len / 2.0);
                let bounds = Bounds::around(mx, my, len / 2.0 + half, len / 2.0 + half, size);
                canvas.paint(bounds, colour, |px, py| {
                    // Distance from the segment: clamp the projection onto its line to [0, len].
                    let t = ((px - x) * dx + (py - y) * dy).clamp(0.0, len);
                    let (ex, ey) = (px - x - t * dx, py - y - t * dy);
                    ex * ex + ey * ey <= half * half
                });
            }
        }
    }
}

/// Where the glyph square `[-1, 1]²` lands in the image: centre, half-extents and rotation.
struct Placement {
    cx: f64,
    cy: f64,
    half_w: f64,
    half_h: f64,
    cos: f64,
    sin: f64,
}

/// tan(10°): half the largest rotation, see [`Placement::random`].
const TAN_HALF_MAX_ROTATION: f64 = 0.176_326_980_708_464_97;

impl Placement {
    fn random(rng: &mut Rng, size: usize) -> Self {
        let s = size as f64;
        let half = uniform(rng, 0.2, 0.36) * s;
        let aspect = uniform(rng, 0.87, 1.15);
        // The rotation from the tangent of its half angle, uniform in ±tan(10°): rational in t,
        // so no libm call, and within 0.2° of a uniform angle over ±20°.
        let t = uniform(rng, -TAN_HALF_MAX_ROTATION, TAN_HALF_MAX_ROTATION);
        let (cos, sin) = ((1.0 - t * t) / (1.0 + t * t), 2.0 * t / (1.0 + t * t));
        let mut p = Placement {
            cx: 0.0,
            cy: 0.0,
            half_w: half * aspect,
            half_h: half / aspect,
            cos,
            sin,
        };
        let (ex, ey) = p.extent();
        p.cx = Self::centre(rng, ex, s);
        p.cy = Self::centre(rng, ey, s);
        p
    }

    /// A centre coordinate keeping an extent `e` inside `[0, s]` (the middle if it cannot).
    fn centre(rng: &mut Rng, e: f64, s: f64) -> f64 {
        if 2.0 * e >= s {
            s / 2.0
        } else {
            uniform(rng, e, s - e)
        }
    }

    /// Half the size of the rotated glyph square's bounding box.
    fn extent(&self) -> (f64, f64) {
        let (c, s) = (self.cos.abs(), self.sin.abs());
        (
            c * self.half_w + s * self.half_h,
            s * self.half_w + c * self.half_h,
        )
    }

    fn bounds(&self, size: usize) -> Bounds {
        let (ex, ey) = self.extent();
        Bounds::around(self.cx, self.cy, ex, ey, size)
    }

    /// Image coordinates to glyph coordinates: undo the translation, rotation and scale.
    fn to_glyph(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let gx = self.cos * dx + self.sin * dy;
        let gy = -self.sin * dx + self.cos * dy;
        (gx / self.half_w, gy / self.half_h)
    }
}

/// Triangular pixel noise of a given standard deviation, four samples per 64 random bits.
struct Noise {
    rng: Rng,
    bits: u64,
    left: u32,
    scale: f64,
}

impl Noise {
    fn new(rng: Rng, sigma: f64) -> Self {
        // (a + b - 255) / 255 with a, b uniform bytes is triangular on (-1, 1), variance 1/6.
        Noise {
            rng,
            bits: 0,
            left: 0,
            scale: sigma * 6f64.sqrt() / 255.0,
        }
    }

    fn next(&mut self) -> f64 {
        if self.left == 0 {
            self.bits = self.rng.next_u64();
            self.left = 4;
        }
        let (a, b) = ((self.bits & 0xFF) as f64, ((self.bits >> 8) & 0xFF) as f64);
        self.bits >>= 16;
        self.left -= 1;
        (a + b - 255.0) * self.scale
    }
}
