//! The ResNet families of the zoo: RepDistiller's CIFAR ResNets, its CIFAR `ResNet50`, and the
//! torchvision-layout `resnet18`/`resnet34`: parameter counts, feature shapes, variable names.

mod common;

use common::{build, feature_shapes, param_count, sorted_keys};

/// RepDistiller's table (kd-codebases.md B.4), 100 classes.
#[test]
fn cifar_resnet_parameter_counts() {
    for (name, want) in [
        ("resnet8", 83_892),
        ("resnet14", 181_108),
        ("resnet20", 278_324),
        ("resnet32", 472_756),
        ("resnet44", 667_188),
        ("resnet56", 861_620),
        ("resnet110", 1_736_564),
        ("resnet8x4", 1_233_540),
        ("resnet32x4", 7_433_860),
    ] {
        let (vs, _) = build(name, 100, 32);
        assert_eq!(param_count(&vs), want, "{name}");
    }
}

#[test]
fn cifar_resnet_feature_shapes() {
    let plain: Vec<Vec<i64>> = vec![
        vec![2, 16, 32, 32],
        vec![2, 16, 32, 32],
        vec![2, 32, 16, 16],
        vec![2, 64, 8, 8],
        vec![2, 64],
    ];
    let x4: Vec<Vec<i64>> = vec![
        vec![2, 32, 32, 32],
        vec![2, 64, 32, 32],
        vec![2, 128, 16, 16],
        vec![2, 256, 8, 8],
        vec![2, 256],
    ];
    for (name, want) in [
        ("resnet8", &plain),
        ("resnet20", &plain),
        ("resnet8x4", &x4),
    ] {
        let (_vs, model) = build(name, 100, 32);
        for train in [false, true] {
            for preact in [false, true] {
                let (feats, logits) = feature_shapes(model.as_ref(), 32, train, preact);
                assert_eq!(&feats, want, "{name} train={train} preact={preact}");
                assert_eq!(logits, [2, 100], "{name}");
            }
        }
    }
}

#[test]
fn cifar_resnet_variable_names() {
    let (vs, _) = build("resnet8", 100, 32);
    let keys = sorted_keys(&vs);
    for k in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.0.bn1.running_mean",
        "layer1.0.bn2.running_var",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer3.0.downsample.1.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
    }
    // resnet8 has no projection in stage 1 (16 → 16); resnet8x4 does (32 → 64).
    assert!(!keys.iter().any(|k| k.starts_with("layer1.0.downsample")));
    // 9 convs (1 weight each), 9 BNs (4 entries each), fc (2).
    assert_eq!(keys.len(), 9 + 9 * 4 + 2);
    let (vs, _) = build("resnet8x4", 100, 32);
    let keys = sorted_keys(&vs);
    assert!(keys.iter().any(|k| k == "layer1.0.downsample.0.weight"));
    assert_eq!(keys.len(), 10 + 10 * 4 + 2);
    let (vs, _) = build("resnet20", 100, 32);
    assert!(
        sorted_keys(&vs)
            .iter()
            .any(|k| k == "layer3.2.bn2.running_mean")
    );
}

/// Tiny-ImageNet inputs: the final pooling covers the whole map, as Good-DA-in-KD's copy does.
#[test]
fn cifar_resnet_takes_64_inputs() {
    let (_vs, model) = build("resnet8", 200, 64);
    let (feats, logits) = feature_shapes(model.as_ref(), 64, false, false);
    assert_eq!(feats[3], [2, 64, 16, 16]);
    assert_eq!(feats[4], [2, 64]);
    assert_eq!(logits, [2, 200]);
}

#[test]
fn parity_resnet8() {
    common::parity("resnet", "resnet8", 10);
}

#[test]
fn parity_resnet8x4() {
    common::parity("resnet", "resnet8x4", 10);
}

#[test]
fn resnet50_parameter_count_features_and_names() {
    let (vs, model) = build("ResNet50", 100, 32);
    assert_eq!(param_count(&vs), 23_705_252);
    let want: Vec<Vec<i64>> = vec![
        vec![2, 64, 32, 32],
        vec![2, 256, 32, 32],
        vec![2, 512, 16, 16],
        vec![2, 1024, 8, 8],
        vec![2, 2048, 4, 4],
        vec![2, 2048],
    ];
    for train in [false, true] {
        for preact in [false, true] {
            let (feats, logits) = feature_shapes(model.as_ref(), 32, train, preact);
            assert_eq!(feats, want, "train={train} preact={preact}");
            assert_eq!(logits, [2, 100]);
        }
    }
    let keys = sorted_keys(&vs);
    for k in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv3.weight",
        "layer1.0.shortcut.0.weight",
        "layer1.0.shortcut.1.running_mean",
        "layer3.5.bn3.bias",
        "layer4.0.shortcut.1.weight",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("layer1.1.shortcut")));
    // 53 convs, 53 BNs (4 entries each), linear (2).
    assert_eq!(keys.len(), 53 + 53 * 4 + 2);
}

/// torchvision's numbers: 11,689,512 and 21,797,672 parameters at 1000 classes.
#[test]
fn imagenet_resnet_parameter_counts() {
    for (name, c1000, c100) in [
        ("resnet18", 11_689_512, 11_227_812),
        ("resnet34", 21_797_672, 21_335_972),
    ] {
        let (vs, _) = build(name, 1000, 224);
        assert_eq!(param_count(&vs), c1000, "{name}");
        let (vs, _) = build(name, 100, 32);
        assert_eq!(param_count(&vs), c100, "{name}");
    }
}

#[test]
fn imagenet_resnet_feature_shapes_and_names() {
    let (vs, model) = build("resnet18", 100, 32);
    let want: Vec<Vec<i64>> = vec![
        vec![2, 64, 16, 16],
        vec![2, 64, 8, 8],
        vec![2, 128, 4, 4],
        vec![2, 256, 2, 2],
        vec![2, 512, 1, 1],
        vec![2, 512],
    ];
    for train in [false, true] {
        for preact in [false, true] {
            let (feats, logits) = feature_shapes(model.as_ref(), 32, train, preact);
            assert_eq!(feats, want, "train={train} preact={preact}");
            assert_eq!(logits, [2, 100]);
        }
    }
    let (_vs, model) = build("resnet34", 200, 64);
    let (feats, logits) = feature_shapes(model.as_ref(), 64, false, false);
    let shapes: Vec<Vec<i64>> = vec![
        vec![2, 64, 32, 32],
        vec![2, 64, 16, 16],
        vec![2, 128, 8, 8],
        vec![2, 256, 4, 4],
        vec![2, 512, 2, 2],
        vec![2, 512],
    ];
    assert_eq!(feats, shapes);
    assert_eq!(logits, [2, 200]);

    let keys = sorted_keys(&vs);
    for k in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.1.bn2.running_var",
        "layer2.0.downsample.0.weight",
        "layer4.0.downsample.1.running_var",
        "fc.weight",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("layer1.0.downsample")));
    // torchvision's resnet18: 20 convs, 20 BNs (4 entries each), fc (2).
    assert_eq!(keys.len(), 20 + 20 * 4 + 2);
}

#[test]
fn parity_resnet50() {
    common::parity("resnet", "ResNet50", 10);
}

#[test]
fn parity_resnet18_at_32() {
    common::parity("resnet", "resnet18", 10);
}
