//! `kd models`' numbers: every registered model builds, and MACs match hand counts.

use kd_core::models::{self, ModelConfig};

#[test]
fn resnet20_macs_match_a_hand_count() {
    let s = models::summarize("resnet20", &ModelConfig::default()).unwrap();
    // stem 3→16 at 32², stage 1: 6 convs 16→16 at 32², stage 2: 16→32 (stride 2) + 5 × 32→32
    // at 16² + the 1×1 shortcut, stage 3 likewise at 8², then the 64→100 classifier.
    let stem = 32 * 32 * 16 * 27;
    let s1 = 6 * 32 * 32 * 16 * 144;
    let s2 = 16 * 16 * 32 * 144 + 5 * 16 * 16 * 32 * 288 + 16 * 16 * 32 * 16;
    let s3 = 8 * 8 * 64 * 288 + 5 * 8 * 8 * 64 * 576 + 8 * 8 * 64 * 32;
    assert_eq!(s.macs, (stem + s1 + s2 + s3 + 64 * 100) as u64);
    assert_eq!(s.parameters, 278_324);
}

#[test]
fn every_registered_model_summarises() {
    for name in models::names() {
        let s = models::summarize(name, &ModelConfig::default()).unwrap();
        assert!(
            s.parameters > 0 && s.macs > s.parameters as u64 / 2,
            "{name}: {s:?}"
        );
        assert!(!s.feature_shapes.is_empty(), "{name}");
    }
    let e = models::build(
        "resnet9000",
        &tch::nn::VarStore::new(tch::Device::Cpu).root(),
        &ModelConfig::default(),
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("unknown model 'resnet9000'")
    );
}
