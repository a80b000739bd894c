//! RepDistiller's CIFAR VGGs (`models/vgg.py`, after Wei Yang): VGG with BatchNorm and the
//! fully-connected layers removed, i.e. five convolution blocks, global average pooling and one
//! linear classifier (kd-codebases.md B.4).
//!
//! The names follow the original VGG layer counts (convolutions + 3 FC layers), so `vgg8` has
//! five convolutions and one linear layer here. Variables carry the reference's `state_dict`
//! names: block `b` is an `nn.Sequential` of `[conv, bn, relu]` triples with the last ReLU
//! dropped, so its convolutions are `block{b}.{3i}` and its BatchNorms `block{b}.{3i+1}`; the
//! classifier is `classifier`. PyTorch's BatchNorm also stores `num_batches_tracked`, which tch
//! does not have (only used with `momentum=None`, which the reference never sets).

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::init::{self, ConvInit, LinearInit};
use super::{Builder, Features, Model, ModelConfig, ModelError};

/// This family's registry entries (RepDistiller's `model_dict` names; all with BatchNorm).
pub const ENTRIES: &[(&str, Builder)] = &[
    ("vgg8", vgg8),
    ("vgg11", vgg11),
    ("vgg13", vgg13),
    ("vgg16", vgg16),
    ("vgg19", vgg19),
];

/// Configuration "S" (vgg8): one convolution per block.
pub const CFG_S: [&[i64]; 5] = [&[64], &[128], &[256], &[512], &[512]];
/// Configuration "A" (vgg11).
pub const CFG_A: [&[i64]; 5] = [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
/// Configuration "B" (vgg13).
pub const CFG_B: [&[i64]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256],
    &[512, 512],
    &[512, 512],
];
/// Configuration "D" (vgg16): three convolutions per block from block 2 on.
pub const CFG_D: [&[i64]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256],
    &[512, 512, 512],
    &[512, 512, 512],
];
/// Configuration "E" (vgg19): four convolutions per block from block 2 on.
pub const CFG_E: [&[i64]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256, 256],
    &[512, 512, 512, 512],
    &[512, 512, 512, 512],
];

/// One `conv3×3 (with bias) → BatchNorm` pair of a block.
#[derive(Debug)]
struct ConvBn {
    conv: init::Conv2d,
    bn: nn::BatchNorm,
}

/// One of the five convolution blocks. A ReLU follows every pair but the last: the reference
/// drops the block's final ReLU so that `forward` can take the pre-activation feature.
#[derive(Debug)]
struct Block {
    pairs: Vec<ConvBn>,
}

impl Block {
    fn new(p: &nn::Path, c_in: i64, widths: &[i64]) -> Block {
        let mut c = c_in;
        let pairs = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                // Sequential indices: conv 3i, BatchNorm 3i+1, ReLU 3i+2 (no parameters).
                let i = i as i64;
                let mut conv = init::conv2d(
                    p / (3 * i),
                    c,
                    w,
                    3,
                    1,
                    1,
                    1,
                    true,
                    ConvInit::NormalSqrt2OverK2Out,
                );
                // The reference zeroes the convolution biases (`m.bias.data.zero_()`);
                // `init::conv2d` gives them PyTorch's default U(±1/√fan_in).
                if let Some(bias) = conv.bs.as_mut() {
                    tch::no_grad(|| {
                        let _ = bias.zero_();
                    });
                }
                let bn = init::batch_norm2d(p / (3 * i + 1), w);
                c = w;
                ConvBn { conv, bn }
            })
            .collect();
        Block { pairs }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.pairs.len() - 1;
        let mut x = xs.shallow_clone();
        for (i, pair) in self.pairs.iter().enumerate() {
            x = pair.bn.forward_t(&pair.conv.forward(&x), train);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

/// A CIFAR VGG with BatchNorm: five blocks, max-pooling after blocks 0–2 (and after block 3
/// only for 64×64 inputs, as the reference), global average pooling, `Linear(512 → classes)`.
#[derive(Debug)]
pub struct Vgg {
    blocks: Vec<Block>,
    classifier: init::Linear,
}

impl Vgg {
    /// Builds a VGG whose five blocks have the convolution widths `cfg` (e.g. [`CFG_S`]), with
    /// the reference's initialisation: convolutions N(0, √(2/(9·out))) with zero bias,
    /// BatchNorm 1/0, classifier N(0, 0.01) with zero bias.
    pub fn new(p: &nn::Path, cfg: &[&[i64]; 5], num_classes: i64) -> Vgg {
        let mut c_in = 3;
        let blocks = cfg
            .iter()
            .enumerate()
            .map(|(b, widths)| {
                let block = Block::new(&(p / format!("block{b}")), c_in, widths);
                c_in = widths.last().copied().unwrap_or(c_in);
                block
            })
            .collect();
        let classifier = init::linear(p / "classifier", 512, num_classes, LinearInit::Normal001);
        Vgg { blocks, classifier }
    }
}

fn max_pool2(xs: &Tensor) -> Tensor {
    xs.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
}

impl Model for Vgg {
    /// Features as the reference's `is_feat`: `[f0, f1, f2, f3, f4, f5]` where f0 is block 0
    /// after its ReLU (also with `preact`), f1–f4 are blocks 1–4 after (or, with `preact`,
    /// before) their ReLU, and f5 is the pooled, flattened vector.
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let h = xs.size()[2];
        let mut features = Vec::with_capacity(6);
        let mut x = self.blocks[0].forward_t(xs, train).relu();
        features.push(x.shallow_clone());
        for (b, block) in self.blocks.iter().enumerate().skip(1) {
            // pool0..pool2 always; pool3 only when the input is 64×64 (Tiny-ImageNet), so on
            // CIFAR blocks 3 and 4 both run at 4×4.
            if b <= 3 || (b == 4 && h == 64) {
                x = max_pool2(&x);
            }
            let pre = block.forward_t(&x, train);
            x = pre.relu();
            features.push(if preact { pre } else { x.shallow_clone() });
        }
        let pooled = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let logits = self.classifier.forward(&pooled);
        features.push(pooled);
        Features { features, logits }
    }
}

fn build_cfg(
    name: &str,
    cfg: &[&[i64]; 5],
    p: &nn::Path,
    mc: &ModelConfig,
) -> Result<Box<dyn Model>, ModelError> {
    if mc.num_classes < 1 {
        return Err(ModelError::InvalidConfig {
            name: name.to_string(),
            why: format!("num_classes must be at least 1, got {}", mc.num_classes),
        });
    }
    Ok(Box::new(Vgg::new(p, cfg, mc.num_classes)))
}

/// vgg8 (configuration "S", BatchNorm): 3,965,028 parameters at 100 classes.
pub fn vgg8(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    build_cfg("vgg8", &CFG_S, p, cfg)
}

/// vgg11 (configuration "A", BatchNorm): 9,277,284 parameters at 100 classes.
pub fn vgg11(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    build_cfg("vgg11", &CFG_A, p, cfg)
}

/// vgg13 (configuration "B", BatchNorm): 9,462,180 parameters at 100 classes.
pub fn vgg13(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    build_cfg("vgg13", &CFG_B, p, cfg)
}

/// vgg16 (configuration "D", BatchNorm): 14,774,436 parameters at 100 classes.
pub fn vgg16(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    build_cfg("vgg16", &CFG_D, p, cfg)
}

/// vgg19 (configuration "E", BatchNorm): 20,086,692 parameters at 100 classes.
pub fn vgg19(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    build_cfg("vgg19", &CFG_E, p, cfg)
}
