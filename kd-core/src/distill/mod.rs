//! RepDistiller's feature distillers (kd-codebases.md B.5–B.7): FitNet, AT, SP, CC, VID, RKD,
//! PKT, AB, FT, FSP, NST and CRD, each behind one small trait, [`Distiller`].
//!
//! A distiller says which features it taps (the reference's `feat` list of
//! [`crate::models::Model::forward_features`], before the ReLU for AB), owns its trainable
//! modules (regressors, embeddings, connectors) under an `nn::Path` of its own VarStore — so
//! the trainer's SGD trains them and its checkpoints save them, CRD's memory bank included —,
//! computes its loss from the student's and the teacher's features, and may have an init stage
//! (AB, FT, FSP) that runs before the main stage. The trainer adds `β · loss` to
//! `γ·CE + α·KD (+ the augmented-view terms)`, β from `loss.beta`, by default the weight of the
//! reference's `scripts/run_cifar_distill.sh` for the method ([`Method::default_beta`]).
//!
//! Pairs with feature maps of different sides are adapted as the reference adapts them: the
//! larger map is adaptive-average-pooled to the smaller's side (AT, NST, VID, FT, FSP), FitNet's
//! and AB's regressor is a strided, transposed or larger-kernel convolution. A method that cannot
//! apply to a pair (FSP with unequal channel counts, AB with unequal numbers of stages, FitNet
//! whose teacher map is larger than twice the student's) is refused by [`build`] with a
//! [`DistillError::NotApplicable`] that says why.
//!
//! The losses are checked against the same losses computed with PyTorch on fixed features
//! (`kd-core/tests/distillers.rs`).

pub mod ab;
pub mod at;
pub mod cc;
pub mod contrast;
pub mod crd;
pub mod fitnet;
pub mod fsp;
pub mod ft;
pub mod layers;
pub mod nst;
pub mod ops;
pub mod pkt;
pub mod rkd;
pub mod sp;
pub mod vid;

use serde::{Deserialize, Serialize};
use std::fmt;
use tch::{Tensor, nn};

/// The distillation methods, by the names configs use (`loss.distiller`); the reference's
/// `--distill` names are accepted too (`hint`, `attention`, `similarity`, `correlation`,
/// `abound`, `factor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// No feature distiller: CE and the logit KD terms only.
    #[default]
    None,
    /// FitNet (Romero et al.): MSE between a regressed student map and the teacher's.
    #[serde(alias = "hint")]
    Fitnet,
    /// Attention transfer (Zagoruyko & Komodakis).
    #[serde(alias = "attention")]
    At,
    /// Similarity-preserving KD (Tung & Mori).
    #[serde(alias = "similarity")]
    Sp,
    /// Correlation congruence (Peng et al.), the author's code.
    #[serde(alias = "correlation")]
    Cc,
    /// Variational information distillation (Ahn et al.).
    Vid,
    /// Relational KD (Park et al.): distance and angle.
    Rkd,
    /// Probabilistic knowledge transfer (Passalis & Tefas).
    Pkt,
    /// Activation boundaries (Heo et al.): an init stage only.
    #[serde(alias = "abound")]
    Ab,
    /// Factor transfer (Kim et al.): a paraphraser trained in an init stage, then a translator.
    #[serde(alias = "factor")]
    Ft,
    /// Flow of solution procedure (Yim et al.): an init stage only.
    Fsp,
    /// Neuron selectivity transfer (Huang & Wang).
    Nst,
    /// Contrastive representation distillation (Tian et al.).
    Crd,
}

impl Method {
    /// Every method, `None` first.
    pub const ALL: [Method; 13] = [
        Method::None,
        Method::Fitnet,
        Method::At,
        Method::Sp,
        Method::Cc,
        Method::Vid,
        Method::Rkd,
        Method::Pkt,
        Method::Ab,
        Method::Ft,
        Method::Fsp,
        Method::Nst,
        Method::Crd,
    ];

    /// The name configs use.
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Fitnet => "fitnet",
            Method::At => "at",
            Method::Sp => "sp",
            Method::Cc => "cc",
            Method::Vid => "vid",
            Method::Rkd => "rkd",
            Method::Pkt => "pkt",
            Method::Ab => "ab",
            Method::Ft => "ft",
            Method::Fsp => "fsp",
            Method::Nst => "nst",
            Method::Crd => "crd",
        }
    }

    /// The reference's `--distill` name.
    pub fn reference_name(self) -> &'static str {
        match self {
            Method::None => "kd",
            Method::Fitnet => "hint",
            Method::At => "attention",
            Method::Sp => "similarity",
            Method::Cc => "correlation",
            Method::Ab => "abound",
            Method::Ft => "factor",
            other => other.name(),
        }
    }

    /// β of the reference's `scripts/run_cifar_distill.sh` (each with `-a 0`, and γ = 1).
    /// AB's and FSP's main stage has no distiller term, so their β weighs nothing.
    pub fn default_beta(self) -> f64 {
        match self {
            Method::None => 0.0,
            Method::Fitnet => 100.0,
            Method::At => 1000.0,
            Method::Sp => 3000.0,
            Method::Cc => 0.02,
            Method::Vid => 1.0,
            Method::Rkd => 1.0,
            Method::Pkt => 30000.0,
            Method::Ab => 1.0,
            Method::Ft => 200.0,
            Method::Fsp => 50.0,
            Method::Nst => 50.0,
            Method::Crd => 0.8,
        }
    }

    /// Whether the method has an init stage before the main stage (AB, FT, FSP).
    pub fn has_init_stage(self) -> bool {
        matches!(self, Method::Ab | Method::Ft | Method::Fsp)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Each method's parameters, as the `[loss.<method>]` tables of a config hold them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    /// FitNet's.
    pub fitnet: fitnet::FitnetParams,
    /// CC's.
    pub cc: cc::CcParams,
    /// RKD's.
    pub rkd: rkd::RkdParams,
    /// AB's.
    pub ab: ab::AbParams,
    /// CRD's.
    pub crd: crd::CrdParams,
}

/// What a distiller is built for: the method, its parameters and the two networks' feature
/// shapes (one sample each: `[C, H, W]` maps and the `[D]` pooled vector last).
#[derive(Clone, Debug)]
pub struct Setup<'a> {
    /// The method.
    pub method: Method,
    /// Every method's parameters (the method reads its own).
    pub params: &'a Params,
    /// The student's zoo name (for messages).
    pub student: &'a str,
    /// The teacher's zoo name (for messages).
    pub teacher: &'a str,
    /// The student's feature shapes.
    pub student_shapes: &'a [Vec<i64>],
    /// The teacher's feature shapes.
    pub teacher_shapes: &'a [Vec<i64>],
    /// Training samples (CRD's memory rows).
    pub train_samples: usize,
}

impl Setup<'_> {
    /// The refusal of this pair, saying `why`.
    pub fn not_applicable(&self, why: impl Into<String>) -> DistillError {
        DistillError::NotApplicable {
            method: self.method,
            teacher: self.teacher.to_string(),
            student: self.student.to_string(),
            why: why.into(),
        }
    }

    /// The shapes of both networks' middle features, `feat[1:-1]`, paired as the reference's
    /// `zip` pairs them (the longer list is cut to the shorter one's length).
    pub fn middle_pairs(&self) -> Vec<(Vec<i64>, Vec<i64>)> {
        let mid = |v: &[Vec<i64>]| v[1..v.len() - 1].to_vec();
        mid(self.student_shapes)
            .into_iter()
            .zip(mid(self.teacher_shapes))
            .collect()
    }
}

/// Why a distiller cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// The method does not apply to this teacher–student pair.
    #[error("loss.distiller = \"{method}\" cannot distil {teacher} → {student}: {why}")]
    NotApplicable {
        /// The method.
        method: Method,
        /// The teacher's name.
        teacher: String,
        /// The student's name.
        student: String,
        /// Why.
        why: String,
    },
    /// A parameter that does not fit the pair or the data.
    #[error("{key} = {value}: {why}")]
    Param {
        /// The config key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// CRD's draw for one batch ([`contrast::ContrastSampler`]): the memory rows of the batch's
/// samples and, per sample, its positive and K negatives.
#[derive(Debug)]
pub struct Contrast {
    /// `[B]` memory rows of the batch's own samples (where the memory update writes).
    pub rows: Tensor,
    /// `[B, K + 1]` memory rows: the positive first, then the K negatives.
    pub sample: Tensor,
}

/// The init stage of a two-stage method: what it trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitStage {
    /// The distiller's modules it trains (VarStore prefixes).
    pub modules: &'static [&'static str],
    /// Whether it trains the student's feature layers too (AB, FSP); FT trains its paraphraser
    /// on the teacher alone and needs no student forward.
    pub student: bool,
}

/// A distillation method bound to a teacher–student pair.
pub trait Distiller: Send + fmt::Debug {
    /// The method.
    fn method(&self) -> Method;

    /// Whether the features are taken before their final ReLU (AB's `preact=True`).
    fn preact(&self) -> bool {
        false
    }

    /// The VarStore prefixes of the modules the main stage trains (the reference's
    /// `trainable_list` beyond the student).
    fn trainable(&self) -> &'static [&'static str] {
        &[]
    }

    /// The init stage, for the two-stage methods.
    fn init_stage(&self) -> Option<InitStage> {
        None
    }

    /// The main-stage loss of a batch from the student's features (with their graph) and the
    /// teacher's (without), or `None` when the method has no main-stage term (AB, FSP).
    /// `contrast` is CRD's draw for the batch (required by CRD, ignored by the others). The
    /// distiller's modules run in train mode, as the reference's `module_list.train()`.
    fn loss(
        &mut self,
        student: &[Tensor],
        teacher: &[Tensor],
        contrast: Option<&Contrast>,
    ) -> Option<Tensor>;

    /// The init-stage loss of a batch (`None` without an init stage). FT's ignores the student.
    fn init_loss(&mut self, _student: &[Tensor], _teacher: &[Tensor]) -> Option<Tensor> {
        None
    }
}

/// Builds the distiller of `setup` under `path` (its own VarStore's root: the modules are named
/// as the reference names them, e.g. `regressor.conv.weight`, `embed_s.linear.weight`,
/// `contrast.memory_v1`). `None` for [`Method::None`].
pub fn build(setup: &Setup, path: &nn::Path) -> Result<Option<Box<dyn Distiller>>, DistillError> {
    if setup.student_shapes.len() < 3 || setup.teacher_shapes.len() < 3 {
        return Err(setup.not_applicable(
            "the distillers need at least three features per network (stem, stages, pooled vector)",
        ));
    }
    Ok(Some(match setup.method {
        Method::None => return Ok(None),
        Method::Fitnet => Box::new(fitnet::FitNet::new(setup, path)?),
        Method::At => Box::new(at::Attention::new(setup)?),
        Method::Sp => Box::new(sp::Similarity),
        Method::Cc => Box::new(cc::Correlation::new(setup, path)?),
        Method::Vid => Box::new(vid::Vid::new(setup, path)?),
        Method::Rkd => Box::new(rkd::Rkd::new(setup.params.rkd)),
        Method::Pkt => Box::new(pkt::Pkt),
        Method::Ab => Box::new(ab::ActivationBoundary::new(setup, path)?),
        Method::Ft => Box::new(ft::FactorTransfer::new(setup, path)?),
        Method::Fsp => Box::new(fsp::Fsp::new(setup)?),
        Method::Nst => Box::new(nst::Nst::new(setup)?),
        Method::Crd => Box::new(crd::Crd::new(setup, path)?),
    }))
}

/// The pooled vector, `feat[-1]`, flattened to `[B, D]`.
pub(crate) fn last(features: &[Tensor]) -> Tensor {
    let f = &features[features.len() - 1];
    f.reshape([f.size()[0], -1])
}

/// `feat[-2]`, the last map.
pub(crate) fn second_last(features: &[Tensor]) -> &Tensor {
    &features[features.len() - 2]
}

/// `feat[1:-1]`, the stage maps.
pub(crate) fn middle(features: &[Tensor]) -> &[Tensor] {
    &features[1..features.len() - 1]
}

/// Checks that the feature at `what` is a `[C, H, W]` map in both networks.
pub(crate) fn require_maps(
    setup: &Setup,
    what: &str,
    student: &[i64],
    teacher: &[i64],
) -> Result<(), DistillError> {
    if student.len() != 3 || teacher.len() != 3 {
        return Err(setup.not_applicable(format!(
            "{what} must be a feature map in both networks, got student {student:?} and teacher {teacher:?}"
        )));
    }
    if student[1] != student[2] || teacher[1] != teacher[2] {
        return Err(setup.not_applicable(format!(
            "{what}: the reference assumes square maps, got student {student:?} and teacher {teacher:?}"
        )));
    }
    Ok(())
}
