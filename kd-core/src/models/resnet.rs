//! RepDistiller's CIFAR ResNets (`models/resnet.py`, after Wei Yang's port of fb.resnet.torch):
//! `resnet8/14/20/32/44/56/110` with widths [16, 16, 32, 64] and `resnet8x4`, `resnet32x4` with
//! [32, 64, 128, 256].
//!
//! Layout: conv3×3 stem → BN → ReLU, then three stages of n = (depth − 2)/6 post-activation
//! BasicBlocks (strides 1, 2, 2; a 1×1 conv + BN projection shortcut named `downsample` where
//! the stride or the width changes), global average pooling and `fc`. Pooling is over the whole
//! final map, as Good-DA-in-KD's copy does (`avg_pool2d(x, x.size(3))`), which is RepDistiller's
//! `AvgPool2d(8)` at 32×32 and keeps 64×64 (Tiny-ImageNet) working.
//!
//! Variable names are the PyTorch `state_dict` keys (`layer1.0.bn1.running_mean`,
//! `layer2.0.downsample.0.weight`, `fc.bias`, …) except BatchNorm's `num_batches_tracked`, which
//! tch does not keep (it only matters for `momentum=None`, which the reference never uses).

use super::init::{self, ConvInit, LinearInit};
use super::{Builder, Features, Model, ModelConfig, ModelError};
use tch::{Tensor, nn};

/// This family's registry entries.
pub const ENTRIES: &[(&str, Builder)] = &[
    ("resnet8", resnet8),
    ("resnet14", resnet14),
    ("resnet20", resnet20),
    ("resnet32", resnet32),
    ("resnet44", resnet44),
    ("resnet56", resnet56),
    ("resnet110", resnet110),
    ("resnet8x4", resnet8x4),
    ("resnet32x4", resnet32x4),
];

/// Widths of the plain CIFAR ResNets: stem, stage 1, 2, 3.
const PLAIN: [i64; 4] = [16, 16, 32, 64];
/// Widths of the "x4" variants: 4× the stages and 2× the stem.
const X4: [i64; 4] = [32, 64, 128, 256];

/// Rejects a configuration no model of the zoo can take (no classes, empty images).
pub(crate) fn check_config(name: &str, cfg: &ModelConfig) -> Result<(), ModelError> {
    let why = if cfg.num_classes < 1 {
        format!("num_classes must be at least 1, got {}", cfg.num_classes)
    } else if cfg.input_size < 1 {
        format!("input_size must be at least 1, got {}", cfg.input_size)
    } else {
        return Ok(());
    };
    Err(ModelError::InvalidConfig {
        name: name.to_string(),
        why,
    })
}

/// Average over the whole final map and flatten to `[n, c]`: PyTorch's
/// `F.avg_pool2d(x, x.size(3)).view(n, -1)` for the square maps of the zoo.
pub(crate) fn global_avg_pool(xs: &Tensor) -> Tensor {
    let side = xs.size()[3];
    xs.avg_pool2d([side, side], [side, side], [0, 0], false, true, None)
        .flatten(1, -1)
}

/// A 3×3 convolution without bias (the reference's `conv3x3`), Kaiming-normal fan-out.
pub(crate) fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> init::Conv2d {
    init::conv2d(
        p,
        c_in,
        c_out,
        3,
        stride,
        1,
        1,
        false,
        ConvInit::KaimingNormalFanOut,
    )
}

/// The projection shortcut `downsample = Sequential(conv1x1(stride), BatchNorm2d)`, so its
/// variables are `downsample.0.weight` and `downsample.1.*`.
#[derive(Debug)]
struct Downsample {
    conv: init::Conv2d,
    bn: nn::BatchNorm,
}

impl Downsample {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        Downsample {
            conv: init::conv2d(
                p / "0",
                c_in,
                c_out,
                1,
                stride,
                0,
                1,
                false,
                ConvInit::KaimingNormalFanOut,
            ),
            bn: init::batch_norm2d(p / "1", c_out),
        }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train)
    }
}

/// Post-activation BasicBlock: conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. Also
/// torchvision's BasicBlock (same layers, names and init), used by `resnet_imagenet`.
#[derive(Debug)]
pub(crate) struct BasicBlock {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    conv2: init::Conv2d,
    bn2: nn::BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || c_in != c_out)
            .then(|| Downsample::new(&(p / "downsample"), c_in, c_out, stride));
        BasicBlock {
            conv1: conv3x3(p / "conv1", c_in, c_out, stride),
            bn1: init::batch_norm2d(p / "bn1", c_out),
            conv2: conv3x3(p / "conv2", c_out, c_out, 1),
            bn2: init::batch_norm2d(p / "bn2", c_out),
            downsample,
        }
    }

    /// The block's output and its pre-ReLU sum (the reference's `(out, preact)` of `is_last`).
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let out = xs
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let preact = match &self.downsample {
            Some(d) => out + d.forward(xs, train),
            None => out + xs,
        };
        (preact.relu(), preact)
    }
}

/// One stage (`layerN`): a sequence of blocks indexed `0..n`.
#[derive(Debug)]
pub(crate) struct Stage {
    blocks: Vec<BasicBlock>,
}

impl Stage {
    pub(crate) fn new(p: &nn::Path, n: i64, c_in: i64, c_out: i64, stride: i64) -> Self {
        let blocks = (0..n)
            .map(|i| {
                let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                BasicBlock::new(&(p / i), c, c_out, s)
            })
            .collect();
        Stage { blocks }
    }

    /// The stage output and the pre-ReLU sum of its last block.
    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut it = self.blocks.iter();
        let first = it.next().expect("a stage has at least one block");
        it.fold(first.forward(xs, train), |(out, _), b| {
            b.forward(&out, train)
        })
    }
}

/// A CIFAR ResNet of RepDistiller (`resnet8` … `resnet32x4`).
///
/// `forward_features` gives the reference's `[f0, f1, f2, f3, f4]`: the stem output after its
/// ReLU, each stage's output (with `preact`, the last block's sum before its ReLU), and the
/// pooled `[n, c3]` vector.
#[derive(Debug)]
pub struct ResNet {
    conv1: init::Conv2d,
    bn1: nn::BatchNorm,
    layer1: Stage,
    layer2: Stage,
    layer3: Stage,
    fc: init::Linear,
}

impl ResNet {
    /// A ResNet of `depth` = 6n + 2 BasicBlock layers with widths `[stem, stage1, stage2,
    /// stage3]`, initialised as the reference: convs Kaiming-normal fan-out, BN 1/0, `fc` at
    /// PyTorch's default.
    pub fn new(
        vs: &nn::Path,
        name: &str,
        depth: i64,
        widths: [i64; 4],
        cfg: &ModelConfig,
    ) -> Result<Self, ModelError> {
        check_config(name, cfg)?;
        if depth < 8 || (depth - 2) % 6 != 0 {
            return Err(ModelError::InvalidConfig {
                name: name.to_string(),
                why: format!("depth must be 6n+2 with n ≥ 1, got {depth}"),
            });
        }
        let n = (depth - 2) / 6;
        let [c0, c1, c2, c3] = widths;
        Ok(ResNet {
            conv1: conv3x3(vs / "conv1", 3, c0, 1),
            bn1: init::batch_norm2d(vs / "bn1", c0),
            layer1: Stage::new(&(vs / "layer1"), n, c0, c1, 1),
            layer2: Stage::new(&(vs / "layer2"), n, c1, c2, 2),
            layer3: Stage::new(&(vs / "layer3"), n, c2, c3, 2),
            fc: init::linear(vs / "fc", c3, cfg.num_classes, LinearInit::TorchDefault),
        })
    }
}

impl Model for ResNet {
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let f0 = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let (f1, f1_pre) = self.layer1.forward(&f0, train);
        let (f2, f2_pre) = self.layer2.forward(&f1, train);
        let (f3, f3_pre) = self.layer3.forward(&f2, train);
        let f4 = global_avg_pool(&f3);
        let logits = f4.apply(&self.fc);
        let features = if preact {
            vec![f0, f1_pre, f2_pre, f3_pre, f4]
        } else {
            vec![f0, f1, f2, f3, f4]
        };
        Features { features, logits }
    }
}

macro_rules! builders {
    ($($(#[$doc:meta])* $fn_name:ident = ($depth:expr, $widths:expr);)*) => {
        $(
            $(#[$doc])*
            pub fn $fn_name(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
                Ok(Box::new(ResNet::new(vs, stringify!($fn_name), $depth, $widths, cfg)?))
            }
        )*
    };
}

builders! {
    /// `resnet8`: one block per stage, widths [16, 16, 32, 64] (83,892 parameters at 100 classes).
    resnet8 = (8, PLAIN);
    /// `resnet14`: two blocks per stage, widths [16, 16, 32, 64].
    resnet14 = (14, PLAIN);
    /// `resnet20`: three blocks per stage, widths [16, 16, 32, 64].
    resnet20 = (20, PLAIN);
    /// `resnet32`: five blocks per stage, widths [16, 16, 32, 64].
    resnet32 = (32, PLAIN);
    /// `resnet44`: seven blocks per stage, widths [16, 16, 32, 64].
    resnet44 = (44, PLAIN);
    /// `resnet56`: nine blocks per stage, widths [16, 16, 32, 64].
    resnet56 = (56, PLAIN);
    /// `resnet110`: eighteen blocks per stage, widths [16, 16, 32, 64].
    resnet110 = (110, PLAIN);
    /// `resnet8x4`: one block per stage, widths [32, 64, 128, 256].
    resnet8x4 = (8, X4);
    /// `resnet32x4`: five blocks per stage, widths [32, 64, 128, 256].
    resnet32x4 = (32, X4);
}
