//! The training objective of one step: forward passes and the weighted loss terms.
//!
//! Distillation (Good-DA-in-KD's `train_distill`, RepDistiller's total loss):
//!
//! ```text
//! L = γ·CE(S(x), y) + α·( w₀·KD(S(x), T(x)) + w₁·CE(S(x′), y′) + w₂·KD(S(x′), T(x′)) )
//!     + β·distiller(S(x), T(x))
//! ```
//!
//! The distiller term (RepDistiller's `loss_kd`, [`crate::distill`]) is on the original batch x
//! only, as Good-DA-in-KD's CRD + CutMixPick: both networks' features come from their forward
//! on x (the student's with its graph), taken before the ReLU where the distiller asks.
//!
//! The student runs twice in train mode, on x and on x′, each with its own BatchNorm batch
//! statistics, as the reference's two forward passes. The teacher runs in eval mode without a
//! graph, so its outputs do not depend on the rest of the batch. On CUDA its x and x′ forwards
//! are one concatenated forward. On the CPU they are two, and every eval-mode pass over more
//! rows than the batch (CutMixPick's pool) is cut into batch-sized passes: a pass over twice the
//! rows costs more than two passes there (resnet32x4 at 2 × 64 rows: 1.06 s, at 128: 1.26 s;
//! activations outgrow the caches). For CutMixPick by teacher entropy the teacher's logits on
//! the picked rows are taken from its scoring pass over the pool instead of a third forward (the
//! reference re-runs it on x′): the same values, fewer passes.
//!
//! Training without a teacher: `L = CE(S(x), y) + w₁·CE(S(x′), y′)`.

use crate::distill::{Contrast, Distiller};
use crate::loss::{KdLoss, cross_entropy, entropy};
use crate::models::Model;
use kd_augment::batch::top_rows;
use kd_augment::scheme::PickBy;
use tch::{Device, Kind, Tensor};

/// The weights and kinds of the loss terms.
#[derive(Clone, Debug)]
pub struct Objective {
    /// γ, on CE(S(x), y); 1 when training without a teacher.
    pub ce: f64,
    /// α, on the KD terms.
    pub kd: f64,
    /// [w₀, w₁, w₂] (Good-DA-in-KD's `lw_mix`).
    pub aug: [f64; 3],
    /// The KD loss (kind and temperature).
    pub loss: KdLoss,
    /// CutMixPick by student entropy: score the pool in train mode (the reference, updates the
    /// student's BatchNorm running statistics) rather than eval mode.
    pub student_pick_train: bool,
}

/// The stronger-DA view x′ of a batch, on the device.
#[derive(Debug)]
pub struct AugBatch {
    /// `[m, c, h, w]`: x′, or CutMixPick's pool before picking.
    pub images: Tensor,
    /// Per row, the row of x it mostly is (its label is y′'s first part).
    pub source: Vec<i64>,
    /// Per row, the row of x mixed or pasted into it.
    pub partner: Vec<i64>,
    /// Per row, the fraction λ of `source` (1 for a plain transform).
    pub lambda: Vec<f32>,
    /// CutMixPick: rank the rows by this model's entropy and keep this many.
    pub pick: Option<(PickBy, usize)>,
}

/// A distiller's part of one step.
#[derive(Debug)]
pub struct DistillStep<'a> {
    /// The distiller.
    pub distiller: &'a mut dyn Distiller,
    /// β, its weight.
    pub beta: f64,
    /// CRD's draw for the batch.
    pub contrast: Option<Contrast>,
}

/// What one step computed.
#[derive(Debug)]
pub struct StepOutput {
    /// The total loss, with its graph.
    pub loss: Tensor,
    /// The student's logits on x (detached).
    pub logits: Tensor,
    /// The terms, detached, unweighted: [CE(x), KD(x), CE(x′), KD(x′), distiller] (0 where
    /// absent).
    pub terms: Tensor,
}

impl Objective {
    /// The objective of `kd train`: cross-entropy only (plus w₁·CE on x′ if a view is given).
    pub fn plain(aug: [f64; 3], loss: KdLoss) -> Self {
        Objective {
            ce: 1.0,
            kd: 0.0,
            aug,
            loss,
            student_pick_train: true,
        }
    }

    /// Forward passes and the loss of one batch. `teacher` is `None` when training without one
    /// (a distiller is then ignored). With `amp`, forwards run under fp16 autocast; the losses
    /// are computed in f32.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        student: &dyn Model,
        teacher: Option<&dyn Model>,
        x: &Tensor,
        y: &Tensor,
        aug: Option<AugBatch>,
        amp: bool,
        distill: Option<DistillStep>,
    ) -> StepOutput {
        let device = x.device();
        let zero = || Tensor::zeros([], (Kind::Float, device));
        let n = x.size()[0];
        // Pick first: the scoring passes must not see the student's update of this step.
        let mut teacher_aug: Option<Tensor> = None;
        let aug = aug.map(|a| self.pick(a, student, teacher, &mut teacher_aug, amp));
        let preact = distill.as_ref().map(|d| d.distiller.preact());
        let (z_s, feat_s) = forward(student, x, true, preact, amp);
        let ce_x = cross_entropy(&z_s, y);
        let mut loss = &ce_x * self.ce;
        let mut terms = vec![ce_x.detach(), zero(), zero(), zero(), zero()];
        let Some(teacher) = teacher else {
            if let Some(a) = aug
                && self.aug[1] > 0.0
            {
                let z_a = tch::autocast(amp, || student.forward_t(&a.images, true));
                let ce_a = mixed_cross_entropy(&z_a.to_kind(Kind::Float), y, &a);
                loss += &ce_a * self.aug[1];
                terms[2] = ce_a.detach();
            }
            return StepOutput {
                loss,
                logits: z_s.detach(),
                terms: Tensor::stack(&terms, 0),
            };
        };
        // Teacher logits on x, and on x′ unless the pick already computed them: one concatenated
        // pass on CUDA, batch-sized passes on the CPU (the module's notes).
        let (z_t, z_t_aug, feat_t) = tch::no_grad(|| match (&aug, teacher_aug.take()) {
            (Some(a), None) if device.is_cuda() => {
                let input = Tensor::cat(&[x, &a.images], 0);
                let (all, feats) = forward(teacher, &input, false, preact, amp);
                let on_x = |t: &Tensor| t.narrow(0, 0, n);
                let feats = feats.map(|f| f.iter().map(on_x).collect::<Vec<_>>());
                let rest = all.narrow(0, n, all.size()[0] - n);
                (on_x(&all), Some(rest), feats)
            }
            (Some(a), None) => {
                let (z_t, feats) = forward(teacher, x, false, preact, amp);
                (z_t, Some(eval_logits(teacher, &a.images, n, amp)), feats)
            }
            (_, picked) => {
                let (z_t, feats) = forward(teacher, x, false, preact, amp);
                (z_t, picked, feats)
            }
        });
        let kd_x = self.loss.compute(&z_s, &z_t);
        loss += &kd_x * (self.kd * self.aug[0]);
        terms[1] = kd_x.detach();
        if let (Some(d), Some(f_s), Some(f_t)) = (distill, &feat_s, &feat_t)
            && let Some(l) = d.distiller.loss(f_s, f_t, d.contrast.as_ref())
        {
            loss += &l * d.beta;
            terms[4] = l.detach();
        }
        if let (Some(a), Some(z_t_aug)) = (aug, z_t_aug) {
            let z_a =
                tch::autocast(amp, || student.forward_t(&a.images, true)).to_kind(Kind::Float);
            let kd_a = self.loss.compute(&z_a, &z_t_aug);
            loss += &kd_a * (self.kd * self.aug[2]);
            terms[3] = kd_a.detach();
            if self.aug[1] > 0.0 {
                let ce_a = mixed_cross_entropy(&z_a, y, &a);
                loss += &ce_a * (self.kd * self.aug[1]);
                terms[2] = ce_a.detach();
            }
        }
        StepOutput {
            loss,
            logits: z_s.detach(),
            terms: Tensor::stack(&terms, 0),
        }
    }

    /// CutMixPick: scores the pool under no_grad and keeps the highest-entropy rows. Returns the
    /// view unchanged when it asks for no pick. With the teacher as scorer, its logits on the
    /// kept rows are stored in `teacher_aug`.
    fn pick(
        &self,
        a: AugBatch,
        student: &dyn Model,
        teacher: Option<&dyn Model>,
        teacher_aug: &mut Option<Tensor>,
        amp: bool,
    ) -> AugBatch {
        let Some((by, n)) = a.pick else {
            return a;
        };
        let logits = tch::no_grad(|| match (by, teacher) {
            (PickBy::TeacherEntropy, Some(t)) => eval_logits(t, &a.images, n as i64, amp),
            _ if !self.student_pick_train => eval_logits(student, &a.images, n as i64, amp),
            _ => tch::autocast(amp, || student.forward_t(&a.images, true)).to_kind(Kind::Float),
        });
        let rows = pick_highest_entropy(&logits, n);
        let idx = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
            .to_device(a.images.device());
        if matches!(by, PickBy::TeacherEntropy) && teacher.is_some() {
            *teacher_aug = Some(logits.index_select(0, &idx));
        }
        let take = |v: &[i64]| rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
        AugBatch {
            images: a.images.index_select(0, &idx),
            source: take(&a.source),
            partner: take(&a.partner),
            lambda: rows.iter().map(|&r| a.lambda[r]).collect(),
            pick: None,
        }
    }
}

/// A model's forward on `x` under autocast: the logits in f32 and, with `preact` given, the
/// features (f32) as `forward_features(x, train, preact)` returns them.
fn forward(
    model: &dyn Model,
    x: &Tensor,
    train: bool,
    preact: Option<bool>,
    amp: bool,
) -> (Tensor, Option<Vec<Tensor>>) {
    let f32 = |t: Tensor| t.to_kind(Kind::Float);
    match preact {
        None => (f32(tch::autocast(amp, || model.forward_t(x, train))), None),
        Some(pre) => {
            let out = tch::autocast(amp, || model.forward_features(x, train, pre));
            let feats = out.features.into_iter().map(f32).collect();
            (f32(out.logits), Some(feats))
        }
    }
}

/// An eval-mode forward's logits (f32) on `x`, in passes of at most `rows` rows on the CPU (see
/// the module's notes) and in one pass on CUDA. Eval-mode rows do not depend on each other, so
/// the values are those of one pass.
pub(crate) fn eval_logits(model: &dyn Model, x: &Tensor, rows: i64, amp: bool) -> Tensor {
    let total = x.size()[0];
    let pass =
        |part: &Tensor| tch::autocast(amp, || model.forward_t(part, false)).to_kind(Kind::Float);
    if x.device().is_cuda() || rows <= 0 || total <= rows {
        return pass(x);
    }
    let parts: Vec<Tensor> = (0..total)
        .step_by(rows as usize)
        .map(|start| pass(&x.narrow(0, start, rows.min(total - start))))
        .collect();
    Tensor::cat(&parts, 0)
}

/// CutMixPick's choice: the rows of `logits` (`[m, classes]`, a model's logits on the pool) whose
/// softmax entropy at temperature 1 is highest, `n` of them (all `m` when `n ≥ m`, as the
/// reference's `n_pick = min(len, 64)` keeps the whole pool of a short last batch), highest first,
/// ties by lower index. NaN entropies rank last.
pub fn pick_highest_entropy(logits: &Tensor, n: usize) -> Vec<usize> {
    let scores = entropy(logits).to_kind(Kind::Float).to_device(Device::Cpu);
    let scores: Vec<f32> =
        Vec::try_from(scores.view([-1])).expect("a float tensor converts to Vec<f32>");
    top_rows(&scores, n)
}

/// CE of the student on x′ against the mixed labels λ·y[source] + (1−λ)·y[partner]: Good-DA-in-KD's
/// `CE_mixed` (its `lw_mix[1]`), plain CE for views that mix nothing.
fn mixed_cross_entropy(logits: &Tensor, y: &Tensor, a: &AugBatch) -> Tensor {
    let device = logits.device();
    let index = |v: &[i64]| Tensor::from_slice(v).to_device(device);
    let y_src = y.index_select(0, &index(&a.source));
    let y_par = y.index_select(0, &index(&a.partner));
    let lambda = Tensor::from_slice(&a.lambda).to_device(device);
    let logp = logits.log_softmax(1, Kind::Float);
    let nll = |t: &Tensor| -> Tensor { -logp.gather(1, &t.unsqueeze(1), false).squeeze_dim(1) };
    let rest: Tensor = 1.0 - &lambda;
    (&lambda * nll(&y_src) + rest * nll(&y_par)).mean(Kind::Float)
}
