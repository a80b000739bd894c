//! Helpers shared by the model-zoo tests.
#![allow(dead_code)]

use kd_core::models::{self, Model, ModelConfig};
use tch::{Device, Kind, Tensor, nn};

/// Builds `name` on the CPU with `num_classes` classes and `input_size` inputs.
pub fn build(name: &str, num_classes: i64, input_size: i64) -> (nn::VarStore, Box<dyn Model>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        num_classes,
        input_size,
    };
    let model =
        models::build(name, &vs.root(), &cfg).unwrap_or_else(|e| panic!("building {name}: {e}"));
    (vs, model)
}

/// Trainable parameters (BatchNorm running statistics excluded, as PyTorch's `parameters()`).
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Every variable name, sorted.
pub fn sorted_keys(vs: &nn::VarStore) -> Vec<String> {
    let mut keys: Vec<String> = vs.variables().into_keys().collect();
    keys.sort();
    keys
}

/// The feature shapes and the logits shape for a `[2, 3, side, side]` input.
pub fn feature_shapes(
    model: &dyn Model,
    side: i64,
    train: bool,
    preact: bool,
) -> (Vec<Vec<i64>>, Vec<i64>) {
    let xs = Tensor::randn([2, 3, side, side], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| model.forward_features(&xs, train, preact));
    (
        out.features.iter().map(|f| f.size()).collect(),
        out.logits.size(),
    )
}
