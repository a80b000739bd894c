//! Factor transfer (RepDistiller's `factor`) on `feat[-2]`. The init stage trains a paraphraser
//! on the teacher's map alone (an encoder of three 3×3 convolutions `C → C → C/2 → C/2` and a
//! decoder of three 3×3 transposed convolutions back to `C`, each followed by LeakyReLU(0.1), no
//! BatchNorm) to reconstruct it (MSE). The main stage freezes the paraphraser and trains a
//! translator (three 3×3 convolutions `C_s → C_s → C_t/2 → C_t/2`, each with BatchNorm and
//! LeakyReLU(0.1)) so that the student's factor matches the teacher's:
//! `mean|φ(translator(f_s)) − φ(encoder(f_t))|`, φ the L2-normalised channel mean of `f²`
//! ([`ops::attention_map`]), the larger factor pooled to the smaller one's side.

use super::ops::{attention_map, leaky_relu_01, match_sides};
use super::{DistillError, Distiller, InitStage, Method, Setup, require_maps, second_last};
use crate::models::init::{self, ConvInit};
use tch::nn::{self, Module};
use tch::{Reduction, Tensor};

/// The paraphraser's compression rate `k`: the factor has `C·k` channels.
const RATE: f64 = 0.5;

/// A 3×3, stride 1, padding 1 convolution with bias at PyTorch's default initialisation.
fn conv3(p: nn::Path, c_in: i64, c_out: i64) -> init::Conv2d {
    init::conv2d(p, c_in, c_out, 3, 1, 1, 1, true, ConvInit::TorchDefault)
}

/// The teacher-side auto-encoder (`paraphraser.encoder.{0,3,6}`, `paraphraser.decoder.{0,3,6}`,
/// the reference's Sequential indices).
#[derive(Debug)]
struct Paraphraser {
    encoder: [init::Conv2d; 3],
    decoder: [nn::ConvTranspose2D; 3],
}

impl Paraphraser {
    fn new(p: &nn::Path, c: i64) -> Self {
        let f = (c as f64 * RATE) as i64;
        let (e, d) = (p / "encoder", p / "decoder");
        let tconv = |i: &str, a: i64, b: i64| init::conv_transpose2d(&d / i, a, b, 3, 1, 1);
        Paraphraser {
            encoder: [
                conv3(&e / "0", c, c),
                conv3(&e / "3", c, f),
                conv3(&e / "6", f, f),
            ],
            decoder: [tconv("0", f, f), tconv("3", f, c), tconv("6", c, c)],
        }
    }

    fn encode(&self, x: &Tensor) -> Tensor {
        self.encoder
            .iter()
            .fold(x.shallow_clone(), |h, c| leaky_relu_01(&c.forward(&h)))
    }

    fn reconstruct(&self, x: &Tensor) -> Tensor {
        self.decoder
            .iter()
            .fold(self.encode(x), |h, c| leaky_relu_01(&c.forward(&h)))
    }
}

/// The student-side encoder (`translator.encoder.{0,3,6}` convolutions, `{1,4,7}` BatchNorms).
#[derive(Debug)]
struct Translator {
    layers: Vec<(init::Conv2d, nn::BatchNorm)>,
}

impl Translator {
    fn new(p: &nn::Path, c_s: i64, c_t: i64) -> Self {
        let f = (c_t as f64 * RATE) as i64;
        let e = p / "encoder";
        let layer = |i: usize, a: i64, b: i64| {
            (
                conv3(&e / (3 * i).to_string(), a, b),
                init::batch_norm2d(&e / (3 * i + 1).to_string(), b),
            )
        };
        Translator {
            layers: vec![layer(0, c_s, c_s), layer(1, c_s, f), layer(2, f, f)],
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.layers.iter().fold(x.shallow_clone(), |h, (c, bn)| {
            leaky_relu_01(&c.forward(&h).apply_t(bn, true))
        })
    }
}

/// FT with its paraphraser and translator.
#[derive(Debug)]
pub struct FactorTransfer {
    paraphraser: Paraphraser,
    translator: Translator,
}

impl FactorTransfer {
    /// The paraphraser of the teacher's `feat[-2]` and the translator of the student's.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        let s = &setup.student_shapes[setup.student_shapes.len() - 2];
        let t = &setup.teacher_shapes[setup.teacher_shapes.len() - 2];
        require_maps(setup, "feat[-2]", s, t)?;
        if ((t[0] as f64) * RATE) < 1.0 {
            return Err(setup.not_applicable("the teacher's feat[-2] has a single channel"));
        }
        Ok(FactorTransfer {
            paraphraser: Paraphraser::new(&(path / "paraphraser"), t[0]),
            translator: Translator::new(&(path / "translator"), s[0], t[0]),
        })
    }
}

/// FT's main-stage loss between the student's and the teacher's factors.
pub fn ft_loss(factor_s: &Tensor, factor_t: &Tensor) -> Tensor {
    let (s, t) = match_sides(factor_s, factor_t);
    (attention_map(&s) - attention_map(&t)).abs().mean(None)
}

impl Distiller for FactorTransfer {
    fn method(&self) -> Method {
        Method::Ft
    }

    fn trainable(&self) -> &'static [&'static str] {
        &["translator"]
    }

    fn init_stage(&self) -> Option<InitStage> {
        Some(InitStage {
            modules: &["paraphraser"],
            student: false,
        })
    }

    fn loss(&mut self, s: &[Tensor], t: &[Tensor], _: Option<&super::Contrast>) -> Option<Tensor> {
        let factor_t = tch::no_grad(|| self.paraphraser.encode(second_last(t)));
        let factor_s = self.translator.forward(second_last(s));
        Some(ft_loss(&factor_s, &factor_t))
    }

    fn init_loss(&mut self, _: &[Tensor], t: &[Tensor]) -> Option<Tensor> {
        let f_t = second_last(t);
        Some(
            self.paraphraser
                .reconstruct(f_t)
                .mse_loss(f_t, Reduction::Mean),
        )
    }
}
