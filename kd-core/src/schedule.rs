//! Learning-rate schedules: constant, multi-step (RepDistiller's `adjust_learning_rate`,
//! kd_data's `MultiStepLR`) and cosine, each with an optional linear warm-up.
//!
//! Epochs are 1-based, as in the references' loops; `step` is the 0-based batch index within
//! the epoch. With `S` steps per epoch, the global step is `g = (epoch − 1)·S + step`.
//!
//! * **Warm-up** (`warmup_epochs = w > 0`): for `g < W = w·S`, `lr = lr0 · (g + 1) / W`, rising
//!   per step from `lr0 / W` to `lr0` at the last warm-up step (PyTorch's
//!   `LinearLR(start_factor = 1/W, total_iters = W − 1)` stepped per batch).
//! * **Constant**: `lr0`.
//! * **MultiStep**: `lr0 · γ^n` with `n = #{m ∈ milestones : epoch > m}`, per epoch: epochs
//!   `1..=m₁` run at `lr0`, epoch `m₁ + 1` at `lr0·γ`, … Milestones count from the start of
//!   training, warm-up included. This is RepDistiller's rule, and PyTorch's `MultiStepLR`
//!   stepped once per epoch (the LR of 0-based epoch `e` is ours at epoch `e + 1`).
//! * **Cosine**: per step over the `T = (epochs − w)·S` steps after warm-up, with
//!   `t = g − W` clamped to `T`: `lr = min_lr + (lr0 − min_lr) · (1 + cos(π t / T)) / 2`, so the
//!   first step after warm-up runs at `lr0` and the last just above `min_lr` (PyTorch's
//!   `CosineAnnealingLR(T_max = T, eta_min = min_lr)` stepped per batch).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a schedule is invalid. Every variant names the values at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The base learning rate is not a positive finite number.
    #[error("base learning rate must be positive and finite, got {lr}")]
    BaseLr {
        /// The value given.
        lr: f64,
    },
    /// Training has no epochs.
    #[error("a schedule needs at least one epoch, got 0")]
    NoEpochs,
    /// The warm-up is not shorter than training.
    #[error(
        "warm-up of {warmup_epochs} epochs must be shorter than the {epochs} epochs of training"
    )]
    Warmup {
        /// The warm-up length.
        warmup_epochs: usize,
        /// The training length.
        epochs: usize,
    },
    /// The milestones are not strictly increasing.
    #[error("milestones must be strictly increasing, got {milestones:?}")]
    Milestones {
        /// The milestones given.
        milestones: Vec<usize>,
    },
    /// The decay factor is not a positive finite number.
    #[error("gamma must be positive and finite, got {gamma}")]
    Gamma {
        /// The value given.
        gamma: f64,
    },
    /// The cosine floor is negative, not finite, or above the base learning rate.
    #[error("min_lr must be in [0, base lr = {base_lr}], got {min_lr}")]
    MinLr {
        /// The value given.
        min_lr: f64,
        /// The base learning rate.
        base_lr: f64,
    },
    /// A [`ScheduleConfig`] field that the chosen kind does not use.
    #[error("`{field}` does not apply to the {kind} schedule")]
    FieldNotForKind {
        /// The field.
        field: &'static str,
        /// The schedule kind.
        kind: ScheduleKind,
    },
    /// A multi-step [`ScheduleConfig`] without `milestones`.
    #[error("the multistep schedule needs `milestones`")]
    MissingMilestones,
}

/// The shape of a learning-rate schedule after warm-up.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// Multiplied by `gamma` after each milestone epoch.
    MultiStep {
        /// The epochs (1-based) after which the rate decays, strictly increasing.
        milestones: Vec<usize>,
        /// The decay factor.
        gamma: f64,
    },
    /// Cosine annealing per step down to `min_lr`.
    Cosine {
        /// The rate approached at the end of training.
        min_lr: f64,
    },
}

/// A validated learning-rate schedule over a run of `epochs` epochs; see the module
/// documentation for the formulas.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    /// The learning rate `lr0` the schedule starts from (after warm-up).
    pub base_lr: f64,
    /// The shape after warm-up.
    pub schedule: Schedule,
    /// Epochs of linear warm-up (0 for none).
    pub warmup_epochs: usize,
    /// The length of training in epochs.
    pub epochs: usize,
}

impl LrSchedule {
    /// A schedule, checked with [`LrSchedule::validate`].
    pub fn new(
        base_lr: f64,
        schedule: Schedule,
        warmup_epochs: usize,
        epochs: usize,
    ) -> Result<LrSchedule, ScheduleError> {
        let s = LrSchedule {
            base_lr,
            schedule,
            warmup_epochs,
            epochs,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the values: a positive finite base rate, at least one epoch, a warm-up shorter
    /// than training, strictly increasing milestones, a positive finite `gamma`, and
    /// `0 ≤ min_lr ≤ base_lr`.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(self.base_lr.is_finite() && self.base_lr > 0.0) {
            return Err(ScheduleError::BaseLr { lr: self.base_lr });
        }
        if self.epochs == 0 {
            return Err(ScheduleError::NoEpochs);
        }
        if self.warmup_epochs >= self.epochs {
            return Err(ScheduleError::Warmup {
                warmup_epochs: self.warmup_epochs,
                epochs: self.epochs,
            });
        }
        match &self.schedule {
            Schedule::Constant => {}
            Schedule::MultiStep { milestones, gamma } => {
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ScheduleError::Milestones {
                        milestones: milestones.clone(),
                    });
                }
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return Err(ScheduleError::Gamma { gamma: *gamma });
                }
            }
            Schedule::Cosine { min_lr } => {
                if !(min_lr.is_finite() && *min_lr >= 0.0 && *min_lr <= self.base_lr) {
                    return Err(ScheduleError::MinLr {
                        min_lr: *min_lr,
                        base_lr: self.base_lr,
                    });
                }
            }
        }
        Ok(())
    }

    /// The learning rate for batch `step` (0-based) of `epoch` (1-based) with
    /// `steps_per_epoch` batches per epoch. An epoch of 0 counts as 1, and 0 steps per epoch
    /// as 1; past the last epoch the cosine stays at `min_lr`.
    pub fn lr(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let epoch = epoch.max(1);
        let per_epoch = steps_per_epoch.max(1);
        let global = (epoch - 1) * per_epoch + step;
        let warmup = self.warmup_epochs * per_epoch;
        if global < warmup {
            return self.base_lr * (global + 1) as f64 / warmup as f64;
        }
        match &self.schedule {
            Schedule::Constant => self.base_lr,
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| epoch > m).count();
                // `powf`, as RepDistiller's `lr_decay_rate ** steps` (C's pow).
                self.base_lr * gamma.powf(passed as f64)
            }
            Schedule::Cosine { min_lr } => {
                let total = (self.epochs - self.warmup_epochs) * per_epoch;
                let t = (global - warmup).min(total);
                let cos = (std::f64::consts::PI * t as f64 / total as f64).cos();
                min_lr + (self.base_lr - min_lr) * (1.0 + cos) / 2.0
            }
        }
    }
}

/// The schedule kinds a config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// [`Schedule::Constant`], `"constant"`.
    Constant,
    /// [`Schedule::MultiStep`], `"multistep"`.
    MultiStep,
    /// [`Schedule::Cosine`], `"cosine"`.
    Cosine,
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::MultiStep => "multistep",
            ScheduleKind::Cosine => "cosine",
        })
    }
}

/// A schedule as a run config writes it (`kind = "multistep"`, `milestones = [150, 180, 210]`,
/// …), before it is checked and given the base rate and the run length by
/// [`ScheduleConfig::build`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The schedule's shape.
    pub kind: ScheduleKind,
    /// Multi-step only (required there): the decay epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestones: Option<Vec<usize>>,
    /// Multi-step only: the decay factor (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Cosine only: the floor (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Epochs of linear warm-up (default 0).
    #[serde(default)]
    pub warmup_epochs: usize,
}

impl ScheduleConfig {
    /// The multi-step decay factor when the config gives none.
    pub const DEFAULT_GAMMA: f64 = 0.1;

    /// The checked schedule for a run of `epochs` epochs starting at `base_lr`. A field the
    /// kind does not use is an error rather than silently ignored.
    pub fn build(&self, base_lr: f64, epochs: usize) -> Result<LrSchedule, ScheduleError> {
        let kind = self.kind;
        let unused = |field: &'static str, set: bool| {
            if set {
                Err(ScheduleError::FieldNotForKind { field, kind })
            } else {
                Ok(())
            }
        };
        let schedule = match kind {
            ScheduleKind::Constant => {
                unused("milestones", self.milestones.is_some())?;
                unused("gamma", self.gamma.is_some())?;
                unused("min_lr", self.min_lr.is_some())?;
                Schedule::Constant
            }
            ScheduleKind::MultiStep => {
                unused("min_lr", self.min_lr.is_some())?;
                Schedule::MultiStep {
                    milestones: self
                        .milestones
                        .clone()
                        .ok_or(ScheduleError::MissingMilestones)?,
                    gamma: self.gamma.unwrap_or(Self::DEFAULT_GAMMA),
                }
            }
            ScheduleKind::Cosine => {
                unused("milestones", self.milestones.is_some())?;
                unused("gamma", self.gamma.is_some())?;
                Schedule::Cosine {
                    min_lr: self.min_lr.unwrap_or(0.0),
                }
            }
        };
        LrSchedule::new(base_lr, schedule, self.warmup_epochs, epochs)
    }
}
