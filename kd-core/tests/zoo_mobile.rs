//! RepDistiller's mobile models (MobileNetV2 = `mobile_half`, ShuffleV1, ShuffleV2): parameter
//! counts against kd-codebases.md B.4, feature shapes, `state_dict` names and initialisation.

mod common;

use kd_core::models::shufflenetv1::channel_shuffle;
use kd_core::models::{self, Model, ModelConfig, ModelError};
use tch::{Device, Kind, Tensor, nn};

/// (name, parameters at 100 classes, convolutions = BatchNorms, feature shapes without the
/// batch dimension), from kd-codebases.md B.4.
const MODELS: &[(&str, i64, usize, &[&[i64]])] = &[
    (
        "MobileNetV2",
        812_836,
        53,
        &[
            &[16, 16, 16],
            &[12, 16, 16],
            &[16, 8, 8],
            &[48, 4, 4],
            &[160, 2, 2],
            &[1280],
        ],
    ),
    (
        "ShuffleV1",
        949_258,
        49,
        &[
            &[24, 32, 32],
            &[240, 16, 16],
            &[480, 8, 8],
            &[960, 4, 4],
            &[960],
        ],
    ),
    (
        "ShuffleV2",
        1_355_528,
        56,
        &[
            &[24, 32, 32],
            &[116, 16, 16],
            &[232, 8, 8],
            &[464, 4, 4],
            &[1024],
        ],
    ),
];

/// A variable name and its shape.
type KeyShape = (&'static str, &'static [i64]);

fn config(num_classes: i64, input_size: i64) -> ModelConfig {
    ModelConfig {
        num_classes,
        input_size,
    }
}

fn build(name: &str, num_classes: i64) -> (nn::VarStore, Box<dyn Model>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = models::build(name, &vs.root(), &config(num_classes, 32)).expect("known model");
    (vs, model)
}

fn trainable_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

fn randn(shape: [i64; 4]) -> Tensor {
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

#[test]
fn parameter_counts_match_the_reference_at_100_classes() {
    for &(name, want, _, _) in MODELS {
        let (vs, _model) = build(name, 100);
        assert_eq!(trainable_params(&vs), want, "{name}");
    }
}

#[test]
fn features_have_the_reference_shapes() {
    tch::manual_seed(0);
    for &(name, _, _, shapes) in MODELS {
        let (_vs, model) = build(name, 100);
        let xs = randn([2, 3, 32, 32]);
        let want: Vec<Vec<i64>> = shapes.iter().map(|s| [&[2][..], s].concat()).collect();
        for train in [false, true] {
            for preact in [false, true] {
                let out = model.forward_features(&xs, train, preact);
                let got: Vec<_> = out.features.iter().map(Tensor::size).collect();
                assert_eq!(got, want, "{name} train={train} preact={preact}");
                assert_eq!(out.logits.size(), [2, 100], "{name}");
            }
        }
        assert_eq!(model.forward_t(&xs, false).size(), [2, 100], "{name}");
    }
}

#[test]
fn variable_names_are_the_state_dict_keys() {
    let keys: &[(&str, &[KeyShape])] = &[
        (
            "MobileNetV2",
            &[
                ("conv1.0.weight", &[16, 3, 3, 3]),
                ("conv1.1.running_mean", &[16]),
                ("blocks.0.0.conv.0.weight", &[16, 16, 1, 1]),
                ("blocks.0.0.conv.3.weight", &[16, 1, 3, 3]),
                ("blocks.0.0.conv.6.weight", &[8, 16, 1, 1]),
                ("blocks.0.0.conv.7.running_var", &[8]),
                ("blocks.1.1.conv.4.weight", &[72]),
                ("blocks.6.0.conv.6.weight", &[160, 480, 1, 1]),
                ("conv2.0.weight", &[1280, 160, 1, 1]),
                ("conv2.1.bias", &[1280]),
                ("classifier.0.weight", &[100, 1280]),
                ("classifier.0.bias", &[100]),
            ],
        ),
        (
            "ShuffleV1",
            &[
                ("conv1.weight", &[24, 3, 1, 1]),
                ("bn1.running_var", &[24]),
                ("layer1.0.conv1.weight", &[54, 24, 1, 1]),
                ("layer1.0.conv2.weight", &[54, 1, 3, 3]),
                ("layer1.0.conv3.weight", &[216, 18, 1, 1]),
                ("layer1.1.conv1.weight", &[60, 80, 1, 1]),
                ("layer2.7.bn3.running_mean", &[480]),
                ("layer3.0.conv3.weight", &[480, 40, 1, 1]),
                ("linear.weight", &[100, 960]),
                ("linear.bias", &[100]),
            ],
        ),
        (
            "ShuffleV2",
            &[
                ("conv1.weight", &[24, 3, 1, 1]),
                ("bn1.weight", &[24]),
                ("layer1.0.conv1.weight", &[24, 1, 3, 3]),
                ("layer1.0.conv2.weight", &[58, 24, 1, 1]),
                ("layer1.0.conv5.weight", &[58, 58, 1, 1]),
                ("layer1.0.bn5.running_var", &[58]),
                ("layer1.3.conv3.weight", &[58, 58, 1, 1]),
                ("layer2.7.conv2.weight", &[116, 1, 3, 3]),
                ("layer3.3.bn3.running_mean", &[232]),
                ("conv2.weight", &[1024, 464, 1, 1]),
                ("bn2.running_var", &[1024]),
                ("linear.weight", &[100, 1024]),
            ],
        ),
    ];
    for &(name, _, convs, _) in MODELS {
        let (vs, _model) = build(name, 100);
        let vars = vs.variables();
        // Bias-free convolutions, BatchNorms with weight, bias, running mean and variance
        // (PyTorch's num_batches_tracked has no tch counterpart), one linear layer.
        assert_eq!(vars.len(), convs + 4 * convs + 2, "{name}");
        let (_, wanted) = keys.iter().find(|(n, _)| *n == name).unwrap();
        for &(key, shape) in wanted.iter() {
            let t = vars
                .get(key)
                .unwrap_or_else(|| panic!("{name}: missing {key}"));
            assert_eq!(t.size(), shape, "{name}: {key}");
        }
    }
    let (vs, _model) = build("ShuffleV2", 100);
    assert!(!vs.variables().contains_key("layer1.4.conv1.weight"));
}

#[test]
fn channel_shuffle_is_the_references_view_permute() {
    let xs = randn([2, 12, 3, 3]).set_requires_grad(true);
    for g in [1, 2, 3] {
        let want = xs
            .view([2, g, 12 / g, 3, 3])
            .permute([0, 2, 1, 3, 4])
            .reshape([2, 12, 3, 3]);
        assert!(channel_shuffle(&xs, g).equal(&want), "groups {g}");
    }
    // It is differentiable (the backward of a permutation is its inverse).
    let w = Tensor::arange(12, (Kind::Float, Device::Cpu)).view([1, 12, 1, 1]);
    (channel_shuffle(&xs, 3) * &w).sum(Kind::Float).backward();
    let grad = xs.grad();
    let want = w
        .view([1, 4, 3, 1, 1])
        .permute([0, 2, 1, 3, 4])
        .reshape([1, 12, 1, 1])
        .expand([2, 12, 3, 3], false);
    assert!(grad.equal(&want));
}

#[test]
fn preact_features_are_the_references() {
    tch::manual_seed(1);
    let xs = randn([2, 3, 32, 32]);
    // MobileNetV2 ignores preact.
    let (_vs, m) = build("MobileNetV2", 10);
    let (a, b) = (
        m.forward_features(&xs, false, false),
        m.forward_features(&xs, false, true),
    );
    for (fa, fb) in a.features.iter().zip(&b.features) {
        assert!(fa.equal(fb));
    }
    // ShuffleV1: the stages' last unit before its ReLU.
    let (_vs, m) = build("ShuffleV1", 10);
    let (post, pre) = (
        m.forward_features(&xs, false, false),
        m.forward_features(&xs, false, true),
    );
    for i in 1..4 {
        assert!(post.features[i].equal(&pre.features[i].relu()), "V1 f{i}");
        assert!(
            pre.features[i].lt(0.0).any().int64_value(&[]) == 1,
            "V1 f{i}"
        );
    }
    // ShuffleV2: the concatenation before the branch's ReLU, not yet shuffled.
    let (_vs, m) = build("ShuffleV2", 10);
    let (post, pre) = (
        m.forward_features(&xs, false, false),
        m.forward_features(&xs, false, true),
    );
    for i in 1..4 {
        let shuffled = channel_shuffle(&pre.features[i].relu(), 2);
        assert!(post.features[i].equal(&shuffled), "V2 f{i}");
        assert!(
            pre.features[i].lt(0.0).any().int64_value(&[]) == 1,
            "V2 f{i}"
        );
    }
    assert!(post.logits.equal(&pre.logits));
}

#[test]
fn input_sizes_follow_the_reference() {
    // MobileNetV2's head pools input/16, so a 64×64 input works as the reference's class does.
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build("MobileNetV2", &vs.root(), &config(200, 64)).unwrap();
    let out = m.forward_features(&randn([2, 3, 64, 64]), false, false);
    let got: Vec<_> = out.features.iter().map(Tensor::size).collect();
    let want: Vec<Vec<i64>> = vec![
        vec![2, 16, 32, 32],
        vec![2, 12, 32, 32],
        vec![2, 16, 16, 16],
        vec![2, 48, 8, 8],
        vec![2, 160, 4, 4],
        vec![2, 1280],
    ];
    assert_eq!(got, want);
    assert_eq!(out.logits.size(), [2, 200]);
    let err = models::build("MobileNetV2", &vs.root(), &config(100, 48)).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    // The ShuffleNets' head is a fixed avg_pool2d(4): only 32×32.
    for name in ["ShuffleV1", "ShuffleV2"] {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = models::build(name, &vs.root(), &config(200, 64)).unwrap_err();
        assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    }
}

#[test]
fn initialisation_is_the_reference_one() {
    tch::manual_seed(2);
    let std = |t: &Tensor| t.std(true).double_value(&[]);
    let max = |t: &Tensor| t.abs().max().double_value(&[]);
    // MobileNetV2: N(0, √(2/(k²·out))) convolutions, N(0, 0.01) classifier with zero bias.
    let (vs, _m) = build("MobileNetV2", 100);
    let vars = vs.variables();
    let w = &vars["conv2.0.weight"];
    let want = (2.0f64 / 1280.0).sqrt();
    assert!((std(w) / want - 1.0).abs() < 0.02, "conv2 std {}", std(w));
    let fc = std(&vars["classifier.0.weight"]);
    assert!((fc / 0.01 - 1.0).abs() < 0.05, "classifier std {fc}");
    assert_eq!(max(&vars["classifier.0.bias"]), 0.0);
    assert_eq!(
        vars["blocks.3.2.conv.4.weight"]
            .mean(Kind::Double)
            .double_value(&[]),
        1.0
    );
    // The ShuffleNets keep PyTorch's defaults: U(±1/√fan_in) for convolutions and the linear.
    for (name, conv, fan_in, linear, d_in) in [
        (
            "ShuffleV1",
            "layer3.0.conv1.weight",
            480.0 / 3.0,
            "linear",
            960.0,
        ),
        ("ShuffleV2", "conv2.weight", 464.0, "linear", 1024.0),
    ] {
        let (vs, _m) = build(name, 100);
        let vars = vs.variables();
        let bound = 1.0 / f64::sqrt(fan_in);
        let m = max(&vars[conv]);
        assert!(
            m <= bound && m > 0.9 * bound,
            "{name} {conv}: {m} vs {bound}"
        );
        let bound = 1.0 / f64::sqrt(d_in);
        for leaf in ["weight", "bias"] {
            let m = max(&vars[&format!("{linear}.{leaf}")]);
            assert!(m <= bound && m > 0.9 * bound, "{name} linear.{leaf}: {m}");
        }
        assert_eq!(vars["bn1.weight"].mean(Kind::Double).double_value(&[]), 1.0);
        assert_eq!(max(&vars["bn1.bias"]), 0.0);
    }
}

#[test]
fn parity_mobilenetv2() {
    common::parity("mobile", "MobileNetV2", 10);
}

#[test]
fn parity_shufflev1() {
    common::parity("mobile", "ShuffleV1", 10);
}

#[test]
fn parity_shufflev2() {
    common::parity("mobile", "ShuffleV2", 100);
}
