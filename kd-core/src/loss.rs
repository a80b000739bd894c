//! Logit losses for knowledge distillation: cross-entropy, the temperature-scaled KL divergence
//! of Hinton et al. (RepDistiller's `DistillKL`), its τ → ∞ limit (kd_data), logit MSE and
//! SmoothL1, and the per-sample entropy of a softmax.
//!
//! Every loss first widens half-precision inputs (`Half`, `BFloat16`) to `Float`, so it is
//! safe to call on logits produced under fp16 autocast; `Double` inputs stay `Double` (the
//! parity tests use them). Teacher logits are used as given: detach them (or compute them under
//! `no_grad`) if no gradient should reach the teacher.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// What a [`KdLoss`] could not be built or parsed from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LossError {
    /// The KD temperature is NaN, zero or negative (`inf` is allowed: see [`kd_infinite`]).
    #[error("KD temperature must be positive (or inf), got {temperature}")]
    Temperature {
        /// The temperature given.
        temperature: f64,
    },
    /// A KD loss name that is not one of [`KdKind::NAMES`].
    #[error("unknown KD loss '{name}'; expected one of: {}", KdKind::NAMES.join(", "))]
    UnknownKind {
        /// The name given.
        name: String,
    },
}

/// `t` in at least single precision: `Half` and `BFloat16` become `Float`, `Float` and
/// `Double` are kept.
fn at_least_f32(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::Double | Kind::Float => t.shallow_clone(),
        _ => t.to_kind(Kind::Float),
    }
}

/// The mean cross-entropy of `logits` (`[B, C]`) against integer class `labels` (`[B]`), as
/// PyTorch's `F.cross_entropy(logits, labels)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    at_least_f32(logits).cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)
}

/// Hinton's KD loss at `temperature` T, as RepDistiller's `DistillKL`:
/// `T² · Σ_{b,k} p_t (log p_t − log p_s) / B` with `p = softmax(z / T)`, i.e. PyTorch's
/// `F.kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') · T · T`.
///
/// The teacher enters as `log_softmax` (a log-space target), so a teacher probability that
/// underflows to 0 contributes 0 instead of `0 · log 0 = NaN`.
pub fn kd_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let s = at_least_f32(student);
    let t = at_least_f32(teacher);
    let batch = s.size()[0] as f64;
    let log_ps = (s / temperature).log_softmax(-1, None);
    let log_pt = (t / temperature).log_softmax(-1, None);
    // PyTorch's order: sum, then / B, then · T · T.
    log_ps.kl_div(&log_pt, Reduction::Sum, true) / batch * temperature * temperature
}

/// The τ = ∞ limit of [`kd_kl`] (kd_data's "infinite temperature", Theorem 1 of its paper), in
/// closed form: with `d = z_s − z_t`,
/// `L = (1/B) Σ_b ‖d_b − mean_c(d_b)‖² / (2C)`.
///
/// Its gradient with respect to the student logits is exactly the gradient kd_data injects,
/// `(C·d − Σ_j d_j) / C² / B`.
pub fn kd_infinite(student: &Tensor, teacher: &Tensor) -> Tensor {
    let d = at_least_f32(student) - at_least_f32(teacher);
    let size = d.size();
    let (batch, classes) = (size[0] as f64, size[size.len() - 1] as f64);
    let centred = &d - d.mean_dim(-1, true, None);
    centred.square().sum(None) / (2.0 * classes * batch)
}

/// Logit MSE, PyTorch's `nn.MSELoss()(z_s, z_t)`: the mean of `(z_s − z_t)²` over all `B·C`
/// entries.
pub fn kd_mse(student: &Tensor, teacher: &Tensor) -> Tensor {
    at_least_f32(student).mse_loss(&at_least_f32(teacher), Reduction::Mean)
}

/// Logit SmoothL1, PyTorch's `nn.SmoothL1Loss()(z_s, z_t)` (β = 1), mean over all `B·C`
/// entries.
pub fn kd_smooth_l1(student: &Tensor, teacher: &Tensor) -> Tensor {
    at_least_f32(student).smooth_l1_loss(&at_least_f32(teacher), Reduction::Mean, 1.0)
}

/// The entropy of `softmax(logits)` (temperature 1, natural log) per row: `[B, C]` → `[B]`.
/// Computed as `−Σ p · log_softmax(z)`, which stays finite when a probability underflows to 0
/// (kd_data's `−Σ p · log p` gives NaN there).
pub fn entropy(logits: &Tensor) -> Tensor {
    let log_p = at_least_f32(logits).log_softmax(-1, None);
    -(log_p.exp() * &log_p).sum_dim_intlist(-1, false, None)
}

/// Which distance between student and teacher logits a KD run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KdKind {
    /// Temperature-scaled KL divergence ([`kd_kl`]; [`kd_infinite`] at `T = inf`).
    Kl,
    /// Logit mean squared error ([`kd_mse`]); the temperature is ignored.
    Mse,
    /// Logit SmoothL1 ([`kd_smooth_l1`]); the temperature is ignored.
    SmoothL1,
}

impl KdKind {
    /// The names [`KdKind`] parses from and serialises to, in variant order.
    pub const NAMES: [&'static str; 3] = ["kl", "mse", "smooth_l1"];

    /// This kind's name (as in configs).
    pub fn name(self) -> &'static str {
        match self {
            KdKind::Kl => Self::NAMES[0],
            KdKind::Mse => Self::NAMES[1],
            KdKind::SmoothL1 => Self::NAMES[2],
        }
    }
}

impl fmt::Display for KdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KdKind {
    type Err = LossError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [KdKind::Kl, KdKind::Mse, KdKind::SmoothL1]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| LossError::UnknownKind { name: s.to_owned() })
    }
}

/// A KD loss between student and teacher logits: the kind and, for [`KdKind::Kl`], the
/// temperature. Build it with [`KdLoss::new`], which checks the temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KdLoss {
    /// The distance used.
    pub kind: KdKind,
    /// The softmax temperature of [`KdKind::Kl`]; `f64::INFINITY` selects [`kd_infinite`].
    pub temperature: f64,
}

impl KdLoss {
    /// A KD loss of `kind` at `temperature`, which must be positive or `inf` (also for the
    /// kinds that ignore it, so that a config error never hides).
    pub fn new(kind: KdKind, temperature: f64) -> Result<KdLoss, LossError> {
        if temperature.is_nan() || temperature <= 0.0 {
            return Err(LossError::Temperature { temperature });
        }
        Ok(KdLoss { kind, temperature })
    }

    /// The loss between `student` and `teacher` logits (`[B, C]`), a scalar.
    pub fn compute(&self, student: &Tensor, teacher: &Tensor) -> Tensor {
        match self.kind {
            KdKind::Kl if self.temperature.is_infinite() => kd_infinite(student, teacher),
            KdKind::Kl => kd_kl(student, teacher, self.temperature),
            KdKind::Mse => kd_mse(student, teacher),
            KdKind::SmoothL1 => kd_smooth_l1(student, teacher),
        }
    }
}
