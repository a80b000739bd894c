//! RepDistiller's `ShuffleV1` (`models/ShuffleNetv1.py`, kuangliu's CIFAR ShuffleNet):
//! groups 3, stage widths [240, 480, 960], [4, 8, 4] bottlenecks (kd-codebases.md B.4).
//!
//! Unlike the paper's ShuffleNet, the stem is a 1×1 convolution at full resolution (no
//! max-pool) and the depthwise convolution is followed by a ReLU. Every layer keeps PyTorch's
//! default initialisation, as the reference does.
//!
//! Variables carry the reference's `state_dict` names: `conv1`, `bn1`,
//! `layer{1,2,3}.{j}.{conv1,bn1,conv2,bn2,conv3,bn3}` and `linear`. PyTorch's BatchNorm also
//! stores `num_batches_tracked`, which tch does not have (only used with `momentum=None`,
//! which the reference never sets).

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::init::{self, ConvInit, LinearInit};
use super::{Builder, Features, Model, ModelConfig, ModelError};

/// This family's registry entries (RepDistiller's `model_dict` name).
pub const ENTRIES: &[(&str, Builder)] = &[("ShuffleV1", shuffle_v1)];

/// The reference's channel shuffle: `[N, C, H, W] → [N, g, C/g, H, W]`, swap the two channel
/// axes, flatten back. libtorch's `channel_shuffle` is this permutation (the tests check it
/// against the view/permute form).
pub fn channel_shuffle(xs: &Tensor, groups: i64) -> Tensor {
    if groups == 1 {
        xs.shallow_clone()
    } else {
        xs.channel_shuffle(groups)
    }
}

/// A bias-free convolution with PyTorch's default initialisation (ShuffleV2's too).
pub(crate) fn conv(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    groups: i64,
) -> init::Conv2d {
    init::conv2d(
        p,
        c_in,
        c_out,
        k,
        stride,
        (k - 1) / 2,
        groups,
        false,
        ConvInit::TorchDefault,
    )
}

/// The ShuffleNet unit: 1×1 group conv → BN → ReLU → shuffle → depthwise 3×3 → BN → ReLU →
/// 1×1 group conv → BN; with stride 2 the input, average-pooled, is concatenated, otherwise
/// it is added; then ReLU.
#[derive(Debug)]
struct Bottleneck {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    conv2: init::Conv2d,
    bn2: nn::BatchNorm,
    conv3: init::Conv2d,
    bn3: nn::BatchNorm,
    /// The groups of `conv1`, which the shuffle after it uses too (1 on the 24-channel stem).
    shuffle_groups: i64,
    stride: i64,
}

impl Bottleneck {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, groups: i64) -> Bottleneck {
        let mid = c_out / 4;
        let g = if c_in == 24 { 1 } else { groups };
        Bottleneck {
            conv1: conv(p / "conv1", c_in, mid, 1, 1, g),
            bn1: init::batch_norm2d(p / "bn1", mid),
            conv2: conv(p / "conv2", mid, mid, 3, stride, mid),
            bn2: init::batch_norm2d(p / "bn2", mid),
            conv3: conv(p / "conv3", mid, c_out, 1, 1, groups),
            bn3: init::batch_norm2d(p / "bn3", c_out),
            shuffle_groups: g,
            stride,
        }
    }

    /// The block's output before its final ReLU (the reference's `preact`).
    fn preact(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        let out = channel_shuffle(&out, self.shuffle_groups);
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train).relu();
        let out = self.bn3.forward_t(&self.conv3.forward(&out), train);
        if self.stride == 2 {
            let res = xs.avg_pool2d([3, 3], [2, 2], [1, 1], false, true, None);
            Tensor::cat(&[out, res], 1)
        } else {
            out + xs
        }
    }
}

/// kuangliu's CIFAR ShuffleNet (v1).
#[derive(Debug)]
pub struct ShuffleNetV1 {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<Bottleneck>>,
    linear: init::Linear,
}

impl ShuffleNetV1 {
    /// Builds the network with stage widths `out_planes`, `num_blocks` units per stage and
    /// `groups` groups, for 32×32 inputs (the head's `avg_pool2d(4)` is fixed, as in the
    /// reference).
    pub fn new(
        p: &nn::Path,
        out_planes: [i64; 3],
        num_blocks: [i64; 3],
        groups: i64,
        num_classes: i64,
    ) -> ShuffleNetV1 {
        let mut c_in = 24;
        let layers = (0..3)
            .map(|l| {
                (0..num_blocks[l])
                    .map(|j| {
                        // The first unit of a stage concatenates its (pooled) input, so its
                        // residual branch makes only the missing channels.
                        let (stride, c_out) = if j == 0 {
                            (2, out_planes[l] - c_in)
                        } else {
                            (1, out_planes[l])
                        };
                        let p = p / format!("layer{}", l + 1) / j;
                        let block = Bottleneck::new(&p, c_in, c_out, stride, groups);
                        c_in = out_planes[l];
                        block
                    })
                    .collect()
            })
            .collect();
        ShuffleNetV1 {
            conv1: conv(p / "conv1", 3, 24, 1, 1, 1),
            bn1: init::batch_norm2d(p / "bn1", 24),
            layers,
            linear: init::linear(
                p / "linear",
                out_planes[2],
                num_classes,
                LinearInit::TorchDefault,
            ),
        }
    }
}

impl Model for ShuffleNetV1 {
    /// Features as the reference's `is_feat`: `[f0, f1, f2, f3, f4]` = the stem output, the
    /// three stages' outputs (with `preact`, their last unit before its final ReLU), and the
    /// pooled, flattened vector.
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let mut features = Vec::with_capacity(5);
        let mut x = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        features.push(x.shallow_clone());
        for layer in &self.layers {
            let mut last_pre = None;
            for block in layer {
                let pre = block.preact(&x, train);
                x = pre.relu();
                last_pre = Some(pre);
            }
            features.push(match last_pre {
                Some(pre) if preact => pre,
                _ => x.shallow_clone(),
            });
        }
        let pooled = x
            .avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None)
            .flatten(1, -1);
        let logits = self.linear.forward(&pooled);
        features.push(pooled);
        Features { features, logits }
    }
}

/// RepDistiller's `ShuffleV1`: 949,258 parameters at 100 classes.
pub fn shuffle_v1(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    check_cifar("ShuffleV1", cfg)?;
    Ok(Box::new(ShuffleNetV1::new(
        p,
        [240, 480, 960],
        [4, 8, 4],
        3,
        cfg.num_classes,
    )))
}

/// The ShuffleNets' head pools a fixed 4×4 window, so only 32×32 inputs reach the classifier
/// with the width it expects.
pub(crate) fn check_cifar(name: &str, cfg: &ModelConfig) -> Result<(), ModelError> {
    if cfg.input_size != 32 || cfg.num_classes < 1 {
        return Err(ModelError::InvalidConfig {
            name: name.to_string(),
            why: format!(
                "needs 32×32 inputs (the reference's head is avg_pool2d(4)) and at least one \
                 class, got input size {} and {} classes",
                cfg.input_size, cfg.num_classes
            ),
        });
    }
    Ok(())
}
