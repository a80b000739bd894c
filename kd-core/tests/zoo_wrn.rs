//! Wide ResNets (`wrn_D_K`): parameter counts, feature shapes, variable names, PyTorch parity.

mod common;

use common::{build, feature_shapes, param_count, sorted_keys};
use kd_core::models::{self, ModelConfig, ModelError, wrn};
use tch::{Device, Kind, Tensor, nn};

/// RepDistiller's table (kd-codebases.md B.4) and kd_data's (A.6), at 100 and 10 classes.
#[test]
fn wrn_parameter_counts() {
    for (name, c100, c10) in [
        ("wrn_16_1", 180_916, 175_066),
        ("wrn_16_2", 703_284, 691_674),
        ("wrn_40_1", 569_780, 0),
        ("wrn_40_2", 2_255_156, 2_243_546),
        ("wrn_16_4", 2_772_020, 2_748_890),
        ("wrn_28_2", 1_479_220, 1_467_610),
        ("wrn_28_4", 5_872_180, 5_849_050),
    ] {
        let (vs, _) = build(name, 100, 32);
        assert_eq!(param_count(&vs), c100, "{name} at 100 classes");
        if c10 > 0 {
            let (vs, _) = build(name, 10, 32);
            assert_eq!(param_count(&vs), c10, "{name} at 10 classes");
        }
    }
}

#[test]
fn wrn_registry_and_names() {
    for n in ["wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"] {
        assert!(models::names().contains(&n), "{n} not registered");
    }
    assert_eq!(wrn::parse_name("wrn_28_4"), Some((28, 4)));
    assert_eq!(wrn::parse_name("wrn_28"), None);
    assert_eq!(wrn::parse_name("wrn_28_x"), None);
    assert_eq!(wrn::parse_name("wrn_-28_4"), None);
    let vs = nn::VarStore::new(Device::Cpu);
    let err = models::build("wrn_27_4", &vs.root(), &ModelConfig::default()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    let err = models::build("wrn_16_0", &vs.root(), &ModelConfig::default()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
}

#[test]
fn wrn_feature_shapes() {
    let k1: Vec<Vec<i64>> = vec![
        vec![2, 16, 32, 32],
        vec![2, 16, 32, 32],
        vec![2, 32, 16, 16],
        vec![2, 64, 8, 8],
        vec![2, 64],
    ];
    let k2: Vec<Vec<i64>> = vec![
        vec![2, 16, 32, 32],
        vec![2, 32, 32, 32],
        vec![2, 64, 16, 16],
        vec![2, 128, 8, 8],
        vec![2, 128],
    ];
    for (name, want) in [("wrn_16_1", &k1), ("wrn_16_2", &k2), ("wrn_40_2", &k2)] {
        let (_vs, model) = build(name, 100, 32);
        for train in [false, true] {
            for preact in [false, true] {
                let (feats, logits) = feature_shapes(model.as_ref(), 32, train, preact);
                assert_eq!(&feats, want, "{name} train={train} preact={preact}");
                assert_eq!(logits, [2, 100], "{name}");
            }
        }
    }
    let (_vs, model) = build("wrn_16_2", 200, 64);
    let (feats, logits) = feature_shapes(model.as_ref(), 64, false, false);
    assert_eq!(feats[3], [2, 128, 16, 16]);
    assert_eq!(feats[4], [2, 128]);
    assert_eq!(logits, [2, 200]);
}

/// With `preact` in train mode the three tapped BNs run twice, as in the reference.
#[test]
fn wrn_preact_updates_running_stats_twice() {
    let xs = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    // One model, reset to the same state before each pass (no RNG: tests run in parallel).
    let (vs, model) = build("wrn_16_1", 10, 32);
    let start: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect();
    let running_mean_after = |preact: bool, key: &str| {
        let vars = vs.variables();
        tch::no_grad(|| {
            for (k, v) in &start {
                vars[k].shallow_clone().copy_(v);
            }
            model.forward_features(&xs, true, preact);
        });
        vars[key].copy()
    };
    for key in [
        "block2.layer.0.bn1.running_mean",
        "block3.layer.0.bn1.running_mean",
        "bn1.running_mean",
    ] {
        let once = running_mean_after(false, key);
        let twice = running_mean_after(true, key);
        // From 0, two updates with the same batch mean m give 0.1·m + 0.9·0.1·m = 0.19·m.
        let d = (&twice - &once * 1.9).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{key}: {d}");
    }
    // An untapped BN runs once either way.
    let key = "block2.layer.1.bn1.running_mean";
    let d = (running_mean_after(true, key) - running_mean_after(false, key))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(d, 0.0);
}

#[test]
fn wrn_variable_names() {
    let (vs, _) = build("wrn_16_2", 100, 32);
    let keys = sorted_keys(&vs);
    for k in [
        "conv1.weight",
        "block1.layer.0.bn1.running_mean",
        "block1.layer.0.conv1.weight",
        "block1.layer.0.convShortcut.weight",
        "block1.layer.1.bn2.running_var",
        "block3.layer.1.conv2.weight",
        "bn1.weight",
        "fc.bias",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
    }
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("block1.layer.1.convShortcut"))
    );
    // 16 convs, 13 BNs (4 entries each), fc (2).
    assert_eq!(keys.len(), 16 + 13 * 4 + 2);
    // wrn_16_1 keeps the width in group 1, hence no shortcut conv there: 15 convs.
    let (vs, _) = build("wrn_16_1", 100, 32);
    let keys = sorted_keys(&vs);
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("block1.layer.0.convShortcut"))
    );
    assert_eq!(keys.len(), 15 + 13 * 4 + 2);
}

/// The reference's init: fc bias 0, conv weights N(0, √(2/(9·out))), BN 1/0.
#[test]
fn wrn_initialisation() {
    tch::manual_seed(0);
    let (vs, _) = build("wrn_40_2", 100, 32);
    let vars = vs.variables();
    assert_eq!(
        vars["fc.bias"].abs().sum(Kind::Double).double_value(&[]),
        0.0
    );
    assert_eq!(vars["bn1.weight"].mean(Kind::Double).double_value(&[]), 1.0);
    let std = vars["block3.layer.2.conv1.weight"]
        .std(true)
        .double_value(&[]);
    let want = (2.0f64 / (9.0 * 128.0)).sqrt();
    assert!((std / want - 1.0).abs() < 0.02, "std {std} vs {want}");
}

#[test]
fn parity_wrn_16_2() {
    common::parity("wrn", "wrn_16_2", 10);
}
