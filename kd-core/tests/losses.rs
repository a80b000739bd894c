//! The KD losses against PyTorch: values and gradients with respect to the student logits of
//! DistillKL (T = 1, 4, 20), MSE, SmoothL1 and cross-entropy, and the entropy, on logits where
//! a softmax underflows; the τ = ∞ loss's gradient against kd_data's injected `inf_grad`; the
//! config-facing `KdKind` / `KdLoss`.
//!
//! PyTorch's numbers come from `tests/parity/losses.py`, run with the project's Python
//! (skipped, with a message, without it). In float64 kd matches PyTorch to [`TOL_F64`]; in
//! float32 to [`TOL_F32`] relative to the largest reference magnitude (rounding only).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kd_core::loss::{
    KdKind, KdLoss, LossError, cross_entropy, entropy, kd_infinite, kd_kl, kd_mse, kd_smooth_l1,
};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde::de::value::{Error as ValueError, StrDeserializer};
use tch::{Device, Kind, Tensor};

/// Largest absolute difference tolerated from PyTorch on float64 inputs.
const TOL_F64: f64 = 1e-6;
/// Largest difference tolerated from PyTorch on float32 inputs, as a fraction of the largest
/// absolute reference value (at least 1).
const TOL_F32: f64 = 1e-5;

/// The folder of `losses.py`'s `losses.npz`, made once per run; `None` without Python.
fn fixture_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| common::run_parity_script("losses.py", "kd-losses"))
        .as_deref()
}

/// PyTorch's fixture by name; `None` without Python.
fn fixture() -> Option<HashMap<String, Tensor>> {
    let dir = fixture_dir()?;
    let tensors = Tensor::read_npz(dir.join("losses.npz")).expect("reading losses.npz");
    Some(tensors.into_iter().collect())
}

macro_rules! fixture_or_skip {
    () => {
        match fixture() {
            Some(f) => f,
            None => {
                eprintln!(
                    "skipping: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON to compute PyTorch's losses"
                );
                return;
            }
        }
    };
}

/// A loss of the student logits.
type LossFn<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

/// The value of `loss(student)` and its gradient with respect to `student`.
fn value_and_grad(student: &Tensor, loss: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let s = student.detach().set_requires_grad(true);
    let value = loss(&s);
    value.backward();
    (value.detach(), s.grad())
}

/// Checks `ours` against `theirs` with the dtype's tolerance; returns the difference.
fn check(what: &str, ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.kind(), theirs.kind(), "{what}: dtype");
    assert_eq!(ours.numel(), theirs.numel(), "{what}: size");
    let ours = ours.reshape(theirs.size());
    let d = common::max_abs_diff(&ours, theirs);
    let tol = match theirs.kind() {
        Kind::Double => TOL_F64,
        _ => {
            let scale = f64::try_from(theirs.abs().max().to_kind(Kind::Double)).unwrap();
            TOL_F32 * scale.max(1.0)
        }
    };
    assert!(
        d <= tol,
        "{what}: differs from PyTorch by {d:e} (> {tol:e})"
    );
    d
}

#[test]
fn losses_match_pytorch_values_and_gradients() {
    let fx = &fixture_or_skip!();
    let labels = &fx["labels"];
    for dtype in ["f64", "f32"] {
        let s = &fx[&format!("{dtype}.student")];
        let t = &fx[&format!("{dtype}.teacher")];
        let cases: [(&str, LossFn); 6] = [
            ("kl_T1", Box::new(|s| kd_kl(s, t, 1.0))),
            ("kl_T4", Box::new(|s| kd_kl(s, t, 4.0))),
            ("kl_T20", Box::new(|s| kd_kl(s, t, 20.0))),
            ("mse", Box::new(|s| kd_mse(s, t))),
            ("smooth_l1", Box::new(|s| kd_smooth_l1(s, t))),
            ("ce", Box::new(|s| cross_entropy(s, labels))),
        ];
        for (name, loss) in cases {
            let (value, grad) = value_and_grad(s, loss);
            let key = format!("{dtype}.{name}");
            let dv = check(
                &format!("{key} value"),
                &value,
                &fx[&format!("{key}.value")],
            );
            let dg = check(
                &format!("{key} gradient"),
                &grad,
                &fx[&format!("{key}.grad")],
            );
            assert_eq!(
                i64::try_from(grad.isnan().any()).unwrap(),
                0,
                "{key}: NaN in the gradient"
            );
            eprintln!("{key}: value differs by {dv:e}, gradient by {dg:e}");
        }
    }
}

#[test]
fn fixture_rows_underflow() {
    // What makes the NaN checks meaningful: the 1000-logit rows have exact zero probabilities.
    let fx = &fixture_or_skip!();
    for dtype in ["f64", "f32"] {
        for who in ["student", "teacher"] {
            let z = &fx[&format!("{dtype}.{who}")];
            let p = z.softmax(-1, None);
            let zeros = i64::try_from(p.eq(0.0).sum(None)).unwrap();
            assert!(zeros > 0, "{dtype}.{who}: no probability underflows");
            let naive = -(&p * p.log()).sum_dim_intlist(-1, false, None);
            assert_eq!(
                i64::try_from(naive.isnan().any()).unwrap(),
                1,
                "{dtype}.{who}: −Σ p log p should be NaN on the underflowing row"
            );
        }
    }
}

#[test]
fn entropy_matches_pytorch_without_nan() {
    let fx = &fixture_or_skip!();
    for dtype in ["f64", "f32"] {
        for who in ["student", "teacher"] {
            let ours = entropy(&fx[&format!("{dtype}.{who}")]);
            assert_eq!(ours.size(), [8]);
            assert_eq!(i64::try_from(ours.isnan().any()).unwrap(), 0);
            let d = check(
                &format!("{dtype} entropy of the {who}"),
                &ours,
                &fx[&format!("{dtype}.entropy_{who}")],
            );
            eprintln!("{dtype} entropy of the {who}: differs by {d:e}");
        }
    }
}

#[test]
fn infinite_temperature_gradient_is_kd_data_inf_grad() {
    let fx = &fixture_or_skip!();
    for dtype in ["f64", "f32"] {
        let s = &fx[&format!("{dtype}.student")];
        let t = &fx[&format!("{dtype}.teacher")];
        let (_, grad) = value_and_grad(s, |s| kd_infinite(s, t));
        let d = check(
            &format!("{dtype} kd_infinite gradient vs inf_grad"),
            &grad,
            &fx[&format!("{dtype}.inf_grad")],
        );
        eprintln!("{dtype} kd_infinite gradient vs PyTorch's inf_grad: {d:e}");
    }
}

/// Seeded `[8, 100]` float64 logits.
fn random_logits(seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let opts = (Kind::Double, Device::Cpu);
    (
        Tensor::randn([8, 100], opts) * 3.0,
        Tensor::randn([8, 100], opts) * 3.0,
    )
}

#[test]
fn infinite_temperature_closed_form_in_rust() {
    let (s, t) = random_logits(11);
    let (b, c) = (8.0, 100.0);
    let (value, grad) = value_and_grad(&s, |s| kd_infinite(s, &t));
    let d = &s - &t;
    let inf_grad = (&d * c - d.sum_dim_intlist(-1, true, None)) / (c * c) / b;
    let dg = common::max_abs_diff(&grad, &inf_grad);
    assert!(dg <= 1e-15, "gradient differs from inf_grad by {dg:e}");
    // The value by its definition: per row ‖d − mean d‖² / (2C), averaged over rows.
    let mut want = 0.0;
    for row in 0..8 {
        let r = d.get(row);
        let centred = &r - r.mean(None);
        want += f64::try_from(centred.square().sum(None)).unwrap() / (2.0 * c);
    }
    want /= b;
    let got = f64::try_from(value).unwrap();
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    // Invariant to adding a per-row constant to either side (softmax is).
    let shifted = kd_infinite(
        &(&s + Tensor::arange(8, (Kind::Double, Device::Cpu)).unsqueeze(1)),
        &t,
    );
    assert!((f64::try_from(shifted).unwrap() - want).abs() <= 1e-12 * want);
}

#[test]
fn kl_at_huge_temperature_approaches_infinite_gradient() {
    // kd-codebases.md A.8.3: T²·∇KL − inf_grad is 4.8e-6 at T = 1e4 on such logits.
    let (s, t) = random_logits(12);
    let (_, g_inf) = value_and_grad(&s, |s| kd_infinite(s, &t));
    let (_, g_20) = value_and_grad(&s, |s| kd_kl(s, &t, 20.0));
    let (_, g_1e4) = value_and_grad(&s, |s| kd_kl(s, &t, 1e4));
    let far = common::max_abs_diff(&g_20, &g_inf);
    let near = common::max_abs_diff(&g_1e4, &g_inf);
    assert!(near < 1e-5, "T = 1e4 is {near:e} away from the limit");
    assert!(far > 100.0 * near, "T = 20 ({far:e}) vs T = 1e4 ({near:e})");
}

#[test]
fn losses_widen_half_inputs_to_float() {
    let (s, t) = random_logits(13);
    let (sh, th) = (s.to_kind(Kind::Half), t.to_kind(Kind::Half));
    let labels = Tensor::arange(8, (Kind::Int64, Device::Cpu));
    let outs = [
        kd_kl(&sh, &th, 4.0),
        kd_infinite(&sh, &th),
        kd_mse(&sh, &th),
        kd_smooth_l1(&sh, &th),
        cross_entropy(&sh, &labels),
        entropy(&sh),
    ];
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.kind(), Kind::Float, "loss {i}");
    }
    // Same value as computing in float32 from the rounded half logits.
    let (sf, tf) = (sh.to_kind(Kind::Float), th.to_kind(Kind::Float));
    let d = common::max_abs_diff(&outs[0], &kd_kl(&sf, &tf, 4.0));
    assert_eq!(d, 0.0);
    // And the gradient reaches the half-precision logits.
    let sh = sh.set_requires_grad(true);
    kd_kl(&sh, &th, 4.0).backward();
    assert_eq!(sh.grad().kind(), Kind::Half);
}

#[test]
fn kd_loss_dispatches_on_kind_and_temperature() {
    let (s, t) = random_logits(14);
    let same = |a: Tensor, b: Tensor| assert_eq!(common::max_abs_diff(&a, &b), 0.0);
    same(
        KdLoss::new(KdKind::Kl, 4.0).unwrap().compute(&s, &t),
        kd_kl(&s, &t, 4.0),
    );
    same(
        KdLoss::new(KdKind::Kl, f64::INFINITY)
            .unwrap()
            .compute(&s, &t),
        kd_infinite(&s, &t),
    );
    same(
        KdLoss::new(KdKind::Mse, 4.0).unwrap().compute(&s, &t),
        kd_mse(&s, &t),
    );
    same(
        KdLoss::new(KdKind::SmoothL1, 1.0).unwrap().compute(&s, &t),
        kd_smooth_l1(&s, &t),
    );
    // The kinds really differ on these logits.
    let kl = f64::try_from(kd_kl(&s, &t, 4.0)).unwrap();
    let mse = f64::try_from(kd_mse(&s, &t)).unwrap();
    assert!((kl - mse).abs() > 1e-3);
}

#[test]
fn kd_loss_rejects_bad_temperatures() {
    for bad in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
        let err = KdLoss::new(KdKind::Kl, bad).unwrap_err();
        assert!(matches!(err, LossError::Temperature { .. }), "{bad}");
        assert!(
            err.to_string().contains(&bad.to_string()),
            "{err} does not name {bad}"
        );
    }
    assert!(KdLoss::new(KdKind::Kl, 1e-3).is_ok());
}

#[test]
fn kd_kind_names() {
    for (kind, name) in [
        (KdKind::Kl, "kl"),
        (KdKind::Mse, "mse"),
        (KdKind::SmoothL1, "smooth_l1"),
    ] {
        assert_eq!(name.parse::<KdKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), name);
        let de: StrDeserializer<ValueError> = name.into_deserializer();
        assert_eq!(KdKind::deserialize(de).unwrap(), kind, "serde name {name}");
    }
    let err = "smoothl1".parse::<KdKind>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown KD loss 'smoothl1'; expected one of: kl, mse, smooth_l1"
    );
    let de: StrDeserializer<ValueError> = "KL".into_deserializer();
    assert!(KdKind::deserialize(de).is_err());
}
