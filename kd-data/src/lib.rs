//! Datasets, subsets and a deterministic, prefetching batch loader for knowledge-distillation
//! experiments. No libtorch: everything here is plain Rust on `u8` images.
//!
//! * Readers: CIFAR-10/100 (binary and python pickle), MNIST/Fashion-MNIST (idx, raw or gzip),
//!   ImageFolder trees and Tiny-ImageNet, and a seeded [`synthetic`] dataset built in memory.
//! * [`subset`]: the δ (classes) and ζ (samples per class) selections of "When does KD help?",
//!   at random or by a per-sample score, saved to and read from files.
//! * [`loader`]: batches in a per-epoch order drawn from (seed, epoch), per-sample transforms
//!   on worker threads, prefetch through a bounded channel; the batches do not depend on the
//!   number of threads.
//! * [`download`]: the official archives, resumable and md5-verified.

pub mod cifar;
pub mod dataset;
pub mod detect;
pub mod download;
pub mod error;
pub mod export;
pub mod folder;
pub mod loader;
pub mod mnist;
pub mod norm;
pub mod pickle;
pub mod subset;
pub mod synthetic;

pub use dataset::{Dataset, ImageShape, Split};
pub use error::{DataError, Result};
pub use norm::Normalization;
