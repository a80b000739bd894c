//! kd's SGD against `torch.optim.SGD` (`foreach=False`): five steps on fixed gradients with a
//! changing learning rate, for momentum, Nesterov, dampening, kd_data's no-decay-on-1-D groups,
//! no momentum, and a parameter without a gradient; exact resume from saved state; naming
//! from a VarStore; configuration and state errors.
//!
//! PyTorch's trajectories come from `tests/parity/optim.py`, run with the project's Python
//! (skipped, with a message, without it). In float64 kd matches PyTorch to [`TOL_F64`]; in
//! float32 to [`TOL_F32`] (PyTorch's `add_(x, alpha=a)` is one fused multiply-add per element
//! where kd rounds the product first, so the last bit can differ).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kd_core::checkpoint::{read_safetensors, write_safetensors};
use kd_core::optim::{OptimError, Sgd, SgdConfig, named_trainable_variables};
use tch::{Device, Kind, Tensor, nn};

/// Largest difference tolerated from PyTorch on float64 parameters.
const TOL_F64: f64 = 1e-6;
/// Largest difference tolerated from PyTorch on float32 parameters (of order 1).
const TOL_F32: f64 = 1e-6;

/// The folder of `optim.py`'s `optim.npz`, made once per run; `None` without Python.
fn fixture_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| common::run_parity_script("optim.py", "kd-optim"))
        .as_deref()
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kd-optim-scratch")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    dir
}

/// A fresh, trainable copy of `t` as `kind`.
fn leaf(t: &Tensor, kind: Kind) -> Tensor {
    t.to_kind(kind).copy().set_requires_grad(true)
}

/// One parity case: its name in `optim.py`, the configuration, and the step at which the bias
/// gets no gradient.
struct Case {
    name: &'static str,
    cfg: SgdConfig,
    skip_bias_at: Option<usize>,
}

fn cases() -> Vec<Case> {
    let momentum = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 5e-4,
        no_decay_1d: false,
    };
    let nesterov = SgdConfig {
        nesterov: true,
        ..momentum
    };
    vec![
        Case {
            name: "momentum",
            cfg: momentum,
            skip_bias_at: None,
        },
        Case {
            name: "nesterov",
            cfg: nesterov,
            skip_bias_at: None,
        },
        Case {
            name: "dampening",
            cfg: SgdConfig {
                dampening: 0.1,
                ..momentum
            },
            skip_bias_at: None,
        },
        Case {
            name: "no_decay_1d",
            cfg: SgdConfig {
                no_decay_1d: true,
                ..nesterov
            },
            skip_bias_at: None,
        },
        Case {
            name: "plain",
            cfg: SgdConfig {
                momentum: 0.0,
                ..momentum
            },
            skip_bias_at: None,
        },
        Case {
            name: "skip_bias",
            cfg: momentum,
            skip_bias_at: Some(2),
        },
    ]
}

#[test]
fn sgd_matches_pytorch() {
    let Some(dir) = fixture_dir() else {
        eprintln!(
            "skipping: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON to run torch.optim.SGD"
        );
        return;
    };
    let fx: HashMap<String, Tensor> = Tensor::read_npz(dir.join("optim.npz"))
        .expect("reading optim.npz")
        .into_iter()
        .collect();
    let lrs = Vec::<f64>::try_from(&fx["lrs"]).unwrap();
    for case in cases() {
        for (dtype, kind, tol) in [
            ("f64", Kind::Double, TOL_F64),
            ("f32", Kind::Float, TOL_F32),
        ] {
            let w = leaf(&fx["init.weight"], kind);
            let b = leaf(&fx["init.bias"], kind);
            let params = vec![
                ("fc.weight".to_owned(), w.shallow_clone()),
                ("fc.bias".to_owned(), b.shallow_clone()),
            ];
            let mut opt = Sgd::new(params, case.cfg).unwrap();
            let mut worst = 0f64;
            for (i, lr) in lrs.iter().enumerate() {
                opt.zero_grad();
                let gw = fx[&format!("grad{i}.weight")].to_kind(kind);
                let gb = fx[&format!("grad{i}.bias")].to_kind(kind);
                let mut loss = (&w * gw).sum(None);
                if case.skip_bias_at != Some(i) {
                    loss += (&b * gb).sum(None);
                }
                loss.backward();
                let bias_before = b.copy();
                opt.step(*lr);
                if case.skip_bias_at == Some(i) {
                    assert!(b.equal(&bias_before), "{}: the bias moved", case.name);
                }
                for (p, t) in [("weight", &w), ("bias", &b)] {
                    let key = format!("{}.{dtype}.step{i}.{p}", case.name);
                    let d = common::max_abs_diff(t, &fx[&key]);
                    assert!(d <= tol, "{key}: differs from PyTorch by {d:e}");
                    worst = worst.max(d);
                }
            }
            let moved = common::max_abs_diff(&w, &fx["init.weight"]);
            assert!(moved > 0.1, "{}: the weight barely moved", case.name);
            eprintln!(
                "{} {dtype}: largest difference from PyTorch over 5 steps {worst:e}",
                case.name
            );
        }
    }
}

/// Per step, per parameter: the gradient, or none.
type Grads = Vec<Vec<Option<Tensor>>>;

/// The parameters of the resume test and their gradients for `steps` steps (seeded).
fn resume_problem(steps: usize) -> (Vec<(String, Tensor)>, Grads) {
    tch::manual_seed(21);
    let opts = (Kind::Float, Device::Cpu);
    let params = vec![
        ("a.weight".to_owned(), Tensor::randn([5, 4], opts)),
        ("a.bias".to_owned(), Tensor::randn([5], opts)),
        ("late.weight".to_owned(), Tensor::randn([3, 2], opts)),
    ];
    let grads = (0..steps)
        .map(|i| {
            params
                .iter()
                .map(|(name, p)| {
                    // `late` gets no gradient for the first 5 steps: no buffer when saved.
                    let g = Tensor::randn(p.size(), opts);
                    (!(name.starts_with("late") && i < 5)).then_some(g)
                })
                .collect()
        })
        .collect();
    (params, grads)
}

/// Fresh trainable copies of `params`.
fn fresh(params: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(n, p)| (n.clone(), leaf(p, Kind::Float)))
        .collect()
}

/// Runs `opt` over `grads[range]` (gradient injected by backward of Σ p·g).
fn run(opt: &mut Sgd, grads: &Grads, range: std::ops::Range<usize>) {
    for i in range {
        opt.zero_grad();
        let mut loss = Tensor::from(0f32);
        for (p, g) in opt.params().iter().zip(&grads[i]) {
            if let Some(g) = g {
                loss += (p * g).sum(None);
            }
        }
        loss.backward();
        opt.step(0.1 / (1 + i) as f64);
    }
}

#[test]
fn resuming_from_saved_state_is_bit_exact() {
    let steps = 10;
    let (init, grads) = resume_problem(steps);
    let cfg = SgdConfig {
        nesterov: true,
        no_decay_1d: true,
        ..SgdConfig::default()
    };

    let mut straight = Sgd::new(fresh(&init), cfg).unwrap();
    run(&mut straight, &grads, 0..steps);

    let mut first = Sgd::new(fresh(&init), cfg).unwrap();
    run(&mut first, &grads, 0..6);
    let dir = scratch("resume");
    let params: Vec<(String, Tensor)> = first
        .names()
        .iter()
        .cloned()
        .zip(first.params().iter().map(|p| p.detach()))
        .collect();
    write_safetensors(&params, dir.join("params.safetensors")).unwrap();
    let state = first.state();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "momentum_buffer.a.weight",
            "momentum_buffer.a.bias",
            "momentum_buffer.late.weight"
        ]
    );
    write_safetensors(&state, dir.join("optim.safetensors")).unwrap();
    drop(first);

    // The file holds the names sorted; rebuild the parameters in their original order.
    let saved = read_safetensors(dir.join("params.safetensors")).unwrap();
    let params: Vec<(String, Tensor)> = init
        .iter()
        .map(|(n, _)| {
            (
                n.clone(),
                saved.get(n).expect("saved parameter").shallow_clone(),
            )
        })
        .collect();
    let mut resumed = Sgd::new(fresh(&params), cfg).unwrap();
    let state = read_safetensors(dir.join("optim.safetensors")).unwrap();
    resumed.load_state(&state.tensors).unwrap();
    run(&mut resumed, &grads, 6..steps);
    for ((name, a), b) in straight
        .names()
        .iter()
        .zip(straight.params())
        .zip(resumed.params())
    {
        assert!(a.equal(b), "{name} differs after resuming");
    }

    // Resuming before `late` had a gradient: no buffer for it, created at its first step.
    let mut first = Sgd::new(fresh(&init), cfg).unwrap();
    run(&mut first, &grads, 0..4);
    let state: Vec<(String, Tensor)> = first
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    assert_eq!(state.len(), 2, "no buffer yet for late.weight");
    let params: Vec<(String, Tensor)> = first
        .names()
        .iter()
        .cloned()
        .zip(first.params().iter().map(|p| p.detach().copy()))
        .collect();
    let mut resumed = Sgd::new(fresh(&params), cfg).unwrap();
    resumed.load_state(&state).unwrap();
    run(&mut resumed, &grads, 4..steps);
    for (a, b) in straight.params().iter().zip(resumed.params()) {
        assert!(a.equal(b));
    }

    // Whereas dropping the momentum (what tch's optimizer forces) changes the result.
    let mut reset = Sgd::new(fresh(&params), cfg).unwrap();
    run(&mut reset, &grads, 4..steps);
    let d = common::max_abs_diff(&straight.params()[0], &reset.params()[0]);
    assert!(d > 1e-3, "losing the momentum should matter ({d:e})");
}

#[test]
fn zero_grad_resets_to_none_and_such_parameters_are_skipped() {
    let opts = (Kind::Double, Device::Cpu);
    let a = Tensor::ones([2, 2], opts).set_requires_grad(true);
    let b = Tensor::ones([2], opts).set_requires_grad(true);
    let mut opt = Sgd::new(
        vec![
            ("a".into(), a.shallow_clone()),
            ("b".into(), b.shallow_clone()),
        ],
        SgdConfig::default(),
    )
    .unwrap();
    ((&a * 2.0).sum(None) + (&b * 3.0).sum(None)).backward();
    assert_eq!(opt.grads().len(), 2);
    opt.step(0.1);
    assert_eq!(opt.state().len(), 2);
    opt.zero_grad();
    assert!(!a.grad().defined() && !b.grad().defined());
    assert!(opt.grads().is_empty());
    (&a * 2.0).sum(None).backward();
    let b_before = b.copy();
    let a_before = a.copy();
    opt.step(0.1);
    assert!(b.equal(&b_before), "b had no gradient: untouched");
    assert!(!a.equal(&a_before));
    // By hand: a started at 1, g = 2 + 5e-4·1, buffer = g; then g' = 2 + 5e-4·a1,
    // buffer' = 0.9·g + g', a2 = a1 − 0.1·buffer'.
    let g0 = 2.0 + 5e-4;
    let a1 = 1.0 - 0.1 * g0;
    let g1 = 2.0 + 5e-4 * a1;
    let a2 = a1 - 0.1 * (0.9 * g0 + g1);
    let d = f64::try_from((&a - a2).abs().max()).unwrap();
    assert!(d < 1e-15, "a = {a2} by hand, differs by {d:e}");
}

#[test]
fn no_decay_1d_spares_biases_and_norm_parameters() {
    let opts = (Kind::Double, Device::Cpu);
    let params: [(&str, Vec<i64>); 4] = [
        ("w", vec![3, 2]),
        ("conv", vec![2, 1, 3, 3]),
        ("b", vec![3]),
        ("s", vec![]),
    ];
    let run = |no_decay_1d| {
        let cfg = SgdConfig {
            momentum: 0.0,
            weight_decay: 0.1,
            no_decay_1d,
            ..SgdConfig::default()
        };
        let tensors: Vec<(String, Tensor)> = params
            .iter()
            .map(|(n, s)| {
                (
                    n.to_string(),
                    Tensor::ones(s.as_slice(), opts).set_requires_grad(true),
                )
            })
            .collect();
        let mut opt = Sgd::new(tensors, cfg).unwrap();
        let loss = opt
            .params()
            .iter()
            .map(|p| (p * 0.0).sum(None))
            .fold(Tensor::from(0f64), |a, b| a + b);
        loss.backward();
        opt.step(1.0);
        opt.params()
            .iter()
            .map(|p| f64::try_from(p.max()).unwrap())
            .collect::<Vec<_>>()
    };
    // A zero gradient: only the decay moves p, to p − lr·λ·p = 0.9.
    assert_eq!(run(false), [0.9, 0.9, 0.9, 0.9]);
    assert_eq!(run(true), [0.9, 0.9, 1.0, 1.0]);
}

#[test]
fn var_store_parameters_are_named_and_sorted() {
    let (vs, _net) = common::build("resnet8", 10, 32);
    let named = named_trainable_variables(&vs).unwrap();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    let mut want: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, _)| n)
        .collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(named.len(), vs.trainable_variables().len());
    assert!(!names.iter().any(|n| n.contains("running_")));
    let vars = vs.variables();
    for (n, t) in &named {
        assert!(t.is_set_to(&vars[n]), "{n} is not the VarStore's tensor");
    }
    let opt = Sgd::from_var_store(&vs, SgdConfig::default()).unwrap();
    assert_eq!(opt.names(), want.as_slice());
    assert_eq!(
        opt.params().iter().map(|p| p.numel() as i64).sum::<i64>(),
        common::param_count(&vs)
    );

    // A regressor added later, under a prefix; a clash is refused and adds nothing.
    let reg = nn::VarStore::new(Device::Cpu);
    let _lin = nn::linear(reg.root() / "proj", 4, 3, Default::default());
    let mut opt = opt;
    let before = opt.names().len();
    opt.add_params("regressor", named_trainable_variables(&reg).unwrap())
        .unwrap();
    assert_eq!(
        &opt.names()[before..],
        ["regressor.proj.bias", "regressor.proj.weight"]
    );
    let err = opt
        .add_params("regressor", named_trainable_variables(&reg).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, OptimError::DuplicateParam { name } if name == "regressor.proj.bias"),
        "{err}"
    );
    assert_eq!(opt.names().len(), before + 2);
}

#[test]
fn config_validation_names_the_field() {
    assert!(SgdConfig::default().validate().is_ok());
    let d = SgdConfig::default();
    for (cfg, field, value) in [
        (SgdConfig { lr: -0.1, ..d }, "lr", "-0.1"),
        (
            SgdConfig {
                momentum: -0.9,
                ..d
            },
            "momentum",
            "-0.9",
        ),
        (
            SgdConfig {
                dampening: -1.0,
                ..d
            },
            "dampening",
            "-1",
        ),
        (
            SgdConfig {
                weight_decay: f64::NAN,
                ..d
            },
            "weight_decay",
            "NaN",
        ),
    ] {
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err, OptimError::Hyper { field: f, .. } if f == field));
        let msg = err.to_string();
        assert!(msg.contains(field) && msg.contains(value), "{msg}");
        assert!(Sgd::new(vec![], cfg).is_err());
    }
    for (momentum, dampening) in [(0.0, 0.0), (0.9, 0.1)] {
        let cfg = SgdConfig {
            nesterov: true,
            momentum,
            dampening,
            ..d
        };
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err, OptimError::Nesterov { .. }), "{err}");
        assert!(err.to_string().contains(&format!("momentum {momentum}")));
    }
    let kd_data = SgdConfig {
        lr: 0.1,
        nesterov: true,
        no_decay_1d: true,
        ..d
    };
    assert!(kd_data.validate().is_ok());
}

#[test]
fn load_state_errors_leave_the_state_alone() {
    let opts = (Kind::Float, Device::Cpu);
    let w = Tensor::ones([2, 3], opts).set_requires_grad(true);
    let mut opt = Sgd::new(vec![("w".into(), w.shallow_clone())], SgdConfig::default()).unwrap();
    (&w * 1.5).sum(None).backward();
    opt.step(0.1);
    let before = opt.state()[0].1.copy();
    let good = || ("momentum_buffer.w".to_owned(), Tensor::zeros([2, 3], opts));
    let cases: Vec<(Vec<(String, Tensor)>, &str)> = vec![
        (
            vec![
                good(),
                ("momentum_buffer.v".into(), Tensor::zeros([2, 3], opts)),
            ],
            "unknown optimizer state entry `momentum_buffer.v`",
        ),
        (
            vec![("w".into(), Tensor::zeros([2, 3], opts))],
            "unknown optimizer state entry `w`",
        ),
        (
            vec![("momentum_buffer.w".into(), Tensor::zeros([3, 2], opts))],
            "optimizer state `momentum_buffer.w` has shape [3, 2], its parameter [2, 3]",
        ),
        (
            vec![good(), good()],
            "optimizer state entry `momentum_buffer.w` appears twice",
        ),
        (
            vec![(
                "momentum_buffer.w".into(),
                Tensor::zeros([2, 3], (Kind::Int64, Device::Cpu)),
            )],
            "optimizer state `momentum_buffer.w` has dtype Int64, expected a floating-point tensor",
        ),
    ];
    for (state, msg) in cases {
        let err = opt.load_state(&state).unwrap_err();
        assert_eq!(err.to_string(), msg);
        assert!(
            opt.state()[0].1.equal(&before),
            "state changed by a failed load"
        );
    }
    // A float64 buffer is converted; the loaded buffer is a copy.
    let src = Tensor::full([2, 3], 0.25, (Kind::Double, Device::Cpu));
    opt.load_state(&[("momentum_buffer.w".into(), src.shallow_clone())])
        .unwrap();
    let (_, buf) = &opt.state()[0];
    assert_eq!(buf.kind(), Kind::Float);
    (&w * 0.0).sum(None).backward();
    opt.step(0.1);
    assert_eq!(
        f64::try_from(src.mean(None)).unwrap(),
        0.25,
        "source untouched"
    );
    // An empty state clears the buffers.
    opt.load_state(&[]).unwrap();
    assert!(opt.state().is_empty());

    let mut plain = Sgd::new(
        vec![("w".into(), w.shallow_clone())],
        SgdConfig {
            momentum: 0.0,
            ..SgdConfig::default()
        },
    )
    .unwrap();
    let err = plain.load_state(&[good()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "optimizer state has `momentum_buffer.w` but the momentum is 0"
    );
}
