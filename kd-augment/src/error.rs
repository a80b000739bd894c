//! The error of kd-augment: an op's own error, or a pipeline or scheme that does not parse.

use crate::autoaugment::AutoAugmentError;
use crate::batch::BatchError;
use crate::crop::CropError;
use crate::cutout::CutoutError;
use crate::flip::FlipError;
use crate::normalize::NormalizeError;

/// Anything that can be wrong with an augmentation's parameters.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A pipeline or scheme string that does not parse; `op` is the op or scheme named.
    #[error("augmentation '{op}': {what}")]
    Parse {
        /// The op or scheme as written.
        op: String,
        /// What is wrong with it.
        what: String,
    },
    /// Bad crop parameters.
    #[error(transparent)]
    Crop(#[from] CropError),
    /// Bad flip parameters.
    #[error(transparent)]
    Flip(#[from] FlipError),
    /// Bad Cutout parameters.
    #[error(transparent)]
    Cutout(#[from] CutoutError),
    /// Bad normalisation constants.
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
    /// Bad AutoAugment, RandAugment or TrivialAugment parameters.
    #[error(transparent)]
    AutoAugment(#[from] AutoAugmentError),
    /// Bad mixup or CutMix parameters or buffers.
    #[error(transparent)]
    Batch(#[from] BatchError),
}
