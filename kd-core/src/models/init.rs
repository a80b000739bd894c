//! Layers initialised as the reference code bases initialise them, not as tch does.
//!
//! tch differs from PyTorch (kd-codebases.md C.1–C.2): BatchNorm weights start U(0, 1) instead of
//! 1, convolutions are Kaiming-uniform with gain √2 instead of PyTorch's `kaiming_uniform_(a=√5)`
//! (bound 1/√fan_in), and convolution biases start at 0 instead of U(±1/√fan_in). Every layer
//! of the zoo is made here, with the initialisation named explicitly.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use tch::Tensor;
use tch::nn::{self, Init, Module};

thread_local! {
    /// Multiply-accumulates per sample counted by the layers below while [`count_macs`] runs.
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the multiply-accumulates per sample that the
/// convolutions and linear layers of this module did in it (on this thread). BatchNorm,
/// activations and pooling are not counted, as in the MAC counts papers report.
pub fn count_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = MACS.with(|m| m.replace(Some(0)));
    let r = f();
    let counted = MACS.with(|m| m.replace(outer)).unwrap_or(0);
    (r, counted)
}

fn add_macs(output: &Tensor, per_output: i64) {
    MACS.with(|m| {
        if let Some(n) = m.get() {
            let batch = output.size().first().copied().unwrap_or(1).max(1);
            let per_sample = output.numel() as i64 / batch;
            m.set(Some(n + (per_sample * per_output) as u64));
        }
    });
}

/// A convolution that counts its multiply-accumulates under [`count_macs`]; otherwise tch's.
#[derive(Debug)]
pub struct Conv2d {
    inner: nn::Conv2D,
    /// Multiply-accumulates per output element: (c_in/groups)·k².
    per_output: i64,
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = self.inner.forward(xs);
        add_macs(&y, self.per_output);
        y
    }
}

impl Deref for Conv2d {
    type Target = nn::Conv2D;
    fn deref(&self) -> &nn::Conv2D {
        &self.inner
    }
}

impl DerefMut for Conv2d {
    fn deref_mut(&mut self) -> &mut nn::Conv2D {
        &mut self.inner
    }
}

/// A linear layer that counts its multiply-accumulates under [`count_macs`]; otherwise tch's.
#[derive(Debug)]
pub struct Linear {
    inner: nn::Linear,
    per_output: i64,
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let y = self.inner.forward(xs);
        add_macs(&y, self.per_output);
        y
    }
}

impl Deref for Linear {
    type Target = nn::Linear;
    fn deref(&self) -> &nn::Linear {
        &self.inner
    }
}

/// How a convolution's weight starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConvInit {
    /// PyTorch's default for `nn.Conv2d`: U(±1/√fan_in) (kaiming_uniform with a = √5).
    TorchDefault,
    /// `kaiming_normal_(mode='fan_out', nonlinearity='relu')`: N(0, √(2/fan_out)) with PyTorch's
    /// fan_out = out_channels·k² (groups do not enter it).
    KaimingNormalFanOut,
    /// N(0, √(2/(k²·out))), the WRN/VGG/MobileNetV2 re-initialisation (the same numbers as
    /// `KaimingNormalFanOut`, written as the references write it).
    NormalSqrt2OverK2Out,
}

/// PyTorch's default bound for a layer with `fan_in` inputs: 1/√fan_in.
pub fn torch_default_bound(fan_in: i64) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}

/// A 2-D convolution `c_in → c_out`, kernel `k`, with `stride`, `padding`, `groups` and an
/// optional bias (PyTorch's default bias init when present).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    padding: i64,
    groups: i64,
    bias: bool,
    init: ConvInit,
) -> Conv2d {
    let fan_in = c_in / groups * k * k;
    let fan_out = c_out * k * k;
    let ws_init = match init {
        ConvInit::TorchDefault => {
            let b = torch_default_bound(fan_in);
            Init::Uniform { lo: -b, up: b }
        }
        ConvInit::KaimingNormalFanOut | ConvInit::NormalSqrt2OverK2Out => Init::Randn {
            mean: 0.0,
            stdev: (2.0 / fan_out as f64).sqrt(),
        },
    };
    let b = torch_default_bound(fan_in);
    let cfg = nn::ConvConfig {
        stride,
        padding,
        groups,
        bias,
        ws_init,
        bs_init: Init::Uniform { lo: -b, up: b },
        ..Default::default()
    };
    Conv2d {
        inner: nn::conv2d(p, c_in, c_out, k, cfg),
        per_output: c_in / groups * k * k,
    }
}

/// A 2-D transposed convolution `c_in → c_out`, kernel `k`, with `stride`, `padding` and a bias,
/// initialised as PyTorch's `nn.ConvTranspose2d`: weight and bias U(±1/√fan_in) with PyTorch's
/// fan_in of a transposed weight `[c_in, c_out, k, k]`, i.e. `c_out·k²`.
pub fn conv_transpose2d(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    padding: i64,
) -> nn::ConvTranspose2D {
    let b = torch_default_bound(c_out * k * k);
    let cfg = nn::ConvTransposeConfig {
        stride,
        padding,
        bias: true,
        ws_init: Init::Uniform { lo: -b, up: b },
        bs_init: Init::Uniform { lo: -b, up: b },
        ..Default::default()
    };
    nn::conv_transpose2d(p, c_in, c_out, k, cfg)
}

/// BatchNorm2d with PyTorch's defaults: weight 1, bias 0, momentum 0.1, eps 1e-5.
pub fn batch_norm2d(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, bn_config(true))
}

/// BatchNorm2d without affine parameters (kd_data's `nobn` teachers).
pub fn batch_norm2d_no_affine(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, bn_config(false))
}

/// BatchNorm1d with PyTorch's defaults.
pub fn batch_norm1d(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm1d(p, c, bn_config(true))
}

fn bn_config(affine: bool) -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        affine,
        ..Default::default()
    }
}

/// How a linear layer's weight starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinearInit {
    /// PyTorch's default: weight and bias U(±1/√fan_in).
    TorchDefault,
    /// N(0, 0.01) weight and zero bias (VGG and MobileNetV2 in RepDistiller).
    Normal001,
    /// PyTorch's default weight and a zero bias (WRN's `m.bias.data.zero_()`).
    TorchDefaultZeroBias,
}

/// A linear layer `d_in → d_out`.
pub fn linear(p: nn::Path, d_in: i64, d_out: i64, init: LinearInit) -> Linear {
    let b = torch_default_bound(d_in);
    let (ws_init, bs_init) = match init {
        LinearInit::TorchDefault => (
            Init::Uniform { lo: -b, up: b },
            Init::Uniform { lo: -b, up: b },
        ),
        LinearInit::Normal001 => (
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            Init::Const(0.0),
        ),
        LinearInit::TorchDefaultZeroBias => (Init::Uniform { lo: -b, up: b }, Init::Const(0.0)),
    };
    let inner = nn::linear(
        p,
        d_in,
        d_out,
        nn::LinearConfig {
            ws_init,
            bs_init: Some(bs_init),
            bias: true,
        },
    );
    Linear {
        inner,
        per_output: d_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn macs_are_counted_only_while_asked() {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = conv2d(
            vs.root() / "c",
            4,
            6,
            3,
            1,
            1,
            2,
            false,
            ConvInit::TorchDefault,
        );
        let fc = linear(vs.root() / "fc", 10, 3, LinearInit::TorchDefault);
        let x = Tensor::zeros([5, 4, 7, 7], (Kind::Float, Device::Cpu));
        let (_, macs) = count_macs(|| {
            let _ = conv.forward(&x);
            fc.forward(&Tensor::zeros([5, 10], (Kind::Float, Device::Cpu)))
        });
        // Per sample: 6·7·7 outputs × (4/2)·3² + 3 outputs × 10.
        assert_eq!(macs, 6 * 49 * 2 * 9 + 30);
        let (_, none) = count_macs(|| ());
        assert_eq!(none, 0);
    }

    #[test]
    fn batch_norm_starts_at_one_and_zero() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _bn = batch_norm2d(vs.root() / "bn", 8);
        let vars = vs.variables();
        assert_eq!(
            f64::try_from(vars["bn.weight"].mean(Kind::Float)).unwrap(),
            1.0
        );
        assert_eq!(
            f64::try_from(vars["bn.bias"].abs().sum(Kind::Float)).unwrap(),
            0.0
        );
        let mut names: Vec<_> = vars.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]
        );
    }

    #[test]
    fn conv_inits_have_the_reference_spread() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let _a = conv2d(
            vs.root() / "a",
            64,
            128,
            3,
            1,
            1,
            1,
            false,
            ConvInit::KaimingNormalFanOut,
        );
        let _b = conv2d(
            vs.root() / "b",
            64,
            128,
            3,
            1,
            1,
            1,
            true,
            ConvInit::TorchDefault,
        );
        let vars = vs.variables();
        let std = f64::try_from(vars["a.weight"].std(true)).unwrap();
        let want = (2.0f64 / (128.0 * 9.0)).sqrt();
        assert!((std / want - 1.0).abs() < 0.02, "std {std} vs {want}");
        let max = f64::try_from(vars["b.weight"].abs().max()).unwrap();
        let bound = 1.0 / (64.0f64 * 9.0).sqrt();
        assert!(
            max <= bound && max > 0.95 * bound,
            "max {max} vs bound {bound}"
        );
        assert!(!vars.contains_key("a.bias") && vars.contains_key("b.bias"));
    }
}
