//! RepDistiller's CIFAR `ResNet50` (`models/resnetv2.py`, kuangliu's pytorch-cifar layout).
//!
//! Layout: conv3×3 stem (3 → 64, stride 1, no max-pool) → BN → ReLU, four stages of
//! Bottlenecks [3, 4, 6, 3] with planes 64/128/256/512 (expansion 4) and strides 1/2/2/2 (the
//! stride on the 3×3 conv), a 1×1 conv + BN projection `shortcut` where the shape changes, then
//! adaptive average pooling and `linear`. At 32×32 the stages run at 32, 16, 8 and 4.
//!
//! Initialisation as the reference: convs Kaiming-normal fan-out, BN 1/0, `linear` at PyTorch's
//! default (`zero_init_residual=False`). Variable names are the PyTorch `state_dict` keys
//! (`layer1.0.conv3.weight`, `layer2.0.shortcut.1.running_var`, `linear.weight`, …) except
//! BatchNorm's `num_batches_tracked`, which tch does not keep.

use super::init::{self, ConvInit, LinearInit};
use super::resnet::check_config;
use super::{Builder, Features, Model, ModelConfig, ModelError};
use tch::{Tensor, nn};

/// This family's registry entries.
pub const ENTRIES: &[(&str, Builder)] = &[("ResNet50", resnet50)];

/// Bottleneck expansion: a block outputs 4 × its planes.
const EXPANSION: i64 = 4;

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> init::Conv2d {
    init::conv2d(
        p,
        c_in,
        c_out,
        k,
        stride,
        k / 2,
        1,
        false,
        ConvInit::KaimingNormalFanOut,
    )
}

/// The projection `shortcut = Sequential(conv1x1(stride), BatchNorm2d)` (`shortcut.0`,
/// `shortcut.1`); absent (identity) where the shape is kept.
#[derive(Debug)]
struct Shortcut {
    conv: init::Conv2d,
    bn: nn::BatchNorm,
}

/// 1×1 → BN → ReLU → 3×3(stride) → BN → ReLU → 1×1 → BN, plus the shortcut, then ReLU.
#[derive(Debug)]
struct Bottleneck {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    conv2: init::Conv2d,
    bn2: nn::BatchNorm,
    conv3: init::Conv2d,
    bn3: nn::BatchNorm,
    shortcut: Option<Shortcut>,
}

impl Bottleneck {
    fn new(p: &nn::Path, c_in: i64, planes: i64, stride: i64) -> Self {
        let c_out = EXPANSION * planes;
        let shortcut = (stride != 1 || c_in != c_out).then(|| Shortcut {
            conv: conv(p / "shortcut" / "0", c_in, c_out, 1, stride),
            bn: init::batch_norm2d(p / "shortcut" / "1", c_out),
        });
        Bottleneck {
            conv1: conv(p / "conv1", c_in, planes, 1, 1),
            bn1: init::batch_norm2d(p / "bn1", planes),
            conv2: conv(p / "conv2", planes, planes, 3, stride),
            bn2: init::batch_norm2d(p / "bn2", planes),
            conv3: conv(p / "conv3", planes, c_out, 1, 1),
            bn3: init::batch_norm2d(p / "bn3", c_out),
            shortcut,
        }
    }

    /// The block's output and its pre-ReLU sum.
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let out = xs
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train)
            .relu()
            .apply(&self.conv3)
            .apply_t(&self.bn3, train);
        let preact = match &self.shortcut {
            Some(s) => out + xs.apply(&s.conv).apply_t(&s.bn, train),
            None => out + xs,
        };
        (preact.relu(), preact)
    }
}

/// One stage (`layerN`) of Bottlenecks.
#[derive(Debug)]
struct Stage {
    blocks: Vec<Bottleneck>,
}

impl Stage {
    fn new(p: &nn::Path, n: i64, c_in: i64, planes: i64, stride: i64) -> Self {
        let blocks = (0..n)
            .map(|i| {
                let (c, s) = if i == 0 {
                    (c_in, stride)
                } else {
                    (EXPANSION * planes, 1)
                };
                Bottleneck::new(&(p / i), c, planes, s)
            })
            .collect();
        Stage { blocks }
    }

    /// The stage output and the pre-ReLU sum of its last block.
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut it = self.blocks.iter();
        let first = it.next().expect("a stage has at least one block");
        it.fold(first.forward(xs, train), |(out, _), b| {
            b.forward(&out, train)
        })
    }
}

/// RepDistiller's CIFAR `ResNet50`.
///
/// `forward_features` gives the reference's `[f0, f1, f2, f3, f4, f5]`: the stem output after
/// its ReLU, each stage's output (with `preact`, its last block's sum before the ReLU) and the
/// pooled `[n, 2048]` vector.
#[derive(Debug)]
pub struct ResNetV2 {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    layers: [Stage; 4],
    linear: init::Linear,
}

impl ResNetV2 {
    /// A Bottleneck ResNet with `counts` blocks per stage (`[3, 4, 6, 3]` for ResNet50).
    pub fn new(
        vs: &nn::Path,
        name: &str,
        counts: [i64; 4],
        cfg: &ModelConfig,
    ) -> Result<Self, ModelError> {
        check_config(name, cfg)?;
        if counts.iter().any(|&n| n < 1) {
            return Err(ModelError::InvalidConfig {
                name: name.to_string(),
                why: format!("every stage needs a block, got {counts:?}"),
            });
        }
        let planes = [64, 128, 256, 512];
        let strides = [1, 2, 2, 2];
        let mut c_in = 64;
        let layers = std::array::from_fn(|i| {
            let stage = Stage::new(
                &(vs / format!("layer{}", i + 1)),
                counts[i],
                c_in,
                planes[i],
                strides[i],
            );
            c_in = EXPANSION * planes[i];
            stage
        });
        Ok(ResNetV2 {
            conv1: conv(vs / "conv1", 3, 64, 3, 1),
            bn1: init::batch_norm2d(vs / "bn1", 64),
            layers,
            linear: init::linear(
                vs / "linear",
                EXPANSION * 512,
                cfg.num_classes,
                LinearInit::TorchDefault,
            ),
        })
    }
}

impl Model for ResNetV2 {
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let f0 = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let mut features = vec![f0.shallow_clone()];
        let mut x = f0;
        for stage in &self.layers {
            let (out, pre) = stage.forward(&x, train);
            features.push(if preact { pre } else { out.shallow_clone() });
            x = out;
        }
        let pooled = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let logits = pooled.apply(&self.linear);
        features.push(pooled);
        Features { features, logits }
    }
}

/// `ResNet50`: Bottlenecks [3, 4, 6, 3] (23,705,252 parameters at 100 classes).
pub fn resnet50(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(ResNetV2::new(vs, "ResNet50", [3, 4, 6, 3], cfg)?))
}
