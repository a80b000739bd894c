//! A batched, prefetching loader whose batches depend only on (seed, epoch), never on threads.
//!
//! * The order of epoch `e` is the index list shuffled by `Rng::from_keys(&[seed, ORDER, e])`
//!   (or the list itself without shuffling).
//! * Sample `i` of epoch `e` is transformed with its own `Rng::from_keys(&[seed, SAMPLE, e, i])`,
//!   so which worker thread handles it, and when, changes nothing.
//! * A producer thread builds the batches in order, filling each one in parallel on a private
//!   rayon pool of `workers` threads, and hands them over through a bounded channel of depth
//!   `prefetch`. Dropping the [`Epoch`] iterator stops and joins the producer.
//! * [`Loader::epoch_from`] resumes an epoch at a step and yields exactly the batches the
//!   uninterrupted epoch would have yielded from there.

use crate::dataset::{Dataset, ImageShape};
use crate::error::{DataError, Result};
use crate::norm::Normalization;
use crate::subset::Subset;
use crossbeam_channel::{Receiver, Sender};
use kd_augment::normalize::Normalize;
use kd_augment::rng::{Rng, domain};
pub use kd_augment::transform::{FnTransform, Identity, Transform};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;
use std::thread::JoinHandle;

thread_local! {
    /// A transformed image before normalisation, per worker thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The element type of the batches.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum OutputFormat {
    /// Raw CHW bytes: the consumer converts (e.g. on the GPU).
    #[default]
    U8,
    /// `(x/255 − mean[c]) / std[c]` per channel, computed on the worker threads.
    F32(Normalization),
}

/// How a [`Loader`] batches and prefetches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch (≥ 1).
    pub batch_size: usize,
    /// Whether each epoch draws a new order from (seed, epoch); otherwise the index list order.
    pub shuffle: bool,
    /// Whether to drop the last batch when it is short.
    pub drop_last: bool,
    /// The seed of the order and of the per-sample transforms.
    pub seed: u64,
    /// Threads running the per-sample transforms (≥ 1); the batches do not depend on it.
    pub workers: usize,
    /// Batches built ahead of the consumer (≥ 1): the depth of the channel.
    pub prefetch: usize,
    /// Bytes or normalised floats.
    pub output: OutputFormat,
}

impl Default for LoaderConfig {
    /// Batches of 64, shuffled, the short last batch kept, seed 0, one worker per available
    /// core, two batches of prefetch, `u8` output.
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            seed: 0,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 2,
            output: OutputFormat::U8,
        }
    }
}

impl LoaderConfig {
    /// Checks that the batch size, worker count and prefetch depth are at least 1.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("batch_size", self.batch_size),
            ("workers", self.workers),
            ("prefetch", self.prefetch),
        ] {
            if value == 0 {
                return Err(DataError::invalid(name, value, "must be at least 1"));
            }
        }
        if let OutputFormat::F32(norm) = &self.output {
            check_normalization(norm, None)?;
        }
        Ok(())
    }
}

/// The images of a batch, back to back, in the loader's [`OutputFormat`].
#[derive(Clone, Debug, PartialEq)]
pub enum BatchImages {
    /// Raw CHW bytes.
    U8(Vec<u8>),
    /// Normalised CHW floats.
    F32(Vec<f32>),
}

/// One batch: images, labels, and the dataset indices they came from (CRD's memory bank keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The images, `labels.len() × shape.len()` values.
    pub images: BatchImages,
    /// The shape of one image (after the transform).
    pub shape: ImageShape,
    /// Class labels, as the `i64` that losses index with.
    pub labels: Vec<i64>,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
    /// The epoch the batch belongs to.
    pub epoch: u64,
    /// Its position in the epoch, from 0.
    pub step: usize,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Batches of a dataset (or of an index list into it), epoch after epoch.
///
/// Cloning is cheap: the dataset, index list, transform and thread pool are shared.
#[derive(Clone)]
pub struct Loader {
    dataset: Arc<Dataset>,
    indices: Arc<[usize]>,
    config: LoaderConfig,
    transform: Arc<dyn Transform>,
    out_shape: ImageShape,
    /// The normalisation of f32 output (kd-augment's table-driven one).
    normalize: Option<Arc<Normalize>>,
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.dataset.name())
            .field("samples", &self.indices.len())
            .field("out_shape", &self.out_shape)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn check_normalization(norm: &Normalization, channels: Option<usize>) -> Result<()> {
    let value = || format!("mean {:?}, std {:?}", norm.mean, norm.std);
    if norm.mean.len() != norm.std.len() {
        return Err(DataError::invalid(
            "normalization",
            value(),
            format!(
                "{} means but {} standard deviations",
                norm.mean.len(),
                norm.std.len()
            ),
        ));
    }
    if let Some(c) = channels.filter(|&c| c != norm.mean.len()) {
        return Err(DataError::invalid(
            "normalization",
            value(),
            format!(
                "{} channels given, but the images have {c}",
                norm.mean.len()
            ),
        ));
    }
    if norm.std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        return Err(DataError::invalid(
            "normalization",
            value(),
            "every std must be a positive number",
        ));
    }
    Ok(())
}

impl Loader {
    /// A loader over every sample of `dataset`, without transform.
    pub fn new(dataset: Arc<Dataset>, config: LoaderConfig) -> Result<Loader> {
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers)
            .thread_name(|i| format!("kd-loader-{i}"))
            .build()
            .map_err(|e| {
                DataError::invalid(
                    "workers",
                    config.workers,
                    format!("cannot start the threads: {e}"),
                )
            })?;
        let normalize = match &config.output {
            OutputFormat::F32(norm) => {
                check_normalization(norm, None)?;
                let op = Normalize::new(norm.mean.clone(), norm.std.clone()).map_err(|e| {
                    DataError::invalid(
                        "normalization",
                        format!("mean {:?}, std {:?}", norm.mean, norm.std),
                        e.to_string(),
                    )
                })?;
                Some(Arc::new(op))
            }
            OutputFormat::U8 => None,
        };
        let loader = Loader {
            indices: (0..dataset.len()).collect(),
            out_shape: dataset.shape(),
            dataset,
            config,
            transform: Arc::new(Identity),
            normalize,
            pool: Arc::new(pool),
        };
        loader.check_output()?;
        Ok(loader)
    }

    /// Loads only the samples at `indices`, in that order when not shuffling. An index may
    /// repeat (oversampling); its copies then get the same transform draw within an epoch.
    pub fn with_indices(mut self, indices: Vec<usize>) -> Result<Loader> {
        let n = self.dataset.len();
        if let Some((position, &i)) = indices.iter().enumerate().find(|&(_, &i)| i >= n) {
            return Err(DataError::invalid(
                format!("indices[{position}]"),
                i,
                format!("outside 0..{n} (the samples of {})", self.dataset.name()),
            ));
        }
        self.indices = indices.into();
        Ok(self)
    }

    /// Loads only the samples of `subset`, which must come from a dataset of the same size.
    pub fn with_subset(self, subset: &Subset) -> Result<Loader> {
        if subset.num_samples() != self.dataset.len() {
            return Err(DataError::invalid(
                "subset",
                subset.description(),
                format!(
                    "selected from a dataset of {} samples, but {} has {}",
                    subset.num_samples(),
                    self.dataset.name(),
                    self.dataset.len()
                ),
            ));
        }
        self.with_indices(subset.indices().to_vec())
    }

    /// Runs `transform` on every sample.
    pub fn with_transform(mut self, transform: impl Transform + 'static) -> Result<Loader> {
        self.out_shape = transform.output_shape(self.dataset.shape());
        self.transform = Arc::new(transform);
        self.check_output()?;
        Ok(self)
    }

    fn check_output(&self) -> Result<()> {
        if self.out_shape.is_empty() {
            return Err(DataError::invalid(
                "transform output shape",
                self.out_shape,
                "an image needs at least one pixel",
            ));
        }
        if let OutputFormat::F32(norm) = &self.config.output {
            check_normalization(norm, Some(self.out_shape.channels))?;
        }
        Ok(())
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Whether an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples per epoch before batching (the index list's length).
    pub fn num_samples(&self) -> usize {
        self.indices.len()
    }

    /// The shape of the images in the batches.
    pub fn sample_shape(&self) -> ImageShape {
        self.out_shape
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The dataset indices of epoch `epoch` in the order they are batched.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.indices.to_vec();
        if self.config.shuffle {
            Rng::from_keys(&[self.config.seed, domain::ORDER, epoch]).shuffle(&mut order);
        }
        order
    }

    /// The batches of epoch `epoch`, built ahead on other threads.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start the producer thread.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.start(epoch, 0)
    }

    /// The batches of epoch `epoch` from step `step` on: exactly what [`Loader::epoch`] yields
    /// after its first `step` batches. `step` may equal [`Loader::len`] (nothing is left).
    ///
    /// # Panics
    ///
    /// If the operating system cannot start the producer thread.
    pub fn epoch_from(&self, epoch: u64, step: usize) -> Result<Epoch> {
        if step > self.len() {
            return Err(DataError::invalid(
                "step",
                step,
                format!("an epoch has {} batches", self.len()),
            ));
        }
        Ok(self.start(epoch, step))
    }

    fn start(&self, epoch: u64, first_step: usize) -> Epoch {
        let (tx, rx) = crossbeam_channel::bounded(self.config.prefetch);
        let loader = self.clone();
        let producer = std::thread::Builder::new()
            .name("kd-loader-producer".into())
            .spawn(move || loader.produce(epoch, first_step, tx))
            .expect("the OS refused to start the loader's producer thread");
        Epoch {
            rx: Some(rx),
            producer: Some(producer),
            remaining: self.len() - first_step,
        }
    }

    /// Builds the batches in order until the epoch ends or the consumer hangs up.
    fn produce(&self, epoch: u64, first_step: usize, tx: Sender<Batch>) {
        let order = self.order(epoch);
        let b = self.config.batch_size;
        for step in first_step..self.len() {
            let end = ((step + 1) * b).min(order.len());
            let batch = self.build(epoch, step, &order[step * b..end]);
            if tx.send(batch).is_err() {
                return;
            }
        }
    }

    /// Runs `f` over (output image, dataset index) pairs: on the producer thread itself with one
    /// worker (no hand-off per batch), else on the loader's pool.
    fn for_each_image<T: Send>(
        &self,
        buf: &mut [T],
        per_image: usize,
        indices: &[usize],
        f: impl Fn(&mut [T], usize) + Sync,
    ) {
        if self.config.workers == 1 {
            buf.chunks_exact_mut(per_image)
                .zip(indices)
                .for_each(|(out, &i)| f(out, i));
        } else {
            self.pool.install(|| {
                buf.par_chunks_mut(per_image)
                    .zip(indices.par_iter())
                    .with_min_len(4)
                    .for_each(|(out, &i)| f(out, i))
            });
        }
    }

    fn build(&self, epoch: u64, step: usize, indices: &[usize]) -> Batch {
        let per_image = self.out_shape.len();
        let images = match &self.normalize {
            None => {
                let mut buf = vec![0u8; indices.len() * per_image];
                self.for_each_image(&mut buf, per_image, indices, |out, i| {
                    self.transform_sample(epoch, step, i, out)
                });
                BatchImages::U8(buf)
            }
            Some(normalize) => {
                let mut buf = vec![0f32; indices.len() * per_image];
                self.for_each_image(&mut buf, per_image, indices, |out, i| {
                    self.transform_normalized(epoch, step, i, normalize, out)
                });
                BatchImages::F32(buf)
            }
        };
        Batch {
            images,
            shape: self.out_shape,
            labels: indices
                .iter()
                .map(|&i| i64::from(self.dataset.label(i)))
                .collect(),
            indices: indices.to_vec(),
            epoch,
            step,
        }
    }

    /// Sample `index` transformed and normalised: in one pass where the transform has a fused
    /// path (crop+flip), else through a scratch image.
    fn transform_normalized(
        &self,
        epoch: u64,
        step: usize,
        index: usize,
        normalize: &Normalize,
        out: &mut [f32],
    ) {
        let (mut rng, batch_rng) = self.generators(epoch, step, index);
        let image = self.dataset.image(index);
        if self.transform.apply_normalized(
            image,
            self.dataset.shape(),
            &mut rng,
            &batch_rng,
            normalize,
            out,
        ) {
            return;
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.resize(self.out_shape.len(), 0);
            self.transform.apply_in_batch(
                image,
                self.dataset.shape(),
                &mut rng,
                &batch_rng,
                &mut scratch,
            );
            normalize.apply_into(&scratch, self.out_shape, out);
        });
    }

    /// The generators of sample `index` in batch `step` of `epoch`.
    fn generators(&self, epoch: u64, step: usize, index: usize) -> (Rng, Rng) {
        let seed = self.config.seed;
        (
            Rng::from_keys(&[seed, domain::SAMPLE, epoch, index as u64]),
            Rng::from_keys(&[seed, domain::BATCH, epoch, step as u64]),
        )
    }

    /// Sample `index` goes through the transform with its own generator, from (seed, epoch,
    /// index), and the batch's, from (seed, epoch, step), for the ops that draw once per batch.
    fn transform_sample(&self, epoch: u64, step: usize, index: usize, out: &mut [u8]) {
        let (mut rng, batch_rng) = self.generators(epoch, step, index);
        self.transform.apply_in_batch(
            self.dataset.image(index),
            self.dataset.shape(),
            &mut rng,
            &batch_rng,
            out,
        );
    }
}

/// The batches of one epoch, in order; see [`Loader::epoch`].
///
/// Dropping it early stops the producer after at most the batch it is building, and waits for
/// it. A panic in a transform is re-raised on the consuming thread by [`Iterator::next`].
pub struct Epoch {
    rx: Option<Receiver<Batch>>,
    producer: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Epoch {
    /// Hangs up and waits for the producer; returns its panic, if it panicked.
    fn finish(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        // Hanging up first makes a producer blocked on a full channel return.
        self.rx = None;
        self.producer
            .take()
            .and_then(|producer| producer.join().err())
    }
}

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        match self.rx.as_ref()?.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(batch)
            }
            Err(_) => {
                self.remaining = 0;
                if let Some(panic) = self.finish() {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Epoch {}

impl Drop for Epoch {
    fn drop(&mut self) {
        // A consumer that stopped early does not want the rest, nor a panic from building it.
        let _ = self.finish();
    }
}
