//! Wide ResNets `wrn_D_K` (RepDistiller's `models/wrn.py`; kd_data's `WideResNet` has the same
//! structure, kd-codebases.md A.6).
//!
//! Layout: conv3×3 stem (3 → 16), three `NetworkBlock`s of n = (D − 4)/6 pre-activation blocks
//! with widths 16K, 32K, 64K and strides 1, 2, 2, then BN → ReLU → global average pool → `fc`.
//! A block is BN → ReLU → conv3×3(stride) → BN → ReLU → conv3×3 (dropout 0); where the width
//! changes, the activated input also feeds a 1×1 strided `convShortcut`, otherwise the raw input
//! is added. Pooling covers the whole final map (Good-DA-in-KD's `avg_pool2d(x, x.size(3))`),
//! RepDistiller's `avg_pool2d(x, 8)` at 32×32.
//!
//! Initialisation as the reference: every conv N(0, √(2/(k²·out))), BN 1/0, `fc` weight at
//! PyTorch's default and bias 0. Variable names are the PyTorch `state_dict` keys
//! (`block1.layer.0.bn1.running_mean`, `block2.layer.0.convShortcut.weight`, `fc.bias`, …)
//! except BatchNorm's `num_batches_tracked`, which tch does not keep.

use super::init::{self, ConvInit, LinearInit};
use super::resnet::{check_config, global_avg_pool};
use super::{Builder, Features, Model, ModelConfig, ModelError};
use tch::{Tensor, nn};

/// This family's registry entries; [`build_by_name`] builds any other `wrn_D_K`.
pub const ENTRIES: &[(&str, Builder)] = &[
    ("wrn_16_1", wrn_16_1),
    ("wrn_16_2", wrn_16_2),
    ("wrn_40_1", wrn_40_1),
    ("wrn_40_2", wrn_40_2),
];

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
        ConvInit::NormalSqrt2OverK2Out,
    )
}

/// A pre-activation block (the reference's `BasicBlock`).
#[derive(Debug)]
struct Block {
    bn1: nn::BatchNorm,
    conv1: init::Conv2d,
    bn2: nn::BatchNorm,
    conv2: init::Conv2d,
    /// Present exactly when the width changes (`not equalInOut`).
    conv_shortcut: Option<init::Conv2d>,
}

impl Block {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        Block {
            bn1: init::batch_norm2d(p / "bn1", c_in),
            conv1: conv(p / "conv1", c_in, c_out, 3, stride),
            bn2: init::batch_norm2d(p / "bn2", c_out),
            conv2: conv(p / "conv2", c_out, c_out, 3, 1),
            conv_shortcut: (c_in != c_out)
                .then(|| conv(p / "convShortcut", c_in, c_out, 1, stride)),
        }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let act = xs.apply_t(&self.bn1, train).relu();
        let branch = act
            .apply(&self.conv1)
            .apply_t(&self.bn2, train)
            .relu()
            .apply(&self.conv2);
        // Equal widths add the raw input; otherwise the shortcut sees the activated input.
        match &self.conv_shortcut {
            Some(sc) => act.apply(sc) + branch,
            None => xs + branch,
        }
    }
}

/// A group of blocks (`NetworkBlock`, whose blocks sit under `layer.<i>`).
#[derive(Debug)]
struct NetworkBlock {
    layer: Vec<Block>,
}

impl NetworkBlock {
    fn new(p: &nn::Path, n: i64, c_in: i64, c_out: i64, stride: i64) -> Self {
        let p = p / "layer";
        let layer = (0..n)
            .map(|i| {
                let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                Block::new(&(&p / i), c, c_out, s)
            })
            .collect();
        NetworkBlock { layer }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut it = self.layer.iter();
        let first = it.next().expect("a group has at least one block");
        it.fold(first.forward(xs, train), |x, b| b.forward(&x, train))
    }
}

/// A Wide ResNet of depth `D` = 6n + 4 and widening factor `K`.
///
/// `forward_features` gives the reference's `[f0, f1, f2, f3, f4]`: the stem conv output, the
/// raw output of each group (a residual sum, before any BN/ReLU) and the pooled `[n, 64K]`
/// vector. With `preact`, f1–f3 are passed through the BN that follows them in the network
/// (`block2.layer.0.bn1`, `block3.layer.0.bn1`, the final `bn1`), **called a second time** as
/// the reference does: in train mode these three BNs then update their running statistics
/// twice per step, a quirk kept for fidelity.
#[derive(Debug)]
pub struct WideResNet {
    conv1: init::Conv2d,
    block1: NetworkBlock,
    block2: NetworkBlock,
    block3: NetworkBlock,
    bn1: nn::BatchNorm,
    fc: init::Linear,
}

impl WideResNet {
    /// `wrn_{depth}_{widen}` under `vs`; `name` is used in errors.
    pub fn new(
        vs: &nn::Path,
        name: &str,
        depth: i64,
        widen: i64,
        cfg: &ModelConfig,
    ) -> Result<Self, ModelError> {
        check_config(name, cfg)?;
        let invalid = |why: String| ModelError::InvalidConfig {
            name: name.to_string(),
            why,
        };
        if depth < 10 || (depth - 4) % 6 != 0 {
            return Err(invalid(format!(
                "depth must be 6n+4 with n ≥ 1, got {depth}"
            )));
        }
        if widen < 1 {
            return Err(invalid(format!(
                "widen factor must be at least 1, got {widen}"
            )));
        }
        let n = (depth - 4) / 6;
        let [c0, c1, c2, c3] = [16, 16 * widen, 32 * widen, 64 * widen];
        Ok(WideResNet {
            conv1: conv(vs / "conv1", 3, c0, 3, 1),
            block1: NetworkBlock::new(&(vs / "block1"), n, c0, c1, 1),
            block2: NetworkBlock::new(&(vs / "block2"), n, c1, c2, 2),
            block3: NetworkBlock::new(&(vs / "block3"), n, c2, c3, 2),
            bn1: init::batch_norm2d(vs / "bn1", c3),
            fc: init::linear(
                vs / "fc",
                c3,
                cfg.num_classes,
                LinearInit::TorchDefaultZeroBias,
            ),
        })
    }
}

impl Model for WideResNet {
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features {
        let f0 = xs.apply(&self.conv1);
        let f1 = self.block1.forward(&f0, train);
        let f2 = self.block2.forward(&f1, train);
        let f3 = self.block3.forward(&f2, train);
        let f4 = global_avg_pool(&f3.apply_t(&self.bn1, train).relu());
        let logits = f4.apply(&self.fc);
        let features = if preact {
            vec![
                f0,
                f1.apply_t(&self.block2.layer[0].bn1, train),
                f2.apply_t(&self.block3.layer[0].bn1, train),
                f3.apply_t(&self.bn1, train),
                f4,
            ]
        } else {
            vec![f0, f1, f2, f3, f4]
        };
        Features { features, logits }
    }
}

/// The depth and widening factor of a `wrn_D_K` name (`None` for any other name).
pub fn parse_name(name: &str) -> Option<(i64, i64)> {
    let (d, k) = name.strip_prefix("wrn_")?.split_once('_')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(d) || !digits(k) {
        return None;
    }
    Some((d.parse().ok()?, k.parse().ok()?))
}

/// Builds any `wrn_D_K` name (`None` when `name` is not of that form; an error when D is not
/// 6n + 4 or K is 0).
pub fn build_by_name(
    name: &str,
    vs: &nn::Path,
    cfg: &ModelConfig,
) -> Option<Result<Box<dyn Model>, ModelError>> {
    let (depth, widen) = parse_name(name)?;
    Some(WideResNet::new(vs, name, depth, widen, cfg).map(|m| Box::new(m) as Box<dyn Model>))
}

macro_rules! builders {
    ($($(#[$doc:meta])* $fn_name:ident = ($depth:expr, $widen:expr);)*) => {
        $(
            $(#[$doc])*
            pub fn $fn_name(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
                Ok(Box::new(WideResNet::new(vs, stringify!($fn_name), $depth, $widen, cfg)?))
            }
        )*
    };
}

builders! {
    /// `wrn_16_1`: two blocks per group, widths 16/32/64 (180,916 parameters at 100 classes).
    wrn_16_1 = (16, 1);
    /// `wrn_16_2`: two blocks per group, widths 32/64/128 (703,284 parameters at 100 classes).
    wrn_16_2 = (16, 2);
    /// `wrn_40_1`: six blocks per group, widths 16/32/64 (569,780 parameters at 100 classes).
    wrn_40_1 = (40, 1);
    /// `wrn_40_2`: six blocks per group, widths 32/64/128 (2,255,156 parameters at 100 classes).
    wrn_40_2 = (40, 2);
}
