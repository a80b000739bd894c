//! Flow of solution procedure (RepDistiller's `fsp`): an init stage only. Over the maps
//! `feat[:-1]`, each consecutive pair `(f_i, f_{i+1})` gives the FSP matrix
//! `G = mean_{hw}(f_i ⊗ f_{i+1})` (`[B, C_{i+1}, C_i]`, the larger map pooled to the smaller
//! one's side), and the loss is `Σ_pairs mean((G_s − G_t)²)`. The init stage trains the
//! student's feature layers; the main stage adds no distiller term.
//!
//! FSP matrices only compare when every level has the same channels in both networks (the
//! reference raises otherwise): other pairs are refused. The reference forms each matrix by
//! broadcasting `[B, 1, C_i, HW] × [B, C_{i+1}, 1, HW]`; here it is one batched matrix product
//! (the same numbers up to rounding).

use super::ops::{flatten_spatial, match_sides};
use super::{DistillError, Distiller, InitStage, Method, Setup, require_maps};
use tch::Tensor;

/// FSP.
#[derive(Debug)]
pub struct Fsp;

impl Fsp {
    /// Checks that the pair has the same maps' channels at every level.
    pub fn new(setup: &Setup) -> Result<Self, DistillError> {
        let maps = |v: &[Vec<i64>]| v[..v.len() - 1].to_vec();
        let (s, t) = (maps(setup.student_shapes), maps(setup.teacher_shapes));
        let channels = |v: &[Vec<i64>]| v.iter().map(|f| f[0]).collect::<Vec<_>>();
        if s.len() != t.len() || channels(&s) != channels(&t) {
            return Err(setup.not_applicable(format!(
                "FSP needs the same channels at every level, but the teacher's maps have {:?} channels and the student's {:?}",
                channels(&t),
                channels(&s)
            )));
        }
        for (i, (a, b)) in s.iter().zip(&t).enumerate() {
            require_maps(setup, &format!("feat[{i}]"), a, b)?;
        }
        Ok(Fsp)
    }
}

/// The FSP matrices of consecutive maps of `g`.
pub fn fsp_matrices(g: &[Tensor]) -> Vec<Tensor> {
    g.windows(2)
        .map(|w| {
            let (bot, top) = match_sides(&w[0], &w[1]);
            let (bot, top) = (flatten_spatial(&bot), flatten_spatial(&top));
            let hw = bot.size()[2] as f64;
            top.bmm(&bot.transpose(1, 2)) / hw
        })
        .collect()
}

/// The FSP loss between the student's maps and the teacher's.
pub fn fsp_loss(g_s: &[Tensor], g_t: &[Tensor]) -> Tensor {
    let losses: Vec<Tensor> = fsp_matrices(g_s)
        .iter()
        .zip(fsp_matrices(g_t))
        .map(|(s, t)| (s - t).square().mean(None))
        .collect();
    Tensor::stack(&losses, 0).sum(None)
}

impl Distiller for Fsp {
    fn method(&self) -> Method {
        Method::Fsp
    }

    fn init_stage(&self) -> Option<InitStage> {
        Some(InitStage {
            modules: &[],
            student: true,
        })
    }

    fn loss(&mut self, _: &[Tensor], _: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        None
    }

    fn init_loss(&mut self, s: &[Tensor], t: &[Tensor]) -> Option<Tensor> {
        Some(fsp_loss(&s[..s.len() - 1], &t[..t.len() - 1]))
    }
}
