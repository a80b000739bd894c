//! A dynamic loss scaler for fp16 autocast, with the semantics and defaults of PyTorch's
//! `torch.amp.GradScaler` (tch has none).
//!
//! Per training step, after `zero_grad` and the forward pass under `tch::autocast(true, …)`:
//!
//! ```text
//! scaler.scale(&loss).backward();        // gradients × scale, so fp16 ones do not underflow
//! scaler.step(&mut sgd, lr)?;            // unscale, then step only if all are finite
//! scaler.update()?;                      // × backoff after an inf/NaN, × growth after
//!                                        //   `growth_interval` finite steps in a row
//! ```
//!
//! [`GradScaler::unscale_and_check`] may be called before `step` (to clip unscaled
//! gradients, say); `step` then does not unscale again. The checks and the update are
//! libtorch's own kernels (`_amp_foreach_non_finite_check_and_unscale_`,
//! `_amp_update_scale_`), on the GPU as on the CPU, so the scale never leaves the device
//! except for the one `found inf` flag `step` needs.

use tch::{Device, Kind, TchError, Tensor};

use crate::optim::Sgd;

/// What went wrong configuring or using a [`GradScaler`]. Every variant names the value at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum AmpError {
    /// A scaling factor is out of range.
    #[error("GradScaler {field} must be {expected}, got {value}")]
    Config {
        /// The field of [`GradScalerConfig`].
        field: &'static str,
        /// The range it must be in.
        expected: &'static str,
        /// Its value.
        value: f64,
    },
    /// The growth interval is not positive.
    #[error("GradScaler growth_interval must be ≥ 1, got {value}")]
    GrowthInterval {
        /// Its value.
        value: i64,
    },
    /// The gradients were unscaled twice without an [`GradScaler::update`] in between.
    #[error("gradients were already unscaled since the last update()")]
    AlreadyUnscaled,
    /// [`GradScaler::update`] with no inf check since the last update.
    #[error(
        "update() without an inf check since the last update (call step or unscale_and_check first)"
    )]
    NoInfCheck,
    /// A state entry other than `scale` and `growth_tracker`.
    #[error("unknown GradScaler state entry `{name}` (expected scale, growth_tracker)")]
    UnknownState {
        /// The entry's name.
        name: String,
    },
    /// A state entry appears twice.
    #[error("GradScaler state entry `{name}` appears twice")]
    DuplicateState {
        /// The entry's name.
        name: String,
    },
    /// A state entry is missing.
    #[error("GradScaler state has no `{name}`")]
    MissingState {
        /// The entry's name.
        name: &'static str,
    },
    /// A state entry is not a single number of the right sort.
    #[error("GradScaler state `{name}` must be one {expected} number, got {numel} of {kind:?}")]
    StateValue {
        /// The entry's name.
        name: String,
        /// Floating-point or integer.
        expected: &'static str,
        /// Its number of elements.
        numel: usize,
        /// Its dtype.
        kind: Kind,
    },
    /// libtorch refused an operation.
    #[error("GradScaler {what}: {source}")]
    Torch {
        /// What was being done.
        what: &'static str,
        /// libtorch's error.
        source: TchError,
    },
}

/// The scaler's factors, PyTorch's `GradScaler` arguments with its defaults.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradScalerConfig {
    /// The first scale (2¹⁶).
    pub init_scale: f64,
    /// Factor applied after `growth_interval` finite steps in a row (2).
    pub growth_factor: f64,
    /// Factor applied after a step with an inf or NaN gradient (0.5).
    pub backoff_factor: f64,
    /// Finite steps in a row before the scale grows (2000).
    pub growth_interval: i64,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl GradScalerConfig {
    /// Checks the values: a positive finite initial scale, growth factor > 1 and backoff factor
    /// in (0, 1) (PyTorch's rules, made strict), growth interval ≥ 1.
    pub fn validate(&self) -> Result<(), AmpError> {
        let checks = [
            (
                "init_scale",
                "positive and finite",
                self.init_scale,
                self.init_scale > 0.0 && self.init_scale.is_finite(),
            ),
            (
                "growth_factor",
                "finite and > 1",
                self.growth_factor,
                self.growth_factor > 1.0 && self.growth_factor.is_finite(),
            ),
            (
                "backoff_factor",
                "in (0, 1)",
                self.backoff_factor,
                self.backoff_factor > 0.0 && self.backoff_factor < 1.0,
            ),
        ];
        for (field, expected, value, ok) in checks {
            if !ok {
                return Err(AmpError::Config {
                    field,
                    expected,
                    value,
                });
            }
        }
        if self.growth_interval < 1 {
            return Err(AmpError::GrowthInterval {
                value: self.growth_interval,
            });
        }
        Ok(())
    }
}

/// A dynamic loss scaler: PyTorch's `GradScaler` for one optimizer.
#[derive(Debug)]
pub struct GradScaler {
    cfg: GradScalerConfig,
    /// The scale, a float32 scalar on the scaler's device.
    scale: Tensor,
    /// Finite steps in a row since the last change of scale, an int32 scalar.
    growth_tracker: Tensor,
    /// Whether an inf/NaN was found (non-zero), since the last update; `None` before any check.
    found_inf: Option<Tensor>,
}

fn torch(what: &'static str) -> impl FnOnce(TchError) -> AmpError {
    move |source| AmpError::Torch { what, source }
}

impl GradScaler {
    /// A scaler at `cfg.init_scale` whose state lives on `device` (the model's).
    pub fn new(cfg: GradScalerConfig, device: Device) -> Result<GradScaler, AmpError> {
        cfg.validate()?;
        let scale = Tensor::from(cfg.init_scale as f32)
            .f_to_device(device)
            .map_err(torch("creating the scale"))?;
        let growth_tracker = Tensor::from(0i32)
            .f_to_device(device)
            .map_err(torch("creating the growth tracker"))?;
        Ok(GradScaler {
            cfg,
            scale,
            growth_tracker,
            found_inf: None,
        })
    }

    /// The factors.
    pub fn config(&self) -> &GradScalerConfig {
        &self.cfg
    }

    /// The current scale (a device-to-host copy).
    pub fn scale_value(&self) -> f64 {
        self.scale.double_value(&[])
    }

    /// The finite steps in a row counted towards the next growth (a device-to-host copy).
    pub fn growth_tracker_value(&self) -> i64 {
        self.growth_tracker.int64_value(&[])
    }

    /// `loss × scale`, to call `backward` on.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * self.scale.to_device(loss.device())
    }

    /// Divides `grads` by the scale in place and reports whether any is inf or NaN (one
    /// device-to-host copy). Undefined tensors are skipped. Fails if the gradients were
    /// already unscaled since the last [`GradScaler::update`].
    pub fn unscale_and_check(&mut self, grads: &[Tensor]) -> Result<bool, AmpError> {
        if self.found_inf.is_some() {
            return Err(AmpError::AlreadyUnscaled);
        }
        let _guard = tch::no_grad_guard();
        // As PyTorch: the reciprocal in double, then rounded to float.
        let inv_scale = self
            .scale
            .f_to_kind(Kind::Double)
            .and_then(|s| s.f_reciprocal())
            .and_then(|s| s.f_to_kind(Kind::Float))
            .map_err(torch("inverting the scale"))?;
        // One flag and one inverse scale per device, as the kernel wants them beside the grads.
        let mut per_device: Vec<(Device, Tensor, Tensor)> = Vec::new();
        for grad in grads.iter().filter(|g| g.defined()) {
            let device = grad.device();
            if !per_device.iter().any(|(d, _, _)| *d == device) {
                let found = Tensor::f_zeros([1], (Kind::Float, device))
                    .map_err(torch("creating the found-inf flag"))?;
                let inv = inv_scale
                    .f_to_device(device)
                    .map_err(torch("moving the scale"))?;
                per_device.push((device, found, inv));
            }
            let (_, found, inv) = per_device
                .iter_mut()
                .find(|(d, _, _)| *d == device)
                .expect("just added");
            grad.shallow_clone()
                .f_internal_amp_non_finite_check_and_unscale(found, inv)
                .map_err(torch("unscaling a gradient"))?;
        }
        let mut found = Tensor::f_zeros([1], (Kind::Float, self.scale.device()))
            .map_err(torch("creating the found-inf flag"))?;
        for (_, f, _) in &per_device {
            found = found
                .f_add(&f.to_device(self.scale.device()))
                .map_err(torch("combining found-inf flags"))?;
        }
        let any = found.double_value(&[0]) != 0.0;
        self.found_inf = Some(found);
        Ok(any)
    }

    /// Unscales the optimizer's gradients (unless [`GradScaler::unscale_and_check`] already
    /// did since the last update), then steps it at `lr` if they are all finite. Returns whether
    /// it stepped.
    pub fn step(&mut self, opt: &mut Sgd, lr: f64) -> Result<bool, AmpError> {
        let found = match &self.found_inf {
            Some(f) => f.double_value(&[0]) != 0.0,
            None => self.unscale_and_check(&opt.grads())?,
        };
        if !found {
            opt.step(lr);
        }
        Ok(!found)
    }

    /// Updates the scale from the last check: × `backoff_factor` (and the count restarts) if an
    /// inf/NaN was found, else one more finite step, × `growth_factor` when they reach
    /// `growth_interval`. Fails if there was no check since the last update.
    pub fn update(&mut self) -> Result<(), AmpError> {
        let found = self.found_inf.take().ok_or(AmpError::NoInfCheck)?;
        // Updates `scale` and `growth_tracker` in place; the returned handle is `scale`.
        let _ = self
            .scale
            .f_internal_amp_update_scale_(
                &self.growth_tracker,
                &found,
                self.cfg.growth_factor,
                self.cfg.backoff_factor,
                self.cfg.growth_interval,
            )
            .map_err(torch("updating the scale"))?;
        Ok(())
    }

    /// The scaler's state, copies named `scale` (float32) and `growth_tracker` (int32).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            ("scale".to_owned(), self.scale.detach().copy()),
            (
                "growth_tracker".to_owned(),
                self.growth_tracker.detach().copy(),
            ),
        ]
    }

    /// Restores a state saved by [`GradScaler::state`] (both entries required, each a single
    /// number: a float scale, an integer tracker), onto the scaler's device. A pending inf
    /// check is dropped. Nothing changes on an error.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), AmpError> {
        let mut scale = None;
        let mut tracker = None;
        for (name, t) in state {
            let (slot, float, kind) = match name.as_str() {
                "scale" => (&mut scale, true, Kind::Float),
                "growth_tracker" => (&mut tracker, false, Kind::Int),
                _ => return Err(AmpError::UnknownState { name: name.clone() }),
            };
            if slot.is_some() {
                return Err(AmpError::DuplicateState { name: name.clone() });
            }
            let is_int = !t.is_floating_point() && t.kind() != Kind::Bool;
            if t.numel() != 1 || (float && !t.is_floating_point()) || (!float && !is_int) {
                return Err(AmpError::StateValue {
                    name: name.clone(),
                    expected: if float { "floating-point" } else { "integer" },
                    numel: t.numel(),
                    kind: t.kind(),
                });
            }
            let value = t
                .f_reshape([] as [i64; 0])
                .and_then(|t| t.f_to_kind(kind))
                .and_then(|t| t.f_to_device(self.scale.device()))
                .and_then(|t| t.f_detach_copy())
                .map_err(torch("loading the state"))?;
            *slot = Some(value);
        }
        let scale = scale.ok_or(AmpError::MissingState { name: "scale" })?;
        let tracker = tracker.ok_or(AmpError::MissingState {
            name: "growth_tracker",
        })?;
        self.scale = scale;
        self.growth_tracker = tracker;
        self.found_inf = None;
        Ok(())
    }
}
