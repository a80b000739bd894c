//! Learning-rate schedules: RepDistiller's per-epoch multi-step rule (bit for bit), PyTorch's
//! MultiStepLR per epoch, CosineAnnealingLR and linear warm-up then cosine per batch; the
//! warm-up and cosine formulas by hand; validation; the config form.
//!
//! The reference rates come from `tests/parity/schedule.py`, run with the project's Python
//! (those tests skip, with a message, without it).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kd_core::schedule::{LrSchedule, Schedule, ScheduleConfig, ScheduleError, ScheduleKind};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde::de::value::{Error as ValueError, StrDeserializer};
use tch::Tensor;

/// Relative difference tolerated from PyTorch's schedulers, which compute rates recursively
/// (each from the previous one), so the last bits drift.
const REL_TOL: f64 = 1e-12;

/// The folder of `schedule.py`'s `schedule.npz`, made once per run; `None` without Python.
fn fixture_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| common::run_parity_script("schedule.py", "kd-schedule"))
        .as_deref()
}

/// The reference rates by name; `None` without Python.
fn fixture() -> Option<HashMap<String, Vec<f64>>> {
    let dir = fixture_dir()?;
    let tensors = Tensor::read_npz(dir.join("schedule.npz")).expect("reading schedule.npz");
    Some(
        tensors
            .into_iter()
            .map(|(k, t)| (k, Vec::<f64>::try_from(&t).unwrap()))
            .collect(),
    )
}

macro_rules! fixture_or_skip {
    () => {
        match fixture() {
            Some(f) => f,
            None => {
                eprintln!(
                    "skipping: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON to run PyTorch's schedulers"
                );
                return;
            }
        }
    };
}

fn close(what: &str, ours: f64, theirs: f64) {
    let d = (ours - theirs).abs();
    assert!(
        d <= REL_TOL * theirs.abs(),
        "{what}: {ours} vs PyTorch {theirs} (differ by {d:e})"
    );
}

fn repdistiller(lr0: f64) -> LrSchedule {
    let milestones = vec![150, 180, 210];
    LrSchedule::new(
        lr0,
        Schedule::MultiStep {
            milestones,
            gamma: 0.1,
        },
        0,
        240,
    )
    .unwrap()
}

#[test]
fn repdistiller_multistep_by_epoch() {
    let s = repdistiller(0.05);
    let steps = 391;
    for epoch in 1..=240 {
        let want = match epoch {
            1..=150 => 0.05,
            151..=180 => 0.005,
            181..=210 => 0.0005,
            _ => 0.00005,
        };
        for step in [0, 200, steps - 1] {
            let lr = s.lr(epoch, step, steps);
            assert!(
                (lr - want).abs() <= 1e-15 * want,
                "epoch {epoch} step {step}: {lr}, want {want}"
            );
        }
    }
}

#[test]
fn repdistiller_multistep_matches_its_code_exactly() {
    let fx = fixture_or_skip!();
    let s = repdistiller(0.05);
    for (i, want) in fx["repdistiller"].iter().enumerate() {
        let epoch = i + 1;
        assert_eq!(s.lr(epoch, 0, 100), *want, "epoch {epoch}");
    }
}

#[test]
fn multistep_matches_pytorch_multisteplr_per_epoch() {
    let fx = fixture_or_skip!();
    let s = LrSchedule::new(
        0.1,
        Schedule::MultiStep {
            milestones: vec![100, 150],
            gamma: 0.1,
        },
        0,
        200,
    )
    .unwrap();
    let theirs = &fx["multistep"];
    assert_eq!(theirs.len(), 200);
    for (e, want) in theirs.iter().enumerate() {
        // PyTorch's 0-based epoch e is our epoch e + 1.
        close(&format!("epoch {}", e + 1), s.lr(e + 1, 7, 50), *want);
    }
    assert!(
        theirs[100] < theirs[99] && theirs[150] < theirs[149],
        "decays happen"
    );
}

#[test]
fn cosine_matches_pytorch_per_batch() {
    let fx = fixture_or_skip!();
    let s = LrSchedule::new(0.1, Schedule::Cosine { min_lr: 1e-3 }, 0, 6).unwrap();
    let theirs = &fx["cosine"];
    assert_eq!(theirs.len(), 30);
    for (g, want) in theirs.iter().enumerate() {
        close(&format!("step {g}"), s.lr(g / 5 + 1, g % 5, 5), *want);
    }
}

#[test]
fn warmup_then_cosine_matches_pytorch_per_batch() {
    let fx = fixture_or_skip!();
    let s = LrSchedule::new(0.1, Schedule::Cosine { min_lr: 1e-3 }, 2, 6).unwrap();
    let theirs = &fx["warmup_cosine"];
    assert_eq!(theirs.len(), 30);
    for (g, want) in theirs.iter().enumerate() {
        close(&format!("step {g}"), s.lr(g / 5 + 1, g % 5, 5), *want);
    }
}

#[test]
fn warmup_and_cosine_by_hand() {
    let (lr0, min_lr, per_epoch) = (0.2, 0.02, 4);
    let s = LrSchedule::new(lr0, Schedule::Cosine { min_lr }, 1, 3).unwrap();
    // Warm-up: lr0·(g+1)/4 over the first epoch's 4 steps, reaching lr0.
    let near = |a: f64, b: f64| (a - b).abs() < 1e-15;
    for (step, want) in [0.05, 0.1, 0.15, 0.2].into_iter().enumerate() {
        let lr = s.lr(1, step, per_epoch);
        assert!(near(lr, want), "warm-up step {step}: {lr}, want {want}");
    }
    // Then the cosine over 8 steps, starting at lr0, halfway at the midpoint.
    assert!(near(s.lr(2, 0, per_epoch), lr0));
    let mid = s.lr(3, 0, per_epoch);
    assert!(near(mid, (lr0 + min_lr) / 2.0), "{mid}");
    let all: Vec<f64> = (2..=3)
        .flat_map(|e| (0..4).map(move |st| (e, st)))
        .map(|(e, st)| s.lr(e, st, per_epoch))
        .collect();
    assert!(all.windows(2).all(|w| w[1] < w[0]), "decreasing: {all:?}");
    assert!(*all.last().unwrap() > min_lr);
    // Past the end it stays at the floor.
    assert!(near(s.lr(4, 0, per_epoch), min_lr));
    assert!(near(s.lr(9, 3, per_epoch), min_lr));

    // Warm-up before a multi-step schedule, whose milestones count from epoch 1.
    let m = LrSchedule::new(
        1.0,
        Schedule::MultiStep {
            milestones: vec![2],
            gamma: 0.5,
        },
        1,
        4,
    )
    .unwrap();
    assert_eq!(m.lr(1, 0, 2), 0.5);
    assert_eq!(m.lr(1, 1, 2), 1.0);
    assert_eq!(m.lr(2, 0, 2), 1.0);
    assert_eq!(m.lr(3, 0, 2), 0.5);
    // Constant ignores epochs and steps.
    let c = LrSchedule::new(0.3, Schedule::Constant, 0, 5).unwrap();
    assert!(
        [(1, 0), (5, 9), (6, 0)]
            .iter()
            .all(|&(e, st)| c.lr(e, st, 10) == 0.3)
    );
}

#[test]
fn invalid_schedules_are_refused_naming_the_value() {
    let ms = |milestones: Vec<usize>, gamma| Schedule::MultiStep { milestones, gamma };
    let cases: Vec<(f64, Schedule, usize, usize, &str)> = vec![
        (
            0.1,
            ms(vec![150, 150, 210], 0.1),
            0,
            240,
            "milestones must be strictly increasing, got [150, 150, 210]",
        ),
        (
            0.1,
            ms(vec![180, 150], 0.1),
            0,
            240,
            "milestones must be strictly increasing, got [180, 150]",
        ),
        (
            0.1,
            ms(vec![150], 0.0),
            0,
            240,
            "gamma must be positive and finite, got 0",
        ),
        (
            0.1,
            ms(vec![150], -0.1),
            0,
            240,
            "gamma must be positive and finite, got -0.1",
        ),
        (
            0.1,
            Schedule::Constant,
            5,
            5,
            "warm-up of 5 epochs must be shorter than the 5 epochs of training",
        ),
        (
            0.1,
            Schedule::Constant,
            7,
            5,
            "warm-up of 7 epochs must be shorter than the 5 epochs of training",
        ),
        (
            0.1,
            Schedule::Constant,
            0,
            0,
            "a schedule needs at least one epoch, got 0",
        ),
        (
            0.0,
            Schedule::Constant,
            0,
            5,
            "base learning rate must be positive and finite, got 0",
        ),
        (
            f64::NAN,
            Schedule::Constant,
            0,
            5,
            "base learning rate must be positive and finite, got NaN",
        ),
        (
            0.1,
            Schedule::Cosine { min_lr: 0.5 },
            0,
            5,
            "min_lr must be in [0, base lr = 0.1], got 0.5",
        ),
        (
            0.1,
            Schedule::Cosine { min_lr: -1e-3 },
            0,
            5,
            "min_lr must be in [0, base lr = 0.1], got -0.001",
        ),
    ];
    for (lr, schedule, warmup, epochs, msg) in cases {
        let err = LrSchedule::new(lr, schedule, warmup, epochs).unwrap_err();
        assert_eq!(err.to_string(), msg);
    }
}

#[test]
fn config_builds_each_kind_and_rejects_stray_fields() {
    let base = ScheduleConfig {
        kind: ScheduleKind::MultiStep,
        milestones: Some(vec![150, 180, 210]),
        gamma: None,
        min_lr: None,
        warmup_epochs: 0,
    };
    assert_eq!(base.build(0.05, 240).unwrap(), repdistiller(0.05));
    let cosine = ScheduleConfig {
        kind: ScheduleKind::Cosine,
        milestones: None,
        warmup_epochs: 5,
        ..base.clone()
    };
    assert_eq!(
        cosine.build(0.1, 200).unwrap(),
        LrSchedule::new(0.1, Schedule::Cosine { min_lr: 0.0 }, 5, 200).unwrap()
    );
    let constant = ScheduleConfig {
        kind: ScheduleKind::Constant,
        milestones: None,
        ..base.clone()
    };
    assert_eq!(
        constant.build(0.01, 30).unwrap().schedule,
        Schedule::Constant
    );

    let err = |cfg: ScheduleConfig| cfg.build(0.1, 240).unwrap_err();
    assert_eq!(
        err(ScheduleConfig {
            milestones: None,
            ..base.clone()
        }),
        ScheduleError::MissingMilestones
    );
    assert_eq!(
        err(ScheduleConfig {
            min_lr: Some(0.0),
            ..base.clone()
        })
        .to_string(),
        "`min_lr` does not apply to the multistep schedule"
    );
    assert_eq!(
        err(ScheduleConfig {
            gamma: Some(0.2),
            ..cosine.clone()
        })
        .to_string(),
        "`gamma` does not apply to the cosine schedule"
    );
    assert_eq!(
        err(ScheduleConfig {
            milestones: Some(vec![3]),
            ..constant.clone()
        })
        .to_string(),
        "`milestones` does not apply to the constant schedule"
    );
    // The config's values are validated as the schedule's.
    assert!(matches!(
        err(ScheduleConfig {
            gamma: Some(-1.0),
            ..base.clone()
        }),
        ScheduleError::Gamma { .. }
    ));

    for (name, kind) in [
        ("constant", ScheduleKind::Constant),
        ("multistep", ScheduleKind::MultiStep),
        ("cosine", ScheduleKind::Cosine),
    ] {
        let de: StrDeserializer<ValueError> = name.into_deserializer();
        assert_eq!(ScheduleKind::deserialize(de).unwrap(), kind);
        assert_eq!(kind.to_string(), name);
    }
    let de: StrDeserializer<ValueError> = "multi_step".into_deserializer();
    assert!(ScheduleKind::deserialize(de).is_err());
}
