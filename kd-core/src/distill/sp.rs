//! Similarity-preserving KD (RepDistiller's `similarity`) on `feat[-2]`: with `G = F·Fᵀ` the
//! `[B, B]` Gram matrix of the flattened features and each row L2-normalised,
//! `‖G_t − G_s‖²_F / B²`. It compares samples with samples, so any two networks pair.

use super::ops::l2_normalize;
use super::{Distiller, Method, second_last};
use tch::Tensor;

/// Similarity preservation.
#[derive(Debug)]
pub struct Similarity;

/// The row-normalised Gram matrix of `f` flattened per sample.
fn gram(f: &Tensor) -> Tensor {
    let f = f.reshape([f.size()[0], -1]);
    l2_normalize(&f.mm(&f.tr()), 1)
}

/// The SP loss between student and teacher features of one batch.
pub fn sp_loss(f_s: &Tensor, f_t: &Tensor) -> Tensor {
    let b = f_s.size()[0] as f64;
    (gram(f_t) - gram(f_s)).square().sum(None) / (b * b)
}

impl Distiller for Similarity {
    fn method(&self) -> Method {
        Method::Sp
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        Some(sp_loss(second_last(s), second_last(t)))
    }
}
