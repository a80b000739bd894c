//! Probabilistic knowledge transfer (RepDistiller's `pkt`, the authors' code) on the pooled
//! vectors `feat[-1]`: the cosine similarities between the samples of a batch, mapped to
//! `[0, 1]` by `(s + 1)/2` and normalised per row into conditional probabilities `P`, then
//! `mean(P_t · log((P_t + ε)/(P_s + ε)))` over the `B×B` entries, ε = 1e-7.

use super::{Distiller, Method, last};
use tch::Tensor;

/// The ε of the reference's normalisation and KL divergence.
const EPS: f64 = 1e-7;

/// Probabilistic knowledge transfer.
#[derive(Debug)]
pub struct Pkt;

/// The row-normalised `(cos + 1)/2` similarity matrix of the rows of `x`; a row whose norm
/// makes it NaN is set to 0 first, as the reference does.
fn probabilities(x: &Tensor) -> Tensor {
    let norm = x.square().sum_dim_intlist(1, true, None).sqrt();
    let x = x / (norm + EPS);
    let x = x.masked_fill(&x.isnan(), 0.0);
    let sim = (x.mm(&x.tr()) + 1.0) / 2.0;
    &sim / sim.sum_dim_intlist(1, true, None)
}

/// The PKT loss between student and teacher vectors (`[B, D]`) of one batch.
pub fn pkt_loss(f_s: &Tensor, f_t: &Tensor) -> Tensor {
    let p_s = probabilities(f_s);
    let p_t = probabilities(f_t);
    (&p_t * ((&p_t + EPS) / (p_s + EPS)).log()).mean(None)
}

impl Distiller for Pkt {
    fn method(&self) -> Method {
        Method::Pkt
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        Some(pkt_loss(&last(s), &last(t)))
    }
}
