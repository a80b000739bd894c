//! RepDistiller's `MobileNetV2` (= `mobile_half` = `mobilenetv2_T_w(T=6, W=0.5)`), the
//! MobileNetV2 of the "Knowledge Distillation via Route Constrained Optimization" code
//! (kd-codebases.md B.4).
//!
//! It differs from torchvision's: the 1×1 expansion is present even when t = 1, activations
//! are plain ReLU (not ReLU6), the stem has stride 2 on 32×32 inputs, the last 1×1 convolution
//! keeps 1280 channels for widths ≤ 1, and the head is `AvgPool2d(input/16, ceil_mode)` then
//! `Linear(1280 → classes)` without dropout.
//!
//! Variables carry the reference's `state_dict` names: `conv1.{0,1}` (conv, BatchNorm),
//! `blocks.{s}.{j}.conv.{0,1,3,4,6,7}` (expand, its BN, depthwise, its BN, projection, its BN),
//! `conv2.{0,1}` and `classifier.0`. PyTorch's BatchNorm also stores `num_batches_tracked`,
//! which tch does not have (only used with `momentum=None`, which the reference never sets).

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::init::{self, ConvInit, LinearInit};
use super::{Builder, Features, Model, ModelConfig, ModelError};

/// This family's registry entries (RepDistiller's `model_dict` name).
pub const ENTRIES: &[(&str, Builder)] = &[("MobileNetV2", mobile_half)];

/// The inverted-residual settings (expansion t, channels c, repeats n, first stride s) with
/// t = `T` for every stage but the first.
const SETTINGS: [(i64, i64, i64, i64); 7] = [
    (1, 16, 1, 1),
    (0, 24, 2, 1),
    (0, 32, 3, 2),
    (0, 64, 4, 2),
    (0, 96, 3, 1),
    (0, 160, 3, 2),
    (0, 320, 1, 1),
];

/// A bias-free convolution followed by BatchNorm, created as `p.0` and `p.1` (the reference's
/// `nn.Sequential` indices); the ReLU, when any, is applied by the caller.
#[derive(Debug)]
struct ConvBn {
    conv: init::Conv2d,
    bn: nn::BatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: &nn::Path,
        conv_idx: i64,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        groups: i64,
    ) -> ConvBn {
        let conv = init::conv2d(
            p / conv_idx,
            c_in,
            c_out,
            k,
            stride,
            (k - 1) / 2,
            groups,
            false,
            ConvInit::NormalSqrt2OverK2Out,
        );
        let bn = init::batch_norm2d(p / (conv_idx + 1), c_out);
        ConvBn { conv, bn }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(xs), train)
    }
}

/// Expand 1×1 → BN → ReLU → depthwise 3×3 (stride) → BN → ReLU → project 1×1 → BN, with the
/// input added back when the stride is 1 and the channels agree.
#[derive(Debug)]
struct InvertedResidual {
    expand: ConvBn,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, t: i64) -> InvertedResidual {
        let p = p / "conv";
        let mid = c_in * t;
        InvertedResidual {
            expand: ConvBn::new(&p, 0, c_in, mid, 1, 1, 1),
            depthwise: ConvBn::new(&p, 3, mid, mid, 3, stride, mid),
            project: ConvBn::new(&p, 6, mid, c_out, 1, 1, 1),
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.expand.forward_t(xs, train).relu();
        let out = self.depthwise.forward_t(&out, train).relu();
        let out = self.project.forward_t(&out, train);
        if self.residual { xs + out } else { out }
    }
}

/// The Route-Constrained-Optimization MobileNetV2 (expansion `T`, width multiplier `W`).
#[derive(Debug)]
pub struct MobileNetV2 {
    conv1: ConvBn,
    blocks: Vec<Vec<InvertedResidual>>,
    conv2: ConvBn,
    classifier: init::Linear,
    pool: i64,
}

impl MobileNetV2 {
    /// Builds `mobilenetv2_T_w(T=t, W=width)` for `num_classes` classes and `input_size`-pixel
    /// inputs (a multiple of 32, as the reference asserts; the head pools `input_size/16`).
    /// Initialisation as the reference: convolutions N(0, √(2/(k²·out))), BatchNorm 1/0,
    /// classifier N(0, 0.01) with zero bias.
    pub fn new(
        p: &nn::Path,
        t: i64,
        width: f64,
        num_classes: i64,
        input_size: i64,
    ) -> Result<MobileNetV2, ModelError> {
        let invalid = |why: String| ModelError::InvalidConfig {
            name: "MobileNetV2".to_string(),
            why,
        };
        if input_size <= 0 || input_size % 32 != 0 {
            return Err(invalid(format!(
                "input size must be a positive multiple of 32, got {input_size}"
            )));
        }
        if num_classes < 1 || t < 1 || width <= 0.0 {
            return Err(invalid(format!(
                "needs num_classes ≥ 1, T ≥ 1 and W > 0 (got {num_classes}, {t}, {width})"
            )));
        }
        // Python's int(c * W) truncates.
        let scale = |c: i64| (c as f64 * width) as i64;
        let mut c_in = scale(32);
        let conv1 = ConvBn::new(&(p / "conv1"), 0, 3, c_in, 3, 2, 1);
        let blocks = SETTINGS
            .iter()
            .enumerate()
            .map(|(s, &(t0, c, n, stride))| {
                let expansion = if s == 0 { t0 } else { t };
                let c_out = scale(c);
                (0..n)
                    .map(|j| {
                        let stride = if j == 0 { stride } else { 1 };
                        let block = InvertedResidual::new(
                            &(p / "blocks" / s / j),
                            c_in,
                            c_out,
                            stride,
                            expansion,
                        );
                        c_in = c_out;
                        block
                    })
                    .collect()
            })
            .collect();
        let last = if width > 1.0 { scale(1280) } else { 1280 };
        let conv2 = ConvBn::new(&(p / "conv2"), 0, c_in, last, 1, 1, 1);
        let classifier = init::linear(
            p / "classifier" / 0,
            last,
            num_classes,
            LinearInit::Normal001,
        );
        Ok(MobileNetV2 {
            conv1,
            blocks,
            conv2,
            classifier,
            pool: input_size / 16,
        })
    }

    fn stage(&self, s: usize, xs: &Tensor, train: bool) -> Tensor {
        self.blocks[s]
            .iter()
            .fold(xs.shallow_clone(), |x, block| block.forward_t(&x, train))
    }
}

impl Model for MobileNetV2 {
    /// Features as the reference's `is_feat` (`preact` is ignored there and here):
    /// `[f0, f1, f2, f3, f4, f5]` = the stem output, the outputs of stages 1, 2, 4 and 6, and
    /// the pooled, flattened vector.
    fn forward_features(&self, xs: &Tensor, train: bool, _preact: bool) -> Features {
        let mut features = Vec::with_capacity(6);
        let mut x = self.conv1.forward_t(xs, train).relu();
        features.push(x.shallow_clone());
        for s in 0..self.blocks.len() {
            x = self.stage(s, &x, train);
            if matches!(s, 1 | 2 | 4 | 6) {
                features.push(x.shallow_clone());
            }
        }
        let x = self.conv2.forward_t(&x, train).relu();
        let k = self.pool;
        let pooled = x
            .avg_pool2d([k, k], [k, k], [0, 0], true, true, None)
            .flatten(1, -1);
        let logits = self.classifier.forward(&pooled);
        features.push(pooled);
        Features { features, logits }
    }
}

/// RepDistiller's `MobileNetV2` (`mobile_half`, T = 6, W = 0.5): 812,836 parameters at 100
/// classes on 32×32 inputs.
pub fn mobile_half(p: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(MobileNetV2::new(
        p,
        6,
        0.5,
        cfg.num_classes,
        cfg.input_size,
    )?))
}
