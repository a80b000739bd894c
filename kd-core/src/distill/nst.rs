//! Neuron selectivity transfer (RepDistiller's `nst`): for each pair of stage maps
//! `feat[1:-1]`, the squared MMD with the polynomial kernel `K(a, b) = (a·b)²` between the
//! channel maps, each flattened and L2-normalised over its positions:
//! `mean K(t, t) + mean K(s, s) − 2 mean K(s, t)`, summed over the pairs (the teacher–teacher
//! term is a constant). The larger map of a pair is pooled to the smaller one's side; stages are
//! paired as the reference's `zip` pairs them.
//!
//! The reference forms every kernel by broadcasting `[B, C, 1, HW] × [B, 1, C, HW]` and summing
//! the last axis; here each is one batched matrix product (the same numbers up to rounding,
//! without the `B·C²·HW` intermediate).

use super::at::check_middle_maps;
use super::ops::{flatten_spatial, l2_normalize, match_sides};
use super::{DistillError, Distiller, Method, Setup, middle};
use tch::Tensor;

/// Neuron selectivity transfer.
#[derive(Debug)]
pub struct Nst {
    pairs: usize,
}

impl Nst {
    /// Checks that the paired stage features are maps.
    pub fn new(setup: &Setup) -> Result<Self, DistillError> {
        Ok(Nst {
            pairs: check_middle_maps(setup)?,
        })
    }
}

/// The mean of the polynomial kernel `(Σ_hw b_j a_k)²` over the batch and channel pairs of
/// `a` `[B, Ca, HW]` and `b` `[B, Cb, HW]`.
fn mean_poly_kernel(a: &Tensor, b: &Tensor) -> Tensor {
    b.bmm(&a.transpose(1, 2)).square().mean(None)
}

/// One pair's NST loss.
pub fn nst_pair(f_s: &Tensor, f_t: &Tensor) -> Tensor {
    let (f_s, f_t) = match_sides(f_s, f_t);
    let s = l2_normalize(&flatten_spatial(&f_s), 2);
    let t = l2_normalize(&flatten_spatial(&f_t), 2);
    mean_poly_kernel(&t, &t).detach() + mean_poly_kernel(&s, &s) - mean_poly_kernel(&s, &t) * 2.0
}

impl Distiller for Nst {
    fn method(&self) -> Method {
        Method::Nst
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        let (s, t) = (middle(s), middle(t));
        let losses: Vec<Tensor> = (0..self.pairs).map(|i| nst_pair(&s[i], &t[i])).collect();
        Some(Tensor::stack(&losses, 0).sum(None))
    }
}
