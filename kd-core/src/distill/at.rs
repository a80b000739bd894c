//! Attention transfer (RepDistiller's `attention`, p = 2): for each pair of stage maps
//! `feat[1:-1]`, `mean_{b,i}(a_s − a_t)²` with `a` the L2-normalised channel mean of `f²`
//! ([`ops::attention_map`]), summed over the pairs. The larger map of a pair is pooled to the
//! smaller one's side.
//!
//! As the reference's `zip`, pairs are taken stage by stage and a network with more stages
//! has its extra ones ignored (VGG's five stages against a ResNet's three).

use super::ops::{attention_map, match_sides};
use super::{DistillError, Distiller, Method, Setup, middle, require_maps};
use tch::Tensor;

/// Attention transfer.
#[derive(Debug)]
pub struct Attention {
    pairs: usize,
}

impl Attention {
    /// Checks that the paired stage features are maps.
    pub fn new(setup: &Setup) -> Result<Self, DistillError> {
        let pairs = check_middle_maps(setup)?;
        Ok(Attention { pairs })
    }
}

/// Checks that every pair of `feat[1:-1]` is a pair of square maps; returns the pair count.
pub(crate) fn check_middle_maps(setup: &Setup) -> Result<usize, DistillError> {
    let pairs = setup.middle_pairs();
    for (i, (s, t)) in pairs.iter().enumerate() {
        require_maps(setup, &format!("feat[{}]", i + 1), s, t)?;
    }
    Ok(pairs.len())
}

/// One pair's attention loss, `mean((a_s − a_t)²)`.
pub fn at_pair(f_s: &Tensor, f_t: &Tensor) -> Tensor {
    let (f_s, f_t) = match_sides(f_s, f_t);
    (attention_map(&f_s) - attention_map(&f_t))
        .square()
        .mean(None)
}

impl Distiller for Attention {
    fn method(&self) -> Method {
        Method::At
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        let (s, t) = (middle(s), middle(t));
        let losses: Vec<Tensor> = (0..self.pairs).map(|i| at_pair(&s[i], &t[i])).collect();
        Some(Tensor::stack(&losses, 0).sum(None))
    }
}
