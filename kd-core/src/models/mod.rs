//! The model zoo: RepDistiller's 22 CIFAR models, kd_data's WRN-d-k, and the ImageNet-layout
//! ResNet-18/34, built with the reference's initialisation and its `state_dict` names.
//!
//! Every model returns its logits and, on request, the features the reference's
//! `forward(x, is_feat=True, preact=…)` returns, so distillers can tap them ([`Model::forward_features`]).
//! Variables are created under the reference's module names (`conv1.weight`,
//! `layer1.0.bn1.running_mean`, …) so weights move between PyTorch and kd by name.

pub mod init;
pub mod mobilenetv2;
pub mod resnet;
pub mod resnet_imagenet;
pub mod resnetv2;
pub mod shufflenetv1;
pub mod shufflenetv2;
pub mod vgg;
pub mod wrn;

use tch::{Tensor, nn};

/// What to build: the classes and the input side (32 for CIFAR, 64 for Tiny-ImageNet, 224 for
/// ImageNet); models whose head depends on the input size follow the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Number of classes of the classifier.
    pub num_classes: i64,
    /// Side of the square input images.
    pub input_size: i64,
}

impl Default for ModelConfig {
    /// CIFAR-100: 100 classes, 32×32.
    fn default() -> Self {
        ModelConfig {
            num_classes: 100,
            input_size: 32,
        }
    }
}

/// The features and logits of one forward pass.
#[derive(Debug)]
pub struct Features {
    /// The reference's `feats` list, in its order (stem output, each stage, the pooled vector).
    pub features: Vec<Tensor>,
    /// The classifier's output.
    pub logits: Tensor,
}

/// A classification network of the zoo.
pub trait Model: std::fmt::Debug + Send {
    /// The logits for `xs` (`[n, c, h, w]`); `train` selects BatchNorm's batch statistics and
    /// updates its running statistics, as PyTorch's `train()` mode.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_features(xs, train, false).logits
    }

    /// The reference's `forward(x, is_feat=True, preact=preact)`: the feature list and the
    /// logits. With `preact`, stage features are taken before their final ReLU where the
    /// reference supports it.
    fn forward_features(&self, xs: &Tensor, train: bool, preact: bool) -> Features;
}

/// Errors building a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A name the registry does not know.
    #[error("unknown model '{name}' (known: {known})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names the registry knows.
        known: String,
    },
    /// A configuration the model cannot take.
    #[error("model '{name}': {why}")]
    InvalidConfig {
        /// The model.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// Builds one model of a family.
pub type Builder = fn(&nn::Path, &ModelConfig) -> Result<Box<dyn Model>, ModelError>;

/// Every family's (name, builder) entries, in the order `kd models` lists them.
fn registry() -> impl Iterator<Item = &'static (&'static str, Builder)> {
    [
        resnet::ENTRIES,
        wrn::ENTRIES,
        vgg::ENTRIES,
        mobilenetv2::ENTRIES,
        shufflenetv1::ENTRIES,
        shufflenetv2::ENTRIES,
        resnetv2::ENTRIES,
        resnet_imagenet::ENTRIES,
    ]
    .into_iter()
    .flatten()
}

/// The names [`build`] knows. Any `wrn_D_K` (e.g. kd_data's `wrn_28_4`) is built too.
pub fn names() -> Vec<&'static str> {
    registry().map(|(n, _)| *n).collect()
}

/// Builds the model `name` under `vs` (its root path gives the reference's names).
pub fn build(name: &str, vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn Model>, ModelError> {
    if let Some((_, builder)) = registry().find(|(n, _)| *n == name) {
        return builder(vs, cfg);
    }
    if let Some(model) = wrn::build_by_name(name, vs, cfg) {
        return model;
    }
    Err(ModelError::UnknownModel {
        name: name.to_string(),
        known: names().join(", "),
    })
}

/// A model's size: what `kd models` lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The registry name.
    pub name: String,
    /// Trainable parameters (PyTorch's `sum(p.numel() for p in model.parameters())`).
    pub parameters: i64,
    /// Multiply-accumulates of one forward pass of one image, convolutions and linear layers.
    pub macs: u64,
    /// The feature tensors' shapes for one image, as `forward_features` returns them.
    pub feature_shapes: Vec<Vec<i64>>,
}

/// Builds `name` on the CPU and measures it with one eval forward of a single image.
pub fn summarize(name: &str, cfg: &ModelConfig) -> Result<Summary, ModelError> {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = build(name, &vs.root(), cfg)?;
    let parameters = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    let x = Tensor::zeros(
        [1, 3, cfg.input_size, cfg.input_size],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let (out, macs) =
        init::count_macs(|| tch::no_grad(|| model.forward_features(&x, false, false)));
    let feature_shapes = out.features.iter().map(|f| f.size()).collect();
    Ok(Summary {
        name: name.to_string(),
        parameters,
        macs,
        feature_shapes,
    })
}
