//! Variational information distillation (RepDistiller's `vid`, the authors' code): for each
//! pair of stage maps `feat[1:-1]`, a regressor `μ` (1×1 conv → ReLU → 1×1 conv → ReLU → 1×1
//! conv, `C_s → C_t → C_t → C_t`, no bias) predicts the teacher map with a per-channel variance
//! `σ² = log(1 + exp(log_scale)) + 1e-5` (log_scale starts where σ² = 5), and the loss is the
//! Gaussian negative log-likelihood `mean(½[(μ(f_s) − f_t)²/σ² + log σ²])`, summed over the
//! pairs. The larger map of a pair is pooled to the smaller one's side first; stages are paired
//! as the reference's `zip` pairs them.

use super::at::check_middle_maps;
use super::ops::match_sides;
use super::{DistillError, Distiller, Method, Setup, middle};
use crate::models::init::{self, ConvInit};
use tch::Tensor;
use tch::nn::{self, Init, Module};

/// The variance floor of the reference.
const EPS: f64 = 1e-5;
/// The predicted variance at the start.
const INIT_VAR: f64 = 5.0;

/// One pair's regressor and log-scale (`vid.<i>.regressor.{0,2,4}.weight`, `vid.<i>.log_scale`).
#[derive(Debug)]
struct VidLayer {
    convs: [init::Conv2d; 3],
    log_scale: Tensor,
}

impl VidLayer {
    fn new(p: &nn::Path, c_in: i64, c_out: i64) -> Self {
        let r = p / "regressor";
        let conv = |i: usize, a: i64, b: i64| {
            init::conv2d(
                &r / i.to_string(),
                a,
                b,
                1,
                1,
                0,
                1,
                false,
                ConvInit::TorchDefault,
            )
        };
        let convs = [
            conv(0, c_in, c_out),
            conv(2, c_out, c_out),
            conv(4, c_out, c_out),
        ];
        let start = ((INIT_VAR - EPS).exp() - 1.0).ln();
        let log_scale = p.var("log_scale", &[c_out], Init::Const(start));
        VidLayer { convs, log_scale }
    }

    fn loss(&self, f_s: &Tensor, f_t: &Tensor) -> Tensor {
        let (f_s, f_t) = match_sides(f_s, f_t);
        let [a, b, c] = &self.convs;
        let mean = c.forward(&b.forward(&a.forward(&f_s).relu()).relu());
        let var = (self.log_scale.exp() + 1.0).log() + EPS;
        let var = var.view([1, -1, 1, 1]);
        (((mean - f_t).square() / &var + var.log()) * 0.5).mean(None)
    }
}

/// VID with one regressor per pair of stages.
#[derive(Debug)]
pub struct Vid {
    layers: Vec<VidLayer>,
}

impl Vid {
    /// The regressors, one per pair of stage maps.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        check_middle_maps(setup)?;
        let p = path / "vid";
        let layers = setup
            .middle_pairs()
            .iter()
            .enumerate()
            .map(|(i, (s, t))| VidLayer::new(&(&p / i.to_string()), s[0], t[0]))
            .collect();
        Ok(Vid { layers })
    }
}

impl Distiller for Vid {
    fn method(&self) -> Method {
        Method::Vid
    }

    fn trainable(&self) -> &'static [&'static str] {
        &["vid"]
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        let (s, t) = (middle(s), middle(t));
        let losses: Vec<Tensor> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| l.loss(&s[i], &t[i]))
            .collect();
        Some(Tensor::stack(&losses, 0).sum(None))
    }
}
