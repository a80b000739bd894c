//! torchvision-layout `resnet18` and `resnet34`, as Good-DA-in-KD's `models/resnet_imagenet.py`
//! uses them for its ImageNet/ImageNet100 pair resnet34 → resnet18 (good-da-in-kd.md §3.2).
//!
//! Layout: conv7×7/2 (3 → 64, padding 3) → BN → ReLU → max-pool 3×3/2 (padding 1), four stages
//! of BasicBlocks ([2, 2, 2, 2] or [3, 4, 6, 3]) with widths 64/128/256/512 and strides
//! 1/2/2/2 (1×1 conv + BN `downsample` where the shape changes), adaptive average pooling, `fc`.
//!
//! Small inputs: the reference accepts `img_size` but ignores it, so the layout is the same at
//! every size and the adaptive pooling makes any input work. kd does the same: at 224 the
//! stages run at 56/28/14/7, at 64 (Tiny-ImageNet) at 16/8/4/2, at 32 at 8/4/2/1.
//!
//! Features are the reference's `[f0, f1, f2, f3, f4, f5]`: the stem output after its ReLU
//! (before the max-pool), each stage's output and the pooled `[n, 512]` vector. The reference
//! raises on `preact`; kd ignores it and returns the same features.
//!
//! Initialisation as the reference (torchvision's): convs Kaiming-normal fan-out, BN 1/0, `fc`
//! at PyTorch's default. Variable names are torchvision's `state_dict` keys (so its released
//! weights load) except BatchNorm's `num_batches_tracked`, which tch does not keep.

use super::init::{self, ConvInit, LinearInit};
use super::resnet::{Stage, check_config};
use super::{Builder, Features, Model, ModelConfig, ModelError};
use tch::{Tensor, nn};

/// This family's registry entries.
pub const ENTRIES: &[(&str, Builder)] = &[("resnet18", resnet18), ("resnet34", resnet34)];

/// A torchvision-layout ResNet with BasicBlocks.
#[derive(Debug)]
pub struct ResNetImageNet {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    layers: [Stage; 4],
    fc: init::Linear,
}

impl ResNetImageNet {
    /// `counts` BasicBlocks per stage: `[2, 2, 2, 2]` is resnet18, `[3, 4, 6, 3]` resnet34.
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
        let widths = [64, 128, 256, 512];
        let layers = std::array::from_fn(|i| {
            let c_in = if i == 0 { 64 } else { widths[i - 1] };
            let stride = if i == 0 { 1 } else { 2 };
            Stage::new(
                &(vs / format!("layer{}", i + 1)),
                counts[i],
                c_in,
                widths[i],
                stride,
            )
        });
        Ok(ResNetImageNet {
            conv1: init::conv2d(
                vs / "conv1",
                3,
                64,
                7,
                2,
                3,
                1,
                false,
                ConvInit::KaimingNormalFanOut,
            ),
            bn1: init::batch_norm2d(vs / "bn1", 64),
            layers,
            fc: init::linear(vs / "fc", 512, cfg.num_classes, LinearInit::TorchDefault),
        })
    }
}

impl Model for ResNetImageNet {
    fn forward_features(&self, xs: &Tensor, train: bool, _preact: bool) -> Features {
        let f0 = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let mut x = f0.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut features = vec![f0];
        for stage in &self.layers {
            x = stage.forward(&x, train).0;
            features.push(x.shallow_clone());
        }
        let pooled = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let logits = pooled.apply(&self.fc);
        features.push(pooled);
        Features { features, logits }
    }
}

/// `resnet18`: BasicBlocks [2, 2, 2, 2] (11,689,512 parameters at 1000 classes).
pub fn resnet18(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(ResNetImageNet::new(
        vs,
        "resnet18",
        [2, 2, 2, 2],
        cfg,
    )?))
}

/// `resnet34`: BasicBlocks [3, 4, 6, 3] (21,797,672 parameters at 1000 classes).
pub fn resnet34(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(ResNetImageNet::new(
        vs,
        "resnet34",
        [3, 4, 6, 3],
        cfg,
    )?))
}
