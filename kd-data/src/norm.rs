//! Per-dataset normalisation constants, exactly as the reference code bases use them.
//!
//! The references disagree in the fourth decimal for CIFAR-100 (RepDistiller and Good-DA-in-KD
//! against kd_data), and kd_data's AutoAugment mode uses a third set: each is kept under its own
//! name so a reproduction can pick the one its reference used.

use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation of pixels scaled to [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Channel means.
    pub mean: Vec<f32>,
    /// Channel standard deviations.
    pub std: Vec<f32>,
}

impl Normalization {
    /// A normalisation from explicit per-channel constants.
    pub fn new(mean: &[f32], std: &[f32]) -> Self {
        Normalization {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    /// The named constants: see [`PRESETS`] for the names.
    pub fn preset(name: &str) -> Option<Self> {
        PRESETS
            .iter()
            .find(|p| p.0 == name)
            .map(|p| Normalization::new(p.1, p.2))
    }

    /// The constants a reference uses by default for a dataset name (`cifar10`, `cifar100`,
    /// `tiny-imagenet`, `imagenet`, `mnist`, `fashion-mnist`).
    pub fn for_dataset(dataset: &str) -> Option<Self> {
        Self::preset(dataset)
    }
}

/// Every named preset: (name, mean, std, where it comes from).
pub const PRESETS: &[(&str, &[f32], &[f32], &str)] = &[
    (
        "cifar100",
        &[0.5071, 0.4867, 0.4408],
        &[0.2675, 0.2565, 0.2761],
        "RepDistiller and Good-DA-in-KD, dataset/cifar100.py",
    ),
    (
        "cifar100-kd_data",
        &[0.5071, 0.4865, 0.4409],
        &[0.2673, 0.2564, 0.2762],
        "kd_data, tools/data_setter.py",
    ),
    (
        "cifar10",
        &[0.4914, 0.4822, 0.4465],
        &[0.2023, 0.1994, 0.2010],
        "kd_data, tools/data_setter.py",
    ),
    (
        "cifar10-autoaugment",
        &[0.4914, 0.4822, 0.4465],
        &[0.2470, 0.2430, 0.2610],
        "kd_data --mode auto (used for CIFAR-10 and CIFAR-100)",
    ),
    (
        "tiny-imagenet",
        &[0.4802, 0.4481, 0.3975],
        &[0.2770, 0.2691, 0.2821],
        "kd_data, tools/data_setter.py",
    ),
    (
        "imagenet",
        &[0.485, 0.456, 0.406],
        &[0.229, 0.224, 0.225],
        "torchvision; Good-DA-in-KD for Tiny-ImageNet",
    ),
    ("mnist", &[0.1307], &[0.3081], "PyTorch's MNIST example"),
    (
        "fashion-mnist",
        &[0.2860],
        &[0.3530],
        "the training set's pixel statistics",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_consistent() {
        for (name, mean, std, _) in PRESETS {
            assert_eq!(mean.len(), std.len(), "{name}");
            assert!(std.iter().all(|&s| s > 0.0), "{name}");
            assert!(Normalization::preset(name).is_some());
        }
        assert_eq!(
            Normalization::for_dataset("cifar100").unwrap().mean,
            vec![0.5071, 0.4867, 0.4408]
        );
        assert!(Normalization::preset("nope").is_none());
    }
}
