//! Activation boundaries (RepDistiller's `abound`): an init stage only. For the stage maps
//! `feat[1:-1]` taken before their ReLU, a connector maps each student map onto the teacher's
//! (identity when channels and side agree, else a [`ConvReg`] without ReLU), and the loss is
//! the alternative L2 of the activation boundaries with margin m:
//! `Σ_l w_l · Σ[(s+m)²·1(s > −m ∧ t ≤ 0) + (s−m)²·1(s ≤ m ∧ t > 0)] / B / 1000 · 3`,
//! `w_l = 2^{l−L+1}` (the last stage weighs 1). The init stage trains the connector and the
//! student's feature layers; the main stage adds no distiller term (γ·CE + α·KD only), but its
//! forwards still take the pre-activation features, as the reference's `train_distill` does: for
//! a WRN student that runs the BatchNorms before the stage ReLUs a second time (B.4's quirk,
//! which the zoo reproduces), updating their running statistics twice per step there too.
//!
//! The connector needs the two networks to have the same number of stages, as the reference's
//! assertion; other pairs are refused.

use super::layers::ConvReg;
use super::{DistillError, Distiller, InitStage, Method, Setup, middle, require_maps};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// `[loss.ab]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbParams {
    /// The margin of the boundaries (the reference's `ABLoss(margin=1.0)`).
    pub margin: f64,
}

impl Default for AbParams {
    fn default() -> Self {
        AbParams { margin: 1.0 }
    }
}

/// AB with its connector (`connector.<i>.*` where a stage needs one).
#[derive(Debug)]
pub struct ActivationBoundary {
    connectors: Vec<Option<ConvReg>>,
    margin: f64,
}

impl ActivationBoundary {
    /// The connectors, one per pair of stages.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        let (ns, nt) = (setup.student_shapes.len(), setup.teacher_shapes.len());
        if ns != nt {
            return Err(setup.not_applicable(format!(
                "AB's connector pairs every stage, but the student has {} stage features and the teacher {}",
                ns - 2,
                nt - 2
            )));
        }
        let p = path / "connector";
        let mut connectors = Vec::new();
        for (i, (s, t)) in setup.middle_pairs().iter().enumerate() {
            require_maps(setup, &format!("feat[{}]", i + 1), s, t)?;
            connectors.push(if s[0] == t[0] && s[1] == t[1] {
                None
            } else {
                let reg = ConvReg::new(&(&p / i.to_string()), s, t, false)
                    .map_err(|why| setup.not_applicable(format!("feat[{}]: {why}", i + 1)))?;
                Some(reg)
            });
        }
        Ok(ActivationBoundary {
            connectors,
            margin: setup.params.ab.margin,
        })
    }
}

/// One stage's alternative L2 sum between the connected student map `s` and the teacher's `t`.
pub fn boundary_l2(s: &Tensor, t: &Tensor, margin: f64) -> Tensor {
    let kind = s.kind();
    let on = (s.gt(-margin).logical_and(&t.le(0.0))).to_kind(kind);
    let off = (s.le(margin).logical_and(&t.gt(0.0))).to_kind(kind);
    ((s + margin).square() * on + (s - margin).square() * off)
        .abs()
        .sum(None)
}

/// AB's loss over the stages from the connected student maps and the teacher's.
pub fn ab_loss(g_s: &[Tensor], g_t: &[Tensor], margin: f64) -> Tensor {
    let n = g_s.len() as i32;
    let b = g_s[0].size()[0] as f64;
    let losses: Vec<Tensor> = g_s
        .iter()
        .zip(g_t)
        .enumerate()
        .map(|(i, (s, t))| {
            boundary_l2(s, t, margin) * 2f64.powi(i as i32 - n + 1) / b / 1000.0 * 3.0
        })
        .collect();
    Tensor::stack(&losses, 0).sum(None)
}

impl Distiller for ActivationBoundary {
    fn method(&self) -> Method {
        Method::Ab
    }

    fn preact(&self) -> bool {
        true
    }

    fn init_stage(&self) -> Option<InitStage> {
        Some(InitStage {
            modules: &["connector"],
            student: true,
        })
    }

    fn loss(&mut self, _: &[Tensor], _: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        None
    }

    fn init_loss(&mut self, s: &[Tensor], t: &[Tensor]) -> Option<Tensor> {
        let g_s: Vec<Tensor> = middle(s)
            .iter()
            .zip(&self.connectors)
            .map(|(f, c)| match c {
                Some(c) => c.forward_t(f, true),
                None => f.shallow_clone(),
            })
            .collect();
        Some(ab_loss(&g_s, &middle(t)[..g_s.len()], self.margin))
    }
}
