//! The nine augmentation schemes of Good-DA-in-KD, by name, applied the way the reference applies
//! its stronger DA: to the **normalised** batch, by default with **one** random draw for the whole
//! batch ([`Randomness::PerBatch`]). With [`Randomness::PerSample`]
//! ([`StrongerDa::with_randomness`], or `@sample` after the name) every image draws its own.
//!
//! | scheme | per batch, the reference and the default (good-da-in-kd.md §2) | per sample (`@sample`) |
//! |---|---|---|
//! | `identity` | x′ = x | the same |
//! | `flip` | denormalise → ×255 → truncate to u8 → one coin flips the whole batch → /255 → normalise | the round trip, each image its own coin |
//! | `crop` | the same round trip with one crop offset for the batch (zero padding of size/8) | each image its own offset |
//! | `crop+flip` | the round trip with one crop offset, then one flip decision | each image its own offset, then its own coin |
//! | `cutout` | one hole (side 8 at 32 px, 16 at 64, 56 at 224) at the same place in every image, set to 0 in the normalised tensor, i.e. the dataset mean colour | each image its own hole |
//! | `autoaugment` | the round trip through AutoAugment (CIFAR10 policy at 32 px, IMAGENET otherwise), one sub-policy draw for the batch | each image its own sub-policy, probabilities and signs |
//! | `mixup` | one λ ~ Beta(1, 1), partners by a permutation | one λ per row, partners by the one permutation |
//! | `cutmix` | one λ and one box, partners by a derangement | one λ and one box per row (λ recomputed from the row's box), partners by the one derangement |
//! | `cutmix_pick:teacher_entropy` / `cutmix_pick:student_entropy` | the pool of `n_run` = 2 CutMix calls, from which kd-core keeps the highest-entropy rows under the teacher or the student | each of the `n_run` CutMix calls per sample |
//!
//! The u8 round trip truncates as the reference's `(x*255).type(uint8)` does, which darkens
//! about a fifth of byte values by one: reproduced on purpose.
//!
//! # Names
//!
//! A [`StrongSpec`] is a scheme and its randomness, written `<scheme>[@batch|@sample]`:
//! `cutmix`, `autoaugment@sample`, `cutmix_pick:teacher_entropy@sample`. Without a mode it is
//! per batch, the reference; the `@` modes mean what they mean in a [`crate::pipeline`].
//!
//! # Per-sample draws
//!
//! The batch's generator gives one base seed ([`RowStreams::draw`]) and row `i` draws from
//! `RowStreams::rng(i)`: an image scheme applies to row `i` exactly what it applies per batch
//! to a batch of that one image, given row `i`'s generator. Rows run on rayon's pool, and the
//! result does not depend on the thread count. Mixup and CutMix then draw the partners of the
//! batch from the batch's generator, and λ (and the box) from each row's (see
//! [`crate::batch`]).

use crate::autoaugment::{AutoAugment, AutoAugmentPolicy};
use crate::batch::{CutMix, MixOutput, Mixup, PoolOutput};
use crate::crop::{Crop, Fill};
use crate::cutout::{Cutout, CutoutFill};
use crate::error::AugmentError;
use crate::flip::Flip;
use crate::normalize::Normalize;
use crate::pipeline::Randomness;
use crate::rng::{Rng, RowStreams};
use crate::shape::ImageShape;
use crate::transform::Transform;
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Whose entropy CutMixPick ranks the pool by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PickBy {
    /// The teacher's (T. ent.), in eval mode.
    TeacherEntropy,
    /// The student's (S. ent.).
    StudentEntropy,
}

/// One of the paper's augmentation schemes (plus `crop`, which the reference code also has).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// x′ = x.
    Identity,
    /// A horizontal flip: one decision per batch (or per image, [`Randomness::PerSample`]).
    Flip,
    /// A zero-padded crop: one offset per batch (or per image).
    Crop,
    /// A crop then a flip: one offset and one flip decision per batch (or per image).
    CropFlip,
    /// One Cutout hole per batch (or per image).
    Cutout,
    /// One AutoAugment sub-policy draw per batch (or per image).
    AutoAugment,
    /// Mixup, one λ per batch (or per row).
    Mixup,
    /// CutMix, one λ and box per batch (or per row).
    CutMix,
    /// The CutMix pool that CutMixPick picks from.
    CutMixPick(PickBy),
}

impl Scheme {
    /// The nine schemes of the paper, in its order.
    pub const PAPER: [Scheme; 9] = [
        Scheme::Identity,
        Scheme::Flip,
        Scheme::CropFlip,
        Scheme::Cutout,
        Scheme::AutoAugment,
        Scheme::Mixup,
        Scheme::CutMix,
        Scheme::CutMixPick(PickBy::StudentEntropy),
        Scheme::CutMixPick(PickBy::TeacherEntropy),
    ];

    /// The canonical name (`crop+flip`, `cutmix_pick:teacher_entropy`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Identity => "identity",
            Scheme::Flip => "flip",
            Scheme::Crop => "crop",
            Scheme::CropFlip => "crop+flip",
            Scheme::Cutout => "cutout",
            Scheme::AutoAugment => "autoaugment",
            Scheme::Mixup => "mixup",
            Scheme::CutMix => "cutmix",
            Scheme::CutMixPick(PickBy::TeacherEntropy) => "cutmix_pick:teacher_entropy",
            Scheme::CutMixPick(PickBy::StudentEntropy) => "cutmix_pick:student_entropy",
        }
    }
}

/// Accepted spellings, canonical first; `t_ent`/`s_ent` are the paper's labels.
const NAMES: &[(&str, Scheme)] = &[
    ("identity", Scheme::Identity),
    ("flip", Scheme::Flip),
    ("crop", Scheme::Crop),
    ("crop+flip", Scheme::CropFlip),
    ("crop_flip", Scheme::CropFlip),
    ("cutout", Scheme::Cutout),
    ("autoaugment", Scheme::AutoAugment),
    ("mixup", Scheme::Mixup),
    ("cutmix", Scheme::CutMix),
    (
        "cutmix_pick:teacher_entropy",
        Scheme::CutMixPick(PickBy::TeacherEntropy),
    ),
    (
        "cutmix_pick:t_ent",
        Scheme::CutMixPick(PickBy::TeacherEntropy),
    ),
    (
        "cutmix_pick:student_entropy",
        Scheme::CutMixPick(PickBy::StudentEntropy),
    ),
    (
        "cutmix_pick:s_ent",
        Scheme::CutMixPick(PickBy::StudentEntropy),
    ),
];

impl FromStr for Scheme {
    type Err = AugmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase();
        if let Some((_, scheme)) = NAMES.iter().find(|(n, _)| *n == key) {
            return Ok(*scheme);
        }
        let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
        let what = if key == "cutmix_pick" {
            "needs a criterion: cutmix_pick:teacher_entropy or cutmix_pick:student_entropy"
                .to_string()
        } else if key.contains('@') {
            "a scheme has no '@' mode; parse '<scheme>@batch' or '<scheme>@sample' as a StrongSpec"
                .to_string()
        } else {
            let hint = crate::pipeline::closest(&key, &names)
                .map(|c| format!("; did you mean '{c}'?"))
                .unwrap_or_default();
            format!("unknown scheme (known: {}){hint}", names.join(", "))
        };
        Err(AugmentError::Parse {
            op: s.to_string(),
            what,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Scheme {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A scheme and whether its random decisions are drawn per batch or per sample; written
/// `<scheme>[@batch|@sample]` (per batch when no mode is written), and serialised as that string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StrongSpec {
    /// Which scheme.
    pub scheme: Scheme,
    /// Per batch (the reference) or per sample.
    pub randomness: Randomness,
}

impl StrongSpec {
    /// The modes after `@`, for error messages.
    pub const MODES: [&'static str; 2] = ["batch", "sample"];
}

impl From<Scheme> for StrongSpec {
    /// The scheme as the reference applies it: per batch.
    fn from(scheme: Scheme) -> Self {
        StrongSpec {
            scheme,
            randomness: Randomness::PerBatch,
        }
    }
}

impl FromStr for StrongSpec {
    type Err = AugmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((body, mode)) = s.rsplit_once('@') else {
            return Ok(s.parse::<Scheme>()?.into());
        };
        let key = mode.trim().to_ascii_lowercase();
        let randomness = match key.as_str() {
            "batch" => Randomness::PerBatch,
            "sample" => Randomness::PerSample,
            _ => {
                let hint = crate::pipeline::closest(&key, &Self::MODES)
                    .map(|c| format!("; did you mean '@{c}'?"))
                    .unwrap_or_default();
                return Err(AugmentError::Parse {
                    op: s.to_string(),
                    what: format!("unknown mode '@{mode}' (known: @batch, @sample){hint}"),
                });
            }
        };
        Ok(StrongSpec {
            scheme: body.parse()?,
            randomness,
        })
    }
}

/// The canonical form: the scheme's name, then `@sample` when per sample.
impl fmt::Display for StrongSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.name())?;
        match self.randomness {
            Randomness::PerBatch => Ok(()),
            Randomness::PerSample => f.write_str("@sample"),
        }
    }
}

impl Serialize for StrongSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StrongSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The reference's parameters for an image size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchemeParams {
    /// Crop padding (4 at 32 px, 8 at 64, 28 at 224).
    pub crop_padding: usize,
    /// Cutout side (8 at 32 px, 16 at 64, 56 at 224).
    pub cutout_length: usize,
    /// AutoAugment policy (CIFAR10 at 32 px, IMAGENET otherwise).
    pub policy: AutoAugmentPolicy,
    /// Mixup and CutMix α (1).
    pub alpha: f64,
    /// CutMix calls in CutMixPick's pool (2).
    pub n_run: usize,
}

impl SchemeParams {
    /// Good-DA-in-KD's values for square images of side `size`: CIFAR (32), Tiny ImageNet (64)
    /// and ImageNet (224); other sizes scale the same way (padding size/8, Cutout size/4).
    pub fn for_image_size(size: usize) -> Self {
        SchemeParams {
            crop_padding: size / 8,
            cutout_length: size / 4,
            policy: if size <= 32 {
                AutoAugmentPolicy::Cifar10
            } else {
                AutoAugmentPolicy::ImageNet
            },
            alpha: 1.0,
            n_run: 2,
        }
    }
}

/// What a scheme made of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum StrongOutput {
    /// x′, the same size as x.
    Images(Vec<f32>),
    /// A mixed batch and what its loss needs.
    Mixed(MixOutput),
    /// CutMixPick's pool, still to be scored and picked (kd-core).
    Pool(PoolOutput),
}

impl StrongOutput {
    /// The augmented images (the pool's rows for CutMixPick).
    pub fn images(&self) -> &[f32] {
        match self {
            StrongOutput::Images(v) => v,
            StrongOutput::Mixed(m) => &m.images,
            StrongOutput::Pool(p) => &p.images,
        }
    }
}

/// How a scheme acts on a batch.
enum Action {
    Identity,
    /// The u8 round trip through an image op.
    RoundTrip(Box<dyn Transform>),
    Cutout(Cutout),
    Mixup(Mixup),
    CutMix(CutMix),
    Pool(CutMix, usize),
}

/// A scheme bound to an image shape and the normalisation of the batches it receives, drawing
/// per batch (the reference, the default) or per sample.
pub struct StrongerDa {
    scheme: Scheme,
    randomness: Randomness,
    shape: ImageShape,
    normalize: Normalize,
    action: Action,
}

impl fmt::Debug for StrongerDa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StrongerDa({} on {})", self.spec(), self.shape)
    }
}

/// Crop then flip with one generator: the batch's one offset, then its one coin.
struct CropThenFlip(Crop, Flip);

impl Transform for CropThenFlip {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        self.0.output_shape(input)
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        let mut mid = vec![0; self.0.output_shape(shape).len()];
        self.0.apply(input, shape, rng, &mut mid);
        self.1.apply(&mid, self.0.output_shape(shape), rng, out);
    }
}

impl StrongerDa {
    /// Binds `scheme` with `params` to batches of `shape` normalised by `normalize`, drawing per
    /// batch as the reference does.
    pub fn new(
        scheme: Scheme,
        params: SchemeParams,
        shape: ImageShape,
        normalize: Normalize,
    ) -> Result<Self, AugmentError> {
        normalize.check(shape)?;
        let crop = || -> Result<Crop, AugmentError> {
            let c = Crop::rect(
                shape.height,
                shape.width,
                params.crop_padding.into(),
                Fill::All(0),
            )?;
            c.check(shape)?;
            Ok(c)
        };
        let action = match scheme {
            Scheme::Identity => Action::Identity,
            Scheme::Flip => Action::RoundTrip(Box::new(Flip::default())),
            Scheme::Crop => Action::RoundTrip(Box::new(crop()?)),
            Scheme::CropFlip => Action::RoundTrip(Box::new(CropThenFlip(crop()?, Flip::default()))),
            Scheme::Cutout => {
                Action::Cutout(Cutout::new(1, params.cutout_length, CutoutFill::Zero)?)
            }
            Scheme::AutoAugment => Action::RoundTrip(Box::new(AutoAugment::new(params.policy))),
            Scheme::Mixup => Action::Mixup(Mixup::new(params.alpha)?),
            Scheme::CutMix => Action::CutMix(CutMix::new(params.alpha)?),
            Scheme::CutMixPick(_) => Action::Pool(CutMix::new(params.alpha)?, params.n_run),
        };
        Ok(StrongerDa {
            scheme,
            randomness: Randomness::PerBatch,
            shape,
            normalize,
            action,
        })
    }

    /// Binds `spec`'s scheme with its randomness (see [`StrongerDa::new`]).
    pub fn from_spec(
        spec: StrongSpec,
        params: SchemeParams,
        shape: ImageShape,
        normalize: Normalize,
    ) -> Result<Self, AugmentError> {
        Ok(Self::new(spec.scheme, params, shape, normalize)?.with_randomness(spec.randomness))
    }

    /// The same scheme drawing its decisions per batch or per sample.
    pub fn with_randomness(mut self, randomness: Randomness) -> Self {
        self.randomness = randomness;
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Per batch or per sample.
    pub fn randomness(&self) -> Randomness {
        self.randomness
    }

    /// The scheme and its randomness.
    pub fn spec(&self) -> StrongSpec {
        StrongSpec {
            scheme: self.scheme,
            randomness: self.randomness,
        }
    }

    /// x′ from the normalised batch `batch` (`[n, c, h, w]`), with every decision drawn from
    /// `rng`: once for the whole batch, or per sample from the row generators of one
    /// [`RowStreams`] draw (see the module documentation).
    pub fn apply(&self, batch: &[f32], rng: &mut Rng) -> Result<StrongOutput, AugmentError> {
        match self.randomness {
            Randomness::PerBatch => self.apply_per_batch(batch, rng),
            Randomness::PerSample => self.apply_per_sample(batch, rng),
        }
    }

    fn apply_per_batch(&self, batch: &[f32], rng: &mut Rng) -> Result<StrongOutput, AugmentError> {
        crate::batch::batch_size(batch, self.shape)?;
        let len = self.shape.len();
        Ok(match &self.action {
            Action::Identity => StrongOutput::Images(batch.to_vec()),
            Action::RoundTrip(op) => {
                let mut bytes = vec![0u8; batch.len()];
                self.normalize
                    .denormalize_batch_to_u8(batch, self.shape, &mut bytes);
                let mut out = vec![0u8; batch.len()];
                let start = rng.clone();
                for (src, dst) in bytes.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
                    let mut r = start.clone();
                    op.apply(src, self.shape, &mut r, dst);
                    *rng = r;
                }
                let mut images = vec![0f32; batch.len()];
                self.normalize
                    .apply_batch_into(&out, self.shape, &mut images);
                StrongOutput::Images(images)
            }
            Action::Cutout(cutout) => {
                let mut images = batch.to_vec();
                let start = rng.clone();
                for img in images.chunks_exact_mut(len) {
                    let mut r = start.clone();
                    cutout.cut_in_place(img, self.shape, &mut r, &[0.0f32]);
                    *rng = r;
                }
                StrongOutput::Images(images)
            }
            Action::Mixup(m) => StrongOutput::Mixed(m.apply(batch, self.shape, rng)?),
            Action::CutMix(c) => StrongOutput::Mixed(c.apply(batch, self.shape, rng)?),
            Action::Pool(c, n_run) => StrongOutput::Pool(c.pool(batch, self.shape, *n_run, rng)?),
        })
    }

    fn apply_per_sample(&self, batch: &[f32], rng: &mut Rng) -> Result<StrongOutput, AugmentError> {
        crate::batch::batch_size(batch, self.shape)?;
        let (shape, len) = (self.shape, self.shape.len());
        Ok(match &self.action {
            Action::Identity => StrongOutput::Images(batch.to_vec()),
            Action::RoundTrip(op) => {
                let rows = RowStreams::draw(rng);
                let mut images = vec![0f32; batch.len()];
                images
                    .par_chunks_exact_mut(len)
                    .zip(batch.par_chunks_exact(len))
                    .enumerate()
                    .for_each_init(
                        || (vec![0u8; len], vec![0u8; len]),
                        |(bytes, out), (i, (dst, src))| {
                            self.normalize.denormalize_to_u8(src, shape, bytes);
                            op.apply(bytes, shape, &mut rows.rng(i), out);
                            self.normalize.apply_into(out, shape, dst);
                        },
                    );
                StrongOutput::Images(images)
            }
            Action::Cutout(cutout) => {
                let rows = RowStreams::draw(rng);
                let mut images = batch.to_vec();
                images
                    .par_chunks_exact_mut(len)
                    .enumerate()
                    .for_each(|(i, img)| cutout.cut_in_place(img, shape, &mut rows.rng(i), &[0.0]));
                StrongOutput::Images(images)
            }
            Action::Mixup(m) => StrongOutput::Mixed(m.apply_per_sample(batch, shape, rng)?),
            Action::CutMix(c) => StrongOutput::Mixed(c.apply_per_sample(batch, shape, rng)?),
            Action::Pool(c, n_run) => {
                StrongOutput::Pool(c.pool_per_sample(batch, shape, *n_run, rng)?)
            }
        })
    }
}
