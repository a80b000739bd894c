//! Correlation congruence (RepDistiller's `correlation`, the code the CC authors sent): the
//! pooled vectors `feat[-1]` of each network go through their own trainable linear embedding
//! (`embed_s`, `embed_t`, to `feat_dim` = 128), `δ = |e_s − e_t|`, and the loss is
//! `mean_i Σ_k δ_{i,k} · δ_{i+1,k}` over consecutive samples of the batch.
//!
//! A batch of one sample has no consecutive pair: its loss is 0 (the reference's mean over
//! nothing is NaN).

use super::layers::Embed;
use super::{DistillError, Distiller, Method, Setup, last};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module};

/// `[loss.cc]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CcParams {
    /// The embedding dimension (the reference's `--feat_dim`, shared with CRD there).
    pub feat_dim: i64,
}

impl Default for CcParams {
    fn default() -> Self {
        CcParams { feat_dim: 128 }
    }
}

/// Correlation congruence with its two embeddings.
#[derive(Debug)]
pub struct Correlation {
    embed_s: Embed,
    embed_t: Embed,
}

impl Correlation {
    /// The two embeddings, from each network's pooled vector.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        let d = setup.params.cc.feat_dim;
        let dim = |shapes: &[Vec<i64>]| shapes[shapes.len() - 1].iter().product::<i64>();
        Ok(Correlation {
            embed_s: Embed::new(&(path / "embed_s"), dim(setup.student_shapes), d, false),
            embed_t: Embed::new(&(path / "embed_t"), dim(setup.teacher_shapes), d, false),
        })
    }
}

/// The CC loss between the two embeddings (`[B, D]`) of one batch.
pub fn cc_loss(e_s: &Tensor, e_t: &Tensor) -> Tensor {
    let n = e_s.size()[0];
    if n < 2 {
        return (e_s.sum(None) * 0.0).detach();
    }
    let delta = (e_s - e_t).abs();
    (delta.narrow(0, 0, n - 1) * delta.narrow(0, 1, n - 1))
        .sum_dim_intlist(1, false, None)
        .mean(None)
}

impl Distiller for Correlation {
    fn method(&self) -> Method {
        Method::Cc
    }

    fn trainable(&self) -> &'static [&'static str] {
        &["embed_s", "embed_t"]
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        Some(cc_loss(
            &self.embed_s.forward(&last(s)),
            &self.embed_t.forward(&last(t)),
        ))
    }
}
