//! The distillers' trainable modules shared by several methods: FitNet's convolutional
//! regressor (also AB's connector) and the linear embeddings of CC and CRD. Each is initialised
//! as PyTorch initialises it (the reference leaves them at PyTorch's defaults) and named as the
//! reference names its parameters.

use crate::models::init::{self, ConvInit, LinearInit};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

/// The convolution of a [`ConvReg`].
#[derive(Debug)]
enum RegConv {
    Conv(init::Conv2d),
    Transposed(nn::ConvTranspose2D),
}

/// RepDistiller's `ConvReg`: maps a student map `[C_s, H_s, H_s]` onto a teacher map
/// `[C_t, H_t, H_t]` with one convolution, then BatchNorm (and ReLU for FitNet):
///
/// * `H_s = 2·H_t`: conv 3×3, stride 2, padding 1;
/// * `2·H_s = H_t`: transposed conv 4×4, stride 2, padding 1;
/// * `H_s ≥ H_t` otherwise: conv with kernel `1 + H_s − H_t`;
/// * anything else is refused (the reference raises).
///
/// Variables: `conv.weight`, `conv.bias`, `bn.*`.
#[derive(Debug)]
pub struct ConvReg {
    conv: RegConv,
    bn: nn::BatchNorm,
    relu: bool,
}

impl ConvReg {
    /// The regressor from `student` to `teacher` (`[C, H, W]` shapes) under `p`, with a final
    /// ReLU when `relu`. `Err` says why the sides cannot be mapped.
    pub fn new(p: &nn::Path, student: &[i64], teacher: &[i64], relu: bool) -> Result<Self, String> {
        let (cs, hs) = (student[0], student[1]);
        let (ct, ht) = (teacher[0], teacher[1]);
        let conv = if hs == 2 * ht {
            RegConv::Conv(init::conv2d(
                p / "conv",
                cs,
                ct,
                3,
                2,
                1,
                1,
                true,
                ConvInit::TorchDefault,
            ))
        } else if 2 * hs == ht {
            RegConv::Transposed(init::conv_transpose2d(p / "conv", cs, ct, 4, 2, 1))
        } else if hs >= ht {
            RegConv::Conv(init::conv2d(
                p / "conv",
                cs,
                ct,
                1 + hs - ht,
                1,
                0,
                1,
                true,
                ConvInit::TorchDefault,
            ))
        } else {
            return Err(format!(
                "the student's map is {hs}×{hs} and the teacher's {ht}×{ht}; the regressor maps a student map onto one of at most its side, or twice it"
            ));
        };
        Ok(ConvReg {
            conv,
            bn: init::batch_norm2d(p / "bn", ct),
            relu,
        })
    }
}

impl ModuleT for ConvReg {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = match &self.conv {
            RegConv::Conv(c) => c.forward(xs),
            RegConv::Transposed(c) => c.forward(xs),
        };
        let y = y.apply_t(&self.bn, train);
        if self.relu { y.relu() } else { y }
    }
}

/// A linear embedding of the flattened input, `Linear(d_in → d_out)` at PyTorch's default
/// initialisation, optionally L2-normalised per row as CRD's `Embed` (`x / ‖x‖₂`, no epsilon);
/// without normalisation it is CC's `LinearEmbed`. Variables: `linear.weight`, `linear.bias`.
#[derive(Debug)]
pub struct Embed {
    linear: init::Linear,
    normalize: bool,
}

impl Embed {
    /// The embedding `d_in → d_out` under `p`.
    pub fn new(p: &nn::Path, d_in: i64, d_out: i64, normalize: bool) -> Self {
        Embed {
            linear: init::linear(p / "linear", d_in, d_out, LinearInit::TorchDefault),
            normalize,
        }
    }
}

impl Module for Embed {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let x = self.linear.forward(&xs.reshape([xs.size()[0], -1]));
        if self.normalize {
            // CRD's Normalize: x.pow(2).sum(1, keepdim).pow(1/2), then divide.
            let norm = x
                .square()
                .sum_dim_intlist(1, true, None)
                .pow_tensor_scalar(0.5);
            x / norm
        } else {
            x
        }
    }
}
