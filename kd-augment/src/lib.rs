//! Image and batch augmentations for knowledge-distillation experiments.
//!
//! Images are `u8`, channel-major (CHW), the layout of CIFAR's files and of PyTorch's tensors.
//! Every random draw comes from an explicit [`rng::Rng`], and pipelines derive that generator from
//! (seed, epoch, sample index) or (seed, epoch, step), so results never depend on thread count.

pub mod autoaugment;
pub mod batch;
pub mod crop;
pub mod cutout;
pub mod error;
pub mod flip;
pub mod normalize;
pub mod pipeline;
pub mod rng;
pub mod scheme;
pub mod shape;
pub mod transform;

pub use error::AugmentError;
pub use pipeline::{Pipeline, PipelineSpec, Randomness};
pub use rng::Rng;
pub use scheme::{Scheme, StrongSpec, StrongerDa};
pub use shape::ImageShape;
pub use transform::{FnTransform, Identity, Transform};
