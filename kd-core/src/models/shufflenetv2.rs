//! RepDistiller's `ShuffleV2` (`models/ShuffleNetv2.py`, kuangliu's CIFAR ShuffleNetV2 at
//! net size 1): stage widths (116, 232, 464), a 1024-channel last convolution, and a
//! down-sampling unit plus (3, 7, 3) basic units per stage (kd-codebases.md B.4).
//!
//! The stem is a 1×1 convolution at full resolution (no max-pool). Every layer keeps PyTorch's
//! default initialisation, as the reference does.
//!
//! Variables carry the reference's `state_dict` names: `conv1`, `bn1`, `layer{1,2,3}.0` (the
//! down-sampling unit: `conv1`–`conv5`, `bn1`–`bn5`), `layer{1,2,3}.{j≥1}` (basic units:
//! `conv1`–`conv3`, `bn1`–`bn3`), `conv2`, `bn2` and `linear`. PyTorch's BatchNorm also
//! stores `num_batches_tracked`, which tch does not have (only used with `momentum=None`,
//! which the reference never sets).

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::init::{self, LinearInit};
use super::shufflenetv1::{self, channel_shuffle, check_cifar};
use super::{Builder, Features, Model, ModelConfig, ModelError};

/// This family's registry entries (RepDistiller's `model_dict` name).
pub const ENTRIES: &[(&str, Builder)] = &[("ShuffleV2", shuffle_v2)];

/// A bias-free convolution with PyTorch's default initialisation; `depthwise` makes it a
/// per-channel 3×3 with `stride`, otherwise it is a 1×1.
fn conv(p: nn::Path, c_in: i64, c_out: i64, depthwise: bool, stride: i64) -> init::Conv2d {
    let (k, groups) = if depthwise { (3, c_in) } else { (1, 1) };
    shufflenetv1::conv(p, c_in, c_out, k, stride, groups)
}

/// A convolution and its BatchNorm, named `conv{i}` and `bn{i}` under the unit.
#[derive(Debug)]
struct ConvBn {
    conv: init::Conv2d,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: &nn::Path, i: usize, c_in: i64, c_out: i64, depthwise: bool, stride: i64) -> Self {
        ConvBn {
            conv: conv(p / format!("conv{i}"), c_in, c_out, depthwise, stride),
            bn: init::batch_norm2d(p / format!("bn{i}"), c_out),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(xs), train)
    }
}

/// The basic unit: split the channels in half, run the second half through 1×1 → BN → ReLU →
/// depthwise 3×3 → BN → 1×1 → BN → ReLU, concatenate with the first half, shuffle(2).
#[derive(Debug)]
struct BasicBlock {
    units: [ConvBn; 3],
}

impl BasicBlock {
    fn new(p: &nn::Path, channels: i64) -> BasicBlock {
        let c = channels / 2;
        BasicBlock {
            units: [
                ConvBn::new(p, 1, c, c, false, 1),
                ConvBn::new(p, 2, c, c, true, 1),
                ConvBn::new(p, 3, c, c, false, 1),
            ],
        }
    }

    /// The output and the reference's `preact`: the concatenation before the last ReLU of the
    /// branch, not shuffled.
    fn forward_t(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let channels = xs.size()[1];
        let c = channels / 2;
        let x1 = xs.narrow(1, 0, c);
        let x2 = xs.narrow(1, c, channels - c);
        let out = self.units[0].forward_t(&x2, train).relu();
        let out = self.units[1].forward_t(&out, train);
        let branch_pre = self.units[2].forward_t(&out, train);
        let out = Tensor::cat(&[&x1, &branch_pre.relu()], 1);
        let pre = Tensor::cat(&[&x1, &branch_pre], 1);
        (channel_shuffle(&out, 2), pre)
    }
}

/// The down-sampling unit: left, depthwise 3×3 s2 → BN → 1×1 → BN → ReLU; right, 1×1 → BN →
/// ReLU → depthwise 3×3 s2 → BN → 1×1 → BN → ReLU; concatenate, shuffle(2).
#[derive(Debug)]
struct DownBlock {
    units: [ConvBn; 5],
}

impl DownBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64) -> DownBlock {
        let mid = c_out / 2;
        DownBlock {
            units: [
                ConvBn::new(p, 1, c_in, c_in, true, 2),
                ConvBn::new(p, 2, c_in, mid, false, 1),
                ConvBn::new(p, 3, c_in, mid, false, 1),
                ConvBn::new(p, 4, mid, mid, true, 2),
                ConvBn::new(p, 5, mid, mid, false, 1),
            ],
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let [u1, u2, u3, u4, u5] = &self.units;
        let left = u2.forward_t(&u1.forward_t(xs, train), train).relu();
        let right = u3.forward_t(xs, train).relu();
        let right = u5.forward_t(&u4.forward_t(&right, train), train).relu();
        channel_shuffle(&Tensor::cat(&[left, right], 1), 2)
    }
}

/// One stage: a down-sampling unit (`.0`) and the basic units (`.1`, `.2`, …).
#[derive(Debug)]
struct Stage {
    down: DownBlock,
    blocks: Vec<BasicBlock>,
}

/// kuangliu's CIFAR ShuffleNetV2.
#[derive(Debug)]
pub struct ShuffleNetV2 {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    stages: Vec<Stage>,
    conv2: init::Conv2d,
    bn2: nn::BatchNorm,
    linear: init::Linear,
}

impl ShuffleNetV2 {
    /// Builds the network with stage widths `out_channels[..3]`, last convolution width
    /// `out_channels[3]` and `num_blocks` basic units per stage, for 32×32 inputs (the head's
    /// `avg_pool2d(4)` is fixed, as in the reference).
    pub fn new(
        p: &nn::Path,
        out_channels: [i64; 4],
        num_blocks: [i64; 3],
        num_classes: i64,
    ) -> ShuffleNetV2 {
        let mut c_in = 24;
        let stages = (0..3)
            .map(|l| {
                let p = p / format!("layer{}", l + 1);
                let c = out_channels[l];
                let down = DownBlock::new(&(&p / 0), c_in, c);
                c_in = c;
                let blocks = (1..=num_blocks[l])
                    .map(|j| BasicBlock::new(&(&p / j), c))
                    .collect();
                Stage { down, blocks }
            })
            .collect();
        ShuffleNetV2 {
            conv1: conv(p / "conv1", 3, 24, false, 1),
            bn1: init::batch_norm2d(p / "bn1", 24),
            stages,
            conv2: conv(p / "conv2", out_channels[2], out_channels[3], false, 1),
            bn2: init::batch_norm2d(p / "bn2", out_channels[3]),
            linear: init::linear(
                p / "linear",
                out_channels[3],
                num_classes,
                LinearInit::TorchDefault,
            ),
        }
    }
}

impl Model for ShuffleNetV2 {
    /// Features as the reference's `is_feat`: `[f0, f1, f2, f3, f4]` = the stem output, the
    /// three stages' outputs (with `preact`, their last basic unit's concatenation before the
    /// branch's final ReLU, unshuffled, as the reference), and the pooled, flattened vector
    /// after the 1024-channel convolution.
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let mut features = Vec::with_capacity(5);
        let mut x = self.bn1.forward_t(&self.conv1.forward(xs), train).relu();
        features.push(x.shallow_clone());
        for stage in &self.stages {
            x = stage.down.forward_t(&x, train);
            let mut last_pre = None;
            for block in &stage.blocks {
                let (out, pre) = block.forward_t(&x, train);
                x = out;
                last_pre = Some(pre);
            }
            features.push(match last_pre {
                Some(pre) if preact => pre,
                _ => x.shallow_clone(),
            });
        }
        let x = self.bn2.forward_t(&self.conv2.forward(&x), train).relu();
        let pooled = x
            .avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None)
            .flatten(1, -1);
        let logits = self.linear.forward(&pooled);
        features.push(pooled);
        Features { features, logits }
    }
}

/// RepDistiller's `ShuffleV2` (net size 1): 1,355,528 parameters at 100 classes.
pub fn shuffle_v2(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    check_cifar("ShuffleV2", cfg)?;
    Ok(Box::new(ShuffleNetV2::new(
        p,
        [116, 232, 464, 1024],
        [3, 7, 3],
        cfg.num_classes,
    )))
}
