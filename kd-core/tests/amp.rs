//! The dynamic loss scaler on the CPU: PyTorch's `GradScaler` trajectory (scale, growth
//! tracker, parameters) over steps with an overflowing and a NaN gradient; growth after
//! `growth_interval` finite steps; backoff and a skipped step on inf; exact unscaling; misuse,
//! state and configuration errors.
//!
//! PyTorch's trajectory comes from `tests/parity/amp.py`, run with the project's Python (that
//! test skips, with a message, without it).

mod common;

use std::collections::HashMap;

use kd_core::amp::{AmpError, GradScaler, GradScalerConfig};
use kd_core::optim::{Sgd, SgdConfig};
use tch::{Device, Kind, Tensor};

/// Largest parameter difference tolerated from PyTorch (float32 SGD; see tests/optim.rs).
const TOL: f64 = 1e-6;

fn fixture() -> Option<HashMap<String, Tensor>> {
    let dir = common::run_parity_script("amp.py", "kd-amp")?;
    let tensors = Tensor::read_npz(dir.join("amp.npz")).expect("reading amp.npz");
    Some(tensors.into_iter().collect())
}

fn scaler(growth_interval: i64) -> GradScaler {
    let cfg = GradScalerConfig {
        growth_interval,
        ..GradScalerConfig::default()
    };
    GradScaler::new(cfg, Device::Cpu).unwrap()
}

/// One parameter `w` and SGD over it.
fn model(init: &Tensor) -> (Tensor, Sgd) {
    let w = init.copy().set_requires_grad(true);
    let cfg = SgdConfig {
        lr: 0.1,
        ..SgdConfig::default()
    };
    let opt = Sgd::new(vec![("w".into(), w.shallow_clone())], cfg).unwrap();
    (w, opt)
}

/// zero_grad, backward of the scaled `Σ w·c`, step, update; whether it stepped.
fn train_step(w: &Tensor, opt: &mut Sgd, sc: &mut GradScaler, c: &Tensor) -> bool {
    opt.zero_grad();
    sc.scale(&(w * c).sum(None)).backward();
    let stepped = sc.step(opt, 0.1).unwrap();
    sc.update().unwrap();
    stepped
}

#[test]
fn matches_pytorch_grad_scaler() {
    let Some(fx) = fixture() else {
        eprintln!(
            "skipping: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON to run torch.amp.GradScaler"
        );
        return;
    };
    let (w, mut opt) = model(&fx["init"]);
    let mut sc = scaler(2);
    let mut skipped = vec![];
    for i in 0..8 {
        if !train_step(&w, &mut opt, &mut sc, &fx[&format!("c{i}")]) {
            skipped.push(i);
        }
        let scale = f64::try_from(&fx[&format!("scale{i}")]).unwrap();
        let tracker = i64::try_from(&fx[&format!("tracker{i}")]).unwrap();
        assert_eq!(sc.scale_value(), scale, "scale after step {i}");
        assert_eq!(sc.growth_tracker_value(), tracker, "tracker after step {i}");
        let d = common::max_abs_diff(&w, &fx[&format!("w{i}")]);
        assert!(d <= TOL, "w after step {i} differs from PyTorch by {d:e}");
    }
    assert_eq!(skipped, [3, 6], "the inf and NaN steps are skipped");
}

#[test]
fn defaults_are_pytorchs() {
    let cfg = GradScalerConfig::default();
    assert_eq!(
        (
            cfg.init_scale,
            cfg.growth_factor,
            cfg.backoff_factor,
            cfg.growth_interval
        ),
        (65536.0, 2.0, 0.5, 2000)
    );
    let sc = GradScaler::new(cfg, Device::Cpu).unwrap();
    assert_eq!(sc.scale_value(), 65536.0);
    assert_eq!(sc.growth_tracker_value(), 0);
    assert_eq!(
        f64::try_from(sc.scale(&Tensor::from(1.5f32))).unwrap(),
        98304.0
    );
}

#[test]
fn scale_grows_after_interval_and_backs_off_on_inf() {
    let init = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
    let (w, mut opt) = model(&init);
    let mut sc = scaler(3);
    let c = Tensor::from_slice(&[0.5f32, 0.25, -1.0]);
    for (i, (scale, tracker)) in [(65536.0, 1), (65536.0, 2), (131072.0, 0), (131072.0, 1)]
        .into_iter()
        .enumerate()
    {
        assert!(train_step(&w, &mut opt, &mut sc, &c), "step {i} is finite");
        assert_eq!(
            (sc.scale_value(), sc.growth_tracker_value()),
            (scale, tracker),
            "after step {i}"
        );
    }

    // An overflowing gradient: nothing moves, the scale halves, the count restarts.
    let before = w.copy();
    let buffer = opt.state()[0].1.copy();
    let huge = Tensor::from_slice(&[1e35f32, 0.0, 0.0]);
    assert!(!train_step(&w, &mut opt, &mut sc, &huge));
    assert!(w.equal(&before), "the step was skipped");
    assert!(opt.state()[0].1.equal(&buffer), "the momentum did not move");
    assert_eq!((sc.scale_value(), sc.growth_tracker_value()), (65536.0, 0));
    // A NaN the same.
    let nan = Tensor::from_slice(&[f32::NAN, 0.0, 0.0]);
    assert!(!train_step(&w, &mut opt, &mut sc, &nan));
    assert!(w.equal(&before));
    assert_eq!((sc.scale_value(), sc.growth_tracker_value()), (32768.0, 0));
    // And training goes on.
    assert!(train_step(&w, &mut opt, &mut sc, &c));
    assert!(!w.equal(&before));
}

#[test]
fn unscaled_gradients_are_exact() {
    let init = Tensor::from_slice(&[1.0f32, 2.0]);
    let (w, opt) = model(&init);
    let mut sc = scaler(2000);
    let c = Tensor::from_slice(&[0.3f32, -7.1]);
    let scaled = sc.scale(&(&w * &c).sum(None));
    scaled.backward();
    assert!(w.grad().equal(&(&c * 65536.0)), "scaled by 2^16");
    assert!(!sc.unscale_and_check(&opt.grads()).unwrap());
    assert!(w.grad().equal(&c), "a power-of-two scale unscales exactly");
    // A second unscale before update is refused, and the gradients stay.
    assert!(matches!(
        sc.unscale_and_check(&opt.grads()),
        Err(AmpError::AlreadyUnscaled)
    ));
    assert!(w.grad().equal(&c));
    sc.update().unwrap();
    assert!(matches!(sc.update(), Err(AmpError::NoInfCheck)));
    // No gradients at all: nothing found.
    assert!(!sc.unscale_and_check(&[]).unwrap());
}

#[test]
fn state_round_trips_and_bad_state_is_refused() {
    let init = Tensor::from_slice(&[1.0f32, -1.0]);
    let (w, mut opt) = model(&init);
    let mut sc = scaler(2);
    let c = Tensor::from_slice(&[1.0f32, 2.0]);
    for _ in 0..3 {
        train_step(&w, &mut opt, &mut sc, &c);
    }
    assert_eq!((sc.scale_value(), sc.growth_tracker_value()), (131072.0, 1));
    let state = sc.state();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["scale", "growth_tracker"]);
    assert_eq!(
        (state[0].1.kind(), state[1].1.kind()),
        (Kind::Float, Kind::Int)
    );

    let mut fresh = scaler(2);
    fresh.load_state(&state).unwrap();
    assert_eq!(
        (fresh.scale_value(), fresh.growth_tracker_value()),
        (131072.0, 1)
    );
    // One more finite step grows both the same way.
    let (w2, mut opt2) = model(&w.detach());
    train_step(&w, &mut opt, &mut sc, &c);
    train_step(&w2, &mut opt2, &mut fresh, &c);
    assert_eq!(fresh.scale_value(), 262144.0);
    assert_eq!(fresh.scale_value(), sc.scale_value());

    // The saved state is a copy: later updates do not change it.
    assert_eq!(f64::try_from(&state[0].1).unwrap(), 131072.0);

    let scale = || ("scale".to_owned(), Tensor::from(4.0f32));
    let tracker = || ("growth_tracker".to_owned(), Tensor::from(3i64));
    let cases: Vec<(Vec<(String, Tensor)>, &str)> = vec![
        (vec![scale()], "GradScaler state has no `growth_tracker`"),
        (vec![tracker()], "GradScaler state has no `scale`"),
        (
            vec![
                scale(),
                tracker(),
                ("momentum_buffer.w".into(), Tensor::from(1.0f32)),
            ],
            "unknown GradScaler state entry `momentum_buffer.w` (expected scale, growth_tracker)",
        ),
        (
            vec![scale(), scale(), tracker()],
            "GradScaler state entry `scale` appears twice",
        ),
        (
            vec![
                ("scale".into(), Tensor::from_slice(&[1.0f32, 2.0])),
                tracker(),
            ],
            "GradScaler state `scale` must be one floating-point number, got 2 of Float",
        ),
        (
            vec![scale(), ("growth_tracker".into(), Tensor::from(1.0f32))],
            "GradScaler state `growth_tracker` must be one integer number, got 1 of Float",
        ),
    ];
    for (state, msg) in cases {
        let err = fresh.load_state(&state).unwrap_err();
        assert_eq!(err.to_string(), msg);
        assert_eq!(
            fresh.scale_value(),
            262144.0,
            "unchanged after a failed load"
        );
    }
    // Integer and float widths convert.
    fresh.load_state(&[scale(), tracker()]).unwrap();
    assert_eq!(
        (fresh.scale_value(), fresh.growth_tracker_value()),
        (4.0, 3)
    );
}

#[test]
fn config_validation_names_the_field() {
    let d = GradScalerConfig::default();
    for (cfg, msg) in [
        (
            GradScalerConfig {
                init_scale: 0.0,
                ..d
            },
            "GradScaler init_scale must be positive and finite, got 0",
        ),
        (
            GradScalerConfig {
                growth_factor: 1.0,
                ..d
            },
            "GradScaler growth_factor must be finite and > 1, got 1",
        ),
        (
            GradScalerConfig {
                backoff_factor: 1.5,
                ..d
            },
            "GradScaler backoff_factor must be in (0, 1), got 1.5",
        ),
        (
            GradScalerConfig {
                backoff_factor: f64::NAN,
                ..d
            },
            "GradScaler backoff_factor must be in (0, 1), got NaN",
        ),
        (
            GradScalerConfig {
                growth_interval: 0,
                ..d
            },
            "GradScaler growth_interval must be ≥ 1, got 0",
        ),
    ] {
        assert_eq!(cfg.validate().unwrap_err().to_string(), msg);
        assert!(GradScaler::new(cfg, Device::Cpu).is_err());
    }
}
