//! SGD over named parameters, written here so that its state (the momentum buffers) can be
//! saved and loaded by name: tch's libtorch optimizer has no state API, and an exact resume
//! needs the buffers.
//!
//! The update is PyTorch's `torch.optim.SGD` (the `foreach=False` path), per parameter `p` with
//! gradient `g`, weight decay `λ`, momentum `μ`, dampening `τ` and learning rate `lr`:
//!
//! ```text
//! d = g + λ·p
//! if μ ≠ 0:
//!     b = d (a copy)              at the first step
//!     b = μ·b + (1 − τ)·d         later
//!     d = d + μ·b  if nesterov,  else  d = b
//! p = p − lr·d
//! ```
//!
//! A parameter whose gradient is undefined is skipped (no decay, no momentum), as in PyTorch;
//! [`Sgd::zero_grad`] resets gradients to undefined (`set_to_none=True`) so this case arises.

use std::collections::{HashMap, HashSet};

use tch::{COptimizer, Kind, TchError, Tensor, nn};

/// The prefix of a momentum buffer's name in [`Sgd::state`].
pub const MOMENTUM_BUFFER_PREFIX: &str = "momentum_buffer.";

/// What went wrong configuring SGD or loading its state. Every variant names the value or the
/// parameter at fault.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter is negative or not finite.
    #[error("SGD {field} must be a finite number ≥ 0, got {value}")]
    Hyper {
        /// The field of [`SgdConfig`].
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// Nesterov momentum needs a positive momentum and zero dampening (as PyTorch).
    #[error(
        "Nesterov momentum requires momentum > 0 and dampening = 0, got momentum {momentum}, dampening {dampening}"
    )]
    Nesterov {
        /// The momentum given.
        momentum: f64,
        /// The dampening given.
        dampening: f64,
    },
    /// Two parameters have the same name.
    #[error("duplicate parameter name `{name}`")]
    DuplicateParam {
        /// The name.
        name: String,
    },
    /// A trainable variable of a VarStore could not be matched to any of its names.
    #[error("a trainable variable of shape {shape:?} has no name in its VarStore")]
    UnnamedVariable {
        /// The variable's shape.
        shape: Vec<i64>,
    },
    /// A state entry is not `momentum_buffer.<name>` of a parameter of this optimizer.
    #[error("unknown optimizer state entry `{name}`")]
    UnknownState {
        /// The entry's name.
        name: String,
    },
    /// A state entry appears twice.
    #[error("optimizer state entry `{name}` appears twice")]
    DuplicateState {
        /// The entry's name.
        name: String,
    },
    /// A momentum buffer was given to an optimizer without momentum.
    #[error("optimizer state has `{name}` but the momentum is 0")]
    BufferWithoutMomentum {
        /// The entry's name.
        name: String,
    },
    /// A momentum buffer's shape differs from its parameter's.
    #[error("optimizer state `{name}` has shape {got:?}, its parameter {expected:?}")]
    StateShape {
        /// The entry's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<i64>,
        /// The buffer's shape.
        got: Vec<i64>,
    },
    /// A momentum buffer is not a floating-point tensor.
    #[error("optimizer state `{name}` has dtype {kind:?}, expected a floating-point tensor")]
    StateKind {
        /// The entry's name.
        name: String,
        /// Its dtype.
        kind: Kind,
    },
    /// libtorch refused an operation on a parameter or a buffer.
    #[error("`{name}`: {source}")]
    Torch {
        /// The parameter or state entry.
        name: String,
        /// libtorch's error.
        source: TchError,
    },
}

/// SGD's hyper-parameters, PyTorch's `torch.optim.SGD` arguments plus `no_decay_1d`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// The base learning rate (the schedule's `lr0`; [`Sgd::step`] takes the current one).
    pub lr: f64,
    /// Momentum factor μ (0 disables the buffers).
    pub momentum: f64,
    /// Dampening τ of the momentum (not applied at the buffer's first step).
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty λ added to the gradient (coupled weight decay).
    pub weight_decay: f64,
    /// No weight decay on parameters with at most one dimension (biases, BatchNorm γ/β), as
    /// kd_data's two parameter groups; RepDistiller decays everything.
    pub no_decay_1d: bool,
}

impl Default for SgdConfig {
    /// RepDistiller's recipe: lr 0.05, momentum 0.9, no dampening, no Nesterov, weight decay
    /// 5e-4 on every parameter.
    fn default() -> Self {
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 5e-4,
            no_decay_1d: false,
        }
    }
}

impl SgdConfig {
    /// Checks the values: lr, momentum, dampening and weight decay finite and ≥ 0, and Nesterov
    /// only with momentum > 0 and dampening 0 (PyTorch's rule).
    pub fn validate(&self) -> Result<(), OptimError> {
        for (field, value) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("weight_decay", self.weight_decay),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(OptimError::Hyper { field, value });
            }
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(OptimError::Nesterov {
                momentum: self.momentum,
                dampening: self.dampening,
            });
        }
        Ok(())
    }

    /// The weight decay of a parameter of `dim` dimensions.
    fn decay_for(&self, dim: usize) -> f64 {
        if self.no_decay_1d && dim <= 1 {
            0.0
        } else {
            self.weight_decay
        }
    }
}

/// The trainable variables of `vs` with their names, sorted by name.
pub fn named_trainable_variables(vs: &nn::VarStore) -> Result<Vec<(String, Tensor)>, OptimError> {
    let named = vs.variables();
    // Candidates by storage address, confirmed with `is_set_to` (same storage, offset, shape
    // and strides): the VarStore keeps the trainable list and the names apart.
    let mut by_ptr: HashMap<usize, Vec<(&String, &Tensor)>> = HashMap::new();
    for (name, t) in &named {
        by_ptr
            .entry(t.data_ptr() as usize)
            .or_default()
            .push((name, t));
    }
    let mut out = Vec::new();
    for var in vs.trainable_variables() {
        let name = by_ptr
            .get(&(var.data_ptr() as usize))
            .and_then(|c| c.iter().find(|(_, t)| var.is_set_to(t)))
            .map(|(name, _)| (*name).clone())
            .ok_or_else(|| OptimError::UnnamedVariable { shape: var.size() })?;
        out.push((name, var));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Stochastic gradient descent over named parameters, with savable momentum buffers.
pub struct Sgd {
    cfg: SgdConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    /// Weight decay per parameter (0 for 1-D ones with `no_decay_1d`).
    decay: Vec<f64>,
    /// Momentum buffers; `None` until the parameter's first step with a gradient.
    buffers: Vec<Option<Tensor>>,
    /// A libtorch optimizer over the same parameters that is never stepped: its `zero_grad` is
    /// tch's only way to reset a gradient to undefined (`set_to_none=True`).
    grad_reset: COptimizer,
}

impl std::fmt::Debug for Sgd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sgd")
            .field("cfg", &self.cfg)
            .field("params", &self.names)
            .field(
                "buffers",
                &self.buffers.iter().filter(|b| b.is_some()).count(),
            )
            .finish()
    }
}

impl Sgd {
    /// SGD over `params` (name, trainable tensor), in the given order.
    pub fn new(params: Vec<(String, Tensor)>, cfg: SgdConfig) -> Result<Sgd, OptimError> {
        cfg.validate()?;
        let grad_reset =
            COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false).map_err(|source| OptimError::Torch {
                name: "optimizer".to_owned(),
                source,
            })?;
        let mut sgd = Sgd {
            cfg,
            names: Vec::new(),
            params: Vec::new(),
            decay: Vec::new(),
            buffers: Vec::new(),
            grad_reset,
        };
        sgd.add_params("", params)?;
        Ok(sgd)
    }

    /// SGD over the trainable variables of `vs`, named as in the VarStore, sorted by name.
    pub fn from_var_store(vs: &nn::VarStore, cfg: SgdConfig) -> Result<Sgd, OptimError> {
        Sgd::new(named_trainable_variables(vs)?, cfg)
    }

    /// Adds parameters (a distiller's regressor, say), named `<prefix>.<name>` (just `<name>`
    /// when `prefix` is empty). Fails on a name already present, adding nothing.
    pub fn add_params(
        &mut self,
        prefix: &str,
        params: Vec<(String, Tensor)>,
    ) -> Result<(), OptimError> {
        let mut seen: HashSet<String> = self.names.iter().cloned().collect();
        let named: Vec<(String, Tensor)> = params
            .into_iter()
            .map(|(n, t)| match prefix {
                "" => (n, t),
                _ => (format!("{prefix}.{n}"), t),
            })
            .collect();
        for (name, _) in &named {
            if !seen.insert(name.clone()) {
                return Err(OptimError::DuplicateParam { name: name.clone() });
            }
        }
        for (name, t) in named {
            self.grad_reset
                .add_parameters(&t, 0)
                .map_err(|source| OptimError::Torch {
                    name: name.clone(),
                    source,
                })?;
            self.decay.push(self.cfg.decay_for(t.dim()));
            self.names.push(name);
            self.params.push(t);
            self.buffers.push(None);
        }
        Ok(())
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    /// The parameter names, in parameter order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters (shallow handles on the model's variables), in the order they were given.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The gradients that are defined, in parameter order (for loss-scale unscaling, clipping
    /// and checks).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .collect()
    }

    /// One SGD step at learning rate `lr`, in place and without recording gradients.
    /// Parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        let (momentum, dampening, nesterov) =
            (self.cfg.momentum, self.cfg.dampening, self.cfg.nesterov);
        for ((p, decay), buf) in self
            .params
            .iter_mut()
            .zip(&self.decay)
            .zip(&mut self.buffers)
        {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let mut d = if *decay != 0.0 {
                &grad + &*p * *decay
            } else {
                grad
            };
            if momentum != 0.0 {
                match buf {
                    None => *buf = Some(d.detach().copy()),
                    Some(b) => {
                        let _ = b.g_mul_scalar_(momentum);
                        if dampening == 0.0 {
                            let _ = b.g_add_(&d);
                        } else {
                            let _ = b.g_add_(&(&d * (1.0 - dampening)));
                        }
                    }
                }
                let b = buf.as_ref().expect("the buffer was just set");
                d = if nesterov {
                    &d + b * momentum
                } else {
                    b.shallow_clone()
                };
            }
            let _ = p.g_sub_(&(d * lr));
        }
    }

    /// Resets every parameter's gradient to undefined, as PyTorch's
    /// `zero_grad(set_to_none=True)`: a parameter the next backward does not reach is then
    /// skipped by [`Sgd::step`].
    pub fn zero_grad(&mut self) {
        // libtorch's Optimizer::zero_grad(set_to_none = true) only fails on a broken optimizer.
        self.grad_reset
            .zero_grad()
            .expect("resetting gradients failed");
    }

    /// The optimizer's state: the momentum buffers that exist, named
    /// `momentum_buffer.<param name>`, in parameter order (shallow handles; copy them before
    /// stepping again if they must not change).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .zip(&self.buffers)
            .filter_map(|(name, b)| {
                b.as_ref()
                    .map(|b| (format!("{MOMENTUM_BUFFER_PREFIX}{name}"), b.shallow_clone()))
            })
            .collect()
    }

    /// Restores a state saved by [`Sgd::state`]. A parameter without an entry gets no buffer
    /// (it is created at its next step, as after a fresh start). Buffers are copied, converted
    /// to their parameter's device and dtype. Nothing changes on an error: an unknown or
    /// repeated entry, a shape mismatch, a non-floating buffer, or any buffer when the
    /// momentum is 0.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), OptimError> {
        let index: HashMap<&str, usize> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut loaded: Vec<Option<Tensor>> = (0..self.params.len()).map(|_| None).collect();
        for (name, t) in state {
            let i = name
                .strip_prefix(MOMENTUM_BUFFER_PREFIX)
                .and_then(|p| index.get(p).copied())
                .ok_or_else(|| OptimError::UnknownState { name: name.clone() })?;
            if loaded[i].is_some() {
                return Err(OptimError::DuplicateState { name: name.clone() });
            }
            if self.cfg.momentum == 0.0 {
                return Err(OptimError::BufferWithoutMomentum { name: name.clone() });
            }
            let p = &self.params[i];
            if t.size() != p.size() {
                return Err(OptimError::StateShape {
                    name: name.clone(),
                    expected: p.size(),
                    got: t.size(),
                });
            }
            if !t.is_floating_point() {
                return Err(OptimError::StateKind {
                    name: name.clone(),
                    kind: t.kind(),
                });
            }
            let copy = t
                .f_to_device(p.device())
                .and_then(|t| t.f_to_kind(p.kind()))
                .and_then(|t| t.f_detach_copy())
                .map_err(|source| OptimError::Torch {
                    name: name.clone(),
                    source,
                })?;
            loaded[i] = Some(copy);
        }
        self.buffers = loaded;
        Ok(())
    }
}
