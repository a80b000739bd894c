//! Pipelines of per-image ops, written as a string such as `"crop:4,flip,cutout:8"`.
//!
//! # Syntax
//!
//! Ops are separated by commas and run left to right. An op is a name, then `:`-separated
//! arguments, positional first and then `key=value`, and optionally `@batch` or `@sample` to say
//! whether its random decisions are drawn per image (the standard DA of every reference) or once
//! for the whole batch (how Good-DA-in-KD applies its stronger DA):
//!
//! | op | arguments | meaning |
//! |---|---|---|
//! | `identity` | | the image as it is |
//! | `flip` | `[p]` (0.5) | horizontal flip with probability p |
//! | `crop` | `padding[:size=S][:fill=F]` | torchvision's `RandomCrop(S, padding, fill)`; S defaults to the input size, F to 0 |
//! | `center_crop` | `size` | the centre `size × size` window |
//! | `cutout` | `length[:holes=N][:fill=F]` | N (1) holes of side `length`, set to F (0) |
//! | `autoaugment` | `[cifar10\|imagenet\|svhn]` (cifar10) | AutoAugment, torchvision 0.10 magnitudes |
//! | `randaugment` | `[n=2][:m=9]` | RandAugment, n ops of magnitude m (of 31 bins) |
//! | `trivialaugment` | | TrivialAugmentWide |
//!
//! A fill `F` is a byte (`0`, `128`) or `mean`, the dataset's mean colour, which the caller
//! supplies when building the pipeline. Whitespace around ops is ignored; an empty string or
//! `identity` is the identity. Unknown ops, unknown keys and bad values are errors that name them.

use crate::autoaugment::{
    AutoAugment, AutoAugmentError, AutoAugmentPolicy, RandAugment, TrivialAugmentWide,
};
use crate::crop::{CenterCrop, Crop, Fill};
use crate::cutout::{Cutout, CutoutFill};
use crate::error::AugmentError;
use crate::flip::Flip;
use crate::normalize::{CropFlipNormalize, Normalize};
use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

/// Whether an op draws its random decisions per image or once per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Randomness {
    /// Every image draws its own decisions (the references' standard DA).
    #[default]
    PerSample,
    /// One draw for the whole batch (Good-DA-in-KD's stronger DA).
    PerBatch,
}

/// A fill value as written in a pipeline: a byte, or the dataset's mean colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillSpec {
    /// The same byte in every channel.
    Value(u8),
    /// The dataset mean, rounded to bytes (needs the mean when the pipeline is built).
    Mean,
}

/// One op of a pipeline, before it is built for an image shape.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// No change.
    Identity,
    /// Horizontal flip with probability `p`.
    Flip {
        /// Probability of flipping.
        p: f64,
    },
    /// Random crop with constant padding.
    Crop {
        /// Padding on each side.
        padding: usize,
        /// Square output side; the input's size when `None`.
        size: Option<usize>,
        /// The padding value.
        fill: FillSpec,
    },
    /// The centre window.
    CenterCrop {
        /// Square output side.
        size: usize,
    },
    /// Cutout holes.
    Cutout {
        /// Side of a hole.
        length: usize,
        /// Number of holes.
        holes: usize,
        /// What a hole is set to.
        fill: FillSpec,
    },
    /// AutoAugment with a policy.
    AutoAugment {
        /// Which of the three policies.
        policy: AutoAugmentPolicy,
    },
    /// RandAugment.
    RandAugment {
        /// Ops per image.
        ops: usize,
        /// Magnitude bin.
        magnitude: usize,
    },
    /// TrivialAugmentWide.
    TrivialAugment,
}

/// An op and its randomness mode (`None`: the pipeline's default).
#[derive(Clone, Debug, PartialEq)]
pub struct OpSpec {
    /// What the op does.
    pub kind: OpKind,
    /// `@batch` / `@sample`, if written.
    pub randomness: Option<Randomness>,
}

/// A parsed pipeline: what to build, not yet bound to an image shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineSpec {
    /// The ops, in order.
    pub ops: Vec<OpSpec>,
}

fn parse_error(op: &str, what: impl Into<String>) -> AugmentError {
    AugmentError::Parse {
        op: op.to_string(),
        what: what.into(),
    }
}

/// The arguments of one op: positional values, then `key=value` pairs, each used at most once.
struct Args<'a> {
    op: &'a str,
    positional: Vec<&'a str>,
    named: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn parse(op: &'a str, parts: impl Iterator<Item = &'a str>) -> Result<Self, AugmentError> {
        let mut args = Args {
            op,
            positional: Vec::new(),
            named: Vec::new(),
        };
        for part in parts {
            match part.split_once('=') {
                Some((k, v)) => args.named.push((k.trim(), v.trim())),
                None if args.named.is_empty() => args.positional.push(part.trim()),
                None => {
                    return Err(parse_error(
                        op,
                        format!("positional argument '{part}' after a key=value"),
                    ));
                }
            }
        }
        Ok(args)
    }

    /// Positional argument `i`, or the named one `key`, not both.
    fn get(&self, i: usize, key: &str) -> Result<Option<&'a str>, AugmentError> {
        let named = self.named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        match (self.positional.get(i).copied(), named) {
            (Some(_), Some(_)) => Err(parse_error(self.op, format!("'{key}' given twice"))),
            (p, n) => Ok(p.or(n)),
        }
    }

    fn number<T: FromStr>(
        &self,
        i: usize,
        key: &str,
        default: Option<T>,
    ) -> Result<T, AugmentError> {
        match self.get(i, key)? {
            Some(v) => v
                .parse()
                .map_err(|_| parse_error(self.op, format!("{key} = '{v}' is not a valid number"))),
            None => default.ok_or_else(|| parse_error(self.op, format!("needs {key}"))),
        }
    }

    fn fill(&self, i: usize) -> Result<FillSpec, AugmentError> {
        match self.get(i, "fill")? {
            None => Ok(FillSpec::Value(0)),
            Some("mean") => Ok(FillSpec::Mean),
            Some(v) => v.parse().map(FillSpec::Value).map_err(|_| {
                parse_error(
                    self.op,
                    format!("fill = '{v}': expected a byte (0..=255) or 'mean'"),
                )
            }),
        }
    }

    /// Rejects arguments beyond the `positional` accepted ones and keys not in `keys`.
    fn only(&self, positional: usize, keys: &[&str]) -> Result<(), AugmentError> {
        if self.positional.len() > positional {
            return Err(parse_error(
                self.op,
                format!(
                    "takes at most {positional} positional argument(s), got {}",
                    self.positional.len()
                ),
            ));
        }
        for (k, _) in &self.named {
            if !keys.contains(k) {
                let known = if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                };
                return Err(parse_error(
                    self.op,
                    format!("unknown key '{k}' (known: {known})"),
                ));
            }
        }
        Ok(())
    }
}

/// The op names, for error messages.
pub const OP_NAMES: &[&str] = &[
    "identity",
    "flip",
    "crop",
    "center_crop",
    "cutout",
    "autoaugment",
    "randaugment",
    "trivialaugment",
];

fn parse_op(text: &str) -> Result<OpSpec, AugmentError> {
    let (body, randomness) = match text.rsplit_once('@') {
        Some((body, "batch")) => (body, Some(Randomness::PerBatch)),
        Some((body, "sample")) => (body, Some(Randomness::PerSample)),
        Some((_, other)) => {
            return Err(parse_error(
                text,
                format!("unknown mode '@{other}' (known: @batch, @sample)"),
            ));
        }
        None => (text, None),
    };
    let mut parts = body.split(':');
    let name = parts.next().unwrap_or("").trim();
    let args = Args::parse(name, parts)?;
    let kind = match name {
        "identity" => {
            args.only(0, &[])?;
            OpKind::Identity
        }
        "flip" => {
            args.only(1, &["p"])?;
            OpKind::Flip {
                p: args.number(0, "p", Some(0.5))?,
            }
        }
        "crop" => {
            args.only(1, &["padding", "size", "fill"])?;
            OpKind::Crop {
                padding: args.number(0, "padding", None)?,
                size: args
                    .get(usize::MAX, "size")?
                    .map(|_| args.number(usize::MAX, "size", None))
                    .transpose()?,
                fill: args.fill(usize::MAX)?,
            }
        }
        "center_crop" => {
            args.only(1, &["size"])?;
            OpKind::CenterCrop {
                size: args.number(0, "size", None)?,
            }
        }
        "cutout" => {
            args.only(1, &["length", "holes", "fill"])?;
            OpKind::Cutout {
                length: args.number(0, "length", None)?,
                holes: args.number(usize::MAX, "holes", Some(1))?,
                fill: args.fill(usize::MAX)?,
            }
        }
        "autoaugment" => {
            args.only(1, &["policy"])?;
            let policy = match args.get(0, "policy")? {
                None => AutoAugmentPolicy::Cifar10,
                Some(p) => p
                    .parse()
                    .map_err(|e: AutoAugmentError| parse_error(name, e.to_string()))?,
            };
            OpKind::AutoAugment { policy }
        }
        "randaugment" => {
            args.only(0, &["n", "m"])?;
            OpKind::RandAugment {
                ops: args.number(usize::MAX, "n", Some(2))?,
                magnitude: args.number(usize::MAX, "m", Some(9))?,
            }
        }
        "trivialaugment" => {
            args.only(0, &[])?;
            OpKind::TrivialAugment
        }
        other => {
            let hint = closest(other, OP_NAMES)
                .map(|c| format!("; did you mean '{c}'?"))
                .unwrap_or_default();
            return Err(parse_error(
                other,
                format!("unknown op (known: {}){hint}", OP_NAMES.join(", ")),
            ));
        }
    };
    Ok(OpSpec { kind, randomness })
}

/// The candidate nearest to `word` in edit distance, if it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .min()
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .map(|(_, c)| c)
}

impl FromStr for PipelineSpec {
    type Err = AugmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ops = s
            .split(',')
            .map(str::trim)
            .filter(|op| !op.is_empty())
            .map(parse_op)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PipelineSpec { ops })
    }
}

impl fmt::Display for FillSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillSpec::Value(v) => write!(f, "{v}"),
            FillSpec::Mean => f.write_str("mean"),
        }
    }
}

impl fmt::Display for OpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OpKind::Identity => f.write_str("identity")?,
            OpKind::Flip { p } => write!(f, "flip:{p}")?,
            OpKind::Crop {
                padding,
                size,
                fill,
            } => {
                write!(f, "crop:{padding}")?;
                if let Some(s) = size {
                    write!(f, ":size={s}")?;
                }
                write!(f, ":fill={fill}")?;
            }
            OpKind::CenterCrop { size } => write!(f, "center_crop:{size}")?,
            OpKind::Cutout {
                length,
                holes,
                fill,
            } => write!(f, "cutout:{length}:holes={holes}:fill={fill}")?,
            OpKind::AutoAugment { policy } => write!(f, "autoaugment:{policy}")?,
            OpKind::RandAugment { ops, magnitude } => {
                write!(f, "randaugment:n={ops}:m={magnitude}")?
            }
            OpKind::TrivialAugment => f.write_str("trivialaugment")?,
        }
        match self.randomness {
            Some(Randomness::PerBatch) => f.write_str("@batch"),
            Some(Randomness::PerSample) => f.write_str("@sample"),
            None => Ok(()),
        }
    }
}

/// The canonical form: every argument written out, so it parses back to the same spec.
impl fmt::Display for PipelineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ops.is_empty() {
            return f.write_str("identity");
        }
        let ops: Vec<String> = self.ops.iter().map(ToString::to_string).collect();
        f.write_str(&ops.join(","))
    }
}

impl Serialize for PipelineSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PipelineSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One built op with the shapes it reads and writes.
struct Stage {
    op: Box<dyn Transform>,
    randomness: Randomness,
    input: ImageShape,
    output: ImageShape,
}

/// A pipeline built for one input shape: a [`Transform`] that the loader runs per image.
pub struct Pipeline {
    spec: PipelineSpec,
    stages: Vec<Stage>,
    input: ImageShape,
    /// `crop,flip` drawn per sample — every reference's standard DA — also as typed ops, for
    /// the one-pass crop+flip+normalise of [`Transform::apply_normalized`].
    crop_flip: Option<(Crop, Flip)>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pipeline({} for {})", self.spec, self.input)
    }
}

thread_local! {
    /// Two scratch images per thread for the intermediate results of a pipeline.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl PipelineSpec {
    /// Builds the ops for images of `input`. `mean` (fractions of 255 per channel) is needed
    /// only by a `fill=mean`. Every op without an `@` mode gets `default`.
    pub fn build(
        &self,
        input: ImageShape,
        mean: Option<&[f32]>,
        default: Randomness,
    ) -> Result<Pipeline, AugmentError> {
        let mut stages = Vec::with_capacity(self.ops.len());
        let mut shape = input;
        for spec in &self.ops {
            let op = build_op(&spec.kind, shape, mean)?;
            let output = op.output_shape(shape);
            stages.push(Stage {
                op,
                randomness: spec.randomness.unwrap_or(default),
                input: shape,
                output,
            });
            shape = output;
        }
        let per_sample = stages.iter().all(|s| s.randomness == Randomness::PerSample);
        let crop_flip = match self.ops.as_slice() {
            [
                OpSpec {
                    kind: crop @ OpKind::Crop { .. },
                    ..
                },
                OpSpec {
                    kind: OpKind::Flip { p },
                    ..
                },
            ] if per_sample => Some((build_crop(crop, input, mean)?, Flip::new(*p)?)),
            _ => None,
        };
        Ok(Pipeline {
            spec: self.clone(),
            stages,
            input,
            crop_flip,
        })
    }
}

/// The dataset mean a `fill=mean` needs, or an error naming `op`.
fn dataset_mean<'a>(mean: Option<&'a [f32]>, op: &str) -> Result<&'a [f32], AugmentError> {
    mean.ok_or_else(|| parse_error(op, "fill=mean needs the dataset mean, and none was given"))
}

/// The crop an [`OpKind::Crop`] describes, checked against `shape`.
fn build_crop(
    kind: &OpKind,
    shape: ImageShape,
    mean: Option<&[f32]>,
) -> Result<Crop, AugmentError> {
    let OpKind::Crop {
        padding,
        size,
        fill,
    } = kind
    else {
        unreachable!("build_crop is called on crops only")
    };
    let fill = match fill {
        FillSpec::Value(v) => Fill::All(*v),
        FillSpec::Mean => Fill::from_mean(dataset_mean(mean, "crop")?),
    };
    let crop = match size {
        Some(s) => Crop::new(*s, *padding, fill)?,
        None => Crop::rect(shape.height, shape.width, (*padding).into(), fill)?,
    };
    crop.check(shape)?;
    Ok(crop)
}

fn build_op(
    kind: &OpKind,
    shape: ImageShape,
    mean: Option<&[f32]>,
) -> Result<Box<dyn Transform>, AugmentError> {
    Ok(match kind {
        OpKind::Identity => Box::new(crate::transform::Identity),
        OpKind::Flip { p } => Box::new(Flip::new(*p)?),
        OpKind::Crop { .. } => Box::new(build_crop(kind, shape, mean)?),
        // A centre crop larger than the image pads with zeros, as torchvision's does.
        OpKind::CenterCrop { size } => Box::new(CenterCrop::new(*size)?),
        OpKind::Cutout {
            length,
            holes,
            fill,
        } => {
            let fill = match fill {
                FillSpec::Value(0) => CutoutFill::Zero,
                FillSpec::Value(v) => CutoutFill::Value(vec![*v]),
                FillSpec::Mean => CutoutFill::from_mean(dataset_mean(mean, "cutout")?),
            };
            let cutout = Cutout::new(*holes, *length, fill)?;
            cutout.fill().check(shape.channels)?;
            Box::new(cutout)
        }
        OpKind::AutoAugment { policy } => Box::new(AutoAugment::new(*policy)),
        OpKind::RandAugment { ops, magnitude } => Box::new(RandAugment::new(*ops, *magnitude, 31)?),
        OpKind::TrivialAugment => Box::new(TrivialAugmentWide::default()),
    })
}

impl Pipeline {
    /// Parses `spec` and builds it for `input` (see [`PipelineSpec::build`]).
    pub fn parse(
        spec: &str,
        input: ImageShape,
        mean: Option<&[f32]>,
    ) -> Result<Pipeline, AugmentError> {
        spec.parse::<PipelineSpec>()?
            .build(input, mean, Randomness::PerSample)
    }

    /// What the pipeline was built from.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The input shape it was built for.
    pub fn input_shape(&self) -> ImageShape {
        self.input
    }

    /// Runs every stage: per-batch stages draw from `batch` when there is one, the others
    /// (and all of them without one) from `sample`.
    fn run(&self, input: &[u8], out: &mut [u8], sample: &mut Rng, mut batch: Option<&mut Rng>) {
        let n = self.stages.len();
        if n == 0 {
            out.copy_from_slice(input);
            return;
        }
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (a, b) = &mut *guard;
            for (i, st) in self.stages.iter().enumerate() {
                let rng: &mut Rng = match (st.randomness, batch.as_deref_mut()) {
                    (Randomness::PerBatch, Some(b)) => b,
                    _ => &mut *sample,
                };
                let src: &[u8] = if i == 0 { input } else { &a[..st.input.len()] };
                if i + 1 == n {
                    st.op.apply(src, st.input, rng, out);
                } else {
                    b.resize(st.output.len(), 0);
                    st.op.apply(src, st.input, rng, &mut b[..]);
                    std::mem::swap(a, b);
                }
            }
        });
    }
}

impl Transform for Pipeline {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        assert_eq!(input, self.input, "{self:?} applied to images of {input}");
        self.stages.last().map_or(input, |s| s.output)
    }

    /// Every stage draws from `rng`, whatever its mode: the caller decides what `rng` is.
    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        assert_eq!(shape, self.input, "{self:?} applied to images of {shape}");
        self.run(input, out, rng, None);
    }

    fn apply_normalized(
        &self,
        input: &[u8],
        shape: ImageShape,
        sample_rng: &mut Rng,
        _batch_rng: &Rng,
        normalize: &Normalize,
        out: &mut [f32],
    ) -> bool {
        let Some((crop, flip)) = &self.crop_flip else {
            return false;
        };
        if shape != self.input || normalize.check(self.output_shape(shape)).is_err() {
            return false;
        }
        CropFlipNormalize::apply_parts(crop, flip, normalize, input, shape, sample_rng, out);
        true
    }

    fn apply_in_batch(
        &self,
        input: &[u8],
        shape: ImageShape,
        sample_rng: &mut Rng,
        batch_rng: &Rng,
        out: &mut [u8],
    ) {
        assert_eq!(shape, self.input, "{self:?} applied to images of {shape}");
        let mut batch = batch_rng.clone();
        self.run(input, out, sample_rng, Some(&mut batch));
    }
}
