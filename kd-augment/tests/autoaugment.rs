//! AutoAugment, RandAugment, TrivialAugmentWide and their image operations.
//!
//! * Every op against torchvision 0.26.0's tensor functional API (fixtures made by
//!   `tests/fixtures/autoaugment/make_fixtures.py`), exact equality: our ops reproduce
//!   torchvision's float32 arithmetic, so no tolerance is needed (or allowed).
//! * AutoAugment sub-policies end to end with torchvision 0.10's magnitudes and `_apply_op`,
//!   given the random decisions; RandAugment/TrivialAugmentWide ops with 0.26's `_apply_op`.
//! * The policy and magnitude tables against torchvision's.
//! * Property tests (proptest): each op against a slow, literal reference implementation,
//!   algebraic properties, determinism and per-batch (cloned generator) behaviour.
//! * `throughput` (ignored; run with `--release -- --ignored --nocapture`) prints images/s.

use kd_augment::autoaugment::ops::{self, AffineParams};
use kd_augment::autoaugment::{
    AutoAugment, AutoAugmentDecision, AutoAugmentError, AutoAugmentPolicy, AutoOp, RandAugment,
    TrivialAugmentWide, apply_op, apply_op_current, magnitude_v010,
};
use kd_augment::{ImageShape, Rng, Transform};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

struct Fixtures {
    json: Value,
    bin: Vec<u8>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        // KD_AUTOAUGMENT_FIXTURES points at another directory in the same format (for
        // one-off, larger comparisons with torchvision than the committed fixtures hold).
        let dir = std::env::var("KD_AUTOAUGMENT_FIXTURES").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/autoaugment").to_string()
        });
        let json = std::fs::read_to_string(format!("{dir}/ops.json")).expect("ops.json");
        let bin = std::fs::read(format!("{dir}/ops.bin")).expect("ops.bin");
        Fixtures {
            json: serde_json::from_str(&json).expect("ops.json parses"),
            bin,
        }
    })
}

/// A float stored as Python's round-trip `repr` string (exact through `str::parse`).
fn fl(v: &Value) -> f64 {
    v.as_str()
        .unwrap_or_else(|| panic!("float string expected, got {v}"))
        .parse()
        .unwrap()
}

fn input_image(i: usize) -> (ImageShape, &'static [u8]) {
    let img = &fixtures().json["images"][i];
    let s: Vec<usize> = img["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let shape = ImageShape::new(s[0], s[1], s[2]);
    let off = img["offset"].as_u64().unwrap() as usize;
    (shape, &fixtures().bin[off..off + shape.len()])
}

fn policy_named(name: &str) -> AutoAugmentPolicy {
    name.parse().unwrap()
}

/// Runs one fixture case with our implementation.
fn run_case(kind: &str, p: &Value, input: &[u8], shape: ImageShape, out: &mut [u8]) {
    let fill = || p["fill"].as_u64().unwrap() as u8;
    match kind {
        "affine" => {
            let params = AffineParams {
                angle: fl(&p["angle"]),
                translate: [
                    p["translate"][0].as_f64().unwrap(),
                    p["translate"][1].as_f64().unwrap(),
                ],
                scale: 1.0,
                shear: [fl(&p["shear"][0]), fl(&p["shear"][1])],
                center: p["center"]
                    .as_array()
                    .map(|c| [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()]),
            };
            ops::affine(input, shape, &params, fill(), out)
        }
        "rotate" => ops::rotate(input, shape, fl(&p["angle"]), fill(), out),
        "brightness" => ops::adjust_brightness(input, shape, fl(&p["factor"]), out),
        "saturation" => ops::adjust_saturation(input, shape, fl(&p["factor"]), out),
        "contrast" => ops::adjust_contrast(input, shape, fl(&p["factor"]), out),
        "sharpness" => ops::adjust_sharpness(input, shape, fl(&p["factor"]), out),
        "posterize" => ops::posterize(input, shape, p["bits"].as_u64().unwrap() as u32, out),
        "solarize" => ops::solarize(input, shape, fl(&p["threshold"]), out),
        "autocontrast" => ops::autocontrast(input, shape, out),
        "equalize" => ops::equalize(input, shape, out),
        "invert" => ops::invert(input, shape, out),
        "apply_op_v010" => {
            let op: AutoOp = p["op"].as_str().unwrap().parse().unwrap();
            apply_op(op, fl(&p["magnitude"]), fill(), input, shape, out)
        }
        "apply_op_current" => {
            let op: AutoOp = p["op"].as_str().unwrap().parse().unwrap();
            apply_op_current(op, fl(&p["magnitude"]), fill(), input, shape, out)
        }
        "autoaugment" => {
            let aa =
                AutoAugment::new(policy_named(p["policy"].as_str().unwrap())).with_fill(fill());
            let d = AutoAugmentDecision {
                policy_id: p["policy_id"].as_u64().unwrap() as usize,
                probs: [fl(&p["probs"][0]) as f32, fl(&p["probs"][1]) as f32],
                signs: [
                    p["signs"][0].as_u64().unwrap() as u8,
                    p["signs"][1].as_u64().unwrap() as u8,
                ],
            };
            aa.apply_decision(&d, input, shape, out)
        }
        other => panic!("unknown fixture kind {other}"),
    }
}

/// Runs every fixture case of `kind` and asserts exact equality with torchvision's output.
fn check_kind(kind: &str) {
    let f = fixtures();
    let mut n = 0;
    let mut failures = Vec::new();
    for case in f.json["cases"].as_array().unwrap() {
        if case[0].as_str() != Some(kind) {
            continue;
        }
        n += 1;
        let (shape, input) = input_image(case[2].as_u64().unwrap() as usize);
        let off = case[3].as_u64().unwrap() as usize;
        let expected = &f.bin[off..off + shape.len()];
        let mut out = vec![0xA5; shape.len()];
        run_case(kind, &case[1], input, shape, &mut out);
        let diff: Vec<usize> = (0..out.len()).filter(|&k| out[k] != expected[k]).collect();
        if !diff.is_empty() {
            let k = diff[0];
            failures.push(format!(
                "{kind} {} on {shape}: {} of {} bytes differ, first at {k}: ours {} torchvision {}",
                case[1],
                diff.len(),
                out.len(),
                out[k],
                expected[k]
            ));
        }
    }
    assert!(n > 0, "no fixture cases of kind {kind}");
    assert!(
        failures.is_empty(),
        "{} of {n} {kind} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! fixture_tests {
    ($($name:ident => $kind:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_kind($kind);
            }
        )*
    };
}

fixture_tests! {
    affine_matches_torchvision => "affine",
    rotate_matches_torchvision => "rotate",
    brightness_matches_torchvision => "brightness",
    saturation_matches_torchvision => "saturation",
    contrast_matches_torchvision => "contrast",
    sharpness_matches_torchvision => "sharpness",
    posterize_matches_torchvision => "posterize",
    solarize_matches_torchvision => "solarize",
    autocontrast_matches_torchvision => "autocontrast",
    equalize_matches_torchvision => "equalize",
    invert_matches_torchvision => "invert",
    apply_op_matches_torchvision_0_10 => "apply_op_v010",
    apply_op_current_matches_torchvision_0_26 => "apply_op_current",
    autoaugment_sub_policies_match_torchvision_0_10 => "autoaugment",
}

// ------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------

#[test]
fn policies_match_torchvision_entry_by_entry() {
    let tables = &fixtures().json["tables"]["policies"];
    for policy in AutoAugmentPolicy::ALL {
        let theirs = tables[policy.name()].as_array().unwrap();
        let ours = policy.sub_policies();
        assert_eq!(theirs.len(), 25);
        for (id, (sub, their_sub)) in ours.iter().zip(theirs).enumerate() {
            for (entry, t) in sub.iter().zip(their_sub.as_array().unwrap()) {
                assert_eq!(entry.op.name(), t[0].as_str().unwrap(), "{policy} #{id}");
                assert_eq!(entry.probability, fl(&t[1]), "{policy} #{id}");
                assert_eq!(
                    entry.magnitude_bin.map(u64::from),
                    t[2].as_u64(),
                    "{policy} #{id}"
                );
            }
        }
    }
}

#[test]
fn policies_have_the_expected_op_counts() {
    // Counted from torchvision's `_get_policies` listing (the same in 0.10 and 0.26),
    // independently of our tables: op name → number of entries over the 25 sub-policies.
    let expected: [(AutoAugmentPolicy, &[(&str, usize)]); 3] = [
        (
            AutoAugmentPolicy::Cifar10,
            &[
                ("AutoContrast", 7),
                ("Brightness", 4),
                ("Color", 5),
                ("Contrast", 2),
                ("Equalize", 9),
                ("Invert", 3),
                ("Posterize", 1),
                ("Rotate", 1),
                ("Sharpness", 5),
                ("ShearY", 2),
                ("Solarize", 4),
                ("TranslateX", 2),
                ("TranslateY", 5),
            ],
        ),
        (
            AutoAugmentPolicy::ImageNet,
            &[
                ("AutoContrast", 2),
                ("Color", 6),
                ("Contrast", 2),
                ("Equalize", 17),
                ("Invert", 3),
                ("Posterize", 5),
                ("Rotate", 6),
                ("Sharpness", 1),
                ("ShearX", 1),
                ("Solarize", 7),
            ],
        ),
        (
            AutoAugmentPolicy::Svhn,
            &[
                ("AutoContrast", 3),
                ("Contrast", 1),
                ("Equalize", 6),
                ("Invert", 12),
                ("Rotate", 4),
                ("ShearX", 6),
                ("ShearY", 8),
                ("Solarize", 5),
                ("TranslateX", 1),
                ("TranslateY", 4),
            ],
        ),
    ];
    for (policy, counts) in expected {
        let subs = policy.sub_policies();
        assert_eq!(subs.len(), 25);
        let mut ours: HashMap<&str, usize> = HashMap::new();
        for sub in subs {
            for entry in sub {
                *ours.entry(entry.op.name()).or_default() += 1;
            }
        }
        let theirs: HashMap<&str, usize> = counts.iter().copied().collect();
        assert_eq!(ours, theirs, "{policy}");
        assert_eq!(
            counts.iter().map(|c| c.1).sum::<usize>(),
            50,
            "{policy}: 25 sub-policies of 2 ops"
        );
    }
}

#[test]
fn magnitudes_v010_match_torchvision_0_10_table() {
    let t = &fixtures().json["tables"];
    for (name, values) in t["v010_magnitudes"].as_object().unwrap() {
        let op: AutoOp = name.parse().unwrap();
        let signed = t["v010_signed"][name].as_bool().unwrap_or(false);
        match values.as_array() {
            None => {
                assert_eq!(magnitude_v010(op, 0), None, "{name}");
            }
            Some(vs) => {
                assert_eq!(vs.len(), 10);
                for (bin, v) in vs.iter().enumerate() {
                    let expected = if op == AutoOp::Posterize {
                        v.as_f64().unwrap() as f32
                    } else {
                        fl(v) as f32
                    };
                    assert_eq!(
                        magnitude_v010(op, bin),
                        Some((expected, signed)),
                        "{name} bin {bin}"
                    );
                }
                assert_eq!(magnitude_v010(op, 10), None);
            }
        }
    }
}

fn check_space(space: &Value, ours: impl Fn(AutoOp, usize) -> Option<(f32, bool)>, what: &str) {
    for (name, entry) in space.as_object().unwrap() {
        let op: AutoOp = name.parse().unwrap();
        let signed = entry["signed"].as_bool().unwrap();
        let values = entry["values"].as_array().unwrap();
        if values.is_empty() {
            assert_eq!(ours(op, 0), None, "{what} {name}");
            continue;
        }
        assert_eq!(values.len(), 31);
        for (bin, v) in values.iter().enumerate() {
            let expected = if op == AutoOp::Posterize {
                v.as_f64().unwrap() as f32
            } else {
                fl(v) as f32
            };
            assert_eq!(
                ours(op, bin),
                Some((expected, signed)),
                "{what} {name} bin {bin}"
            );
        }
    }
}

#[test]
fn randaugment_and_trivialaugment_tables_match_torchvision() {
    let t = &fixtures().json["tables"];
    for (key, space) in t["randaugment"].as_object().unwrap() {
        let (h, w) = key.split_once('x').unwrap();
        let shape = ImageShape::new(3, h.parse().unwrap(), w.parse().unwrap());
        check_space(
            space,
            |op, bin| RandAugment::magnitude(op, bin, 31, shape),
            &format!("RandAugment {key}"),
        );
    }
    check_space(
        &t["trivialaugment"],
        |op, bin| TrivialAugmentWide::magnitude(op, bin, 31),
        "TrivialAugmentWide",
    );
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let ours = |ops: &[AutoOp]| ops.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&t["randaugment_ops"]), ours(RandAugment::op_space()));
    assert_eq!(
        names(&t["trivialaugment_ops"]),
        ours(TrivialAugmentWide::op_space())
    );
}

#[test]
fn constructors_reject_bad_parameters_by_name() {
    assert_eq!(
        RandAugment::new(2, 31, 31),
        Err(AutoAugmentError::MagnitudeOutOfRange {
            magnitude: 31,
            bins: 31
        })
    );
    assert_eq!(
        RandAugment::new(2, 0, 1),
        Err(AutoAugmentError::TooFewBins(1))
    );
    assert_eq!(
        TrivialAugmentWide::new(0),
        Err(AutoAugmentError::TooFewBins(0))
    );
    let msg = RandAugment::new(2, 40, 31).unwrap_err().to_string();
    assert!(
        msg.contains("magnitude = 40") && msg.contains("num_magnitude_bins = 31"),
        "{msg}"
    );
    assert_eq!(RandAugment::new(2, 9, 31).unwrap(), RandAugment::default());
    assert_eq!(
        TrivialAugmentWide::new(31).unwrap(),
        TrivialAugmentWide::default()
    );
}

// ------------------------------------------------------------------------------------------
// Slow reference implementations (literal transcriptions of torchvision's tensor code)
// ------------------------------------------------------------------------------------------

mod reference {
    use super::*;

    /// grid_sample(nearest, zeros, align_corners=False) over `_gen_affine_grid(theta)`, one
    /// pixel and one channel at a time, with `f32::mul_add` (a true fused multiply-add) where
    /// torch's BLAS kernel fuses.
    pub fn warp(img: &[u8], s: ImageShape, m: &[f64; 6], fill: u8) -> Vec<u8> {
        let (h, w) = (s.height, s.width);
        let th: Vec<f32> = m.iter().map(|&v| v as f32).collect();
        let (hw, hh) = ((0.5 * w as f64) as f32, (0.5 * h as f64) as f32);
        let r = [
            [th[0] / hw, th[3] / hh],
            [th[1] / hw, th[4] / hh],
            [th[2] / hw, th[5] / hh],
        ];
        let mut out = vec![0; s.len()];
        for c in 0..s.channels {
            for i in 0..h {
                for j in 0..w {
                    let x = -(w as f32) * 0.5 + 0.5 + j as f32;
                    let y = -(h as f32) * 0.5 + 0.5 + i as f32;
                    // torch's bmm: a plain loop below 400 multiply-adds, BLAS (fused) above.
                    let g: Vec<f32> = if 6 * h * w < 400 {
                        (0..2)
                            .map(|k| ((0.0 + x * r[0][k]) + y * r[1][k]) + 1.0 * r[2][k])
                            .collect()
                    } else {
                        (0..2)
                            .map(|k| y.mul_add(r[1][k], x * r[0][k]) + r[2][k])
                            .collect()
                    };
                    let ix = ((g[0] + 1.0) * (w as f32 / 2.0) - 0.5).round_ties_even();
                    let iy = ((g[1] + 1.0) * (h as f32 / 2.0) - 0.5).round_ties_even();
                    out[c * h * w + i * w + j] =
                        if ix >= 0.0 && ix < w as f32 && iy >= 0.0 && iy < h as f32 {
                            img[c * h * w + iy as usize * w + ix as usize]
                        } else {
                            fill
                        };
                }
            }
        }
        out
    }

    pub fn blend(x: u8, y: f32, ratio: f64) -> u8 {
        (ratio as f32 * x as f32 + (1.0 - ratio) as f32 * y).clamp(0.0, 255.0) as u8
    }

    pub fn gray(img: &[u8], s: ImageShape) -> Vec<u8> {
        let p = s.plane();
        (0..p)
            .map(|k| {
                (0.2989f32 * img[k] as f32
                    + 0.587f32 * img[p + k] as f32
                    + 0.114f32 * img[2 * p + k] as f32) as u8
            })
            .collect()
    }

    pub fn sharpness_blur(img: &[u8], s: ImageShape) -> Vec<f32> {
        let (h, w) = (s.height, s.width);
        let k = [1.0f32 / 13.0, 5.0f32 / 13.0];
        let mut out: Vec<f32> = img.iter().map(|&v| v as f32).collect();
        for c in 0..s.channels {
            for i in 1..h - 1 {
                for j in 1..w - 1 {
                    let mut acc = 0f32;
                    for di in 0..3 {
                        for dj in 0..3 {
                            let wgt = if di == 1 && dj == 1 { k[1] } else { k[0] };
                            acc += wgt * img[c * h * w + (i + di - 1) * w + j + dj - 1] as f32;
                        }
                    }
                    out[c * h * w + i * w + j] = acc.round_ties_even();
                }
            }
        }
        out
    }

    pub fn equalize_channel(ch: &[u8]) -> Vec<u8> {
        let mut hist = vec![0u64; 256];
        for &v in ch {
            hist[v as usize] += 1;
        }
        let nonzero: Vec<u64> = hist.iter().copied().filter(|&n| n != 0).collect();
        let step = nonzero[..nonzero.len() - 1].iter().sum::<u64>() / 255;
        if step == 0 {
            return ch.to_vec();
        }
        let cumsum: Vec<u64> = hist
            .iter()
            .scan(0, |acc, &n| {
                *acc += n;
                Some(*acc)
            })
            .collect();
        let lut: Vec<u64> = cumsum.iter().map(|&c| (c + step / 2) / step).collect();
        let padded: Vec<u64> = std::iter::once(0)
            .chain(lut[..255].iter().copied())
            .map(|v| v.min(255))
            .collect();
        ch.iter().map(|&v| padded[v as usize] as u8).collect()
    }

    pub fn apply(
        op: AutoOp,
        m: f64,
        fill: u8,
        current: bool,
        img: &[u8],
        s: ImageShape,
    ) -> Vec<u8> {
        let (h, w, p) = (s.height, s.width, s.plane());
        let centre = if current {
            [-(w as f64) * 0.5, -(h as f64) * 0.5]
        } else {
            [0.0, 0.0]
        };
        let shear_deg = if current {
            m.atan().to_degrees()
        } else {
            m.to_degrees()
        };
        let per_channel =
            |f: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<u8> { img.chunks(p).flat_map(f).collect() };
        match op {
            AutoOp::Identity => img.to_vec(),
            AutoOp::ShearX => warp(
                img,
                s,
                &ops::inverse_affine_matrix(centre, 0.0, [0.0, 0.0], 1.0, [shear_deg, 0.0]),
                fill,
            ),
            AutoOp::ShearY => warp(
                img,
                s,
                &ops::inverse_affine_matrix(centre, 0.0, [0.0, 0.0], 1.0, [0.0, shear_deg]),
                fill,
            ),
            AutoOp::TranslateX | AutoOp::TranslateY => {
                let size = if op == AutoOp::TranslateX { w } else { h };
                let px = if current {
                    m.trunc()
                } else {
                    (size as f64 * m).trunc()
                };
                let t = if op == AutoOp::TranslateX {
                    [px, 0.0]
                } else {
                    [0.0, px]
                };
                warp(
                    img,
                    s,
                    &ops::inverse_affine_matrix([0.0, 0.0], 0.0, t, 1.0, [0.0, 0.0]),
                    fill,
                )
            }
            AutoOp::Rotate => warp(
                img,
                s,
                &ops::inverse_affine_matrix([0.0, 0.0], -m, [0.0, 0.0], 1.0, [0.0, 0.0]),
                fill,
            ),
            AutoOp::Brightness => img.iter().map(|&x| blend(x, 0.0, 1.0 + m)).collect(),
            AutoOp::Color => {
                if s.channels == 1 {
                    return img.to_vec();
                }
                let g = gray(img, s);
                img.iter()
                    .enumerate()
                    .map(|(k, &x)| blend(x, g[k % p] as f32, 1.0 + m))
                    .collect()
            }
            AutoOp::Contrast => {
                let g = if s.channels == 3 {
                    gray(img, s)
                } else {
                    img.to_vec()
                };
                let mean = g.iter().map(|&v| v as f32).sum::<f32>() / p as f32;
                img.iter().map(|&x| blend(x, mean, 1.0 + m)).collect()
            }
            AutoOp::Sharpness => {
                if h <= 2 || w <= 2 {
                    return img.to_vec();
                }
                let b = sharpness_blur(img, s);
                img.iter()
                    .zip(&b)
                    .map(|(&x, &y)| blend(x, y, 1.0 + m))
                    .collect()
            }
            AutoOp::Posterize => {
                let bits = m.trunc() as i32;
                img.iter()
                    .map(|&x| (x as i32 & -(1 << (8 - bits))) as u8)
                    .collect()
            }
            AutoOp::Solarize => img
                .iter()
                .map(|&x| if x as f32 >= m as f32 { 255 - x } else { x })
                .collect(),
            AutoOp::AutoContrast => per_channel(&|ch: &[u8]| {
                let min = *ch.iter().min().unwrap() as f32;
                let max = *ch.iter().max().unwrap() as f32;
                let mut scale = (1.0 / (max - min)) * 255.0;
                let mut lo = min;
                if !scale.is_finite() {
                    scale = 1.0;
                    lo = 0.0;
                }
                ch.iter()
                    .map(|&x| ((x as f32 - lo) * scale).clamp(0.0, 255.0) as u8)
                    .collect()
            }),
            AutoOp::Equalize => per_channel(&equalize_channel),
            AutoOp::Invert => img.iter().map(|&x| 255 - x).collect(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Property tests
// ------------------------------------------------------------------------------------------

/// One op on one random image, with either torchvision 0.10's or ≥ 0.11's magnitude semantics.
#[derive(Clone, Debug)]
struct Problem {
    shape: ImageShape,
    image: Vec<u8>,
    op: AutoOp,
    magnitude: f64,
    fill: u8,
    current: bool,
}

impl Problem {
    fn magnitude_strategy(op: AutoOp, current: bool) -> BoxedStrategy<f64> {
        match op {
            AutoOp::ShearX | AutoOp::ShearY => (-0.99..0.99f64).boxed(),
            AutoOp::TranslateX | AutoOp::TranslateY if current => (-40.0..40.0f64).boxed(),
            AutoOp::TranslateX | AutoOp::TranslateY => (-1.2..1.2f64).boxed(),
            AutoOp::Rotate => {
                prop_oneof![-180.0..180.0f64, (-4..=4i32).prop_map(|k| 45.0 * k as f64)].boxed()
            }
            AutoOp::Brightness | AutoOp::Color | AutoOp::Contrast | AutoOp::Sharpness => {
                prop_oneof![
                    -1.0..1.5f64,
                    (0..=20i32).prop_map(|k| -1.0 + 0.1 * k as f64)
                ]
                .boxed()
            }
            AutoOp::Posterize => (0.0..8.99f64).boxed(),
            AutoOp::Solarize => {
                prop_oneof![0.0..300.0f64, (0..=256i32).prop_map(f64::from)].boxed()
            }
            _ => Just(0.0).boxed(),
        }
    }

    fn strategy() -> impl Strategy<Value = Problem> {
        (
            prop_oneof![Just(1usize), Just(3usize)],
            1..=13usize,
            1..=13usize,
            0..AutoOp::ALL.len(),
            any::<bool>(),
            any::<u8>(),
        )
            .prop_flat_map(|(c, h, w, k, current, fill)| {
                let shape = ImageShape::new(c, h, w);
                let op = AutoOp::ALL[k];
                let image = prop_oneof![
                    proptest::collection::vec(any::<u8>(), shape.len()),
                    proptest::collection::vec(100..110u8, shape.len()),
                ];
                (image, Self::magnitude_strategy(op, current)).prop_map(
                    move |(image, magnitude)| Problem {
                        shape,
                        image,
                        op,
                        magnitude,
                        fill,
                        current,
                    },
                )
            })
    }

    fn reference(&self) -> Vec<u8> {
        reference::apply(
            self.op,
            self.magnitude,
            self.fill,
            self.current,
            &self.image,
            self.shape,
        )
    }

    fn run(&self) -> Vec<u8> {
        let mut out = vec![0xA5; self.shape.len()];
        let f = if self.current {
            apply_op_current
        } else {
            apply_op
        };
        f(
            self.op,
            self.magnitude,
            self.fill,
            &self.image,
            self.shape,
            &mut out,
        );
        out
    }

    fn check(&self) {
        assert_eq!(self.run(), self.reference(), "{self:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn ops_match_the_reference(p in Problem::strategy()) {
        prop_assert_eq!(p.run(), p.reference());
    }
}

fn problem(c: usize, h: usize, w: usize, image: Vec<u8>, op: AutoOp, magnitude: f64) -> Problem {
    Problem {
        shape: ImageShape::new(c, h, w),
        image,
        op,
        magnitude,
        fill: 0,
        current: false,
    }
}

#[test]
fn regression_autocontrast_maps_41_to_254() {
    // torch: F.autocontrast(tensor([[[0, 41]]])) == [[[0, 254]]] (the quotient is 255·(1/41)).
    let p = problem(1, 1, 2, vec![0, 41], AutoOp::AutoContrast, 0.0);
    p.check();
    assert_eq!(p.run(), vec![0, 254]);
    // ...whereas for [0, 7] it is 255 (a correctly rounded 255/7 would give 254).
    assert_eq!(
        problem(1, 1, 2, vec![0, 7], AutoOp::AutoContrast, 0.0).run(),
        vec![0, 255]
    );
}

#[test]
fn regression_sharpness_blend_moves_border_pixels() {
    // torch: F.adjust_sharpness(full((1,3,3), 13), 1.9) is all 12: 1.9·13 + (−0.9)·13 in f32
    // truncates to 12, border included.
    let p = problem(1, 3, 3, vec![13; 9], AutoOp::Sharpness, 0.9);
    p.check();
    assert_eq!(p.run(), vec![12; 9]);
}

#[test]
fn regression_contrast_blends_with_the_f32_mean() {
    // torch: F.adjust_contrast(tensor([[[0, 255]]]), 0.5) == [[[63, 191]]].
    let p = problem(1, 1, 2, vec![0, 255], AutoOp::Contrast, -0.5);
    p.check();
    assert_eq!(p.run(), vec![63, 191]);
}

#[test]
fn regression_solarize_256_is_identity_and_0_inverts() {
    let img: Vec<u8> = (0..=255).collect();
    let p = problem(1, 16, 16, img.clone(), AutoOp::Solarize, 256.0);
    p.check();
    assert_eq!(p.run(), img);
    let inverted: Vec<u8> = img.iter().map(|v| 255 - v).collect();
    assert_eq!(
        problem(1, 16, 16, img, AutoOp::Solarize, 0.0).run(),
        inverted
    );
}

#[test]
fn regression_translate_beyond_the_image_is_all_fill() {
    let mut p = problem(3, 4, 5, (0..60).collect(), AutoOp::TranslateX, 1.0);
    p.fill = 9;
    p.check();
    assert_eq!(p.run(), vec![9; 60]);
}

#[test]
fn regression_shear_about_the_corner_keeps_the_top_row() {
    // torchvision ≥ 0.11 shears about the top-left corner: the top row (y = 0.5 from the
    // corner) moves by less than half a pixel, so it is unchanged.
    let img: Vec<u8> = (0..48).collect();
    let mut p = problem(1, 6, 8, img.clone(), AutoOp::ShearX, 0.5);
    p.current = true;
    p.check();
    assert_eq!(p.run()[..8], img[..8]);
}

fn random_image(rng: &mut Rng, shape: ImageShape) -> Vec<u8> {
    (0..shape.len()).map(|_| rng.below(256) as u8).collect()
}

fn shape_strategy() -> impl Strategy<Value = (ImageShape, Vec<u8>)> {
    (
        prop_oneof![Just(1usize), Just(3usize)],
        1..=12usize,
        1..=12usize,
    )
        .prop_flat_map(|(c, h, w)| {
            let shape = ImageShape::new(c, h, w);
            proptest::collection::vec(any::<u8>(), shape.len()).prop_map(move |img| (shape, img))
        })
}

fn op1(op: AutoOp, m: f64, fill: u8, img: &[u8], shape: ImageShape) -> Vec<u8> {
    let mut out = vec![0; shape.len()];
    apply_op(op, m, fill, img, shape, &mut out);
    out
}

proptest! {
    #[test]
    fn invert_twice_is_identity((shape, img) in shape_strategy()) {
        let once = op1(AutoOp::Invert, 0.0, 0, &img, shape);
        prop_assert_eq!(op1(AutoOp::Invert, 0.0, 0, &once, shape), img);
    }

    #[test]
    fn posterize_8_is_identity_and_posterize_is_idempotent((shape, img) in shape_strategy(), bits in 0..=8u32) {
        prop_assert_eq!(op1(AutoOp::Posterize, 8.0, 0, &img, shape), img.clone());
        let once = op1(AutoOp::Posterize, bits as f64, 0, &img, shape);
        prop_assert_eq!(op1(AutoOp::Posterize, bits as f64, 0, &once, shape), once.clone());
        let low = ((1u32 << (8 - bits)) - 1) as u8;
        prop_assert!(once.iter().all(|&v| v & low == 0));
    }

    #[test]
    fn solarize_256_and_geometric_zero_magnitudes_are_identity((shape, img) in shape_strategy(), fill in any::<u8>()) {
        prop_assert_eq!(op1(AutoOp::Solarize, 256.0, fill, &img, shape), img.clone());
        for op in [AutoOp::Rotate, AutoOp::ShearX, AutoOp::ShearY, AutoOp::TranslateX, AutoOp::TranslateY] {
            prop_assert_eq!(op1(op, 0.0, fill, &img, shape), img.clone(), "{}", op);
            let mut out = vec![0; shape.len()];
            apply_op_current(op, 0.0, fill, &img, shape, &mut out);
            prop_assert_eq!(&out, &img, "{} (current)", op);
        }
        for op in [AutoOp::Brightness, AutoOp::Color, AutoOp::Contrast, AutoOp::Sharpness] {
            prop_assert_eq!(op1(op, 0.0, fill, &img, shape), img.clone(), "{} with factor 1", op);
        }
    }

    #[test]
    fn geometric_ops_only_move_pixels_or_fill((shape, img) in shape_strategy(), k in 0..5usize, m in -1.0..1.0f64, fill in any::<u8>()) {
        let op = [AutoOp::Rotate, AutoOp::ShearX, AutoOp::ShearY, AutoOp::TranslateX, AutoOp::TranslateY][k];
        let m = if op == AutoOp::Rotate { m * 180.0 } else { m };
        let out = op1(op, m, fill, &img, shape);
        let p = shape.plane();
        let pixel = |buf: &[u8], q: usize| (0..shape.channels).map(|c| buf[c * p + q]).collect::<Vec<u8>>();
        let sources: Vec<Vec<u8>> = (0..p).map(|q| pixel(&img, q)).collect();
        for q in 0..p {
            let o = pixel(&out, q);
            prop_assert!(o.iter().all(|&v| v == fill) || sources.contains(&o), "pixel {} = {:?}", q, o);
        }
    }

    #[test]
    fn quarter_turns_of_a_square_image_are_exact(c in prop_oneof![Just(1usize), Just(3usize)], n in 1..=12usize, seed in any::<u64>()) {
        let shape = ImageShape::new(c, n, n);
        let img = random_image(&mut Rng::seed_from_u64(seed), shape);
        let mut cur = img.clone();
        for turn in 1..=4 {
            cur = op1(AutoOp::Rotate, 90.0, 0, &cur, shape);
            if turn == 2 {
                // Half a turn reverses every plane.
                let expect: Vec<u8> = img.chunks(n * n).flat_map(|pl| pl.iter().rev().copied().collect::<Vec<_>>()).collect();
                prop_assert_eq!(&cur, &expect);
            }
        }
        prop_assert_eq!(cur, img);
    }

    #[test]
    fn equalize_and_autocontrast_keep_the_order_of_values((shape, img) in shape_strategy()) {
        for op in [AutoOp::Equalize, AutoOp::AutoContrast] {
            let out = op1(op, 0.0, 0, &img, shape);
            let p = shape.plane();
            for c in 0..shape.channels {
                for a in 0..p {
                    for b in 0..p {
                        let (x, y) = (img[c * p + a], img[c * p + b]);
                        if x <= y {
                            prop_assert!(out[c * p + a] <= out[c * p + b], "{} not monotone", op);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn equalize_is_identity_on_a_flat_histogram(c in prop_oneof![Just(1usize), Just(3usize)], copies in 1..=3usize, seed in any::<u64>()) {
        // Every value equally often: step = n, and the table maps v to v.
        let shape = ImageShape::new(c, 16 * copies, 16);
        let mut rng = Rng::seed_from_u64(seed);
        let img: Vec<u8> = (0..c).flat_map(|_| {
            let mut plane: Vec<u8> = (0..256 * copies).map(|k| (k % 256) as u8).collect();
            rng.shuffle(&mut plane);
            plane
        }).collect();
        prop_assert_eq!(op1(AutoOp::Equalize, 0.0, 0, &img, shape), img);
    }
}

// ------------------------------------------------------------------------------------------
// Transforms: determinism, per-batch decisions, draw statistics
// ------------------------------------------------------------------------------------------

fn transforms() -> Vec<(&'static str, Box<dyn Transform>)> {
    vec![
        (
            "AutoAugment(cifar10)",
            Box::new(AutoAugment::new(AutoAugmentPolicy::Cifar10)),
        ),
        (
            "AutoAugment(imagenet)",
            Box::new(AutoAugment::new(AutoAugmentPolicy::ImageNet)),
        ),
        (
            "AutoAugment(svhn)",
            Box::new(AutoAugment::new(AutoAugmentPolicy::Svhn).with_fill(128)),
        ),
        ("RandAugment", Box::new(RandAugment::default())),
        (
            "TrivialAugmentWide",
            Box::new(TrivialAugmentWide::default()),
        ),
    ]
}

fn apply_t(t: &dyn Transform, img: &[u8], shape: ImageShape, rng: &mut Rng) -> Vec<u8> {
    assert_eq!(t.output_shape(shape), shape);
    let mut out = vec![0; shape.len()];
    t.apply(img, shape, rng, &mut out);
    out
}

#[test]
fn same_seed_same_output_and_seeds_differ() {
    for shape in [ImageShape::new(3, 32, 32), ImageShape::new(1, 9, 7)] {
        let img = random_image(&mut Rng::seed_from_u64(5), shape);
        for (name, t) in transforms() {
            let mut distinct = std::collections::HashSet::new();
            for seed in 0..40 {
                let a = apply_t(t.as_ref(), &img, shape, &mut Rng::seed_from_u64(seed));
                let b = apply_t(t.as_ref(), &img, shape, &mut Rng::seed_from_u64(seed));
                assert_eq!(a, b, "{name} seed {seed}");
                distinct.insert(a);
            }
            assert!(
                distinct.len() >= 10,
                "{name} on {shape}: only {} distinct outputs over 40 seeds",
                distinct.len()
            );
        }
    }
}

#[test]
fn cloned_rng_applies_one_decision_to_a_batch() {
    let shape = ImageShape::new(3, 16, 12);
    let mut image_rng = Rng::seed_from_u64(99);
    let batch: Vec<Vec<u8>> = (0..4)
        .map(|_| random_image(&mut image_rng, shape))
        .collect();
    for seed in 0..100 {
        let rng = Rng::seed_from_u64(seed);
        for policy in AutoAugmentPolicy::ALL {
            let aa = AutoAugment::new(policy);
            let decision = aa.draw(&mut rng.clone());
            let mut after = Vec::new();
            for img in &batch {
                let mut r = rng.clone();
                let out = apply_t(&aa, img, shape, &mut r);
                let mut expected = vec![0; shape.len()];
                aa.apply_decision(&decision, img, shape, &mut expected);
                assert_eq!(
                    out, expected,
                    "{policy} seed {seed}: an image got another decision"
                );
                after.push(r);
            }
            // The generator advanced by the same draws whatever the image.
            assert!(after.windows(2).all(|w| w[0] == w[1]));
        }
        let ra = RandAugment::default();
        let ops = ra.draw(&mut rng.clone(), shape);
        let ta = TrivialAugmentWide::default();
        let (op, m) = ta.draw(&mut rng.clone());
        for img in &batch {
            let mut expected = vec![0; shape.len()];
            ra.apply_ops(&ops, img, shape, &mut expected);
            assert_eq!(
                apply_t(&ra, img, shape, &mut rng.clone()),
                expected,
                "RandAugment seed {seed}"
            );
            ta.apply_op(op, m, img, shape, &mut expected);
            assert_eq!(
                apply_t(&ta, img, shape, &mut rng.clone()),
                expected,
                "TrivialAugmentWide seed {seed}"
            );
        }
    }
}

#[test]
fn autoaugment_draws_follow_torchvision_distributions() {
    let aa = AutoAugment::new(AutoAugmentPolicy::Cifar10);
    let mut rng = Rng::seed_from_u64(1234);
    let n = 50_000;
    let mut per_id = [0usize; 25];
    let mut fired = [[0usize; 2]; 25];
    let mut negative = 0usize;
    for _ in 0..n {
        let d = aa.draw(&mut rng);
        per_id[d.policy_id] += 1;
        for (i, op) in aa.ops(&d).iter().enumerate() {
            fired[d.policy_id][i] += op.is_some() as usize;
        }
        negative += d.signs.iter().filter(|&&s| s == 0).count();
    }
    for (id, &count) in per_id.iter().enumerate() {
        assert!(
            (1700..2300).contains(&count),
            "policy id {id} drawn {count} times of {n}"
        );
        let sub = &AutoAugmentPolicy::Cifar10.sub_policies()[id];
        for (i, (entry, &times)) in sub.iter().zip(&fired[id]).enumerate() {
            let p = entry.probability;
            let freq = times as f64 / count as f64;
            let tol = 5.0 * (p * (1.0 - p) / count as f64).sqrt() + 1e-9;
            assert!(
                (freq - p).abs() <= tol,
                "policy {id} op {i}: fired {freq}, probability {p}"
            );
        }
    }
    let neg = negative as f64 / (2 * n) as f64;
    assert!((neg - 0.5).abs() < 0.01, "sign 0 frequency {neg}");
}

#[test]
fn randaugment_and_trivialaugment_draw_ops_uniformly() {
    let shape = ImageShape::new(3, 32, 32);
    let mut rng = Rng::seed_from_u64(77);
    let ra = RandAugment::default();
    let ta = TrivialAugmentWide::default();
    let mut ra_counts: HashMap<AutoOp, usize> = HashMap::new();
    let mut ta_counts: HashMap<AutoOp, usize> = HashMap::new();
    let mut ta_negative = 0;
    let mut ta_signed = 0;
    for _ in 0..14_000 {
        for (op, _) in ra.draw(&mut rng, shape) {
            *ra_counts.entry(op).or_default() += 1;
        }
        let (op, m) = ta.draw(&mut rng);
        *ta_counts.entry(op).or_default() += 1;
        if TrivialAugmentWide::magnitude(op, 1, 31).is_some_and(|(_, signed)| signed) {
            ta_signed += 1;
            ta_negative += (m < 0.0) as usize;
        }
    }
    for op in RandAugment::op_space() {
        let r = ra_counts.get(op).copied().unwrap_or(0);
        let t = ta_counts.get(op).copied().unwrap_or(0);
        assert!(
            (1700..2300).contains(&r),
            "RandAugment drew {op} {r} of 28000 times"
        );
        assert!(
            (800..1200).contains(&t),
            "TrivialAugmentWide drew {op} {t} of 14000 times"
        );
    }
    assert_eq!(ra_counts.get(&AutoOp::Invert), None);
    // Bin 0 has magnitude 0, whose negation is -0.0 (not < 0): about 1/31 of signed draws.
    let frac = ta_negative as f64 / ta_signed as f64;
    assert!(
        (frac - 0.5 * 30.0 / 31.0).abs() < 0.03,
        "negative fraction {frac}"
    );
}

#[test]
#[should_panic(expected = "1 or 3 channels")]
fn transforms_reject_four_channels() {
    let shape = ImageShape::new(4, 4, 4);
    apply_t(
        &AutoAugment::new(AutoAugmentPolicy::Cifar10),
        &vec![0; shape.len()],
        shape,
        &mut Rng::seed_from_u64(0),
    );
}

// ------------------------------------------------------------------------------------------
// Throughput
// ------------------------------------------------------------------------------------------

#[test]
#[ignore = "speed report: cargo test --release -p kd-augment --test autoaugment -- --ignored --nocapture"]
fn throughput() {
    for side in [32usize, 64] {
        let shape = ImageShape::new(3, side, side);
        let mut image_rng = Rng::seed_from_u64(3);
        let images: Vec<Vec<u8>> = (0..256)
            .map(|_| random_image(&mut image_rng, shape))
            .collect();
        let mut out = vec![0; shape.len()];
        let n = if side == 32 { 200_000 } else { 50_000 };
        for (name, t) in transforms() {
            for k in 0..1000 {
                t.apply(
                    &images[k % 256],
                    shape,
                    &mut Rng::from_keys(&[0, k as u64]),
                    &mut out,
                );
            }
            let start = std::time::Instant::now();
            for k in 0..n {
                t.apply(
                    &images[k % 256],
                    shape,
                    &mut Rng::from_keys(&[1, k as u64]),
                    &mut out,
                );
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name:<24} {shape}: {:>9.0} images/s (one thread)",
                n as f64 / secs
            );
        }
        // Each op alone, at a mid magnitude.
        for op in AutoOp::ALL {
            let m = match op {
                AutoOp::Rotate => 20.0,
                AutoOp::Posterize => 5.0,
                AutoOp::Solarize => 128.0,
                AutoOp::TranslateX | AutoOp::TranslateY => 0.3,
                _ => 0.3,
            };
            let reps = n / 4;
            let start = std::time::Instant::now();
            for k in 0..reps {
                apply_op(op, m, 0, &images[k % 256], shape, &mut out);
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  op {:<13} {shape}: {:>9.0} images/s",
                op.name(),
                reps as f64 / secs
            );
        }
    }
}
