//! The per-image transform interface shared by every augmentation and the loader.

use crate::normalize::Normalize;
use crate::rng::Rng;
use crate::shape::ImageShape;
use std::sync::Arc;

/// A random per-image transform (crop, flip, …), as kd-data's loader runs it on its worker threads.
///
/// `apply` must draw all its randomness from `rng`, and draw the same decisions whatever the
/// image's content: the loader derives `rng` from (seed, epoch, dataset index), which makes
/// batches independent of the number of threads, and giving every image of a batch a clone of
/// one generator applies one draw to the whole batch (per-batch randomness).
pub trait Transform: Send + Sync {
    /// The shape of the output for an input of shape `input`.
    fn output_shape(&self, input: ImageShape) -> ImageShape;

    /// Transforms one CHW image `input` of shape `shape` into `out`, which has
    /// `output_shape(shape).len()` bytes.
    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]);

    /// Transforms one image of a batch, given both the image's own generator and the batch's.
    ///
    /// Ops that run with per-batch randomness draw from a clone of `batch_rng`, so every image
    /// of the batch sees the same decisions; the others draw from `sample_rng`. The default uses
    /// `sample_rng` only; [`crate::pipeline::Pipeline`] sends each op to its own.
    fn apply_in_batch(
        &self,
        input: &[u8],
        shape: ImageShape,
        sample_rng: &mut Rng,
        _batch_rng: &Rng,
        out: &mut [u8],
    ) {
        self.apply(input, shape, sample_rng, out)
    }

    /// Like [`Transform::apply_in_batch`], but writes the result normalised by `normalize`
    /// straight into `out`, when the transform has a fused path for that; returns `false`
    /// (writing nothing, drawing nothing) when it has none, and the caller then transforms into
    /// bytes and normalises them. The result, when there is one, is the same either way.
    fn apply_normalized(
        &self,
        _input: &[u8],
        _shape: ImageShape,
        _sample_rng: &mut Rng,
        _batch_rng: &Rng,
        _normalize: &Normalize,
        _out: &mut [f32],
    ) -> bool {
        false
    }
}

impl<T: Transform + ?Sized> Transform for Arc<T> {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        (**self).output_shape(input)
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        (**self).apply(input, shape, rng, out)
    }

    fn apply_in_batch(
        &self,
        input: &[u8],
        shape: ImageShape,
        sample_rng: &mut Rng,
        batch_rng: &Rng,
        out: &mut [u8],
    ) {
        (**self).apply_in_batch(input, shape, sample_rng, batch_rng, out)
    }

    fn apply_normalized(
        &self,
        input: &[u8],
        shape: ImageShape,
        sample_rng: &mut Rng,
        batch_rng: &Rng,
        normalize: &Normalize,
        out: &mut [f32],
    ) -> bool {
        (**self).apply_normalized(input, shape, sample_rng, batch_rng, normalize, out)
    }
}

/// The image as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Transform for Identity {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], _shape: ImageShape, _rng: &mut Rng, out: &mut [u8]) {
        out.copy_from_slice(input);
    }
}

/// A closure `f(input, shape, rng, out)` as a [`Transform`]; the output has the input's
/// shape unless [`FnTransform::with_output_shape`] says otherwise.
pub struct FnTransform<F> {
    f: F,
    output: Option<ImageShape>,
}

impl<F> FnTransform<F>
where
    F: Fn(&[u8], ImageShape, &mut Rng, &mut [u8]) + Send + Sync,
{
    /// Wraps `f`; its output has the input's shape.
    pub fn new(f: F) -> Self {
        FnTransform { f, output: None }
    }

    /// Declares that `f` writes images of `shape`, whatever the input shape.
    pub fn with_output_shape(mut self, shape: ImageShape) -> Self {
        self.output = Some(shape);
        self
    }
}

impl<F> Transform for FnTransform<F>
where
    F: Fn(&[u8], ImageShape, &mut Rng, &mut [u8]) + Send + Sync,
{
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        self.output.unwrap_or(input)
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        (self.f)(input, shape, rng, out)
    }
}
