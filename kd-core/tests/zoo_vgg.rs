//! RepDistiller's VGGs (with BatchNorm): parameter counts against kd-codebases.md B.4, feature
//! shapes, `state_dict` names and the reference's initialisation.

mod common;

use kd_core::models::{self, Model, ModelConfig};
use tch::{Device, Kind, Tensor, nn};

/// The reference's parameter counts at 100 classes (kd-codebases.md B.4).
const COUNTS: &[(&str, i64)] = &[
    ("vgg8", 3_965_028),
    ("vgg11", 9_277_284),
    ("vgg13", 9_462_180),
    ("vgg16", 14_774_436),
    ("vgg19", 20_086_692),
];

/// Convolutions per model (each with a BatchNorm), from the B.4 table.
const CONVS: &[(&str, usize)] = &[
    ("vgg8", 5),
    ("vgg11", 8),
    ("vgg13", 10),
    ("vgg16", 13),
    ("vgg19", 16),
];

fn build(name: &str, num_classes: i64, input_size: i64) -> (nn::VarStore, Box<dyn Model>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        num_classes,
        input_size,
    };
    let model = models::build(name, &vs.root(), &cfg).expect("known model");
    (vs, model)
}

fn trainable_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[test]
fn parameter_counts_match_the_reference_at_100_classes() {
    for &(name, want) in COUNTS {
        let (vs, _model) = build(name, 100, 32);
        assert_eq!(trainable_params(&vs), want, "{name}");
    }
}

#[test]
fn features_have_the_reference_shapes() {
    tch::manual_seed(0);
    let want: Vec<Vec<i64>> = vec![
        vec![2, 64, 32, 32],
        vec![2, 128, 16, 16],
        vec![2, 256, 8, 8],
        vec![2, 512, 4, 4],
        vec![2, 512, 4, 4],
        vec![2, 512],
    ];
    for &(name, _) in COUNTS {
        let (_vs, model) = build(name, 100, 32);
        let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        for train in [false, true] {
            for preact in [false, true] {
                let out = model.forward_features(&xs, train, preact);
                let shapes: Vec<_> = out.features.iter().map(Tensor::size).collect();
                assert_eq!(shapes, want, "{name} train={train} preact={preact}");
                assert_eq!(out.logits.size(), [2, 100]);
            }
        }
        assert_eq!(model.forward_t(&xs, false).size(), [2, 100]);
    }
}

#[test]
fn preact_features_are_taken_before_the_relu() {
    tch::manual_seed(1);
    let (_vs, model) = build("vgg8", 10, 32);
    let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let post = model.forward_features(&xs, false, false);
    let pre = model.forward_features(&xs, false, true);
    // f0 is post-ReLU in both lists; f5 (the pooled vector) is the same.
    assert!(post.features[0].equal(&pre.features[0]));
    assert!(post.features[5].equal(&pre.features[5]));
    for i in 1..5 {
        assert!(post.features[i].equal(&pre.features[i].relu()), "f{i}");
        let negatives = pre.features[i].lt(0.0).sum(Kind::Int64).int64_value(&[]);
        assert!(negatives > 0, "f{i}_pre has no negative entries");
    }
    assert!(post.logits.equal(&pre.logits));
}

#[test]
fn a_64_pixel_input_goes_through_pool3() {
    let (_vs, model) = build("vgg8", 200, 64);
    let xs = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let out = model.forward_features(&xs, false, false);
    let shapes: Vec<_> = out.features.iter().map(Tensor::size).collect();
    let want: Vec<Vec<i64>> = vec![
        vec![2, 64, 64, 64],
        vec![2, 128, 32, 32],
        vec![2, 256, 16, 16],
        vec![2, 512, 8, 8],
        vec![2, 512, 4, 4],
        vec![2, 512],
    ];
    assert_eq!(shapes, want);
    assert_eq!(out.logits.size(), [2, 200]);
}

#[test]
fn variable_names_are_the_state_dict_keys() {
    for &(name, convs) in CONVS {
        let (vs, _model) = build(name, 100, 32);
        let vars = vs.variables();
        // Per conv: weight and bias; per BatchNorm: weight, bias, running mean and variance
        // (PyTorch's num_batches_tracked has no tch counterpart); plus the classifier.
        assert_eq!(vars.len(), convs * 6 + 2, "{name}");
        for key in [
            "block0.0.weight",
            "block0.0.bias",
            "block0.1.weight",
            "block0.1.bias",
            "block0.1.running_mean",
            "block0.1.running_var",
            "block4.0.weight",
            "block4.1.running_var",
            "classifier.weight",
            "classifier.bias",
        ] {
            assert!(vars.contains_key(key), "{name}: missing {key}");
        }
    }
    let (vs, _model) = build("vgg13", 100, 32);
    let vars = vs.variables();
    assert_eq!(vars["block1.3.weight"].size(), [128, 128, 3, 3]);
    assert_eq!(vars["block1.4.running_mean"].size(), [128]);
    assert!(!vars.contains_key("block1.6.weight"));
    assert_eq!(vars["classifier.weight"].size(), [100, 512]);
    let (vs, _model) = build("vgg19", 100, 32);
    assert_eq!(vs.variables()["block4.9.weight"].size(), [512, 512, 3, 3]);
}

#[test]
fn initialisation_is_the_reference_one() {
    tch::manual_seed(2);
    let (vs, _model) = build("vgg13", 100, 32);
    let vars = vs.variables();
    let mean = |t: &Tensor| t.mean(Kind::Double).double_value(&[]);
    let std = |t: &Tensor| t.std(true).double_value(&[]);
    for (key, t) in &vars {
        if key.ends_with(".bias") {
            assert_eq!(t.abs().max().double_value(&[]), 0.0, "{key}");
        }
    }
    assert_eq!(mean(&vars["block2.1.weight"]), 1.0);
    let w = &vars["block3.3.weight"];
    let want = (2.0f64 / (9.0 * 512.0)).sqrt();
    assert!((std(w) / want - 1.0).abs() < 0.02, "conv std {}", std(w));
    let fc = std(&vars["classifier.weight"]);
    assert!((fc / 0.01 - 1.0).abs() < 0.05, "classifier std {fc}");
}

#[test]
fn parity_vgg8() {
    common::parity("vgg", "vgg8", 10);
}

#[test]
fn parity_vgg13() {
    common::parity("vgg", "vgg13", 100);
}

#[test]
fn parity_vgg8_at_64_pixels_uses_pool3() {
    common::parity_at("vgg", "vgg8", 200, 64);
}
