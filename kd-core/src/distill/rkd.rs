//! Relational KD (RepDistiller's `rkd`) on the pooled vectors `feat[-1]`:
//! `w_d · SmoothL1(d_s/mean(d_s), d_t/mean(d_t)) + w_a · SmoothL1(angle_s, angle_t)`, with `d`
//! the pairwise Euclidean distances (squared distances clamped at 1e-12, diagonal 0; the mean
//! over the positive entries) and `angle` the `B×B×B` cosines between the normalised difference
//! vectors `e_j − e_i`. Defaults w_d = 25, w_a = 50.
//!
//! A batch of one sample has no pair: its loss is 0 (the reference's mean over no distance is
//! NaN).

use super::ops::l2_normalize;
use super::{Distiller, Method, last};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// `[loss.rkd]`: the weights of the two terms (the reference's `RKDLoss(w_d=25, w_a=50)`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RkdParams {
    /// The distance term's weight.
    pub w_d: f64,
    /// The angle term's weight.
    pub w_a: f64,
}

impl Default for RkdParams {
    fn default() -> Self {
        RkdParams {
            w_d: 25.0,
            w_a: 50.0,
        }
    }
}

/// Relational KD.
#[derive(Debug)]
pub struct Rkd {
    params: RkdParams,
}

impl Rkd {
    /// RKD with the given weights.
    pub fn new(params: RkdParams) -> Self {
        Rkd { params }
    }
}

/// Pairwise distances of the rows of `e`, divided by their mean over the positive entries.
fn normalized_distances(e: &Tensor) -> Tensor {
    let n = e.size()[0];
    let sq = e.square().sum_dim_intlist(1, false, None);
    let d = (sq.unsqueeze(1) + sq.unsqueeze(0) - e.mm(&e.tr()) * 2.0)
        .clamp_min(1e-12)
        .sqrt();
    let eye = Tensor::eye(n, (Kind::Bool, e.device()));
    let d = d.masked_fill(&eye, 0.0);
    let mean = d.masked_select(&d.gt(0.0)).mean(None);
    d / mean
}

/// The cosines between the normalised difference vectors, flattened: `[B·B·B]`.
fn angles(e: &Tensor) -> Tensor {
    let diff = l2_normalize(&(e.unsqueeze(0) - e.unsqueeze(1)), 2);
    diff.bmm(&diff.transpose(1, 2)).view([-1])
}

/// The RKD loss between student and teacher vectors (`[B, D]`) of one batch.
pub fn rkd_loss(f_s: &Tensor, f_t: &Tensor, params: RkdParams) -> Tensor {
    if f_s.size()[0] < 2 {
        return (f_s.sum(None) * 0.0).detach();
    }
    let (d_t, a_t) = tch::no_grad(|| (normalized_distances(f_t), angles(f_t)));
    let loss_d = normalized_distances(f_s).smooth_l1_loss(&d_t, Reduction::Mean, 1.0);
    let loss_a = angles(f_s).smooth_l1_loss(&a_t, Reduction::Mean, 1.0);
    loss_d * params.w_d + loss_a * params.w_a
}

impl Distiller for Rkd {
    fn method(&self) -> Method {
        Method::Rkd
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        Some(rkd_loss(&last(s), &last(t), self.params))
    }
}
