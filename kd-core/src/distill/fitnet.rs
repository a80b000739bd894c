//! FitNet (RepDistiller's `hint`): `MSE(ConvReg(f_s), f_t)` on `feat[hint_layer]`, the mean
//! over every element, with the regressor trained alongside the student.

use super::layers::ConvReg;
use super::{DistillError, Distiller, Method, Setup, require_maps};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Reduction, Tensor};

/// `[loss.fitnet]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitnetParams {
    /// The feature the hint is taken at (the reference's `--hint_layer`, 0–4; default 2, the
    /// second stage's output). It must be a map in both networks.
    pub hint_layer: usize,
}

impl Default for FitnetParams {
    fn default() -> Self {
        FitnetParams { hint_layer: 2 }
    }
}

/// The hint loss with its regressor (`regressor.*`).
#[derive(Debug)]
pub struct FitNet {
    layer: usize,
    regressor: ConvReg,
}

impl FitNet {
    /// The regressor from the student's `feat[hint_layer]` to the teacher's.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        let layer = setup.params.fitnet.hint_layer;
        let n = setup.student_shapes.len().min(setup.teacher_shapes.len());
        if layer + 1 >= n {
            return Err(DistillError::Param {
                key: "loss.fitnet.hint_layer".into(),
                value: layer.to_string(),
                why: format!(
                    "{} → {} has feature maps 0..{} (the last feature is the pooled vector)",
                    setup.teacher,
                    setup.student,
                    n - 2
                ),
            });
        }
        let (s, t) = (&setup.student_shapes[layer], &setup.teacher_shapes[layer]);
        require_maps(setup, &format!("feat[{layer}]"), s, t)?;
        let regressor = ConvReg::new(&(path / "regressor"), s, t, true)
            .map_err(|why| setup.not_applicable(format!("feat[{layer}]: {why}")))?;
        Ok(FitNet { layer, regressor })
    }
}

impl Distiller for FitNet {
    fn method(&self) -> Method {
        Method::Fitnet
    }

    fn trainable(&self) -> &'static [&'static str] {
        &["regressor"]
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        let f_s = self.regressor.forward_t(&s[self.layer], true);
        Some(f_s.mse_loss(&t[self.layer], Reduction::Mean))
    }
}
