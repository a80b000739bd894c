//! The trainer's side of a feature distiller ([`crate::distill`]): building it for the run's
//! teacher–student pair, the parameters its optimizers train, CRD's sampler, and the init stage
//! of the two-stage methods (AB, FT, FSP).
//!
//! As RepDistiller's `train_student.py`, the feature shapes are probed with an eval-mode forward
//! of both networks, the distiller's modules are trained by the student's SGD (its
//! `trainable_list`, with the same weight decay), and the init stage runs before the main stage
//! with its own SGD at a constant rate over the init modules (and the student, for AB and FSP),
//! the teacher in eval mode. Its epochs draw the data order and standard augmentation of loader
//! epochs of their own ([`init_loader_epoch`]); the stronger DA is not used there (the
//! reference's `init` has none), and it runs in fp32 whatever `run.amp` says.
//!
//! Deliberate differences from the reference's init stage: the student runs in train mode as a
//! whole and every student parameter the init loss reaches is trained. The reference sets only
//! `get_feat_modules()` to train mode; that covers every layer the init features pass through,
//! except WRN's final `bn1`, which AB's pre-activation `f3` goes through and which the reference
//! leaves in eval mode and untrained during AB's init stage.

use super::state::InitRow;
use super::{Result, TrainError, to_tensors};
use crate::config::RunConfig;
use crate::distill::contrast::{ContrastDraw, ContrastSampler};
use crate::distill::{self, Distiller, InitStage, Method, Setup};
use crate::models::Model;
use crate::optim::{Sgd, SgdConfig, named_trainable_variables};
use kd_augment::Rng;
use kd_augment::rng::domain;
use kd_data::loader::Loader;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

/// A tag mixed into CRD's per-batch generator, apart from the loader's and the stronger DA's.
const CONTRAST_TAG: u64 = 0x0043_5244_5f4e_4547;

/// The init stage's loader epochs start here, apart from the main stage's 1, 2, ….
const INIT_EPOCH_BASE: u64 = 1 << 40;

/// A run's distiller with what trains it.
pub(crate) struct DistillState {
    /// The distiller's variables (saved as `distill.<name>` in the checkpoints).
    pub vs: nn::VarStore,
    /// The distiller.
    pub distiller: Box<dyn Distiller>,
    /// β.
    pub beta: f64,
    /// CRD's sampler.
    pub sampler: Option<Arc<ContrastSampler>>,
    /// The init stage of a two-stage method.
    pub init: Option<InitState>,
}

/// The init stage's optimizer and schedule.
pub(crate) struct InitState {
    /// What it trains.
    pub stage: InitStage,
    /// Its SGD (saved as the checkpoint's `optim.*` while the run is in the init stage).
    pub sgd: Sgd,
    /// Its constant learning rate.
    pub lr: f64,
    /// Its epochs.
    pub epochs: usize,
}

impl DistillState {
    /// Builds the distiller `cfg` names for `student` (variables in `student_vs`) and `teacher`
    /// on images of `input_size`, trained on the samples of `train`; `sgd` is the main stage's
    /// optimizer, which gets the distiller's trainable modules.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        cfg: &RunConfig,
        student: &dyn Model,
        student_vs: &nn::VarStore,
        teacher: &dyn Model,
        input_size: i64,
        device: Device,
        train: &Loader,
        sgd: &mut Sgd,
        format: crate::runtime::MemoryFormat,
    ) -> Result<DistillState> {
        let l = &cfg.loss;
        let method = l.distiller;
        let sampler = match method {
            Method::Crd => Some(Arc::new(ContrastSampler::new(
                &train.order(0),
                train.dataset().labels(),
                l.crd.nce_k,
                l.crd.mode,
            )?)),
            _ => None,
        };
        let params = l.params();
        let (s, t) = (
            feature_shapes(student, input_size, device),
            feature_shapes(teacher, input_size, device),
        );
        let setup = Setup {
            method,
            params: &params,
            student: &cfg.model.student,
            teacher: cfg.model.teacher.as_deref().unwrap_or("the teacher"),
            student_shapes: &s,
            teacher_shapes: &t,
            train_samples: sampler.as_ref().map_or(train.num_samples(), |s| s.rows()),
        };
        let vs = nn::VarStore::new(device);
        let distiller = distill::build(&setup, &vs.root())?.ok_or_else(|| TrainError::Setting {
            key: "loss.distiller".into(),
            why: "no distiller to build".into(),
        })?;
        // The regressors and connectors in the run's layout, before the optimizers record them.
        format.apply_to(&vs);
        let optim_err = |e: crate::optim::OptimError| TrainError::Optim(e.to_string());
        sgd.add_params("distill", select(&vs, distiller.trainable())?)
            .map_err(optim_err)?;
        let init = match distiller.init_stage() {
            None => None,
            Some(stage) => {
                let mut params = Vec::new();
                if stage.student {
                    params = named_trainable_variables(student_vs).map_err(optim_err)?;
                }
                let mut init_sgd = Sgd::new(params, *sgd.config()).map_err(optim_err)?;
                init_sgd
                    .add_params("distill", select(&vs, stage.modules)?)
                    .map_err(optim_err)?;
                Some(InitState {
                    stage,
                    sgd: init_sgd,
                    lr: l.init_lr(&cfg.model.student, cfg.optim.lr),
                    epochs: l.init_epochs,
                })
            }
        };
        Ok(DistillState {
            vs,
            distiller,
            beta: l.beta.unwrap_or(method.default_beta()),
            sampler,
            init,
        })
    }

    /// Trainable parameters of the distiller's modules.
    pub fn parameters(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// The distiller's variables, sorted by name.
    pub fn variables(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// The shapes of `model`'s features for one image (an eval-mode forward of two zero images, as
/// the reference probes with two random ones).
fn feature_shapes(model: &dyn Model, input_size: i64, device: Device) -> Vec<Vec<i64>> {
    let x = Tensor::zeros([2, 3, input_size, input_size], (Kind::Float, device));
    let out = tch::no_grad(|| model.forward_features(&x, false, false));
    out.features
        .iter()
        .map(|f| f.size()[1..].to_vec())
        .collect()
}

/// The trainable variables of `vs` under the module `prefixes`.
fn select(vs: &nn::VarStore, prefixes: &[&str]) -> Result<Vec<(String, Tensor)>> {
    let all = named_trainable_variables(vs).map_err(|e| TrainError::Optim(e.to_string()))?;
    Ok(all
        .into_iter()
        .filter(|(name, _)| {
            prefixes
                .iter()
                .any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('.')))
        })
        .collect())
}

/// CRD's generator for the batch at 0-based `step` of 1-based `epoch`.
pub(crate) fn contrast_rng(seed: u64, epoch: usize, step: usize) -> Rng {
    Rng::from_keys(&[seed, domain::BATCH, epoch as u64, step as u64, CONTRAST_TAG])
}

/// CRD's draw for a batch of dataset `indices`, if the run has a sampler.
pub(crate) fn draw(
    sampler: Option<&ContrastSampler>,
    indices: &[usize],
    seed: u64,
    epoch: usize,
    step: usize,
) -> Option<ContrastDraw> {
    sampler.map(|s| s.draw(indices, &mut contrast_rng(seed, epoch, step)))
}

/// The loader epoch of 1-based init epoch `epoch`.
pub(crate) fn init_loader_epoch(epoch: usize) -> u64 {
    INIT_EPOCH_BASE + epoch as u64
}

/// The models and data of one init epoch.
pub(crate) struct InitEpoch<'a> {
    /// The student.
    pub student: &'a dyn Model,
    /// The teacher.
    pub teacher: &'a dyn Model,
    /// The training loader.
    pub train: &'a Loader,
    /// The device.
    pub device: Device,
    /// The layout of the image batches.
    pub format: crate::runtime::MemoryFormat,
}

impl InitEpoch<'_> {
    /// Trains init epoch `epoch` (1-based) of `d`'s init stage.
    pub fn run(&self, d: &mut DistillState, epoch: usize) -> Result<InitRow> {
        let started = Instant::now();
        let init = d.init.as_mut().expect("a two-stage distiller");
        let preact = d.distiller.preact();
        let (mut sum, mut images) = (0f64, 0usize);
        for batch in self.train.epoch(init_loader_epoch(epoch)) {
            let (x, _) = to_tensors(&batch, self.device, self.format);
            let f_t = tch::no_grad(|| self.teacher.forward_features(&x, false, preact).features);
            let f_s = if init.stage.student {
                self.student.forward_features(&x, true, preact).features
            } else {
                Vec::new()
            };
            let loss = d
                .distiller
                .init_loss(&f_s, &f_t)
                .expect("a two-stage distiller has an init loss");
            let value = f64::try_from(&loss)?;
            if !value.is_finite() {
                return Err(TrainError::InitNonFinite {
                    epoch,
                    step: batch.step,
                    value,
                });
            }
            init.sgd.zero_grad();
            loss.backward();
            init.sgd.step(init.lr);
            sum += value * batch.len() as f64;
            images += batch.len();
        }
        Ok(InitRow {
            epoch,
            lr: init.lr,
            loss: sum / images.max(1) as f64,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The SGD hyper-parameters of `[optim]`.
pub(crate) fn sgd_config(cfg: &RunConfig) -> SgdConfig {
    let o = &cfg.optim;
    SgdConfig {
        lr: o.lr,
        momentum: o.momentum,
        dampening: o.dampening,
        nesterov: o.nesterov,
        weight_decay: o.weight_decay,
        no_decay_1d: o.no_decay_1d,
    }
}
